"""A LoRA on an fp8-stored transformer computes with the file's values, as on the bf16 model.

Real LoRAs have small weights (std 1e-4 to 1e-2); rounded through fp8 e4m3, most of those become 0 or lose
their low bits, so the check is on values, not only on dtypes.
"""

import pytest
import torch

from hyv_pack.hunyuan_i2v import families, loading
from hyv_pack.hunyuan_i2v.shared import acceleration, loras


def write_lora(path, hidden: int, out: int, std: float):
    """Original-name LoRA on block 0's fused q|k|v and the final projection, both sides at ``std``."""
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(11)

    def rand(*shape):
        return torch.randn(*shape, generator=g) * std

    save_file({
        "diffusion_model.double_blocks.0.img_attn_qkv.lora_A.weight": rand(4, hidden),
        "diffusion_model.double_blocks.0.img_attn_qkv.lora_B.weight": rand(3 * hidden, 4),
        "diffusion_model.final_layer.linear.lora_A.weight": rand(4, hidden),
        "diffusion_model.final_layer.linear.lora_B.weight": rand(out, 4),
    }, str(path))
    return path


def adapter_deltas(model) -> dict[str, torch.Tensor]:
    """B @ A of every adapter layer, in float32: what the adapter adds to the layer's weight."""
    deltas = {}
    for name, module in model.named_modules():
        if hasattr(module, "lora_A") and len(module.lora_A):
            (adapter,) = module.lora_A.keys()
            a = module.lora_A[adapter].weight.float()
            b = module.lora_B[adapter].weight.float()
            deltas[name] = b @ a
            assert module.lora_A[adapter].weight.dtype == torch.bfloat16  # never fp8, never upcast fp8 values
    return deltas


def load_with_lora(folder, lora_path, fp8: str):
    """The model with the LoRA loaded; ``fp8``: "off", "before" (fp8 storage, then the LoRA) or "after"."""
    loaded = loading.load_model(folder, "bf16", fp8_storage=fp8 == "before")
    fam = families.family(loaded.family)
    spec = (loras.LoraSpec(lora_path, 1.0),)
    with loras.applied(loaded.model, spec, fam.lora_to_diffusers, loaded.compute_dtype):
        pass
    if fp8 == "after":  # offload mode "auto" turns fp8 on at sample time, after an earlier run loaded the LoRA
        acceleration.enable_fp8_storage(loaded.model, loaded.compute_dtype)
    assert acceleration.is_fp8_stored(loaded.model) == (fp8 != "off")
    return loaded.model


@pytest.fixture(scope="module")
def folders(models_root, models15_root):
    return {"13b": models_root / "diffusers" / "tiny_v2", "1.5": models15_root / "diffusers" / "tiny15"}


@pytest.mark.parametrize("family", ["13b", "1.5"])
@pytest.mark.parametrize("std", [1e-4, 5e-4, 3e-3, 1e-2])
@pytest.mark.parametrize("order", ["before", "after"])
def test_lora_on_fp8_model_equals_lora_on_bf16_model(folders, tmp_path, family, std, order):
    folder = folders[family]
    model = loading.load_model(folder, "bf16").model
    hidden = model.config.num_attention_heads * model.config.attention_head_dim
    lora_path = write_lora(tmp_path / f"lora_{std}.safetensors", hidden, model.proj_out.out_features, std)
    reference = adapter_deltas(load_with_lora(folder, lora_path, "off"))
    stored = adapter_deltas(load_with_lora(folder, lora_path, order))
    assert reference.keys() == stored.keys() and len(reference) >= 2
    for name, delta in reference.items():
        error = (stored[name] - delta).norm() / delta.norm()
        assert error < 0.01, f"{name}: the adapter is off by {error:.1%} under fp8 storage"
