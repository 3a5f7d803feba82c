"""Which model family a file or folder belongs to, read from its contents, never its name.

Each family is a sub-package (``hunyuan_video_13b``, ``hunyuan_video_15``)
whose ``family`` module has the same functions; the stages call those.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

from .errors import ModelFileError
from .shared import files
from .shared.tokenizers import pipeline_class

HUNYUAN_VIDEO_13B = "hunyuan_video_13b"
HUNYUAN_VIDEO_15 = "hunyuan_video_15"
NAMES = (HUNYUAN_VIDEO_15, HUNYUAN_VIDEO_13B)

DISPLAY_NAMES = {HUNYUAN_VIDEO_13B: "HunyuanVideo-I2V (13 B)", HUNYUAN_VIDEO_15: "HunyuanVideo-1.5 (8.3 B)"}

# diffusers pipelines per family; text-to-video ones are named so the error can say so.
I2V_PIPELINES = {
    "HunyuanVideoImageToVideoPipeline": HUNYUAN_VIDEO_13B,
    "HunyuanVideo15ImageToVideoPipeline": HUNYUAN_VIDEO_15,
}
T2V_PIPELINES = {"HunyuanVideoPipeline": HUNYUAN_VIDEO_13B, "HunyuanVideo15Pipeline": HUNYUAN_VIDEO_15}
T2V_NAMES = {"HunyuanVideoPipeline": "HunyuanVideo (13 B) text-to-video model",
             "HunyuanVideo15Pipeline": "HunyuanVideo-1.5 text-to-video model"}

# Roles of single files (shared.files.detect_role) per family and slot.
ROLE_FAMILIES = {
    "hunyuan_transformer": (HUNYUAN_VIDEO_13B, "transformer"),
    "hunyuan15_transformer": (HUNYUAN_VIDEO_15, "transformer"),
    "hunyuan_vae": (HUNYUAN_VIDEO_13B, "vae"),
    "hunyuan15_vae": (HUNYUAN_VIDEO_15, "vae"),
    "llama_text_encoder": (HUNYUAN_VIDEO_13B, "text_encoders"),
    "clip_vision": (HUNYUAN_VIDEO_13B, "vision"),
    "clip_text": (HUNYUAN_VIDEO_13B, "text_encoder_2"),
    "qwen_text_encoder": (HUNYUAN_VIDEO_15, "text_encoders"),
    "siglip_vision": (HUNYUAN_VIDEO_15, "vision"),
    "byt5_text_encoder": (HUNYUAN_VIDEO_15, "text_encoder_2"),
}


def family(name: str):
    """The family's interface module (``<family>/family.py``)."""
    if name not in NAMES:
        raise ValueError(f"unknown model family {name!r}")
    return import_module(f".{name}.family", __package__)


def of_folder(folder: Path) -> str:
    """The family of a diffusers folder, from its model_index.json."""
    folder = Path(folder)
    if not (folder / "model_index.json").exists():
        raise ModelFileError(f"'{folder}' is not a diffusers folder (no model_index.json).")
    cls = pipeline_class(folder)
    if cls in I2V_PIPELINES:
        return I2V_PIPELINES[cls]
    if cls in T2V_PIPELINES:
        raise ModelFileError(
            f"diffusers folder '{folder.name}' is the {T2V_NAMES[cls]} ({cls}). "
            "This pack makes video from an image: use the image-to-video conversion (model_index.json naming "
            f"{next(k for k, v in I2V_PIPELINES.items() if v == T2V_PIPELINES[cls])})."
        )
    raise ModelFileError(
        f"diffusers folder '{folder.name}' holds a {cls or 'pipeline of unknown kind'}, not HunyuanVideo "
        f"image-to-video. Use a folder whose model_index.json names {' or '.join(I2V_PIPELINES)}."
    )


def of_file(path: Path) -> tuple[str | None, str | None, str | None]:
    """(family, slot, role) of a single .safetensors file; family None when it is no Hunyuan part."""
    role = files.detect_role(files.tensor_keys(path))
    family_name, slot = ROLE_FAMILIES.get(role, (None, None))
    return family_name, slot, role


def check_match(parts: list[tuple[str, object, tuple[str, ...]]]) -> None:
    """Refuse parts of different families wired together, naming the files the other family needs.

    ``parts``: (what the user calls it, the loaded object with a ``family``, the file slots it comes from).
    The first part decides: the others must be of its family.
    """
    present = [(what, getattr(obj, "family", None), slots) for what, obj, slots in parts if obj is not None]
    if not present:
        return
    first_what, first_family, _ = present[0]
    for what, fam, slots in present[1:]:
        if fam != first_family:
            right = family(first_family).FILES
            files_needed = " and ".join(right[slot] for slot in slots)
            raise ModelFileError(
                f"{what} is {DISPLAY_NAMES[fam]} but {first_what} is {DISPLAY_NAMES[first_family]}: parts of "
                f"different models cannot work together. Use {DISPLAY_NAMES[first_family]}'s files: {files_needed}."
            )
