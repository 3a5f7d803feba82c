"""The 13 B model's LoRA key names (kohya and original) in diffusers' names."""

from __future__ import annotations

import re

import torch

from ..errors import ModelFileError

# kohya writes module paths with "_" for "."; these are the original model's
# module names inside a block, where "_" is part of the name.
_KOHYA_BLOCK_MODULES = {
    "img_mod_linear": "img_mod.linear", "img_attn_qkv": "img_attn_qkv", "img_attn_proj": "img_attn_proj",
    "img_mlp_fc1": "img_mlp.fc1", "img_mlp_fc2": "img_mlp.fc2", "txt_mod_linear": "txt_mod.linear",
    "txt_attn_qkv": "txt_attn_qkv", "txt_attn_proj": "txt_attn_proj", "txt_mlp_fc1": "txt_mlp.fc1",
    "txt_mlp_fc2": "txt_mlp.fc2", "linear1": "linear1", "linear2": "linear2", "modulation_linear": "modulation.linear",
}
_KOHYA_KEY = re.compile(r"^lora_unet_(double_blocks|single_blocks)_(\d+)_(\w+)\.(lora_down|lora_up|alpha)(?:\.weight)?$")


def _from_kohya(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """kohya names (lora_down/lora_up/alpha) -> original names with lora_A/lora_B; alpha/rank folded into B."""
    modules: dict[str, dict[str, torch.Tensor]] = {}
    skipped = []
    for key, tensor in state.items():
        match = _KOHYA_KEY.match(key)
        if not match or match.group(3) not in _KOHYA_BLOCK_MODULES:
            skipped.append(key)
            continue
        kind, index, module, part = match.groups()
        modules.setdefault(f"{kind}.{index}.{_KOHYA_BLOCK_MODULES[module]}", {})[part] = tensor
    out = {}
    for name, parts in modules.items():
        if "lora_down" not in parts or "lora_up" not in parts:
            raise ModelFileError(f"The LoRA has only half of the pair for '{name}'; the file is damaged.")
        down, up = parts["lora_down"], parts["lora_up"]
        rank = down.shape[0]
        scale = float(parts["alpha"]) / rank if "alpha" in parts else 1.0
        out[f"{name}.lora_A.weight"] = down
        out[f"{name}.lora_B.weight"] = up * scale
    return out, skipped


def _from_original(state: dict[str, torch.Tensor], hidden: int) -> dict[str, torch.Tensor]:
    """Original-name LoRA -> diffusers names.

    diffusers' converter assumes the real hidden size (3072) when splitting the
    single blocks' fused linear1; we split those with the model's own size first.
    """
    from diffusers.loaders.lora_conversion_utils import _convert_hunyuan_video_lora_to_diffusers

    state = dict(state)
    for key in [k for k in state if re.match(r"^single_blocks\.\d+\.linear1\.lora_[AB]\.(weight|bias)$", k)]:
        tensor = state.pop(key)
        block, rest = key.removeprefix("single_blocks.").split(".linear1.")
        if rest.startswith("lora_A"):
            parts = [tensor] * 4  # the shared down-projection feeds q, k, v and the MLP alike
        else:
            parts = torch.split(tensor, (hidden, hidden, hidden, tensor.shape[0] - 3 * hidden), dim=0)
        for target, part in zip(("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"), parts):
            state[f"single_transformer_blocks.{block}.{target}.{rest}"] = part
    converted = _convert_hunyuan_video_lora_to_diffusers(state)
    return {k.removeprefix("transformer."): v for k, v in converted.items()}


def to_diffusers(state: dict[str, torch.Tensor], model) -> tuple[dict[str, torch.Tensor], list[str]]:
    skipped: list[str] = []
    if any(k.startswith("lora_unet_") for k in state):
        state, skipped = _from_kohya(state)
    state = {k.replace(".lora_down.", ".lora_A.").replace(".lora_up.", ".lora_B."): v for k, v in state.items()}
    if any(k.startswith(("double_blocks.", "single_blocks.", "txt_in.", "img_in.", "final_layer.")) for k in state):
        config = model.config
        state = _from_original(state, config.num_attention_heads * config.attention_head_dim)
    return state, skipped
