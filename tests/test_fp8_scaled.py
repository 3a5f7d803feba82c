"""An fp8_scaled file (ComfyUI's ``scaled_fp8`` encoding) with fp8 storage computes with its own fp8 values and
scales: the weights each layer uses are bit-equal to the file's dequantized weights."""

import pytest
import torch

from hyv_pack.hunyuan_i2v import loading
from hyv_pack.hunyuan_i2v.shared import fp8_scaled


def write_scaled(source, target):
    """``source``'s 2-D weights as ComfyUI's fp8_scaled file: fp8 e4m3fn values, one float32 scale per tensor."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(source), framework="pt") as handle:
        metadata = handle.metadata()
    state, out = load_file(str(source)), {"scaled_fp8": torch.empty(0, dtype=torch.float8_e4m3fn)}
    for key, tensor in state.items():
        if key.endswith(".weight") and tensor.ndim == 2 and "embed" not in key:
            scale = tensor.float().abs().max() / 448.0
            out[key] = (tensor.float() / scale).to(torch.float8_e4m3fn)
            out[key[: -len("weight")] + "scale_weight"] = scale.reshape(())
        else:
            out[key] = tensor
    save_file(out, str(target), metadata=metadata)
    return target


@pytest.fixture(scope="module", params=["13b", "1.5"])
def scaled_file(request, models_root, models15_root, tmp_path_factory):
    source = {"13b": models_root / "diffusion_models" / "tiny_v2.safetensors",
              "1.5": models15_root / "diffusion_models" / "tiny15_comfy.safetensors"}[request.param]
    return write_scaled(source, tmp_path_factory.mktemp("scaled") / "model_fp8_scaled.safetensors")


def test_fp8_storage_keeps_the_files_fp8_values_and_scales(scaled_file):
    plain = loading.load_model(scaled_file, "bf16")  # the file expanded to bf16: its dequantized weights
    stored = loading.load_model(scaled_file, "bf16", fp8_storage=True)
    kept = {name: module for name, module in stored.model.named_modules() if hasattr(module, "fp8_row_scale")}
    reference = dict(plain.model.named_modules())
    linear_in_file = [n for n, m in reference.items() if isinstance(m, torch.nn.Linear) and n in kept]
    assert len(kept) >= 10 and len(linear_in_file) == len(kept)
    for name, module in kept.items():
        assert module.weight.dtype == torch.float8_e4m3fn
        assert torch.equal(fp8_scaled.dequantized(module, torch.bfloat16), reference[name].weight), name
    assert any("keep the file's own fp8 values and scales" in note for note in stored.notes)


def test_a_layer_computes_with_the_dequantized_weight_and_stays_fp8(scaled_file):
    stored = loading.load_model(scaled_file, "bf16", fp8_storage=True)
    module = next(m for m in stored.model.modules() if hasattr(m, "fp8_row_scale"))
    seen = []
    handle = module.register_forward_pre_hook(lambda m, a: seen.append(m.weight.dtype))  # runs after the pack's
    x = torch.randn(3, module.in_features, dtype=torch.bfloat16)
    out = module(x)
    handle.remove()
    assert seen == [torch.bfloat16] and module.weight.dtype == torch.float8_e4m3fn
    expected = x @ fp8_scaled.dequantized(module, torch.bfloat16).T + (module.bias if module.bias is not None else 0)
    assert torch.allclose(out.float(), expected.float(), atol=1e-2)


def test_a_lora_on_scaled_layers_keeps_its_values_and_runs(scaled_file, tmp_path):
    from test_fp8_lora import adapter_deltas, write_lora

    from hyv_pack.hunyuan_i2v import families
    from hyv_pack.hunyuan_i2v.shared import loras

    stored = loading.load_model(scaled_file, "bf16", fp8_storage=True)
    plain = loading.load_model(scaled_file, "bf16")
    config = plain.model.config
    lora = write_lora(tmp_path / "l.safetensors", config.num_attention_heads * config.attention_head_dim,
                      plain.model.proj_out.out_features, 3e-3)
    fam = families.family(stored.family)
    deltas = []
    for loaded in (plain, stored):
        with loras.applied(loaded.model, (loras.LoraSpec(lora, 1.0),), fam.lora_to_diffusers, loaded.compute_dtype):
            deltas.append(adapter_deltas(loaded.model))
            layer = loaded.model.proj_out
            x = torch.randn(2, layer.in_features, dtype=torch.bfloat16, generator=torch.Generator().manual_seed(0))
            assert torch.isfinite(layer(x)).all()
    for name, delta in deltas[0].items():
        assert torch.equal(deltas[1][name], delta), name


@pytest.mark.parametrize("family", ["13b", "1.5"])
def test_fp8_scaled_language_model_keeps_its_scales(family, models_root, models15_root, tmp_path):
    """ComfyUI's qwen_2.5_vl_7b_fp8_scaled / llava_llama3_fp8_scaled with the text encoders' fp8 storage."""
    if family == "1.5":
        root, names = models15_root, ("text_encoders/tiny_qwen25.safetensors", "clip_vision/tiny_siglip.safetensors",
                                      "text_encoders/tiny_byt5.safetensors")
    else:
        root, names = models_root, ("text_encoders/tiny_llava_llama3.safetensors",
                                    "clip_vision/tiny_llava_llama3_vision.safetensors",
                                    "text_encoders/tiny_clip_l.safetensors")
    primary = write_scaled(root / names[0], tmp_path / "lm_fp8_scaled.safetensors")
    folders = [root / "diffusers" / ("tiny15" if family == "1.5" else "tiny_v2")]

    def load(fp8):
        sources = loading.TextEncoderSources(primary=primary, vision=root / names[1], second=root / names[2],
                                             diffusers_folders=folders)
        return loading.load_text_encoders(sources, "bf16", fp8_storage=fp8, device="cpu")

    plain, stored = load(False).large_module, load(True).large_module
    reference = dict(plain.named_modules())
    kept = {name: m for name, m in stored.named_modules() if hasattr(m, "fp8_row_scale")}
    assert len(kept) >= 4
    for name, module in kept.items():
        assert torch.equal(fp8_scaled.dequantized(module, torch.bfloat16), reference[name].weight), name
