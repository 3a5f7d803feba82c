"""LoRAs: the adapter run equals a checkpoint with the LoRA merged by hand; the base model is untouched."""

import pytest
import torch
from conftest import TRANSFORMER_METADATA, run_node, save_file_with_config, transformer_inputs

from hyv_pack.hunyuan_i2v import stages
from hyv_pack.hunyuan_i2v.errors import ModelFileError
from hyv_pack.hunyuan_i2v.hunyuan_video_13b.conditioning import I2VConditioning, PromptEmbedding
from hyv_pack.hunyuan_i2v.shared.sampling import SamplingSettings

# original module -> (out, in) of its weight in the tiny model (hidden 20, mlp 80)
TARGETS = {
    "double_blocks.0.img_attn_qkv": (60, 20),
    "double_blocks.0.txt_mlp.fc1": (80, 20),
    "double_blocks.0.img_mod.linear": (120, 20),
    "single_blocks.0.linear1": (140, 20),
    "single_blocks.0.linear2": (20, 100),
}
RANK, ALPHA, STRENGTH = 2, 1.0, 0.8


def kohya_lora():
    g = torch.Generator().manual_seed(7)
    state = {}
    for module, (out_features, in_features) in TARGETS.items():
        name = "lora_unet_" + module.replace(".", "_")
        state[f"{name}.lora_down.weight"] = torch.randn(RANK, in_features, generator=g) * 0.5
        state[f"{name}.lora_up.weight"] = torch.randn(out_features, RANK, generator=g) * 0.5
        state[f"{name}.alpha"] = torch.tensor(ALPHA)
    return state


def merged_by_hand(original, lora):
    merged = dict(original)
    for module in TARGETS:
        name = "lora_unet_" + module.replace(".", "_")
        delta = lora[f"{name}.lora_up.weight"] @ lora[f"{name}.lora_down.weight"] * (ALPHA / RANK)
        merged[f"{module}.weight"] = original[f"{module}.weight"] + STRENGTH * delta
    return merged


@pytest.fixture(scope="module")
def lora_files(models_root):
    from safetensors.torch import load_file, save_file

    original = load_file(str(models_root / "diffusion_models" / "tiny_v2.safetensors"))
    lora = kohya_lora()
    (models_root / "loras").mkdir(exist_ok=True)
    save_file(lora, str(models_root / "loras" / "effect_kohya.safetensors"))
    save_file_with_config(merged_by_hand(original, lora), models_root / "diffusion_models" / "merged.safetensors",
                          TRANSFORMER_METADATA)
    # The same LoRA with original key names and the alpha/rank scale folded in.
    as_original = {}
    for module in TARGETS:
        name = "lora_unet_" + module.replace(".", "_")
        as_original[f"diffusion_model.{module}.lora_A.weight"] = lora[f"{name}.lora_down.weight"]
        as_original[f"diffusion_model.{module}.lora_B.weight"] = lora[f"{name}.lora_up.weight"] * (ALPHA / RANK)
    save_file(as_original, str(models_root / "loras" / "effect_original.safetensors"))
    wrong = {"lora_unet_double_blocks_7_img_attn_qkv.lora_down.weight": torch.zeros(2, 20),
             "lora_unet_double_blocks_7_img_attn_qkv.lora_up.weight": torch.zeros(60, 2)}
    save_file(wrong, str(models_root / "loras" / "bigger_model.safetensors"))
    return models_root


def tiny_conditioning():
    g = torch.Generator().manual_seed(2)
    prompt = PromptEmbedding(torch.randn(1, 4, 16, generator=g), torch.randn(1, 6, 16, generator=g),
                             torch.ones(1, 6, dtype=torch.long), torch.randn(1, 8, generator=g))
    return I2VConditioning(prompt, None, torch.randn(1, 4, 1, 4, 6, generator=g), 48, 32,
                           torch.zeros(1, 32, 48, 3), 0.476986)


def sample(model):
    result = stages.run_sample(model, tiny_conditioning(), SamplingSettings(seed=5, steps=3, num_frames=5))
    return result.latent["samples"]


def load(name):
    model, _ = run_node("HunyuanI2VLoadTransformer", **transformer_inputs(name))
    return model


@pytest.mark.parametrize("lora_name", ["effect_kohya.safetensors", "effect_original.safetensors"])
def test_lora_equals_hand_merged_weights(lora_files, comfy_models, lora_name):
    base = load("tiny_v2.safetensors")
    before = sample(base)
    (with_lora,) = run_node("HunyuanI2VLoRA", model=base, lora_name=lora_name, strength=STRENGTH)
    assert (sample(with_lora) - sample(load("merged.safetensors"))).abs().max().item() < 1e-5
    assert torch.equal(sample(base), before)  # the shared base model samples as before
    assert "LoRA " + lora_name in with_lora.describe()


def test_strength_zero_is_the_base_model(lora_files, comfy_models):
    base = load("tiny_v2.safetensors")
    (off,) = run_node("HunyuanI2VLoRA", model=base, lora_name="effect_kohya.safetensors", strength=0.0)
    assert torch.equal(sample(off), sample(base))


def test_lora_for_another_model_is_refused(lora_files, comfy_models):
    base = load("tiny_v2.safetensors")
    (wrong,) = run_node("HunyuanI2VLoRA", model=base, lora_name="bigger_model.safetensors", strength=1.0)
    with pytest.raises(ModelFileError, match="does not fit this transformer"):
        sample(wrong)


def test_lora_with_fp8_storage_in_either_order(models15_root, tmp_path):
    """An adapter loaded into an fp8-stored model, or stored before fp8 is switched on (offload "auto"), computes
    in the compute dtype: peft would otherwise run it in fp8, which PyTorch cannot multiply on most devices."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from parallel_harness import write_lora

    from hyv_pack.hunyuan_i2v import loading, stages
    from hyv_pack.hunyuan_i2v.shared import acceleration
    from hyv_pack.hunyuan_i2v.shared.sampling import SamplingSettings
    from conftest import test_image

    folder = models15_root / "diffusers" / "tiny15"
    vae = loading.load_vae(folder, "bf16")
    encoders = loading.load_text_encoders(loading.TextEncoderSources(folder=folder), "bf16", device="cpu")
    cond = stages.run_encode(encoders, vae, test_image(48, 64)[0], "a cat", "", width=64, height=48)
    settings = SamplingSettings(seed=1, steps=2, num_frames=5, cfg_scale=1.0)
    for fp8_first in (True, False):
        model = loading.load_model(folder, "bf16", fp8_storage=fp8_first)
        config = model.model.config
        lora = write_lora(tmp_path / "lora.safetensors", config.num_attention_heads * config.attention_head_dim,
                          config.out_channels)
        plain = stages.run_sample(model, cond, settings).latent["samples"]
        with_lora = loading.with_lora(model, lora, 1.0)
        if not fp8_first:
            stages.run_sample(with_lora, cond, settings)  # the adapter is loaded in bf16 ...
            acceleration.enable_fp8_storage(model.model, torch.bfloat16)  # ... then the weights go to fp8
            plain = stages.run_sample(model, cond, settings).latent["samples"]
        result = stages.run_sample(with_lora, cond, settings).latent["samples"]
        assert torch.isfinite(result).all() and not torch.equal(result, plain)
        lora_dtypes = {p.dtype for n, p in model.model.named_parameters() if "lora_" in n}
        assert lora_dtypes == {torch.bfloat16}
