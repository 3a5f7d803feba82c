"""Tiny random HunyuanVideo-1.5 super-resolution weights in Tencent's release folder layout.

Written without Tencent's code, so the same folder feeds both the pack's loaders and, where a copy of Tencent's
repository is at hand, Tencent's own pipeline (tests/tencent_sr_reference.py). The layout is what Tencent's
loaders read (hyvideo/pipelines/hunyuan_video_pipeline.py, ``load_sr_transformer_upsampler``,
``_load_text_encoders``, ``_load_vision_encoder``, ``_load_byt5``):

    transformer/{720p,1080p}_sr_distilled/   config.json + diffusion_pytorch_model.safetensors (Tencent key names)
    upsampler/{720p,1080p}_sr_distilled/     config.json + diffusion_pytorch_model.safetensors
    vae/                                     config.json + diffusion_pytorch_model.safetensors (Tencent key names)
    text_encoder/llm/                        Qwen2.5-VL text model and tokenizer (transformers' own files)
    text_encoder/byt5-small/                 T5 and the ByT5 tokenizer
    text_encoder/Glyph-SDXL-v2/assets/{color_idx.json, multilingual_10-lang_idx.json}
    text_encoder/Glyph-SDXL-v2/checkpoints/byt5_model.pt   the T5 encoder after the glyph tokens are added
    vision_encoder/siglip/{image_encoder, feature_extractor}

Sizes Tencent's code fixes whatever the config says: the token refiner has 2 blocks, the ByT5 width is 1472 (the
pipeline's empty-glyph zeros and the transformer's ByT5 mapper), the latent has 32 channels (the SR pipeline's
noise). Everything else is toy-sized; the text and image encoders and their tokenizers are the pack's tiny 1.5 ones
(hunyuan_i2v/hunyuan_video_15/demo.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from original_layout_15 import transformer_to_original, vae_to_original
from safetensors.torch import save_file

try:
    from hyv_pack.hunyuan_i2v.hunyuan_video_15 import demo
except ImportError:  # as tests/test_tiny15.py: load the file itself while the package layout moves
    import importlib.util

    _path = Path(__file__).resolve().parents[1] / "hunyuan_i2v" / "hunyuan_video_15" / "demo.py"
    _spec = importlib.util.spec_from_file_location("tiny15_demo", _path)
    demo = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(demo)

SR_RELEASES = ("720p", "1080p")
LATENT_CHANNELS = 32  # fixed by Tencent's SR pipeline (prepare_latents(..., 32, ...))
SR_IN_CHANNELS = 3 * LATENT_CHANNELS + 2  # noisy | image latent | mask | low-res latent | ones = 98
BYT5_WIDTH = 1472  # fixed by Tencent's pipeline and ByT5 mapper
REFINER_LAYERS = 2  # fixed by Tencent's SingleTokenRefiner(depth=2)
# thin at full resolution, where decoding costs most; Tencent asserts last % (2 * 32) == 0, reversed first % 32 == 0
VAE_BLOCK_CHANNELS = (4, 8, 16, 32, 64)
VAE_SCALING_FACTOR = 1.03682  # the real VAE's
UPSAMPLER_720P = {"in_channels": 32, "out_channels": 32, "hidden_channels": 16, "num_blocks": 2}
UPSAMPLER_1080P = {"z_channels": 32, "out_channels": 32, "block_out_channels": [64, 32], "num_res_blocks": 1}
GLYPH_COLOURS = {"white": 0, "black": 1, "red": 2}  # the real files list 100+ colours and fonts; three of each
GLYPH_FONTS = {"en-font-0": 0, "en-font-1": 1, "zh-font-0": 2}


def _seeded(seed: int, offset: int, make):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed * 1000 + offset)
        return make()


def _write_model(folder: Path, config: dict, state: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "diffusion_pytorch_model.safetensors"))


def sr_transformer_state(seed: int, release: str) -> dict[str, torch.Tensor]:
    """The tiny SR transformer built as diffusers' class (98 in, 32 out, MeanFlow), in Tencent's key names."""
    from diffusers import HunyuanVideo15Transformer3DModel

    offset = 10 + SR_RELEASES.index(release)
    model = _seeded(seed, offset, lambda: HunyuanVideo15Transformer3DModel(
        in_channels=SR_IN_CHANNELS, out_channels=LATENT_CHANNELS, num_attention_heads=demo.TRANSFORMER_HEADS,
        attention_head_dim=demo.TRANSFORMER_HEAD_DIM, num_layers=demo.TRANSFORMER_LAYERS,
        num_refiner_layers=REFINER_LAYERS, mlp_ratio=4.0, patch_size=1, patch_size_t=1, qk_norm="rms_norm",
        text_embed_dim=demo.TEXT_HIDDEN, text_embed_2_dim=BYT5_WIDTH, image_embed_dim=demo.IMAGE_HIDDEN,
        rope_theta=256.0, rope_axes_dim=demo.ROPE_AXES_DIM, target_size=960 if release == "720p" else 1440,
        task_type="i2v", use_meanflow=True,
    ))
    state = model.state_dict()
    # diffusers zero-initialises nothing that matters here except the condition-type embedding; random rows make a
    # mix-up of text / ByT5 / vision tokens visible in a comparison
    state["cond_type_embed.weight"] = _seeded(seed, offset + 100, lambda: 0.1 * torch.randn_like(
        state["cond_type_embed.weight"]))
    return transformer_to_original(state, fused_qkv=False)


def sr_transformer_config(release: str) -> dict:
    """Tencent's HunyuanVideo_1_5_DiffusionTransformer arguments for the tiny network (double blocks only)."""
    return {
        "_class_name": "HunyuanVideo_1_5_DiffusionTransformer",
        "patch_size": [1, 1, 1], "in_channels": SR_IN_CHANNELS, "concat_condition": False,
        "out_channels": LATENT_CHANNELS, "hidden_size": demo.TRANSFORMER_HEADS * demo.TRANSFORMER_HEAD_DIM,
        "heads_num": demo.TRANSFORMER_HEADS, "mlp_width_ratio": 4.0, "mlp_act_type": "gelu_tanh",
        "mm_double_blocks_depth": demo.TRANSFORMER_LAYERS, "mm_single_blocks_depth": 0,
        "rope_dim_list": list(demo.ROPE_AXES_DIM), "qkv_bias": True, "qk_norm": True, "qk_norm_type": "rms",
        "guidance_embed": False, "use_meanflow": True, "text_projection": "single_refiner",
        "use_attention_mask": True, "text_states_dim": demo.TEXT_HIDDEN, "text_states_dim_2": 768,
        "text_pool_type": None, "rope_theta": 256, "attn_mode": "torch", "glyph_byT5_v2": True,
        "vision_projection": "linear", "vision_states_dim": demo.IMAGE_HIDDEN, "is_reshape_temporal_channels": False,
        "use_cond_type_embedding": True, "ideal_resolution": release, "ideal_task": "i2v",
    }


def _conv(generator, out_ch: int, in_ch: int, kernel: int) -> tuple[torch.Tensor, torch.Tensor]:
    """PyTorch's default Conv3d init (uniform, fan-in bound), drawn from ``generator``."""
    bound = (in_ch * kernel**3) ** -0.5
    weight = (torch.rand(out_ch, in_ch, kernel, kernel, kernel, generator=generator) * 2 - 1) * bound
    bias = (torch.rand(out_ch, generator=generator) * 2 - 1) * bound
    return weight, bias


def _put_conv(state, generator, name, out_ch, in_ch, kernel=3, causal=True):
    weight, bias = _conv(generator, out_ch, in_ch, kernel)
    stem = f"{name}.conv" if causal else name  # Tencent's CausalConv3d wraps an nn.Conv3d as .conv
    state[f"{stem}.weight"], state[f"{stem}.bias"] = weight, bias


def upsampler_state(seed: int, release: str) -> tuple[dict, dict]:
    """(config, state dict) of the tiny latent upsampler of one kind, Tencent's names (ComfyUI's files use the same)."""
    generator = torch.Generator().manual_seed(seed * 1000 + 20 + SR_RELEASES.index(release))
    state: dict[str, torch.Tensor] = {}
    if release == "720p":
        c = UPSAMPLER_720P
        _put_conv(state, generator, "in_conv", c["hidden_channels"], c["in_channels"])
        for n in range(c["num_blocks"]):
            for m in (0, 2, 4):  # Sequential(conv, SiLU, conv, SiLU, conv)
                _put_conv(state, generator, f"blocks.{n}.block.{m}", c["hidden_channels"], c["hidden_channels"])
        _put_conv(state, generator, "out_conv", c["out_channels"], c["hidden_channels"])
        return {"_class_name": "SRTo720pUpsampler", **c, "global_residual": False}, state
    c = UPSAMPLER_1080P
    channels = c["block_out_channels"]
    _put_conv(state, generator, "conv_in", channels[0], c["z_channels"])
    block_in = channels[0]
    for level, block_out in enumerate(channels):
        for m in range(c["num_res_blocks"] + 1):
            stem = f"up.{level}.block.{m}"
            # RMS-norm gains near one (not exactly: a swapped gain must show)
            state[f"{stem}.norm1.gamma"] = 1 + 0.1 * torch.randn(block_in, 1, 1, 1, generator=generator)
            _put_conv(state, generator, f"{stem}.conv1", block_out, block_in)
            state[f"{stem}.norm2.gamma"] = 1 + 0.1 * torch.randn(block_out, 1, 1, 1, generator=generator)
            _put_conv(state, generator, f"{stem}.conv2", block_out, block_out)
            if block_in != block_out:
                _put_conv(state, generator, f"{stem}.nin_shortcut", block_out, block_in, kernel=1, causal=False)
            block_in = block_out
    state["norm_out.gamma"] = 1 + 0.1 * torch.randn(block_in, 1, 1, 1, generator=generator)
    _put_conv(state, generator, "conv_out", c["out_channels"], block_in)
    return {"_class_name": "SRTo1080pUpsampler", **c, "is_residual": False}, state


def vae_state(seed: int) -> tuple[dict, dict]:
    """Tiny 32-channel VAE built as diffusers' class, in Tencent's names, with Tencent's config."""
    from diffusers import AutoencoderKLHunyuanVideo15

    model = _seeded(seed, 30, lambda: AutoencoderKLHunyuanVideo15(
        in_channels=3, out_channels=3, latent_channels=LATENT_CHANNELS, block_out_channels=VAE_BLOCK_CHANNELS,
        layers_per_block=1, spatial_compression_ratio=16, temporal_compression_ratio=4,
        scaling_factor=VAE_SCALING_FACTOR,
    ))
    config = {
        "_class_name": "AutoencoderKLConv3D", "in_channels": 3, "out_channels": 3,
        "latent_channels": LATENT_CHANNELS, "block_out_channels": list(VAE_BLOCK_CHANNELS), "layers_per_block": 1,
        "ffactor_spatial": 16, "ffactor_temporal": 4, "sample_size": 256, "sample_tsize": 64,
        "scaling_factor": VAE_SCALING_FACTOR, "downsample_match_channel": True, "upsample_match_channel": True,
    }
    return config, vae_to_original(model.state_dict())


def _write_byt5(folder: Path, seed: int) -> None:
    """byt5-small stand-in (T5 at Tencent's fixed width 1472), the glyph assets and the glyph checkpoint."""
    from transformers import ByT5Tokenizer, T5Config, T5ForConditionalGeneration

    tokenizer = ByT5Tokenizer()
    model = _seeded(seed, 40, lambda: T5ForConditionalGeneration(T5Config(
        vocab_size=demo.BYT5_VOCAB, d_model=BYT5_WIDTH, d_kv=8, d_ff=32, num_layers=1, num_decoder_layers=1,
        num_heads=2, relative_attention_num_buckets=8, relative_attention_max_distance=32,
        feed_forward_proj="gated-gelu", dropout_rate=0.0, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )).eval())
    model.save_pretrained(folder / "byt5-small")
    tokenizer.save_pretrained(folder / "byt5-small")

    glyph = folder / "Glyph-SDXL-v2"
    (glyph / "assets").mkdir(parents=True, exist_ok=True)
    (glyph / "checkpoints").mkdir(parents=True, exist_ok=True)
    (glyph / "assets" / "color_idx.json").write_text(json.dumps(GLYPH_COLOURS))
    (glyph / "assets" / "multilingual_10-lang_idx.json").write_text(json.dumps(GLYPH_FONTS))
    # as Tencent's add_special_token: colour tokens then font tokens, then the encoder's embeddings grow to match
    tokens = [f"<color-{i}>" for i in range(len(GLYPH_COLOURS))]
    tokens += [f"<{code[:2]}-font-{idx}>" for code, idx in GLYPH_FONTS.items()]
    tokenizer.add_tokens(tokens, special_tokens=True)
    encoder = model.get_encoder()
    encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    grown = encoder.embed_tokens.weight
    with torch.no_grad():  # the new rows are the glyph checkpoint's: give them values of their own
        grown[demo.BYT5_VOCAB:] = _seeded(seed, 41, lambda: torch.randn_like(grown[demo.BYT5_VOCAB:]))
    torch.save({k: v.clone() for k, v in encoder.state_dict().items()}, glyph / "checkpoints" / "byt5_model.pt")


def write_tiny_tencent_sr_release(folder: str | Path, seed: int = 0) -> Path:
    """Write both SR releases (transformer + upsampler), the VAE and the encoders under ``folder``; return it."""
    folder = Path(folder)
    for release in SR_RELEASES:
        _write_model(folder / "transformer" / f"{release}_sr_distilled", sr_transformer_config(release),
                     sr_transformer_state(seed, release))
        _write_model(folder / "upsampler" / f"{release}_sr_distilled", *upsampler_state(seed, release))
    _write_model(folder / "vae", *vae_state(seed))

    parts = demo.build_components(seed)  # the pack's tiny Qwen2.5-VL, SigLIP and their processors
    llm = folder / "text_encoder" / "llm"
    parts["text_encoder"].save_pretrained(llm)
    parts["tokenizer"].save_pretrained(llm)
    _write_byt5(folder / "text_encoder", seed)
    siglip = folder / "vision_encoder" / "siglip"
    parts["image_encoder"].save_pretrained(siglip / "image_encoder")
    parts["feature_extractor"].save_pretrained(siglip / "feature_extractor")
    return folder
