"""LoRAs for the transformer: reading files and switching adapters on for one run.

Each family converts its own key names (kohya, original) to diffusers' names.

Adapters are held by peft next to the base weights (diffusers' adapter API)
and switched on only for the sampling run that asked for them, so the loaded
model shared by every graph never changes. Each file is read once per model.
"""

from __future__ import annotations

import hashlib
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from . import files
from ..errors import ModelFileError, UserInputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoraSpec:
    path: Path
    strength: float

    @property
    def adapter_name(self) -> str:
        """Stable per file version: a changed file on disk gets a new adapter."""
        stat = self.path.stat()
        digest = hashlib.sha1(f"{self.path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
        return f"lora_{digest[:12]}"


def read_lora(path: str | Path, model: torch.nn.Module, to_diffusers) -> dict[str, torch.Tensor]:
    """A LoRA file in diffusers' module names for ``model``.

    ``to_diffusers(state, model)`` is the model family's: it turns kohya and
    original names into diffusers' and returns the keys it had to skip.
    """
    path = Path(path)
    state = files.load_state_dict(path)
    if not any(("lora" in k) for k in state):
        raise ModelFileError(f"'{path.name}' holds no LoRA weights (no lora_A/lora_B or lora_down/lora_up keys).")
    state, skipped = to_diffusers(state, model)
    if skipped:
        log.warning("LoRA %s: %d keys outside the transformer blocks were ignored, e.g. %s",
                    path.name, len(skipped), skipped[:3])
    known = {name for name, _ in model.named_modules()}
    targets = {k.split(".lora_", 1)[0] for k in state}
    unknown = sorted(targets - known)
    if unknown:
        raise ModelFileError(
            f"'{path.name}' does not fit this transformer: {len(unknown)} of its layers do not exist here "
            f"(e.g. {unknown[:3]}). It is a LoRA for another model (or another HunyuanVideo size)."
        )
    return state


def _loaded_adapters(model: torch.nn.Module) -> set[str]:
    return set(getattr(model, "peft_config", {}) or {})


FP8_DTYPES = tuple(getattr(torch, name) for name in ("float8_e4m3fn", "float8_e5m2") if hasattr(torch, name))


def _adapter_in_compute_dtype(model: torch.nn.Module, adapter_name: str, state: dict[str, torch.Tensor],
                              dtype: torch.dtype) -> None:
    """Give a new adapter the file's own values in the compute dtype.

    peft makes an adapter's weights in its base layer's dtype and loads the file into them, so under fp8 storage
    the values have already been rounded through fp8 (most values of a typical LoRA B, std 1e-3, become 0) before
    anything here runs: casting them back up cannot restore them, so they are read again from the file's tensors.
    Adapters are small, so keeping them in the compute dtype costs little; it also keeps peft from casting each
    layer's input to fp8, which PyTorch's kernels mostly cannot multiply.
    """
    marker = f".{adapter_name}."
    for name, param in model.named_parameters():
        if marker not in name:
            continue
        source = state.get(name.replace(marker, "."))
        if source is not None and tuple(source.shape) == tuple(param.shape):
            param.data = source.to(device=param.device, dtype=dtype)
        elif param.dtype in FP8_DTYPES:
            param.data = param.data.to(dtype)


def compute_dtype_of(model: torch.nn.Module, default: torch.dtype | None = None) -> torch.dtype | None:
    """The dtype a model computes in: under fp8 storage, the one its casting hooks upcast to."""
    for param in model.parameters():
        if param.dtype not in FP8_DTYPES:
            return param.dtype if param.dtype.is_floating_point else default
    return default


@contextmanager
def applied(model: torch.nn.Module, loras: tuple[LoraSpec, ...], to_diffusers, compute_dtype=None):
    """Run with ``loras`` active at their strengths; leave the model as it was after."""
    active = [spec for spec in loras if spec.strength != 0]
    if not active:
        if _loaded_adapters(model):
            model.disable_lora()  # adapters from other graphs stay loaded but off
        yield
        return
    try:
        import peft  # noqa: F401
    except ImportError as exc:
        raise UserInputError("LoRAs need the 'peft' package: pip install peft (in ComfyUI's Python).") from exc
    names = []
    for spec in active:
        name = spec.adapter_name
        if name not in _loaded_adapters(model):
            state = read_lora(spec.path, model, to_diffusers)
            model.load_lora_adapter(dict(state), prefix=None, adapter_name=name)
            _adapter_in_compute_dtype(model, name, state, compute_dtype or compute_dtype_of(model, torch.float32))
        names.append(name)
    model.enable_lora()
    model.set_adapters(names, [spec.strength for spec in active])
    try:
        yield
    finally:
        model.disable_lora()
