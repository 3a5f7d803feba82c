"""HunyuanVideo-1.5 LoRA key names (kohya, original Tencent / ComfyUI, diffusers) in diffusers' names.

An original-name LoRA pair (lora_A, lora_B) for a weight maps like the weight
itself: lora_B's rows follow the weight's rows (split for fused q|k|v,
halves swapped for the final layer), and lora_A, the shared input side, is
repeated for every piece.
"""

from __future__ import annotations

import re

import torch

from ..errors import ModelFileError
from .transformer import original_to_diffusers

# kohya writes module paths with "_" for "."; these module names inside a double block keep their "_".
_KOHYA_BLOCK_MODULES = {
    "img_mod_linear": "img_mod.linear", "txt_mod_linear": "txt_mod.linear",
    "img_attn_qkv": "img_attn_qkv", "txt_attn_qkv": "txt_attn_qkv",
    "img_attn_q": "img_attn_q", "img_attn_k": "img_attn_k", "img_attn_v": "img_attn_v",
    "txt_attn_q": "txt_attn_q", "txt_attn_k": "txt_attn_k", "txt_attn_v": "txt_attn_v",
    "img_attn_proj": "img_attn_proj", "txt_attn_proj": "txt_attn_proj",
    "img_mlp_fc1": "img_mlp.fc1", "img_mlp_fc2": "img_mlp.fc2", "txt_mlp_fc1": "txt_mlp.fc1", "txt_mlp_fc2": "txt_mlp.fc2",
}
_KOHYA_KEY = re.compile(r"^lora_unet_double_blocks_(\d+)_(\w+)\.(lora_down|lora_up|alpha)(?:\.weight)?$")
_ORIGINAL_ROOTS = ("double_blocks.", "txt_in.", "img_in.", "final_layer.", "byt5_in.", "vision_in.", "time_in.",
                   "time_r_in.", "cond_type_embedding")


def _pairs(state: dict[str, torch.Tensor]) -> tuple[dict[str, dict], list[str]]:
    """Group keys by the module they adapt: {module: {"A": ..., "B": ..., "alpha": ...}}."""
    modules: dict[str, dict] = {}
    skipped = []
    for key, tensor in state.items():
        match = _KOHYA_KEY.match(key)
        if match:
            index, module, part = match.groups()
            if module not in _KOHYA_BLOCK_MODULES:
                skipped.append(key)
                continue
            name = f"double_blocks.{index}.{_KOHYA_BLOCK_MODULES[module]}"
        elif key.startswith(("lora_unet_", "lora_te")):  # kohya keys outside the double blocks, text encoders
            skipped.append(key)
            continue
        else:
            match = re.match(r"^(.*)\.(lora_A|lora_B|lora_down|lora_up|alpha)(?:\.weight)?$", key)
            if not match:
                skipped.append(key)
                continue
            name, part = match.groups()
        part = {"lora_down": "A", "lora_A": "A", "lora_up": "B", "lora_B": "B", "alpha": "alpha"}[part]
        modules.setdefault(name, {})[part] = tensor
    return modules, skipped


def to_diffusers(state: dict[str, torch.Tensor], model) -> tuple[dict[str, torch.Tensor], list[str]]:
    modules, skipped = _pairs(state)
    out: dict[str, torch.Tensor] = {}
    for name, parts in modules.items():
        if "A" not in parts or "B" not in parts:
            raise ModelFileError(f"The LoRA has only half of the pair for '{name}'; the file is damaged.")
        down, up = parts["A"], parts["B"]
        if "alpha" in parts:  # kohya's scale alpha / rank, folded into B
            up = up * (float(parts["alpha"]) / down.shape[0])
        if name.startswith(_ORIGINAL_ROOTS):
            for key, piece in original_to_diffusers({f"{name}.weight": up}).items():
                target = key.removesuffix(".weight")
                out[f"{target}.lora_A.weight"] = down
                out[f"{target}.lora_B.weight"] = piece
        else:
            out[f"{name}.lora_A.weight"] = down
            out[f"{name}.lora_B.weight"] = up
    return out, skipped
