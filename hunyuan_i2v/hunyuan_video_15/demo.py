"""A tiny random HunyuanVideo-1.5 image-to-video model, written in the diffusers layout.

It mirrors the 13B HunyuanVideo-I2V family's demo module for the 1.5
release: every component has the real architecture at toy sizes, weights are
random but fixed by ``seed``, and the tokenizers are built on the spot, so
nothing is downloaded. ``diffusers.HunyuanVideo15ImageToVideoPipeline
.from_pretrained(folder)`` loads the folder and runs end to end on CPU in
float32 in seconds; its output is noise.

What must agree between the parts (the pipeline checks none of it up front):

* transformer ``text_embed_dim`` = Qwen hidden size, ``text_embed_2_dim`` = T5
  ``d_model``, ``image_embed_dim`` = SigLIP hidden size,
  ``in_channels = 2 * latent + 1`` (noisy latents, image latents, mask),
  ``out_channels = latent``, ``sum(rope_axes_dim) = attention_head_dim``;
* the pipeline reads ``hidden_states[-3]`` of the Qwen model (it skips two
  layers), so the tiny Qwen needs at least 3 layers for that to be a layer
  output rather than the token embeddings;
* the pipeline crops the first 108 tokens (the chat template's system part)
  off the Qwen output. 108 is the number of pieces Qwen's pre-tokenizer cuts
  that prefix into, so it is the count when every word (and each run of
  eight spaces) is a single token, as Qwen's 151k-token vocabulary should
  give (not checked against the real tokenizer here: nothing is
  downloaded). The tiny tokenizer is trained to saturation on that text, so
  its system part is exactly 108 tokens too (``conditioning.system_prefix_length``);
* ByT5 ids go up to 383 (256 bytes, 3 specials, 125 extra ids), so the T5
  vocabulary is 384;
* ``target_size`` (a transformer config entry, in pixels) picks the video
  size: the pipeline snaps the input image to an aspect-ratio bucket of
  about ``target_size**2`` pixels in steps of the VAE's 16x spatial factor.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from . import defaults

# ---------------------------------------------------------------- sizes
LATENT_CHANNELS = 4  # real: 32
VAE_BLOCK_CHANNELS = (8, 8, 16, 16, 16)  # real: (128, 256, 512, 1024, 1024); 16x needs 5 levels
VAE_SPATIAL_COMPRESSION = 16  # as the real VAE
VAE_TEMPORAL_COMPRESSION = 4  # as the real VAE

TEXT_HIDDEN = 32  # Qwen2.5-VL-7B: 3584
TEXT_LAYERS = 3  # hidden_states[-3] must be a layer's output, not the embeddings
TEXT_HEADS = 2
TEXT_KV_HEADS = 1
TEXT_MROPE_SECTION = (2, 3, 3)  # sums to head_dim / 2 = 32 / 2 / 2; real: (16, 24, 24)

BYT5_HIDDEN = 16  # T5 d_model; Glyph-ByT5 (byt5-small): 1472
BYT5_VOCAB = 384  # 256 bytes + <pad> </s> <unk> + 125 extra ids

IMAGE_HIDDEN = 24  # SigLIP so400m: 1152
IMAGE_SIZE = 28  # SigLIP so400m: 384
IMAGE_PATCH = 14  # as SigLIP so400m
IMAGE_TOKENS = (IMAGE_SIZE // IMAGE_PATCH) ** 2  # 4; real: 729

TRANSFORMER_HEADS = 2  # real: 16
TRANSFORMER_HEAD_DIM = 20  # real: 128
ROPE_AXES_DIM = (4, 8, 8)  # (t, h, w), sums to the head dim; real: (16, 56, 56)
TRANSFORMER_LAYERS = 2  # real: 54
REFINER_LAYERS = 1  # real: 2
TARGET_SIZE = 64  # real 480p: 640. A 48x64 (h x w) image gives a 48x64 video

FLOW_SHIFT = 5.0
GUIDANCE_SCALE = 6.0

# The pipeline's system message. Its source continues the string with "\" at
# line ends, so each numbered item starts after nine spaces: they are part of
# the text the model sees and of the 108-token crop.
SYSTEM_MESSAGE = defaults.SYSTEM_MESSAGE  # the text the tokenizer is trained on, nine-space runs included
PROMPT_TEMPLATE_CROP_START = 108  # the pipeline's prompt_template_encode_start_idx

QWEN_SPECIALS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>",
    "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]
# Qwen2-VL / Qwen2.5-VL's chat template (text, image and video content parts).
QWEN_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}"
    "{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TRAINING_TEXT = [
    SYSTEM_MESSAGE,
    "system\nuser\nassistant\n",  # the role names as the template writes them: one token each
    "You are a helpful assistant.",
    "a cat walks on the grass, a red car drives along the road, a sign that says hello",
    "blurry, low quality, static, deformation, bad teeth, bad eyes, text, watermark",
]
QWEN_VOCAB_LIMIT = 2048  # above what the text needs: BPE runs until every word is one token


def build_qwen_tokenizer():
    """Qwen2's byte-level BPE, trained here, with Qwen's special tokens and chat template.

    The pre-tokenizer (Qwen's split regex, then byte level) and NFC normalizer
    are exactly the ones ``Qwen2Tokenizer`` builds, so the trained vocabulary
    and merges load into a real ``Qwen2Tokenizer`` unchanged. Padding is on
    the right, as the pipeline crops a fixed-length prefix off the front.
    """
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    trainer = trainers.BpeTrainer(
        vocab_size=QWEN_VOCAB_LIMIT, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    bpe.train_from_iterator(TRAINING_TEXT, trainer)
    model = json.loads(bpe.to_str())["model"]
    vocab = dict(model["vocab"])
    for token in QWEN_SPECIALS:  # after the ordinary vocabulary, as in Qwen (151643...)
        vocab[token] = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    tokenizer = Qwen2Tokenizer(
        vocab=vocab, merges=merges, unk_token=None, bos_token=None, eos_token="<|im_end|>",
        pad_token="<|endoftext|>", additional_special_tokens=QWEN_SPECIALS[1:], model_max_length=131072,
        padding_side="right", chat_template=QWEN_CHAT_TEMPLATE,
    )
    return tokenizer


def build_components(
    seed: int = 0, *, target_size: int = TARGET_SIZE, use_meanflow: bool = False
) -> dict:
    """Tiny random components, keyed by ``HunyuanVideo15ImageToVideoPipeline.__init__``'s argument names.

    Each model is built right after seeding torch with ``seed`` and its own
    offset, inside a forked RNG, so the weights depend on ``seed`` only (not
    on call order) and the caller's RNG is left alone. The models keep their
    library's own initialisation: PyTorch's fan-in scaled uniform for the
    diffusers models (as diffusers' own tests build tiny models) and the
    config's normal init for the transformers models, which keeps activations
    of order one through the tiny stacks.

    ``use_meanflow`` adds the second (reference) timestep embedder of the
    distilled MeanFlow checkpoints; the pipeline then passes ``timestep_r``.
    """
    import transformers
    from diffusers import (
        AutoencoderKLHunyuanVideo15, FlowMatchEulerDiscreteScheduler, HunyuanVideo15Transformer3DModel,
    )

    if int(transformers.__version__.split(".")[0]) < 5:
        # Qwen2Tokenizer(vocab=..., merges=...), rope_parameters and SiglipImageProcessorPil are transformers 5 API
        raise RuntimeError(f"the tiny HunyuanVideo-1.5 needs transformers 5, not {transformers.__version__}")
    from diffusers.guiders import ClassifierFreeGuidance
    from transformers import (
        ByT5Tokenizer, Qwen2_5_VLTextConfig, Qwen2_5_VLTextModel, SiglipVisionConfig, SiglipVisionModel,
        T5Config, T5EncoderModel,
    )

    tokenizer = build_qwen_tokenizer()
    tokenizer_2 = ByT5Tokenizer()  # bytes need no vocabulary file
    if len(tokenizer_2) > BYT5_VOCAB:
        raise ValueError(f"ByT5 ids reach {len(tokenizer_2) - 1}, above the T5 vocabulary of {BYT5_VOCAB}")

    def seeded(offset, make):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed * 1000 + offset)
            return make().eval()

    head_dim = TEXT_HIDDEN // TEXT_HEADS
    if 2 * sum(TEXT_MROPE_SECTION) != head_dim:
        raise ValueError(f"mrope_section {TEXT_MROPE_SECTION} must sum to head_dim / 2 = {head_dim // 2}")
    text_config = Qwen2_5_VLTextConfig(
        vocab_size=len(tokenizer), hidden_size=TEXT_HIDDEN, intermediate_size=2 * TEXT_HIDDEN,
        num_hidden_layers=TEXT_LAYERS, num_attention_heads=TEXT_HEADS, num_key_value_heads=TEXT_KV_HEADS,
        max_position_embeddings=2048, max_window_layers=TEXT_LAYERS, rms_norm_eps=1e-6,
        initializer_range=TEXT_HIDDEN**-0.5,  # 0.02 would leave the layers' updates at ~1% of the embeddings
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": list(TEXT_MROPE_SECTION)},
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"), eos_token_id=tokenizer.eos_token_id,
    )
    text_encoder = seeded(1, lambda: Qwen2_5_VLTextModel(text_config))

    text_encoder_2 = seeded(2, lambda: T5EncoderModel(T5Config(
        vocab_size=BYT5_VOCAB, d_model=BYT5_HIDDEN, d_kv=8, d_ff=2 * BYT5_HIDDEN, num_layers=2, num_heads=2,
        relative_attention_num_buckets=8, relative_attention_max_distance=32, feed_forward_proj="gated-gelu",
        dropout_rate=0.0, pad_token_id=tokenizer_2.pad_token_id, eos_token_id=tokenizer_2.eos_token_id,
        decoder_start_token_id=tokenizer_2.pad_token_id, is_encoder_decoder=False, use_cache=False,
    )))

    image_encoder = seeded(3, lambda: SiglipVisionModel(SiglipVisionConfig(
        hidden_size=IMAGE_HIDDEN, intermediate_size=2 * IMAGE_HIDDEN, num_hidden_layers=2, num_attention_heads=2,
        image_size=IMAGE_SIZE, patch_size=IMAGE_PATCH,
    )))
    feature_extractor = _siglip_image_processor()

    transformer = seeded(4, lambda: HunyuanVideo15Transformer3DModel(
        in_channels=2 * LATENT_CHANNELS + 1, out_channels=LATENT_CHANNELS, num_attention_heads=TRANSFORMER_HEADS,
        attention_head_dim=TRANSFORMER_HEAD_DIM, num_layers=TRANSFORMER_LAYERS, num_refiner_layers=REFINER_LAYERS,
        mlp_ratio=4.0, patch_size=1, patch_size_t=1, qk_norm="rms_norm", text_embed_dim=TEXT_HIDDEN,
        text_embed_2_dim=BYT5_HIDDEN, image_embed_dim=IMAGE_HIDDEN, rope_theta=256.0,
        rope_axes_dim=ROPE_AXES_DIM, target_size=target_size, task_type="i2v", use_meanflow=use_meanflow,
    ))
    vae = seeded(5, lambda: AutoencoderKLHunyuanVideo15(
        in_channels=3, out_channels=3, latent_channels=LATENT_CHANNELS, block_out_channels=VAE_BLOCK_CHANNELS,
        layers_per_block=1, spatial_compression_ratio=VAE_SPATIAL_COMPRESSION,
        temporal_compression_ratio=VAE_TEMPORAL_COMPRESSION,
    ))
    return {
        "text_encoder": text_encoder, "tokenizer": tokenizer, "transformer": transformer, "vae": vae,
        "scheduler": FlowMatchEulerDiscreteScheduler(shift=FLOW_SHIFT),
        "text_encoder_2": text_encoder_2, "tokenizer_2": tokenizer_2,
        "guider": ClassifierFreeGuidance(guidance_scale=GUIDANCE_SCALE),
        "image_encoder": image_encoder, "feature_extractor": feature_extractor,
    }


def _siglip_image_processor():
    """SigLIP's preprocessing at the tiny tower's input size: resize (no crop) to a square, scale to [-1, 1].

    ``SiglipImageProcessor`` needs torchvision in transformers 5; without it
    transformers hands back ``SiglipImageProcessorPil``, which does the same
    thing. The saved config is the same either way apart from its class name.
    """
    import warnings

    from transformers.utils import is_torchvision_available

    if is_torchvision_available():
        from transformers import SiglipImageProcessor as cls
    else:
        from transformers import SiglipImageProcessorPil as cls
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls(
            size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, resample=3, do_resize=True, do_rescale=True,
            do_normalize=True, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5], do_convert_rgb=True,
        )


def write_diffusers_folder(folder: str | Path, seed: int = 0, **kwargs) -> Path:
    """Write the tiny model as a diffusers folder: one subfolder per component and a model_index.json.

    ``kwargs`` go to ``build_components``. The pipeline's ``save_pretrained``
    calls each component's own ``save_pretrained`` (safetensors weights,
    configs, tokenizer files with the chat template, the guider's
    guider_config.json) and writes model_index.json naming
    ``HunyuanVideo15ImageToVideoPipeline`` and each component's class.
    """
    from diffusers import HunyuanVideo15ImageToVideoPipeline

    folder = Path(folder)
    pipe = HunyuanVideo15ImageToVideoPipeline(**build_components(seed, **kwargs))
    pipe.save_pretrained(str(folder), safe_serialization=True)
    return folder
