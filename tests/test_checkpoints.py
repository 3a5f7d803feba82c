"""Reading checkpoints: full-size layout checks on meta tensors, prefixes, metadata, fp8."""

import json

import pytest
import torch
from original_layout import to_original

from hyv_pack.hunyuan_i2v.hunyuan_video_13b import transformer, vae
from hyv_pack.hunyuan_i2v.shared import files
from hyv_pack.hunyuan_i2v.errors import ModelFileError


def full_size_original_state():
    """The real 13 B model's original-layout tensors, as meta tensors (no memory)."""
    from diffusers import HunyuanVideoTransformer3DModel

    with torch.device("meta"):
        model = HunyuanVideoTransformer3DModel(in_channels=33, guidance_embeds=False, image_condition_type="latent_concat")
    return model, to_original(model.state_dict())


def test_full_size_config_is_read_from_shapes():
    _, original = full_size_original_state()
    config = transformer.infer_config({k: tuple(v.shape) for k, v in original.items()}, {})
    assert config["in_channels"] == 33 and config["out_channels"] == 16
    assert (config["num_attention_heads"], config["attention_head_dim"]) == (24, 128)
    assert (config["num_layers"], config["num_single_layers"], config["num_refiner_layers"]) == (20, 40, 2)
    assert config["text_embed_dim"] == 4096 and config["pooled_projection_dim"] == 768
    assert config["mlp_ratio"] == 4.0 and config["guidance_embeds"] is False
    assert transformer.variant_from_config(config, "x")[0] == transformer.LATENT_CONCAT


def test_full_size_conversion_agrees_with_diffusers_converter():
    """At the real size diffusers' own converter works: ours must give the same names and shapes."""
    from diffusers.loaders.single_file_utils import convert_hunyuan_video_transformer_to_diffusers

    model, original = full_size_original_state()
    ours = transformer.original_to_diffusers(dict(original))
    theirs = convert_hunyuan_video_transformer_to_diffusers(dict(original))
    assert ours.keys() == theirs.keys() == model.state_dict().keys()
    assert all(ours[k].shape == theirs[k].shape for k in ours)


def test_full_size_vae_config_is_read_from_shapes():
    from diffusers import AutoencoderKLHunyuanVideo

    with torch.device("meta"):
        model = AutoencoderKLHunyuanVideo()
    config = vae.infer_config({k: tuple(v.shape) for k, v in model.state_dict().items()}, {})
    assert config["block_out_channels"] == [128, 256, 512, 512]
    assert config["layers_per_block"] == 2 and config["latent_channels"] == 16
    assert config["spatial_compression_ratio"] == 8 and config["mid_block_add_attention"]


def test_prefixed_keys_and_metadata_config(comfy_models, tmp_path):
    """ComfyUI-saved files put 'model.diffusion_model.' before every key: it is stripped."""
    from safetensors.torch import load_file, save_file

    source = comfy_models / "diffusion_models" / "tiny_v2.safetensors"
    state = load_file(str(source))
    metadata = files.file_metadata(source)
    target = tmp_path / "prefixed.safetensors"
    save_file({f"model.diffusion_model.{k}": v for k, v in state.items()}, str(target), metadata=metadata)
    loaded = transformer.load_transformer(target, torch.float32)
    assert loaded.variant == transformer.TOKEN_REPLACE
    assert tuple(loaded.model.config.rope_axes_dim) == (2, 4, 4)  # from the metadata config


def test_missing_metadata_for_unusual_sizes_says_what_to_add(comfy_models, tmp_path):
    from safetensors.torch import load_file, save_file

    state = load_file(str(comfy_models / "diffusion_models" / "tiny_v2.safetensors"))
    target = tmp_path / "no_meta.safetensors"
    save_file(state, str(target))
    with pytest.raises(ModelFileError, match="rope_axes_dim"):
        transformer.load_transformer(target, torch.float32)


def test_scaled_fp8_weights_are_dequantized(tmp_path):
    """ComfyUI's *_fp8_scaled files: fp8 weights with per-tensor scale_weight, a scaled_fp8 marker."""
    from safetensors.torch import save_file

    weight = torch.randn(4, 4)
    scale = torch.tensor(0.5)
    stored = (weight / scale).to(torch.float8_e4m3fn)
    state = {"a.weight": stored, "a.scale_weight": scale, "scaled_fp8": torch.zeros(0), "a.bias": torch.ones(4),
             "a.scale_input": torch.tensor(1.0)}
    stored_state = {f"model.diffusion_model.{k}": v for k, v in state.items() if k != "scaled_fp8"}
    stored_state["scaled_fp8"] = state["scaled_fp8"]  # ComfyUI writes the marker without the prefix
    save_file(stored_state, str(tmp_path / "fp8.safetensors"))
    out = files.load_state_dict(tmp_path / "fp8.safetensors", torch.float32)
    assert set(out) == {"a.weight", "a.bias"}
    assert torch.allclose(out["a.weight"], stored.to(torch.float32) * 0.5)
    assert out["a.weight"].dtype == torch.float32


def test_role_detection():
    assert files.detect_role(["double_blocks.0.img_attn_qkv.weight", "txt_in.individual_token_refiner.blocks.0.x"]) == "hunyuan_transformer"
    assert files.detect_role(["model.diffusion_model.double_blocks.0.img_attn.qkv.weight"]) == "flux_transformer"
    assert files.detect_role(["encoder.down_blocks.0.resnets.0.conv1.conv.weight"]) == "hunyuan_vae"
    assert files.detect_role(["something.else"]) is None


def test_header_reading_needs_no_tensor_data(comfy_models):
    header = files.check_safetensors(comfy_models / "vae" / "tiny_vae.safetensors")
    assert json.loads(header["__metadata__"]["config"]) == {"norm_num_groups": 4}


def test_fp8_scales_per_tensor_and_per_row_and_unsupported_blocks(tmp_path):
    """ComfyUI's fp8 files: the old per-tensor "scale_weight" and the newer "weight_scale" (per tensor or per row)."""
    from safetensors.torch import save_file

    weight = torch.randn(4, 3)
    fp8 = weight.to(torch.float8_e4m3fn)
    row_scale = torch.tensor([1.0, 2.0, 0.5, 4.0])
    save_file({
        "a.weight": fp8, "a.scale_weight": torch.tensor(2.0), "scaled_fp8": torch.zeros(0, dtype=torch.float8_e4m3fn),
        "b.weight": fp8.clone(), "b.weight_scale": row_scale, "b.comfy_quant": torch.zeros(3, dtype=torch.uint8),
        "visual.x": torch.ones(2),
    }, str(tmp_path / "q.safetensors"))
    state = files.load_state_dict(tmp_path / "q.safetensors", torch.float32, skip=("visual.",))
    assert set(state) == {"a.weight", "b.weight"}
    assert torch.equal(state["a.weight"], fp8.float() * 2)
    assert torch.equal(state["b.weight"], fp8.float() * row_scale[:, None])
    save_file({"c.weight": fp8, "c.weight_scale": torch.ones(2, 2)}, str(tmp_path / "blocks.safetensors"))
    with pytest.raises(ModelFileError, match="block-wise.*Use the fp16/bf16"):
        files.load_state_dict(tmp_path / "blocks.safetensors", torch.float32)
