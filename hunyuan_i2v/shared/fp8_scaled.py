"""fp8 storage that keeps an fp8_scaled file's own fp8 values and scales.

ComfyUI's ``*_fp8_scaled`` files store each linear weight as fp8 with a scale (per tensor, or per output row).
The loader expands them to the compute dtype; plain fp8 storage (diffusers' layerwise casting) would then round
them to fp8 again without a scale, so the weights would end below the file's own quality. Here the file's fp8
tensors and scales are read again, renamed and split exactly like the weights (the family's own key mapping),
and each linear layer computes with ``fp8.to(dtype) * scale``: the file's dequantized weight, bit for bit.
diffusers' casting hooks have no scale, hence this small hook.
"""

from __future__ import annotations

from pathlib import Path

import torch

from . import files


def read_scaled(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(fp8 weights, their scales as one value per output row, float32), keys without the wrapper prefix; empty
    when the file stores no scaled fp8 weight."""
    from safetensors import safe_open

    keys = files.tensor_keys(path)
    prefix = files.strip_prefix(keys)
    weights, scales = {}, {}
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        raw_scales = {k[: -len("scale_weight")]: k for k in keys if k.endswith(".scale_weight")}
        raw_scales.update({k[: -len("weight_scale")]: k for k in keys if k.endswith(".weight_scale")})
        for stem, scale_key in raw_scales.items():
            key = stem + "weight"
            if key not in keys:
                continue
            weight = handle.get_tensor(key)
            if weight.dtype not in files.FP8_DTYPES or weight.ndim != 2:
                continue
            scale = handle.get_tensor(scale_key).float()
            rows = scale.reshape(()).expand(weight.shape[0]) if scale.numel() == 1 else scale.reshape(-1)
            if rows.numel() != weight.shape[0]:
                continue  # block-wise scales: the loader refuses those in a sentence already
            weights[key[len(prefix):]] = weight
            scales[key[len(prefix):]] = rows.clone()
    return weights, scales


def _read_keys(path, wanted: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Just the tensors ``wanted`` (names without the wrapper prefix)."""
    from safetensors import safe_open

    if not wanted:
        return {}
    keys = files.tensor_keys(path)
    prefix = files.strip_prefix(keys)
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        return {key: handle.get_tensor(prefix + key) for key in wanted if prefix + key in keys}


class _ScaledWeight:
    """Forward hooks of one linear layer: its weight is the file's fp8 tensor between calls, and
    ``fp8.to(dtype) * scale`` during a call."""

    def __init__(self, compute_dtype: torch.dtype):
        self.compute_dtype = compute_dtype

    def before(self, module, args):
        stored = module.weight.data
        module._fp8_stored = stored
        scale = module.fp8_row_scale.to(device=stored.device, dtype=self.compute_dtype)
        module.weight.data = stored.to(self.compute_dtype) * scale.unsqueeze(1)

    def after(self, module, args, output):
        module.weight.data = module._fp8_stored
        del module._fp8_stored


def keep_file_scales(model: torch.nn.Module, path: str | Path, to_diffusers, compute_dtype: torch.dtype,
                     shape_keys: tuple[str, ...] = ()) -> list[str]:
    """Give ``model``'s linear layers the file's fp8 weights and scales; returns the layers' names.

    ``to_diffusers`` is the family's key mapping (original names -> diffusers'); it is run on the fp8 weights and,
    the same way, on the row scales, so a fused q|k|v splits into three layers with their rows' scales.
    ``shape_keys``: tensors the mapping reads sizes from (13 B's ``img_in.proj.weight``).
    """
    weights, scales = read_scaled(path)
    if not weights:
        return []
    helpers = _read_keys(path, shape_keys)
    mapped_weights = to_diffusers({**helpers, **weights})
    mapped_scales = to_diffusers({**helpers, **scales})
    names = []
    for name, module in model.named_modules():
        key = f"{name}.weight"
        if not isinstance(module, torch.nn.Linear) or key not in mapped_weights or key not in mapped_scales:
            continue
        fp8, rows = mapped_weights[key], mapped_scales[key]
        if tuple(fp8.shape) != tuple(module.weight.shape) or fp8.dtype not in files.FP8_DTYPES:
            continue
        device = module.weight.device
        module.weight = torch.nn.Parameter(fp8.to(device), requires_grad=False)
        module.register_buffer("fp8_row_scale", rows.to(device=device, dtype=torch.float32), persistent=False)
        hooks = _ScaledWeight(compute_dtype)
        module.register_forward_pre_hook(hooks.before)
        module.register_forward_hook(hooks.after)
        names.append(name)
    return names


def dequantized(module: torch.nn.Module, compute_dtype: torch.dtype) -> torch.Tensor:
    """The weight a layer with the file's scale computes with (for checks)."""
    scale = module.fp8_row_scale.to(compute_dtype)
    return module.weight.data.to(compute_dtype) * scale.unsqueeze(1)
