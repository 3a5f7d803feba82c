"""The one place the nodes touch ComfyUI.

Every ComfyUI service the nodes use (model folders, output folder, progress
bar, interrupt, node text, core VIDEO type, model management) is reached
through this module. When ComfyUI is not importable (tests, the command line,
other programs) each service falls back to plain Python, so the pack imports
and runs without ComfyUI.

Fallback model folders: ``HUNYUAN_I2V_MODELS`` names a root folder holding
ComfyUI-style sub folders (``diffusion_models``, ``vae``, ``text_encoders``,
``clip_vision``, ``diffusers``, ``loras``, ``latent_upscale_models``).
"""

from __future__ import annotations

import os
import tempfile
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

from ..hunyuan_i2v.errors import MissingModelError
from ..hunyuan_i2v.shared import acceleration

try:  # ComfyUI present
    import folder_paths as _folder_paths  # type: ignore
    import comfy.model_management as _mm  # type: ignore
    import comfy.utils as _comfy_utils  # type: ignore

    HAVE_COMFY = True
except Exception:  # noqa: BLE001 - any import failure means "not inside ComfyUI"
    _folder_paths = None
    _mm = None
    _comfy_utils = None
    HAVE_COMFY = False

MODELS_ENV = "HUNYUAN_I2V_MODELS"
MODEL_SUFFIXES = (".safetensors", ".sft")


# ---------------------------------------------------------------- folders

def model_folders(kind: str) -> list[Path]:
    """Folders ComfyUI searches for models of ``kind`` (e.g. "vae")."""
    if HAVE_COMFY:
        try:
            return [Path(p) for p in _folder_paths.get_folder_paths(kind)]
        except Exception:  # noqa: BLE001 - unknown key in an old ComfyUI
            return []
    root = os.environ.get(MODELS_ENV)
    return [Path(root) / kind] if root else []


def register_model_folder(kind: str) -> None:
    """Give ComfyUI a models/<kind> folder it does not know yet (``latent_upscale_models`` came with 0.3.70), so
    older releases list and find those files too."""
    if not HAVE_COMFY:
        return
    try:
        folder = os.path.join(_folder_paths.models_dir, kind)
        known = _folder_paths.folder_names_and_paths
        if kind not in known:
            known[kind] = ([folder], set(_folder_paths.supported_pt_extensions))
        elif folder not in known[kind][0]:  # an extra_model_paths.yaml entry came first: keep models/<kind> too
            known[kind][0].append(folder)
    except Exception:  # noqa: BLE001 - a ComfyUI that arranges folders otherwise: its own listing stands
        pass


def list_model_files(kind: str) -> list[str]:
    """Model files of ``kind`` as names relative to their folder."""
    if HAVE_COMFY:
        try:
            names = _folder_paths.get_filename_list(kind)
        except Exception:  # noqa: BLE001
            names = []
        return sorted(n for n in names if n.lower().endswith(MODEL_SUFFIXES))
    names: set[str] = set()
    for folder in model_folders(kind):
        if folder.is_dir():
            for path in folder.rglob("*"):
                if path.is_file() and path.suffix.lower() in MODEL_SUFFIXES:
                    names.add(path.relative_to(folder).as_posix())
    return sorted(names)


def list_diffusers_folders() -> list[str]:
    """Diffusers-layout folders (holding ``model_index.json``).

    ComfyUI's ``get_filename_list("diffusers")`` lists no folders, so this
    walks the folders itself, as core's own diffusers loader does.
    """
    found: set[str] = set()
    for folder in model_folders("diffusers"):
        if not folder.is_dir():
            continue
        for index in folder.rglob("model_index.json"):
            found.add(index.parent.relative_to(folder).as_posix())
    return sorted(found)


def resolve_model_path(kind: str, name: str) -> Path:
    """Full path of ``name`` inside the ``kind`` folders, or a clear error."""
    candidate = Path(name)
    if candidate.is_absolute() and candidate.exists():
        return candidate
    if HAVE_COMFY and kind != "diffusers":
        full = _folder_paths.get_full_path(kind, name)
        if full:
            return Path(full)
    for folder in model_folders(kind):
        path = folder / name
        if path.exists():
            return path
    searched = ", ".join(str(f) for f in model_folders(kind)) or (
        f"no folder (set {MODELS_ENV} to a models root outside ComfyUI)"
    )
    raise MissingModelError(
        f"Model '{name}' was not found in the '{kind}' folders ({searched}). "
        f"Put the file in ComfyUI/models/{kind}/ and press 'r' to refresh the node lists."
    )


def output_directory() -> Path:
    if HAVE_COMFY:
        return Path(_folder_paths.get_output_directory())
    path = Path(os.environ.get("HUNYUAN_I2V_OUTPUT", Path(tempfile.gettempdir()) / "hunyuan_i2v_output"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def state_directory() -> Path:
    """A folder for small state files (journals) that survives restarts."""
    if HAVE_COMFY:
        try:
            base = Path(_folder_paths.get_user_directory())
        except Exception:  # noqa: BLE001
            base = Path(_folder_paths.get_temp_directory())
    else:
        base = Path(os.environ.get("HUNYUAN_I2V_STATE", Path(tempfile.gettempdir()) / "hunyuan_i2v_state"))
    path = base / "hunyuan_i2v"
    path.mkdir(parents=True, exist_ok=True)
    return path


# ---------------------------------------------------------------- progress / stop

class _NullProgress:
    def __init__(self, total: int):
        self.total = total
        self.current = 0

    def update_absolute(self, value: int, total: int | None = None, preview: Any = None) -> None:
        self.current = value

    def update(self, value: int) -> None:
        self.current += value


def progress_bar(total: int):
    if HAVE_COMFY:
        return _comfy_utils.ProgressBar(total)
    return _NullProgress(total)


def check_interrupt() -> None:
    """Raise ComfyUI's interrupt exception when the user pressed Cancel."""
    if HAVE_COMFY:
        _mm.throw_exception_if_processing_interrupted()


def interrupt_requested() -> bool:
    if HAVE_COMFY:
        return bool(getattr(_mm, "processing_interrupted", lambda: False)())
    return False


def node_text_sender(node_id: str | None) -> Callable[[str], None]:
    """A function that shows a line of text on the running node."""
    if not HAVE_COMFY or node_id is None:
        return lambda text: None
    try:
        from server import PromptServer  # type: ignore
    except Exception:  # noqa: BLE001
        return lambda text: None

    def send(text: str) -> None:
        try:
            PromptServer.instance.send_progress_text(text, node_id)
        except Exception:  # noqa: BLE001 - a closed websocket must not fail the job
            pass

    return send


# ---------------------------------------------------------------- devices / memory

def torch_device():
    import torch

    if HAVE_COMFY:
        return _mm.get_torch_device()
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def offload_device():
    import torch

    if HAVE_COMFY:
        return _mm.unet_offload_device()
    return torch.device("cpu")


_requesting = threading.local()  # set while the pack itself asks ComfyUI for memory


def inference_reserve() -> int:
    """What ComfyUI keeps free beside a model for its own work (its ``minimum_inference_memory``)."""
    if HAVE_COMFY:
        try:
            return int(_mm.minimum_inference_memory())
        except Exception:  # noqa: BLE001 - an older ComfyUI without it
            pass
    return 0


def make_room_on_device(device, bytes_needed: int, keep=()) -> None:
    """Ask ComfyUI to unload its own models until ``bytes_needed`` (a stage's whole estimate) plus ComfyUI's
    inference reserve are free on ``device``; if that is not enough, the pack's own resident models go too,
    except ``keep`` (the modules the stage is about to use)."""
    if not HAVE_COMFY or getattr(device, "type", "cpu") == "cpu":
        return
    needed = int(bytes_needed) + inference_reserve()
    try:
        _requesting.active = True
        _mm.free_memory(needed, device)
    except Exception:  # noqa: BLE001 - best effort; the stage itself reports OOM clearly
        pass
    finally:
        _requesting.active = False
    free = free_memory(device)
    if free is not None and free < needed:
        acceleration.release_resident(keep=keep)
    try:
        _mm.soft_empty_cache()
    except Exception:  # noqa: BLE001
        pass


def release_pack_models() -> None:
    """Give the GPUs back: models the pack keeps resident and worker pools (they start again when next used)."""
    acceleration.release_resident()
    from ..hunyuan_i2v.parallel import pool

    pool.stop_all()


def install_memory_hooks() -> bool:
    """Make ComfyUI's own memory management reach the pack's models.

    "Unload models" (POST /free) and ComfyUI's recovery from an out-of-memory error call
    ``model_management.unload_all_models``; a model that needs room calls ``model_management.free_memory``. Neither
    knows models it did not load, and ComfyUI offers no registration for them that holds across its releases
    (0.3.64 to 0.8), so both functions are wrapped: each runs as before, then releases what the pack holds on the GPU
    (for ``free_memory``, only when ComfyUI's own models did not free enough). Installed once per process.
    """
    if not HAVE_COMFY or getattr(_mm, "_hunyuan_i2v_hooks", False):
        return False
    original_unload, original_free = _mm.unload_all_models, _mm.free_memory

    def unload_all_models(*args, **kwargs):
        result = original_unload(*args, **kwargs)
        release_pack_models()
        return result

    def free_memory_hook(memory_required, device, *args, **kwargs):
        result = original_free(memory_required, device, *args, **kwargs)
        if not getattr(_requesting, "active", False) and getattr(device, "type", "cpu") != "cpu":
            try:
                if _mm.get_free_memory(device) < memory_required:
                    acceleration.release_resident()
            except Exception:  # noqa: BLE001 - never fail ComfyUI's own loading
                pass
        return result

    _mm.unload_all_models, _mm.free_memory = unload_all_models, free_memory_hook
    _mm._hunyuan_i2v_hooks = True
    return True


install_memory_hooks()


def free_memory(device) -> int | None:
    """Bytes free on ``device`` as ComfyUI counts them (its own cache included); None on the CPU."""
    if getattr(device, "type", "cpu") == "cpu":
        return None
    if HAVE_COMFY:
        try:
            return int(_mm.get_free_memory(device))
        except Exception:  # noqa: BLE001 - fall back to the driver's figure
            pass
    try:
        import torch

        if device.type == "cuda":
            return int(torch.cuda.mem_get_info(device)[0])
    except Exception:  # noqa: BLE001
        pass
    return None


# ---------------------------------------------------------------- video type

def make_video(frames, fps: float):
    """Core's VIDEO object for ``frames`` [F, H, W, C], or None outside ComfyUI."""
    try:
        from comfy_api.latest import InputImpl, Types  # type: ignore
    except Exception:  # noqa: BLE001
        return None
    return InputImpl.VideoFromComponents(
        Types.VideoComponents(images=frames, frame_rate=Fraction(fps).limit_denominator(1000))
    )


def video_from_file(path: str | os.PathLike):
    """Core's VIDEO object for an MP4 file, or None outside ComfyUI."""
    try:
        from comfy_api.latest import InputImpl  # type: ignore
    except Exception:  # noqa: BLE001
        return None
    return InputImpl.VideoFromFile(str(path))


# ---------------------------------------------------------------- previews

# ComfyUI's latent format (colour factors for previews) per model family.
_LATENT_FORMATS = {"hunyuan_video_13b": "HunyuanVideo", "hunyuan_video_15": "HunyuanVideo15"}


def latent_previewer(device=None, family: str = "hunyuan_video_13b") -> Callable[[Any], Any] | None:
    """A function turning a latent estimate into a progress-bar preview, using
    ComfyUI's own previewer and the family's latent colour factors."""
    if not HAVE_COMFY:
        return None
    try:
        import latent_preview  # type: ignore
        from comfy import latent_formats  # type: ignore

        latent_format = getattr(latent_formats, _LATENT_FORMATS.get(family, ""))()
        previewer = latent_preview.get_previewer(device or torch_device(), latent_format)
    except Exception:  # noqa: BLE001 - previews are optional
        return None
    if previewer is None:
        return None

    def preview(x0):
        if x0.shape[1] != latent_format.latent_channels:
            return None  # not the real VAE's latent space (e.g. the tiny demo model): colours would be meaningless
        middle = x0.shape[2] // 2  # the first latent frame is the input image itself
        try:
            return previewer.decode_latent_to_preview_image("JPEG", x0[:, :, middle:middle + 1].float())
        except Exception:  # noqa: BLE001 - a failed preview must never fail the generation
            return None

    return preview


# ---------------------------------------------------------------- tokenizers

def comfy_package_dir() -> Path | None:
    """ComfyUI's ``comfy`` folder, where it keeps the tokenizers its loaders use (None outside ComfyUI)."""
    if not HAVE_COMFY:
        return None
    try:
        import comfy  # type: ignore

        # comfy is a namespace package in ComfyUI (no __init__.py, so no __file__)
        return Path(list(comfy.__path__)[0])
    except Exception:  # noqa: BLE001
        return None
