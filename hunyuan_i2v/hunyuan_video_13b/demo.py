"""A tiny random HunyuanVideo-I2V, written to disk in the diffusers layout.

``generate --demo`` uses it to run the whole path on a fresh machine in
seconds (its output is noise: the weights are random), and the tests use it
as their model. Every part has the real architecture at toy sizes, and the
tokenizers are trained on the spot, so nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

LLAMA_SPECIALS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<image>", "<pad>"]
TRAINING_TEXT = [
    "Describe the video by detailing the following aspects according to the reference image",
    "The main content and theme of the video. The color, shape, size, texture, quantity, text",
    "spatial relationships of the objects. Actions, events, behaviors temporal relationships",
    "physical movement changes of the objects. background environment, light, style and atmosphere",
    "camera angles, movements, and transitions used in the video: system user assistant",
    "a cat walks on the grass, a red car drives along the road, deformation, bad teeth, bad eyes",
]
LATENT_CHANNELS = 4
IMAGE_SIZE = 28  # vision tower input: 2x2 patches of 14 px -> 4 image tokens


def build_llama_tokenizer(folder: Path):
    """Byte-level BPE in the Llama-3 style, with its special tokens and BOS rule."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=LLAMA_SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TRAINING_TEXT, trainer)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A $B", special_tokens=[("<|begin_of_text|>", bos)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>", pad_token="<pad>",
        model_max_length=100_000,
    )
    fast.padding_side = "right"
    fast.save_pretrained(str(folder))
    return fast


def build_clip_tokenizer(folder: Path):
    """CLIP's vocab.json + merges.txt layout: byte alphabet, end-of-word forms, a few merges."""
    from tokenizers import pre_tokenizers
    from transformers import AutoTokenizer

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab_list = alphabet + [c + "</w>" for c in alphabet]
    merges = [("t", "h"), ("th", "e</w>"), ("a", "n"), ("an", "d</w>"), ("o", "f</w>")]
    vocab_list += ["".join(m) for m in merges]
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab_list)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
    }))
    return AutoTokenizer.from_pretrained(str(folder))


def build_components(variant: str = "token_replace", seed: int = 0) -> dict:
    """Tiny random components with the real architecture, for the given release."""
    from diffusers import AutoencoderKLHunyuanVideo, FlowMatchEulerDiscreteScheduler, HunyuanVideoTransformer3DModel
    from transformers import (
        CLIPImageProcessorPil, CLIPTextConfig, CLIPTextModel, CLIPVisionConfig, LlamaConfig, LlavaConfig,
        LlavaForConditionalGeneration,
    )

    if variant not in ("token_replace", "latent_concat"):
        raise ValueError(f"variant must be token_replace or latent_concat, not {variant}")
    torch.manual_seed(seed)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = build_llama_tokenizer(Path(tmp) / "tokenizer")
        clip_tokenizer = build_clip_tokenizer(Path(tmp) / "tokenizer_2")
    image_id, pad_id = tokenizer.convert_tokens_to_ids("<image>"), tokenizer.pad_token_id
    text_config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=3,
        num_attention_heads=2, num_key_value_heads=2, head_dim=8, pad_token_id=pad_id, rms_norm_eps=1e-5,
        rope_theta=500000.0,  # Llama-3 values, as in the real text encoder
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    vision_config = CLIPVisionConfig(
        hidden_size=8, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2, image_size=IMAGE_SIZE,
        patch_size=14, projection_dim=8,
    )
    llava_config = LlavaConfig(
        vision_config=vision_config.to_dict(), text_config=text_config.to_dict(), image_token_index=image_id,
        pad_token_id=pad_id, vision_feature_layer=-2, vision_feature_select_strategy="default",
    )
    llava_config.vision_config.model_type = "clip_vision_model"
    text_encoder = LlavaForConditionalGeneration(llava_config).eval()
    clip_vocab = len(clip_tokenizer)
    text_encoder_2 = CLIPTextModel(CLIPTextConfig(
        vocab_size=clip_vocab, hidden_size=8, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=77, projection_dim=8, eos_token_id=clip_tokenizer.eos_token_id,
        bos_token_id=clip_tokenizer.bos_token_id, pad_token_id=clip_tokenizer.pad_token_id,
    )).eval()
    concat = variant == "latent_concat"
    transformer = HunyuanVideoTransformer3DModel(
        in_channels=2 * LATENT_CHANNELS + 1 if concat else LATENT_CHANNELS, out_channels=LATENT_CHANNELS,
        num_attention_heads=2, attention_head_dim=10, num_layers=1, num_single_layers=1, num_refiner_layers=1,
        patch_size=2, patch_size_t=1, guidance_embeds=not concat, text_embed_dim=16, pooled_projection_dim=8,
        rope_axes_dim=(2, 4, 4), image_condition_type=variant,
    ).eval()
    vae = AutoencoderKLHunyuanVideo(
        in_channels=3, out_channels=3, latent_channels=LATENT_CHANNELS, block_out_channels=(8, 8, 8, 8),
        down_block_types=("HunyuanVideoDownBlock3D",) * 4, up_block_types=("HunyuanVideoUpBlock3D",) * 4,
        layers_per_block=1, norm_num_groups=4, spatial_compression_ratio=8, temporal_compression_ratio=4,
    ).eval()
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    )
    return {
        "transformer": transformer, "vae": vae, "scheduler": FlowMatchEulerDiscreteScheduler(shift=7.0),
        "text_encoder": text_encoder, "tokenizer": tokenizer, "text_encoder_2": text_encoder_2,
        "tokenizer_2": clip_tokenizer, "image_processor": image_processor,
    }


def write_diffusers_folder(folder: str | Path, variant: str = "token_replace", seed: int = 0) -> Path:
    """Write a tiny HunyuanVideo-I2V in the community conversion's folder layout."""
    from diffusers import HunyuanVideoImageToVideoPipeline

    folder = Path(folder)
    pipe = HunyuanVideoImageToVideoPipeline(**build_components(variant, seed))
    pipe.save_pretrained(str(folder), safe_serialization=True)
    return folder
