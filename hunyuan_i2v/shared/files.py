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
    ("hunyuan15_latent_upsampler", ("blocks.0.block.0.conv.weight", "up.0.block.0.conv1.conv.weight")),
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
    "hunyuan15_latent_upsampler": "a HunyuanVideo-1.5 latent upsampler (latent_upscale_models)",
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
    if size == 0:
        raise ModelFileError(f"'{path}' is empty (0 bytes): the download did not finish. {redownload}")
    with open(path, "rb") as handle:
        start = handle.read(_SNIFF_BYTES)
    # Every safetensors header is a JSON object right after its 8-byte length; anything else is another kind
    # of file, and telling a user who picked a text file or a .ckpt to download again would mislead them.
    if start[8:9] != b"{":
        raise ModelFileError(f"'{path}' is not a valid safetensors file: {describe_other_file(path, start)}")
    (header_len,) = struct.unpack("<Q", start[:8])
    if header_len > size - 8 or header_len > 100_000_000:
        raise ModelFileError(
            f"'{path}' is not a valid safetensors file: it ends inside its header (header length {header_len} for "
            f"a {size}-byte file). {redownload}"
        )
    with open(path, "rb") as handle:
        handle.seek(8)
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


_SNIFF_BYTES = 512
_ONLY_SAFETENSORS = "This pack reads only .safetensors files: use the model's safetensors release."

# (magic at offset 0, what the file is, what to do). Pickle-based checkpoints are refused, not loaded:
# unpickling runs code from the file.
_MAGIC = (
    (b"version https://git-lfs", "a Git LFS pointer (a small placeholder, not the model itself)",
     "Fetch the real file: run 'git lfs pull' in the repository you cloned, or download it from the model page."),
    (b"GGUF", "a GGUF file (the quantized format of llama.cpp and the ComfyUI-GGUF nodes)", _ONLY_SAFETENSORS),
    (b"PK\x03\x04", "a ZIP archive (the format of PyTorch .pt/.pth/.ckpt checkpoints)", _ONLY_SAFETENSORS),
    (b"\x89PNG", "a PNG image", "Pick the model's .safetensors file here."),
    (b"\xff\xd8\xff", "a JPEG image", "Pick the model's .safetensors file here."),
    (b"GIF8", "a GIF image", "Pick the model's .safetensors file here."),
    (b"\x1f\x8b", "a gzip archive", "Unpack it first and pick the .safetensors file inside."),
    (b"7z\xbc\xaf", "a 7-Zip archive", "Unpack it first and pick the .safetensors file inside."),
)


def describe_other_file(path: Path, start: bytes) -> str:
    """What a file that is not safetensors is, when its first bytes tell, and what to do about it."""
    for magic, kind, advice in _MAGIC:
        if start.startswith(magic):
            return f"it is {kind}. {advice}"
    if start[:1] == b"\x80" and start[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return f"it is a Python pickle (an old PyTorch checkpoint). {_ONLY_SAFETENSORS}"
    if start[4:8] == b"ftyp" or start[:4] == b"\x1aE\xdf\xa3":
        return "it is a video file. Pick the model's .safetensors file here."
    if start[:4] == b"RIFF" and start[8:12] == b"WEBP":
        return "it is a WebP image. Pick the model's .safetensors file here."
    text = _as_text(start)
    if text is not None:
        stripped = text.lstrip().lower()
        if stripped.startswith(("<!doctype html", "<html")):
            return (
                "it is a web page (HTML), which a download saves when the site answers with a login, licence or "
                "error page. Open the model page in a browser (log in or accept the licence if asked) and download "
                "the .safetensors file itself."
            )
        if stripped.startswith(("{", "[")):
            return "it is a JSON file. Pick the .safetensors weights (for a diffusers folder, pick the folder)."
        first_line = " ".join(text.split())[:60]
        return f"it is a text file (it begins \"{first_line}\"). Pick the model's .safetensors file here."
    if path.suffix.lower() in (".safetensors", ".sft"):
        return (
            "it does not begin with a safetensors header, and its first bytes match no file kind this pack knows. "
            f"If it was downloaded as .safetensors, the copy is damaged: download '{path.name}' again."
        )
    return f"its first bytes match no file kind this pack knows. {_ONLY_SAFETENSORS}"


def _as_text(start: bytes) -> str | None:
    if b"\x00" in start:
        return None
    try:
        text = start.decode("utf-8")
    except UnicodeDecodeError as exc:  # a multi-byte character cut at the sniff boundary is still text
        if exc.start < len(start) - 4:
            return None
        text = start[: exc.start].decode("utf-8")
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return text if text and printable >= 0.95 * len(text) else None


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
            if tensor.dtype in FP8_DTYPES:
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
FP8_DTYPES = tuple(
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
