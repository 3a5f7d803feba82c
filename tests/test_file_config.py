"""A model file's JSON config metadata, in any of the three dialects (diffusers / transformers constructor names,
Tencent's config names), loads the same model; unknown entries are noted, contradictions and impossible values
refused in a sentence. Never a TypeError or ZeroDivisionError."""

import json

import pytest
import torch
from conftest import save_file_with_config

from hyv_pack.hunyuan_i2v import loading
from hyv_pack.hunyuan_i2v.errors import ModelFileError
from hyv_pack.hunyuan_i2v.hunyuan_video_15 import text_encoders


def rewrite(source, target, config):
    """``source``'s tensors with ``config`` as their metadata."""
    from safetensors.torch import load_file

    save_file_with_config(load_file(str(source)), target, config)
    return target


@pytest.fixture(scope="module")
def tiny15(models15_root):
    model = loading.load_model(models15_root / "diffusion_models" / "tiny15_comfy.safetensors", "fp32")
    return models15_root, model.model.config


def weights(model):
    return {k: v for k, v in model.model.state_dict().items()}


def tencent_dialect(config):
    return {"heads_num": config.num_attention_heads, "hidden_size": config.num_attention_heads * config.attention_head_dim,
            "mlp_width_ratio": 4, "mm_double_blocks_depth": config.num_layers, "rope_dim_list": list(config.rope_axes_dim),
            "patch_size": [1, 1, 1], "qk_norm": True, "qk_norm_type": "rms", "rope_theta": 256,
            "text_states_dim": config.text_embed_dim}


def diffusers_dialect(config):
    return {"num_attention_heads": config.num_attention_heads, "attention_head_dim": config.attention_head_dim,
            "num_layers": config.num_layers, "rope_axes_dim": list(config.rope_axes_dim), "mlp_ratio": 4.0,
            "qk_norm": "rms_norm", "patch_size": 1, "patch_size_t": 1}


@pytest.mark.parametrize("dialect", [tencent_dialect, diffusers_dialect])
def test_each_dialect_loads_the_same_transformer(tiny15, tmp_path, dialect):
    root, config = tiny15
    reference = loading.load_model(root / "diffusion_models" / "tiny15_comfy.safetensors", "fp32")
    path = rewrite(root / "diffusion_models" / "tiny15_comfy.safetensors", tmp_path / "t.safetensors", dialect(config))
    loaded = loading.load_model(path, "fp32")
    assert dict(loaded.model.config) == dict(reference.model.config)
    assert all(torch.equal(v, weights(reference)[k]) for k, v in weights(loaded).items())


def test_unknown_entries_are_ignored_with_a_note(tiny15, tmp_path):
    root, config = tiny15
    metadata = diffusers_dialect(config) | {"d_ff": 4096, "attn_mode": "flash", "sample_size": 64}
    loaded = loading.load_model(rewrite(root / "diffusion_models" / "tiny15_comfy.safetensors",
                                        tmp_path / "t.safetensors", metadata), "fp32")
    assert any("ignored: attn_mode, d_ff, sample_size" in note for note in loaded.notes)


@pytest.mark.parametrize("metadata, message", [
    ({"heads_num": 2, "num_attention_heads": 4}, "two values, 'heads_num' = 2 and 'num_attention_heads' = 4"),
    ({"heads_num": 7}, "'heads_num' = 7, but its tensors are shaped for"),
    ({"rope_axes_dim": [16, 56, 56]}, "must add up to the head size"),
    ({"heads_num": 0}, "'heads_num' to 0; it must be a whole number above 0"),
    ({"rope_theta": "big"}, "it must be a number above 0"),
    ({"mlp_width_ratio": 3.0}, "'mlp_width_ratio' = 3.0, but its tensors"),
])
def test_contradictions_and_impossible_values_are_refused_in_a_sentence(tiny15, tmp_path, metadata, message):
    root, config = tiny15
    metadata = {"rope_axes_dim": list(config.rope_axes_dim)} | metadata
    path = rewrite(root / "diffusion_models" / "tiny15_comfy.safetensors", tmp_path / "t.safetensors", metadata)
    with pytest.raises(ModelFileError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        loading.load_model(path, "fp32")


@pytest.mark.parametrize("metadata", [
    {"ffactor_spatial": 16, "ffactor_temporal": 4, "sample_size": 256, "scaling_factor": 1.03682},
    {"spatial_compression_ratio": 16, "temporal_compression_ratio": 4},
])
def test_vae_dialects_load(models15_root, tmp_path, metadata):
    reference = loading.load_vae(models15_root / "vae" / "tiny15_vae.safetensors", "fp32")
    ratio = reference.spatial_ratio
    metadata = dict(metadata, **({"ffactor_spatial": ratio} if "ffactor_spatial" in metadata else
                                 {"spatial_compression_ratio": ratio}))
    vae = loading.load_vae(rewrite(models15_root / "vae" / "tiny15_vae.safetensors", tmp_path / "v.safetensors",
                                   metadata), "fp32")
    assert vae.spatial_ratio == ratio and vae.temporal_ratio == reference.temporal_ratio


@pytest.mark.parametrize("metadata, message", [
    ({"ffactor_spatial": 0}, "'ffactor_spatial' to 0"),
    ({"ffactor_spatial": 16, "spatial_compression_ratio": 8}, "two values"),
    ({"block_out_channels": [1, 2]}, "but its tensors are shaped for"),
])
def test_vae_bad_metadata_is_a_sentence(models15_root, tmp_path, metadata, message):
    path = rewrite(models15_root / "vae" / "tiny15_vae.safetensors", tmp_path / "v.safetensors", metadata)
    with pytest.raises(ModelFileError, match=message):
        loading.load_vae(path, "fp32")


def text_files(root):
    return {"qwen": root / "text_encoders" / "tiny_qwen25.safetensors",
            "byt5": root / "text_encoders" / "tiny_byt5.safetensors",
            "siglip": root / "clip_vision" / "tiny_siglip.safetensors"}


def build(kind, path):
    from safetensors.torch import load_file

    from hyv_pack.hunyuan_i2v.shared import files

    state, meta = load_file(str(path)), files.metadata_config(path)
    if kind == "qwen":
        return text_encoders.qwen_from_state(state, meta, 0, "'q'")
    if kind == "byt5":
        return text_encoders.byt5_from_state(state, meta, "'b'")
    return text_encoders.siglip_from_state(state, meta, "'s'")[0]


@pytest.mark.parametrize("kind, extra", [
    ("qwen", lambda c: {"num_attention_heads": c.num_attention_heads, "hidden_size": c.hidden_size,
                        "rope_parameters": {"rope_theta": c.rope_parameters["rope_theta"]}, "model_type": "qwen2_5_vl"}),
    ("byt5", lambda c: {"num_heads": c.num_heads, "d_ff": c.d_ff, "d_model": c.d_model, "num_layers": c.num_layers}),
    ("siglip", lambda c: {"num_attention_heads": c.num_attention_heads, "hidden_size": c.hidden_size,
                          "intermediate_size": c.intermediate_size}),
])
def test_text_encoder_files_take_transformers_full_config(models15_root, tmp_path, kind, extra):
    """transformers' own config names beside the pack's: no 'multiple values for keyword argument'."""
    from hyv_pack.hunyuan_i2v.shared import files

    path = text_files(models15_root)[kind]
    reference = build(kind, path)
    metadata = files.metadata_config(path) | extra(reference.config)
    again = build(kind, rewrite(path, tmp_path / f"{kind}.safetensors", metadata))
    assert again.config.to_dict() == reference.config.to_dict()


@pytest.mark.parametrize("kind, metadata, message", [
    ("qwen", {"num_attention_heads": 3, "head_dim": 4}, "heads"),
    ("byt5", {"d_ff": 1}, "'d_ff' = 1, but its tensors"),
    ("siglip", {"num_attention_heads": 0}, "'num_attention_heads' to 0"),
])
def test_text_encoder_contradictions_are_a_sentence(models15_root, tmp_path, kind, metadata, message):
    from hyv_pack.hunyuan_i2v.shared import files

    path = text_files(models15_root)[kind]
    with pytest.raises(ModelFileError, match=message):
        build(kind, rewrite(path, tmp_path / f"{kind}.safetensors", files.metadata_config(path) | metadata))


# ---------------------------------------------------------------- the 13 B family reads through the same reader

def test_13b_transformer_tencent_dialect_loads_and_contradictions_are_refused(models_root, tmp_path):
    source = models_root / "diffusion_models" / "tiny_v2.safetensors"
    reference = loading.load_model(source, "fp32")
    config = reference.model.config
    tencent = {"heads_num": config.num_attention_heads, "mm_double_blocks_depth": config.num_layers,
               "mm_single_blocks_depth": config.num_single_layers, "rope_dim_list": list(config.rope_axes_dim),
               "guidance_embed": True, "qk_norm_type": "rms", "mlp_width_ratio": config.mlp_ratio, "attn_mode": "x"}
    loaded = loading.load_model(rewrite(source, tmp_path / "a.safetensors", tencent), "fp32")
    assert dict(loaded.model.config) == dict(reference.model.config)
    assert any("ignored: attn_mode" in note for note in loaded.notes)
    wrong = {"rope_axes_dim": list(config.rope_axes_dim), "guidance_embed": False}
    with pytest.raises(ModelFileError, match="'guidance_embed' = False, but its tensors"):
        loading.load_model(rewrite(source, tmp_path / "b.safetensors", wrong), "fp32")


def test_13b_vae_ffactor_and_zero(models_root, tmp_path):
    source = models_root / "vae" / "tiny_vae.safetensors"
    reference = loading.load_vae(source, "fp32")
    from hyv_pack.hunyuan_i2v.shared import files

    base = files.metadata_config(source)
    vae = loading.load_vae(rewrite(source, tmp_path / "a.safetensors",
                                   base | {"ffactor_spatial": reference.spatial_ratio, "ffactor_temporal": 4}), "fp32")
    assert vae.spatial_ratio == reference.spatial_ratio
    with pytest.raises(ModelFileError, match="'norm_num_groups' to 0"):
        loading.load_vae(rewrite(source, tmp_path / "b.safetensors", base | {"norm_num_groups": 0}), "fp32")


# ---------------------------------------------------------------- values no constructor takes: a sentence, not a
# ValueError / KeyError / OverflowError from deep inside int(), a dict lookup or the library

@pytest.mark.parametrize("metadata, message", [
    ({"heads_num": float("nan")}, "'heads_num' to nan; it must be a whole number above 0"),
    ({"hidden_size": float("inf")}, "'hidden_size' to inf; it must be a whole number above 0"),
    ({"rope_theta": float("nan")}, "'rope_theta' to nan; it must be a number above 0"),
    ({"qk_norm_type": "x"}, "'qk_norm_type' to 'x'; it must be one of rms_norm"),
    ({"qk_norm": ["rms"]}, "'qk_norm' to \\['rms'\\]; it must be one of rms_norm"),
    ({"distillation": ["cfg_distilled"]}, "'distillation' to \\['cfg_distilled'\\]; it must be one of"),
    ({"resolution": "1080p"}, "'resolution' to '1080p'; it must be one of 480p, 720p"),
])
def test_values_no_model_takes_are_a_sentence(tiny15, tmp_path, metadata, message):
    root, config = tiny15
    path = rewrite(root / "diffusion_models" / "tiny15_comfy.safetensors", tmp_path / "t.safetensors",
                   {"rope_axes_dim": list(config.rope_axes_dim)} | metadata)
    with pytest.raises(ModelFileError, match=message):
        loading.load_model(path, "fp32")


@pytest.mark.parametrize("kind, metadata, message", [
    ("siglip", {"hidden_act": "x"}, "'hidden_act' to 'x'; it must be one of .*gelu_pytorch_tanh"),
    ("qwen", {"max_position_embeddings": float("inf")}, "'max_position_embeddings' to inf"),
    ("byt5", {"d_kv": float("nan")}, "'d_kv' to nan"),
])
def test_text_encoder_values_no_model_takes_are_a_sentence(models15_root, tmp_path, kind, metadata, message):
    from hyv_pack.hunyuan_i2v.shared import files

    path = text_files(models15_root)[kind]
    with pytest.raises(ModelFileError, match=message):
        build(kind, rewrite(path, tmp_path / f"{kind}.safetensors", files.metadata_config(path) | metadata))


def test_13b_activation_and_condition_type_outside_the_libraries_are_a_sentence(models_root, tmp_path):
    from hyv_pack.hunyuan_i2v.shared import files

    vae = models_root / "vae" / "tiny_vae.safetensors"
    with pytest.raises(ModelFileError, match="'act_fn' to 'x'; it must be one of .*silu"):
        loading.load_vae(rewrite(vae, tmp_path / "v.safetensors", files.metadata_config(vae) | {"act_fn": "x"}), "fp32")
    source = models_root / "diffusion_models" / "tiny_v2.safetensors"
    bad = files.metadata_config(source) | {"image_condition_type": "x"}
    with pytest.raises(ModelFileError, match="'image_condition_type' to 'x'; it must be one of latent_concat"):
        loading.load_model(rewrite(source, tmp_path / "t.safetensors", bad), "fp32")
