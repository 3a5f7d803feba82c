"""HunyuanVideo-1.5 at full size, on meta tensors (no memory): every file kind users have maps onto
diffusers' and transformers' own classes with every key mapped, the right shape and nothing left over."""

import pytest
import torch
from accelerate import init_empty_weights
from original_layout_15 import transformer_to_original, vae_to_original

from hyv_pack.hunyuan_i2v.hunyuan_video_15 import text_encoders, transformer, vae


def shapes(state):
    return {k: tuple(v.shape) for k, v in state.items()}


@pytest.mark.parametrize("meanflow", [False, True], ids=["i2v", "step-distilled"])
@pytest.mark.parametrize("fused", [True, False], ids=["comfyui-fused-qkv", "tencent-split-qkv"])
def test_transformer_full_size(fused, meanflow):
    from diffusers import HunyuanVideo15Transformer3DModel

    with init_empty_weights():
        reference = HunyuanVideo15Transformer3DModel(use_meanflow=meanflow)
    original = transformer_to_original(reference.state_dict(), fused)
    # ComfyUI's files carry a wrapper prefix sometimes; the loader strips it before this point.
    config = transformer.infer_config(shapes(original), {})
    for key, value in config.items():
        expected = reference.config[key]
        assert (tuple(expected) if isinstance(expected, (list, tuple)) else expected) == value, key
    mapped = transformer.original_to_diffusers(original)
    assert shapes(mapped) == shapes(reference.state_dict())


def test_vae_full_size():
    from diffusers import AutoencoderKLHunyuanVideo15

    with init_empty_weights():
        reference = AutoencoderKLHunyuanVideo15()
    mapped = vae.original_to_diffusers(vae_to_original(reference.state_dict()))
    assert shapes(mapped) == shapes(reference.state_dict())
    config = vae.infer_config(shapes(mapped), {})
    for key in ("in_channels", "out_channels", "latent_channels", "layers_per_block", "spatial_compression_ratio",
                "temporal_compression_ratio", "scaling_factor"):
        assert config[key] == reference.config[key], key
    assert list(config["block_out_channels"]) == list(reference.config.block_out_channels)


def build_and_compare(reference, built):
    assert shapes(built.state_dict()) == shapes(reference.state_dict())


def test_qwen25_vl_7b_full_size():
    """ComfyUI's qwen_2.5_vl_7b file: model.* language model, visual.* tower and lm_head (both skipped)."""
    from transformers import Qwen2_5_VLTextConfig, Qwen2_5_VLTextModel

    config = Qwen2_5_VLTextConfig(
        vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
        num_key_value_heads=4, rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
    )
    with init_empty_weights():
        reference = Qwen2_5_VLTextModel(config)
    state = {"model." + k: v for k, v in reference.state_dict().items()}
    state["visual.patch_embed.proj.weight"] = torch.empty(1280, 3, 2, 14, 14, device="meta")
    state["lm_head.weight"] = torch.empty(152064, 3584, device="meta")
    built = text_encoders.qwen_from_state(state, {}, 151643, "'qwen_2.5_vl_7b.safetensors'")
    build_and_compare(reference, built)
    assert built.config.num_attention_heads == 28 and built.config.num_key_value_heads == 4


def test_byt5_glyph_full_size():
    """ComfyUI's byt5_small_glyphxl file: shared.* (1510 rows: bytes + glyph font/colour tokens) + encoder.*."""
    from transformers import T5Config, T5EncoderModel

    config = T5Config(vocab_size=1510, d_model=1472, d_kv=64, d_ff=3584, num_layers=12, num_heads=6,
                      feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False)
    with init_empty_weights():
        reference = T5EncoderModel(config)
    state = {k: v for k, v in reference.state_dict().items() if k != "encoder.embed_tokens.weight"}
    built = text_encoders.byt5_from_state(state, {}, "'byt5_small_glyphxl_fp16.safetensors'")
    build_and_compare(reference, built)
    assert (built.config.num_heads, built.config.d_ff, built.config.feed_forward_proj) == (6, 3584, "gated-gelu")


def test_siglip_full_size():
    """ComfyUI's sigclip_vision_patch14_384 file: vision_model.* with the pooling head."""
    from transformers import SiglipVisionConfig, SiglipVisionModel

    config = SiglipVisionConfig(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27,
                                num_attention_heads=16, image_size=384, patch_size=14)
    with init_empty_weights():
        reference = SiglipVisionModel(config)
    state = {"vision_model." + k.removeprefix("vision_model."): v for k, v in reference.state_dict().items()}
    built, size = text_encoders.siglip_from_state(state, {}, "'sigclip_vision_patch14_384.safetensors'")
    build_and_compare(reference, built)
    assert size == 384 and built.config.num_attention_heads == 16
