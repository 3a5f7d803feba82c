"""Write diffusers-named HunyuanVideo weights back in Tencent's original layout.

This is the inverse of the loader's conversion, written independently from
the key list of the original release, so a round trip through the loader
proves the mapping rather than repeating it.
"""

from __future__ import annotations

import re

import torch

_PLAIN = [
    # (diffusers pattern, original replacement)
    (r"^x_embedder\.proj\.", "img_in.proj."),
    (r"^time_text_embed\.timestep_embedder\.linear_1\.", "time_in.mlp.0."),
    (r"^time_text_embed\.timestep_embedder\.linear_2\.", "time_in.mlp.2."),
    (r"^time_text_embed\.guidance_embedder\.linear_1\.", "guidance_in.mlp.0."),
    (r"^time_text_embed\.guidance_embedder\.linear_2\.", "guidance_in.mlp.2."),
    (r"^time_text_embed\.text_embedder\.linear_1\.", "vector_in.in_layer."),
    (r"^time_text_embed\.text_embedder\.linear_2\.", "vector_in.out_layer."),
    (r"^context_embedder\.time_text_embed\.timestep_embedder\.linear_1\.", "txt_in.t_embedder.mlp.0."),
    (r"^context_embedder\.time_text_embed\.timestep_embedder\.linear_2\.", "txt_in.t_embedder.mlp.2."),
    (r"^context_embedder\.time_text_embed\.text_embedder\.linear_1\.", "txt_in.c_embedder.linear_1."),
    (r"^context_embedder\.time_text_embed\.text_embedder\.linear_2\.", "txt_in.c_embedder.linear_2."),
    (r"^context_embedder\.proj_in\.", "txt_in.input_embedder."),
    (r"^context_embedder\.token_refiner\.refiner_blocks\.(\d+)\.attn\.to_out\.0\.", r"txt_in.individual_token_refiner.blocks.\1.self_attn_proj."),
    (r"^context_embedder\.token_refiner\.refiner_blocks\.(\d+)\.norm(\d)\.", r"txt_in.individual_token_refiner.blocks.\1.norm\2."),
    (r"^context_embedder\.token_refiner\.refiner_blocks\.(\d+)\.ff\.net\.0\.proj\.", r"txt_in.individual_token_refiner.blocks.\1.mlp.fc1."),
    (r"^context_embedder\.token_refiner\.refiner_blocks\.(\d+)\.ff\.net\.2\.", r"txt_in.individual_token_refiner.blocks.\1.mlp.fc2."),
    (r"^context_embedder\.token_refiner\.refiner_blocks\.(\d+)\.norm_out\.linear\.", r"txt_in.individual_token_refiner.blocks.\1.adaLN_modulation.1."),
    (r"^transformer_blocks\.(\d+)\.attn\.norm_q\.", r"double_blocks.\1.img_attn_q_norm."),
    (r"^transformer_blocks\.(\d+)\.attn\.norm_k\.", r"double_blocks.\1.img_attn_k_norm."),
    (r"^transformer_blocks\.(\d+)\.attn\.norm_added_q\.", r"double_blocks.\1.txt_attn_q_norm."),
    (r"^transformer_blocks\.(\d+)\.attn\.norm_added_k\.", r"double_blocks.\1.txt_attn_k_norm."),
    (r"^transformer_blocks\.(\d+)\.attn\.to_out\.0\.", r"double_blocks.\1.img_attn_proj."),
    (r"^transformer_blocks\.(\d+)\.attn\.to_add_out\.", r"double_blocks.\1.txt_attn_proj."),
    (r"^transformer_blocks\.(\d+)\.norm1\.linear\.", r"double_blocks.\1.img_mod.linear."),
    (r"^transformer_blocks\.(\d+)\.norm1_context\.linear\.", r"double_blocks.\1.txt_mod.linear."),
    (r"^transformer_blocks\.(\d+)\.ff\.net\.0\.proj\.", r"double_blocks.\1.img_mlp.fc1."),
    (r"^transformer_blocks\.(\d+)\.ff\.net\.2\.", r"double_blocks.\1.img_mlp.fc2."),
    (r"^transformer_blocks\.(\d+)\.ff_context\.net\.0\.proj\.", r"double_blocks.\1.txt_mlp.fc1."),
    (r"^transformer_blocks\.(\d+)\.ff_context\.net\.2\.", r"double_blocks.\1.txt_mlp.fc2."),
    (r"^single_transformer_blocks\.(\d+)\.proj_out\.", r"single_blocks.\1.linear2."),
    (r"^single_transformer_blocks\.(\d+)\.attn\.norm_q\.", r"single_blocks.\1.q_norm."),
    (r"^single_transformer_blocks\.(\d+)\.attn\.norm_k\.", r"single_blocks.\1.k_norm."),
    (r"^single_transformer_blocks\.(\d+)\.norm\.linear\.", r"single_blocks.\1.modulation.linear."),
    (r"^proj_out\.", "final_layer.linear."),
]

# Fused tensors: original key -> the diffusers parts, in order.
_FUSED = [
    (r"^context_embedder\.token_refiner\.refiner_blocks\.(\d+)\.attn\.to_([qkv])\.(weight|bias)$",
     "txt_in.individual_token_refiner.blocks.{0}.self_attn_qkv.{2}", "context_embedder.token_refiner.refiner_blocks.{0}.attn.to_{q}.{2}", "qkv"),
    (r"^transformer_blocks\.(\d+)\.attn\.to_([qkv])\.(weight|bias)$",
     "double_blocks.{0}.img_attn_qkv.{2}", "transformer_blocks.{0}.attn.to_{q}.{2}", "qkv"),
    (r"^transformer_blocks\.(\d+)\.attn\.add_([qkv])_proj\.(weight|bias)$",
     "double_blocks.{0}.txt_attn_qkv.{2}", "transformer_blocks.{0}.attn.add_{q}_proj.{2}", "qkv"),
]


def to_original(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state = dict(state)
    out: dict[str, torch.Tensor] = {}
    for pattern, original, part, letters in _FUSED:
        for key in [k for k in state if re.match(pattern, k)]:
            if key not in state:
                continue
            index, _, kind = re.match(pattern, key).groups()
            parts = [state.pop(part.format(index, None, kind, q=letter)) for letter in letters]
            out[original.format(index, None, kind)] = torch.cat(parts, dim=0)
    for key in [k for k in state if k.startswith("single_transformer_blocks.")]:
        match = re.match(r"^single_transformer_blocks\.(\d+)\.attn\.to_q\.(weight|bias)$", key)
        if match:
            index, kind = match.groups()
            base = f"single_transformer_blocks.{index}"
            parts = [state.pop(f"{base}.attn.to_{x}.{kind}") for x in "qkv"] + [state.pop(f"{base}.proj_mlp.{kind}")]
            out[f"single_blocks.{index}.linear1.{kind}"] = torch.cat(parts, dim=0)
    if "norm_out.linear.weight" in state:
        for kind in ("weight", "bias"):
            scale, shift = state.pop(f"norm_out.linear.{kind}").chunk(2, dim=0)
            out[f"final_layer.adaLN_modulation.1.{kind}"] = torch.cat([shift, scale], dim=0)
    for key in list(state):
        for pattern, replacement in _PLAIN:
            if re.match(pattern, key):
                out[re.sub(pattern, replacement, key)] = state.pop(key)
                break
    if state:
        raise AssertionError(f"keys left unmapped: {sorted(state)[:10]}")
    return out
