"""Write diffusers-named HunyuanVideo-1.5 weights back in the original layouts.

Inverse of what the pack's 1.5 loader does, written independently from the
module names of Tencent's release (``hyvideo/models/transformers/
hunyuanvideo_1_5_transformer.py``, ``hyvideo/models/autoencoders/
hunyuanvideo_15_vae.py``) and of ComfyUI's repackaged files, so a round trip
through the loader checks the mapping instead of repeating it.

Two transformer layouts exist:

* Tencent (``tencent/HunyuanVideo-1.5`` ``transformer/<version>/``): the
  double blocks keep ``img_attn_q`` / ``img_attn_k`` / ``img_attn_v`` (and the
  ``txt_`` ones) as separate linears.
* ComfyUI (``Comfy-Org/HunyuanVideo_1.5_repackaged``): same names, but each
  double block's q, k, v are one ``img_attn_qkv`` / ``txt_attn_qkv`` tensor
  (rows q, then k, then v), which is what ComfyUI's Flux-style
  ``DoubleStreamBlock`` loads.

In both, the token refiner stores its self-attention as one fused
``self_attn_qkv``, and ``final_layer.adaLN_modulation.1`` is (shift, scale)
where diffusers' ``norm_out.linear`` is (scale, shift).

The VAE has its own original names too (``encoder.down.N.block.M``,
``mid.block_1`` / ``attn_1`` / ``block_2``, ``q``/``k``/``v``); ComfyUI's
``hunyuanvideo15_vae_fp16.safetensors`` uses the same names as Tencent's.
"""

from __future__ import annotations

import re

import torch

_REFINER = r"context_embedder\.token_refiner\.refiner_blocks\.(\d+)\."
_ORIG_REFINER = r"txt_in.individual_token_refiner.blocks.\1."
_BLOCK = r"transformer_blocks\.(\d+)\."
_ORIG_BLOCK = r"double_blocks.\1."

# One-to-one renames: (diffusers key-prefix regex, original prefix); the rest of the key is weight/bias.
_TRANSFORMER_RENAMES = [
    (r"x_embedder\.proj\.", "img_in.proj."),
    (r"time_embed\.timestep_embedder\.linear_1\.", "time_in.mlp.0."),
    (r"time_embed\.timestep_embedder\.linear_2\.", "time_in.mlp.2."),
    # MeanFlow (step-distilled / SR) second timestep embedder
    (r"time_embed\.timestep_embedder_r\.linear_1\.", "time_r_in.mlp.0."),
    (r"time_embed\.timestep_embedder_r\.linear_2\.", "time_r_in.mlp.2."),
    (r"cond_type_embed\.", "cond_type_embedding."),
    # SigLIP projection: nn.Sequential(LayerNorm, Linear, GELU, Linear, LayerNorm)
    (r"image_embedder\.norm_in\.", "vision_in.proj.0."),
    (r"image_embedder\.linear_1\.", "vision_in.proj.1."),
    (r"image_embedder\.linear_2\.", "vision_in.proj.3."),
    (r"image_embedder\.norm_out\.", "vision_in.proj.4."),
    # ByT5 glyph projection
    (r"context_embedder_2\.norm\.", "byt5_in.layernorm."),
    (r"context_embedder_2\.linear_1\.", "byt5_in.fc1."),
    (r"context_embedder_2\.linear_2\.", "byt5_in.fc2."),
    (r"context_embedder_2\.linear_3\.", "byt5_in.fc3."),
    # token refiner (SingleTokenRefiner)
    (r"context_embedder\.proj_in\.", "txt_in.input_embedder."),
    (r"context_embedder\.time_text_embed\.timestep_embedder\.linear_1\.", "txt_in.t_embedder.mlp.0."),
    (r"context_embedder\.time_text_embed\.timestep_embedder\.linear_2\.", "txt_in.t_embedder.mlp.2."),
    (r"context_embedder\.time_text_embed\.text_embedder\.linear_1\.", "txt_in.c_embedder.linear_1."),
    (r"context_embedder\.time_text_embed\.text_embedder\.linear_2\.", "txt_in.c_embedder.linear_2."),
    (_REFINER + r"norm1\.", _ORIG_REFINER + "norm1."),
    (_REFINER + r"norm2\.", _ORIG_REFINER + "norm2."),
    (_REFINER + r"attn\.to_out\.0\.", _ORIG_REFINER + "self_attn_proj."),
    (_REFINER + r"ff\.net\.0\.proj\.", _ORIG_REFINER + "mlp.fc1."),
    (_REFINER + r"ff\.net\.2\.", _ORIG_REFINER + "mlp.fc2."),
    (_REFINER + r"norm_out\.linear\.", _ORIG_REFINER + "adaLN_modulation.1."),
    # double-stream blocks
    (_BLOCK + r"norm1\.linear\.", _ORIG_BLOCK + "img_mod.linear."),
    (_BLOCK + r"norm1_context\.linear\.", _ORIG_BLOCK + "txt_mod.linear."),
    (_BLOCK + r"attn\.norm_q\.", _ORIG_BLOCK + "img_attn_q_norm."),
    (_BLOCK + r"attn\.norm_k\.", _ORIG_BLOCK + "img_attn_k_norm."),
    (_BLOCK + r"attn\.norm_added_q\.", _ORIG_BLOCK + "txt_attn_q_norm."),
    (_BLOCK + r"attn\.norm_added_k\.", _ORIG_BLOCK + "txt_attn_k_norm."),
    (_BLOCK + r"attn\.to_out\.0\.", _ORIG_BLOCK + "img_attn_proj."),
    (_BLOCK + r"attn\.to_add_out\.", _ORIG_BLOCK + "txt_attn_proj."),
    (_BLOCK + r"ff\.net\.0\.proj\.", _ORIG_BLOCK + "img_mlp.fc1."),
    (_BLOCK + r"ff\.net\.2\.", _ORIG_BLOCK + "img_mlp.fc2."),
    (_BLOCK + r"ff_context\.net\.0\.proj\.", _ORIG_BLOCK + "txt_mlp.fc1."),
    (_BLOCK + r"ff_context\.net\.2\.", _ORIG_BLOCK + "txt_mlp.fc2."),
    (r"proj_out\.", "final_layer.linear."),
]

# q, k, v projections: (diffusers key, original stem); {i} block index, {x} q/k/v letter, {kind} weight/bias.
_REFINER_QKV = (
    "context_embedder.token_refiner.refiner_blocks.{i}.attn.to_{x}.{kind}",
    "txt_in.individual_token_refiner.blocks.{i}.self_attn_",
)
_DOUBLE_QKV = [
    ("transformer_blocks.{i}.attn.to_{x}.{kind}", "double_blocks.{i}.img_attn_"),
    ("transformer_blocks.{i}.attn.add_{x}_proj.{kind}", "double_blocks.{i}.txt_attn_"),
]


def _take_qkv(state: dict, out: dict, diffusers: str, stem: str, fuse: bool) -> None:
    """Pop every q/k/v triple of this kind; write it split (stem + q/k/v) or fused (stem + qkv, rows q|k|v)."""
    q_re = re.compile("^" + re.escape(diffusers).replace(r"\{i\}", r"(\d+)").replace(r"\{x\}", "q")
                      .replace(r"\{kind\}", "(weight|bias)") + "$")
    for key in [k for k in state if q_re.match(k)]:
        i, kind = q_re.match(key).groups()
        parts = [state.pop(diffusers.format(i=i, x=x, kind=kind)) for x in "qkv"]
        base = stem.format(i=i)
        if fuse:
            out[f"{base}qkv.{kind}"] = torch.cat(parts, dim=0)
        else:
            for x, tensor in zip("qkv", parts):
                out[f"{base}{x}.{kind}"] = tensor


def transformer_to_original(state: dict[str, torch.Tensor], fused_qkv: bool) -> dict[str, torch.Tensor]:
    """diffusers ``HunyuanVideo15Transformer3DModel`` state dict -> Tencent (fused_qkv=False) or ComfyUI (True) names."""
    state = dict(state)
    out: dict[str, torch.Tensor] = {}

    _take_qkv(state, out, *_REFINER_QKV, fuse=True)  # the refiner is fused in both layouts
    for pattern, stem in _DOUBLE_QKV:
        _take_qkv(state, out, pattern, stem, fuse=fused_qkv)

    for kind in ("weight", "bias"):
        key = f"norm_out.linear.{kind}"
        if key in state:
            scale, shift = state.pop(key).chunk(2, dim=0)
            out[f"final_layer.adaLN_modulation.1.{kind}"] = torch.cat([shift, scale], dim=0)

    for key in list(state):
        for pattern, replacement in _TRANSFORMER_RENAMES:
            if re.match("^" + pattern + r"(weight|bias)$", key):
                out[re.sub("^" + pattern, replacement, key)] = state.pop(key)
                break
    if state:
        raise KeyError(f"diffusers keys left unmapped: {sorted(state)[:10]} ({len(state)} in all)")
    return out


# VAE: (diffusers regex, original replacement); applied to the whole key, first match wins.
_VAE_RENAMES = [
    (r"^(encoder|decoder)\.mid_block\.resnets\.0\.", r"\1.mid.block_1."),
    (r"^(encoder|decoder)\.mid_block\.resnets\.1\.", r"\1.mid.block_2."),
    (r"^(encoder|decoder)\.mid_block\.attentions\.0\.to_([qkv])\.", r"\1.mid.attn_1.\2."),
    (r"^(encoder|decoder)\.mid_block\.attentions\.0\.(norm|proj_out)\.", r"\1.mid.attn_1.\2."),
    (r"^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.", r"encoder.down.\1.block.\2."),
    (r"^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", r"encoder.down.\1.downsample."),
    (r"^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.", r"decoder.up.\1.block.\2."),
    (r"^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.", r"decoder.up.\1.upsample."),
    (r"^(encoder|decoder)\.(conv_in|conv_out|norm_out)\.", r"\1.\2."),
]


def vae_to_original(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers ``AutoencoderKLHunyuanVideo15`` state dict -> Tencent / ComfyUI VAE names (they differ from diffusers)."""
    out: dict[str, torch.Tensor] = {}
    left = []
    for key, tensor in state.items():
        for pattern, replacement in _VAE_RENAMES:
            if re.match(pattern, key):
                new = re.sub(pattern, replacement, key)
                # a resnet's 1x1 channel-changing shortcut: diffusers conv_shortcut, original nin_shortcut
                new = re.sub(r"\.conv_shortcut\.", ".nin_shortcut.", new)
                out[new] = tensor
                break
        else:
            left.append(key)
    if left:
        raise KeyError(f"diffusers VAE keys left unmapped: {sorted(left)[:10]} ({len(left)} in all)")
    return out
