"""Reading model files safely: safetensors checks, key prefixes, fp8 scales, roles.

Only safetensors is read (never pickles). Files are validated before loading
so a truncated download gets a sentence instead of a Rust panic.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import torch

from ..errors import ModelFileError

# Prefixes that wrappers (ComfyUI saves, trainers) put before every key.
KNOWN_PREFIXES = (
    "model.diffusion_model.",
    "diffusion_model.",
    "model.model.",
    "first_stage_model.",
    "transformer.",
    "vae.",
    "module.",
)

# Marker keys and their role, checked in order: the first match wins.
_ROLE_MARKERS = (
    # 1.5 shares the 13 B model's block names; its ByT5 and SigLIP inputs tell it apart, so it comes first.
    ("hunyuan15_transformer", ("byt5_in.", "vision_in.", "cond_type_embedding.")),
    ("hunyuan15_transformer_diffusers", ("context_embedder_2.", "image_embedder.", "cond_type_embed.")),
    # The 1.5 VAE: original names, or diffusers' (whose RMS norms hold a "gamma" where the 13 B VAE's hold "weight").
    ("hunyuan15_vae", ("encoder.down.0.block.0.conv1.conv.weight", "encoder.down_blocks.0.resnets.0.norm1.gamma")),
    ("hunyuan_transformer", ("txt_in.individual_token_refiner.", "double_blocks.0.img_attn_qkv.weight")),
    ("hunyuan_transformer_diffusers", ("context_embedder.token_refiner.", "transformer_blocks.0.attn.to_q.weight")),
    ("hunyuan_vae", ("encoder.down_blocks.0.resnets.0.conv1.conv.weight", "decoder.conv_in.conv.weight")),
    ("flux_transformer", ("double_blocks.0.img_attn.qkv.weight",)),
    ("wan_transformer", ("blocks.0.self_attn.q.weight",)),
    ("sd_unet", ("input_blocks.0.0.weight",)),
    ("image_vae", ("encoder.down.0.block.0.conv1.weight",)),
    # Qwen2 puts biases on q/k/v, Llama does not: the one tensor that tells them apart.
    ("qwen_text_encoder", ("model.layers.0.self_attn.q_proj.bias", "layers.0.self_attn.q_proj.bias")),
    ("llama_text_encoder", ("model.layers.0.self_attn.q_proj.weight",)),
    ("byt5_text_encoder", ("encoder.block.0.layer.0.SelfAttention.q.weight",)),
    ("clip_vision", ("vision_model.encoder.layers.0.self_attn.q_proj.weight",)),
    ("clip_text", ("text_model.encoder.layers.0.self_attn.q_proj.weight",)),
)

ROLE_DESCRIPTIONS = {
    "hunyuan15_transformer": "a HunyuanVideo-1.5 transformer (diffusion_models)",
    "hunyuan15_transformer_diffusers": "a HunyuanVideo-1.5 transformer in diffusers names (diffusion_models)",
    "hunyuan15_vae": "the HunyuanVideo-1.5 VAE (vae)",
    "qwen_text_encoder": "a Qwen2.5-VL text encoder (text_encoders), HunyuanVideo-1.5's",
    "byt5_text_encoder": "a ByT5 text encoder (text_encoders), HunyuanVideo-1.5's glyph encoder",
    "siglip_vision": "a SigLIP vision model (clip_vision), HunyuanVideo-1.5's image encoder",
    "hunyuan_transformer": "a HunyuanVideo-I2V (13 B) transformer (diffusion_models)",
    "hunyuan_transformer_diffusers": "a HunyuanVideo transformer in diffusers names (diffusion_models)",
    "hunyuan_vae": "the HunyuanVideo-I2V (13 B) VAE (vae)",
    "flux_transformer": "a Flux-family diffusion model, not HunyuanVideo",
    "wan_transformer": "a Wan-family video model, not HunyuanVideo",
    "sd_unet": "a Stable Diffusion UNet, not HunyuanVideo",
    "image_vae": "an image VAE (SD/Flux family), not the HunyuanVideo video VAE",
    "llama_text_encoder": "a Llama text encoder (text_encoders), the 13 B model's llava_llama3",
    "clip_vision": "a CLIP vision tower (clip_vision), the 13 B model's llava_llama3_vision",
    "clip_text": "a CLIP text encoder (text_encoders)",
}


def check_safetensors(path: str | os.PathLike) -> dict:
    """Validate a safetensors file's header and size; return the parsed header.

    safetensors' own loader panics with little context on a cut-off file;
    reading the 8-byte length and the JSON header (no tensor data) lets us say
    exactly what is wrong, cheaply, even for 26 GB files.
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"Model file '{path}' does not exist. Check the name and the folder it is in.")
    if path.is_dir():
        raise ModelFileError(
            f"'{path}' is a folder, not a .safetensors file. Pick a diffusers folder in the loader's folder list instead."
        )
    size = path.stat().st_size
    redownload = f"Download '{path.name}' again (the copy on disk is damaged or incomplete)."
    if size < 8:
        raise ModelFileError(f"'{path}' is {size} bytes long, too short to be a safetensors file. {redownload}")
    with open(path, "rb") as handle:
        (header_len,) = struct.unpack("<Q", handle.read(8))
        if header_len > size - 8 or header_len > 100_000_000:
            raise ModelFileError(
                f"'{path}' is not a valid safetensors file (header length {header_len} for a {size}-byte file). "
                f"Only .safetensors files are supported; {redownload}"
            )
        raw = handle.read(header_len)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"'{path}' has a corrupt safetensors header ({exc}). {redownload}") from exc
    data_size = size - 8 - header_len
    needed = max((entry["data_offsets"][1] for k, entry in header.items() if k != "__metadata__"), default=0)
    if needed > data_size:
        raise ModelFileError(
            f"'{path}' is truncated: its tensors need {needed:,} bytes of data but the file holds {data_size:,}. "
            f"{redownload}"
        )
    return header


def file_metadata(path: str | os.PathLike) -> dict:
    return check_safetensors(path).get("__metadata__", {}) or {}


def metadata_config(path: str | os.PathLike) -> dict:
    """The JSON ``config`` entry of a file's metadata: overrides what shapes cannot tell."""
    raw = file_metadata(path).get("config")
    if not raw:
        return {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"The 'config' metadata entry of '{path}' is not valid JSON ({exc}).") from exc
    if not isinstance(config, dict):
        raise ModelFileError(f"The 'config' metadata entry of '{path}' must be a JSON object.")
    return config


def tensor_keys(path: str | os.PathLike) -> list[str]:
    return [k for k in check_safetensors(path) if k != "__metadata__"]


def strip_prefix(keys: list[str]) -> str:
    """The wrapper prefix every key shares, or ''. ComfyUI's bare ``scaled_fp8``
    marker key does not count."""
    keys = [k for k in keys if not k.endswith("scaled_fp8") and k != "_quantization_metadata"]
    for prefix in KNOWN_PREFIXES:
        if keys and all(k.startswith(prefix) for k in keys):
            return prefix
    return ""


def detect_role(keys) -> str | None:
    keys = list(keys)
    prefix = strip_prefix(keys)
    stripped = {k[len(prefix):] for k in keys}
    for role, markers in _ROLE_MARKERS:
        if any(m in stripped or any(k.startswith(m) for k in stripped) for m in markers):
            if role == "clip_vision" and not any(k.endswith("embeddings.class_embedding") for k in stripped):
                return "siglip_vision"  # SigLIP has CLIP's layer names but no class token
            return role
    return None


def load_state_dict(
    path: str | os.PathLike, dtype: torch.dtype | None = None, skip: tuple[str, ...] = ()
) -> dict[str, torch.Tensor]:
    """Load a safetensors file to CPU, strip wrapper prefixes, undo fp8 scaling, cast.

    ``dtype`` casts floating tensors (fp8 storage is upcast to it); None keeps
    stored dtypes except that fp8 becomes bfloat16 (fp8 cannot be computed in).
    Tensors are read and converted one at a time, so converting a 26 GB file
    never holds the stored and the converted copy at once. Keys starting with
    one of ``skip`` (after the wrapper prefix) are not read at all.
    """
    from safetensors import safe_open

    keys = tensor_keys(path)
    prefix = strip_prefix(keys)
    target = dtype or torch.bfloat16
    state: dict[str, torch.Tensor] = {}
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        # ComfyUI's two fp8 encodings: "<layer>.scale_weight" (with a "scaled_fp8" marker), and the newer
        # "<layer>.weight_scale" (with "<layer>.comfy_quant" / "<layer>.input_scale" hints).
        scales = {k[: -len("scale_weight")]: handle.get_tensor(k) for k in keys if k.endswith(".scale_weight")}
        scales.update({k[: -len("weight_scale")]: handle.get_tensor(k) for k in keys if k.endswith(".weight_scale")})
        for key in keys:
            if key.endswith("scaled_fp8") or key.endswith(_QUANT_HINTS) or key[len(prefix):].startswith(skip or "\0"):
                continue  # fp8 scales (applied below), matmul hints (not used here), parts not wanted
            tensor = handle.get_tensor(key)
            if tensor.dtype in _FP8_DTYPES:
                tensor = tensor.to(target)
                scale = scales.get(key[: -len("weight")]) if key.endswith("weight") else None
                if scale is not None:
                    tensor = tensor * _scale_shape(scale.to(target), tensor, path, key)
            elif dtype is not None and tensor.is_floating_point():
                tensor = tensor.to(dtype)
            state[key[len(prefix):]] = tensor
    return state


def _scale_shape(scale: torch.Tensor, weight: torch.Tensor, path, key: str) -> torch.Tensor:
    """A per-tensor scale as it is; a per-output-row scale as a column, so it multiplies rows."""
    if scale.numel() == 1:
        return scale.reshape(())
    if tuple(scale.shape) in ((weight.shape[0],), (weight.shape[0], 1)):
        return scale.reshape(-1, *([1] * (weight.ndim - 1)))
    raise ModelFileError(
        f"'{Path(path).name}' stores '{key}' in a quantization with {scale.numel()} scales for a {tuple(weight.shape)} "
        "weight (block-wise), which this pack cannot read. Use the fp16/bf16 or fp8_scaled release of the file."
    )


_QUANT_HINTS = (".scale_weight", ".scale_input", ".weight_scale", ".input_scale", ".comfy_quant")
_FP8_DTYPES = tuple(
    getattr(torch, name) for name in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")
    if hasattr(torch, name)
)


def block_count(keys, prefix: str) -> int:
    """Number of ``prefix.N.`` blocks (highest index + 1)."""
    highest = -1
    for key in keys:
        if key.startswith(prefix):
            rest = key[len(prefix):]
            index = rest.split(".", 1)[0]
            if index.isdigit():
                highest = max(highest, int(index))
    return highest + 1


def build_with_weights(model_class, config: dict, state: dict[str, torch.Tensor], source: str, layout: str):
    """Instantiate ``model_class(**config)`` without allocating, then take ``state``'s tensors as its weights."""
    from accelerate import init_empty_weights

    with init_empty_weights():  # parameters on meta, buffers real: load_state_dict(assign=True) fills them
        model = model_class(**config)
    expected = set(model.state_dict())
    missing, unexpected = expected - set(state), set(state) - expected
    if missing or unexpected:
        raise ModelFileError(
            f"{source} does not match the {layout} layout: {len(missing)} missing tensors "
            f"(e.g. {sorted(missing)[:3]}), {len(unexpected)} unexpected (e.g. {sorted(unexpected)[:3]}). "
            "The file is damaged or holds another model."
        )
    model.load_state_dict(state, assign=True)
    return model.eval().requires_grad_(False)


def assign_weights(model: torch.nn.Module, tensor_for, source: str) -> None:
    """Give each of ``model``'s (meta) parameters the tensor ``tensor_for(name)`` returns, or name what is missing.

    Used where a file's names differ from the transformers class's by a prefix or a
    nesting that changes across library versions; the caller's lookup absorbs that.
    """
    mapped, missing = {}, []
    for key in model.state_dict():
        tensor = tensor_for(key)
        if tensor is None:
            missing.append(key)
        else:
            mapped[key] = tensor
    if missing:
        raise ModelFileError(
            f"{source} lacks {len(missing)} tensors the model needs (e.g. {missing[:3]}); the file is incomplete "
            "or a different model."
        )
    model.load_state_dict(mapped, assign=True, strict=True)
    model.eval().requires_grad_(False)


def wrong_role_error(path, role: str | None, wanted: str, folder: str) -> ModelFileError:
    found = ROLE_DESCRIPTIONS.get(role, "not a model this pack knows") if role else "not a model this pack knows"
    return ModelFileError(
        f"'{Path(path).name}' is {found}, but this loader needs {wanted}. "
        f"Pick the right file from ComfyUI/models/{folder}/."
    )
