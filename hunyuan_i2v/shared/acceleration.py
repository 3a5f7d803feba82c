"""Speed and memory: diffusers' hooks applied from outside the model.

fp8 weight storage (layerwise casting), group offloading, attention backends
and step caches are all diffusers features; this module picks and validates
them and turns their failures into sentences.
"""

from __future__ import annotations

import logging
import re
import weakref
from contextlib import contextmanager

import torch

from ..errors import OutOfMemoryAdvice, UserInputError
from . import kernels

log = logging.getLogger(__name__)

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}

# Backends that need no download at run time (hub-kernel backends are left out).
ATTENTION_BACKENDS = {
    "native (PyTorch SDPA)": "native",
    "sdpa flash": "_native_flash",
    "sdpa efficient": "_native_efficient",
    "sdpa cudnn": "_native_cudnn",
    "flash-attn 2": "flash",
    "flash-attn 2 varlen": "flash_varlen",
    "flash-attn 3": "_flash_3",
    "flash-attn 3 varlen": "_flash_varlen_3",
    "sageattention": "sage",
    "sageattention varlen": "sage_varlen",
}

# Offered by diffusers, refused here with the reason.
REFUSED_ATTENTION = {
    "xformers": (
        "xformers cannot take these models' padded-text mask: diffusers hands it a dense [batch, heads, tokens, "
        "tokens] bias (tens of GB at 720p) in which masked keys still count. Pick 'sdpa efficient' (the same kind of "
        "kernel, in PyTorch) or 'native (PyTorch SDPA)'."
    ),
}

# Both families always pass an attention mask (the prompt is padded; diffusers' 13 B transformer masks its keys
# too). These kernels refuse a mask, so their variable-length sibling runs instead, which reads the mask as key
# padding; PyTorch's flash kernel has no such sibling in diffusers, its memory-efficient one takes the mask.
MASK_FALLBACKS = {
    "flash": "flash_varlen",
    "_flash_3": "_flash_varlen_3",
    "sage": "sage_varlen",
    "_native_flash": "_native_efficient",
}

OFFLOAD_MODES = {
    "model": "whole model on the GPU while it runs, back to CPU RAM after (default)",
    "auto": "at each run, the fastest of model offload, fp8 storage and block offload that fits the free GPU memory",
    "none": "stays on the GPU between runs (fastest repeat runs, most VRAM)",
    "block": "blocks stream to the GPU one group at a time (least VRAM, slower)",
}

CACHE_MODES = ("off", "first block cache", "taylorseer")


def parse_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise UserInputError(f"Unknown weight dtype '{name}'. Use one of {', '.join(DTYPES)}.")
    return DTYPES[name]


def enable_fp8_storage(model: torch.nn.Module, compute_dtype: torch.dtype, skip=()) -> None:
    """Keep weights in float8_e4m3fn (half of bf16) and upcast each layer as it runs.

    ``skip``: layers already stored in fp8 with their file's scales (shared.fp8_scaled), which diffusers' casting
    (no scale) must leave alone."""
    if not hasattr(torch, "float8_e4m3fn"):
        raise UserInputError("This PyTorch has no float8 support; turn fp8 storage off or update PyTorch.")
    from diffusers.hooks.layerwise_casting import DEFAULT_SKIP_MODULES_PATTERN

    # LoRA adapters loaded earlier stay in the compute dtype: peft casts a layer's input to its adapter's
    # weight dtype, so an adapter stored in fp8 would compute in fp8 (see loras.applied).
    model.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=compute_dtype,
                                   skip_modules_pattern=tuple(DEFAULT_SKIP_MODULES_PATTERN) + ("lora_",) + tuple(
                                       "^" + re.escape(name) + "$" for name in skip))


def is_fp8_stored(model: torch.nn.Module) -> bool:
    return any(p.dtype in (getattr(torch, "float8_e4m3fn", None), getattr(torch, "float8_e5m2", None))
               for p in model.parameters())


def enable_fp8_storage_text_encoders(encoders, compute_dtype: torch.dtype, skip=()) -> None:
    """fp8 weight storage for the large language model (llava-llama-3 8 B or Qwen2.5-VL 7 B: about half the
    memory of bf16); the small encoders stay as they are.

    Norms and the embedding table stay in the compute dtype: both are read
    directly (not through a layer's forward) or are precision-sensitive.
    """
    from diffusers.hooks import apply_layerwise_casting

    if not hasattr(torch, "float8_e4m3fn"):
        raise UserInputError("This PyTorch has no float8 support; turn fp8 storage off or update PyTorch.")
    apply_layerwise_casting(
        encoders.large_module, storage_dtype=torch.float8_e4m3fn, compute_dtype=compute_dtype,
        skip_modules_pattern=("norm", "embed", "position_embedding", "patch_embedding", "lm_head") + tuple(
            "^" + re.escape(name) + "$" for name in skip),  # layers that keep their file's fp8 scales
    )


def _label(backend: str) -> str:
    return next(k for k, v in ATTENTION_BACKENDS.items() if v == backend)


def usable_attention_backend(label: str, family: str = "", device: torch.device | None = None,
                             dtype: torch.dtype = torch.bfloat16) -> tuple[str, list[str]]:
    """diffusers' backend name for ``label``, tried on ``device`` in ``dtype``; and notes for the model's info.

    Called by the loader and, before anything loads, by the command line's checks. ``family`` is kept for callers;
    both families pass masks, so the choice no longer depends on it.
    """
    if label in REFUSED_ATTENTION:
        raise UserInputError(REFUSED_ATTENTION[label])
    if label not in ATTENTION_BACKENDS:
        raise UserInputError(f"Unknown attention backend '{label}'. Use one of {', '.join(ATTENTION_BACKENDS)}.")
    device = torch.device(device) if device is not None else torch.device("cpu")
    backend = ATTENTION_BACKENDS[label]
    notes = []
    if backend in MASK_FALLBACKS:
        backend = MASK_FALLBACKS[backend]
        notes.append(f"Attention: '{label}' takes no mask, and HunyuanVideo always masks its padded prompt; using "
                     f"'{_label(backend)}' instead.")
    chosen = _label(backend)
    from diffusers.models.attention_dispatch import AttentionBackendName, _check_attention_backend_requirements

    try:
        _check_attention_backend_requirements(AttentionBackendName(backend))
    except Exception as exc:  # noqa: BLE001 - diffusers raises RuntimeError/ImportError here
        raise UserInputError(
            f"Attention backend '{chosen}' is not usable here: {exc}. Install its package or pick "
            "'native (PyTorch SDPA)'."
        ) from exc
    why = kernels.attention_failure(backend, device, dtype)
    if why:
        asked = f"'{label}' takes no mask, so its sibling was tried: " if chosen != label else ""
        raise UserInputError(
            f"{asked}Attention backend '{chosen}' cannot run on {device} with {str(dtype).replace('torch.', '')} weights "
            f"and a key mask ({why}). Pick 'native (PyTorch SDPA)', which runs everywhere"
            + (", or load the weights in bf16." if dtype == torch.float32 and device.type == "cuda" else ".")
        )
    notes.append(f"Attention kernel: {chosen}.")
    if backend == "native" and device.type == "cuda" and not kernels.fused_sdpa_available(device, dtype):
        major, minor = torch.cuda.get_device_capability(device)
        notes.append(
            f"Attention: this GPU (compute capability {major}.{minor}) has no fused PyTorch kernel for masked "
            f"{str(dtype).replace('torch.', '')} attention, so PyTorch runs its math kernel: slow, and memory grows "
            "with the square of the video's tokens. Use weight dtype fp16, a lower resolution or fewer frames."
        )
    return backend, notes


def set_attention_backend(model: torch.nn.Module, label: str, family: str = "", device: torch.device | None = None,
                          dtype: torch.dtype = torch.bfloat16) -> list[str]:
    """Select the attention kernel; returns notes for the user (which kernel runs, a fallback that was taken)."""
    backend, notes = usable_attention_backend(label, family, device, dtype)
    # Always set, "native" too: diffusers also makes the last backend set the process-wide default,
    # which every model left without its own would then use.
    model.set_attention_backend(backend)
    return notes


def compile_blocks(model: torch.nn.Module) -> int:
    """Regional compilation: torch.compile each transformer block (they share one graph), not the whole model.

    Compiling the repeated blocks costs one compilation instead of one per block, and leaves the
    model's Python forward (masks, token joins) uncompiled. diffusers' compile_repeated_blocks matches
    block classes by name and misses the 13 B token-replace blocks, so the block lists are walked here.
    """
    count = 0
    for name in ("transformer_blocks", "single_transformer_blocks"):
        for block in getattr(model, name, []):
            block.compile(fullgraph=False, dynamic=False)
            count += 1
    return count


def pin_in_place(model: torch.nn.Module) -> None:
    """Move every weight into page-locked (pinned) host memory, one tensor at a time, freeing each original.

    diffusers' group offloading with streams makes a pinned copy of every weight while the originals still exist:
    twice the model in host RAM (about 50 GB for the 13 B model in bf16) on exactly the small-GPU machines block
    offload is for. A tensor that is already pinned is not copied again (``Tensor.pin_memory`` returns it), so
    pinning here first keeps the peak at the weights plus one tensor. No library does this step.
    """
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if param.device.type == "cpu" and not param.data.is_pinned():
                param.data = param.data.pin_memory()
        for name, buffer in module.named_buffers(recurse=False):
            if buffer is not None and buffer.device.type == "cpu" and not buffer.is_pinned():
                module._buffers[name] = buffer.pin_memory()


def enable_block_offload(model: torch.nn.Module, device: torch.device, offload_device: torch.device) -> None:
    if device.type == "cpu":
        return  # nothing to stream to
    if device.type == "cuda" and offload_device.type == "cpu":
        pin_in_place(model)
    model.enable_group_offload(
        onload_device=device, offload_device=offload_device, offload_type="block_level",
        num_blocks_per_group=1, use_stream=device.type == "cuda",
    )


def has_group_offload(model: torch.nn.Module) -> bool:
    from diffusers.hooks.group_offloading import _is_group_offload_enabled

    return bool(_is_group_offload_enabled(model))


CACHE_THRESHOLD_RANGE = (0.01, 1.0)  # the first block cache's useful range; 0 would never skip


def check_cache(mode: str, threshold: float) -> None:
    if mode not in CACHE_MODES:
        raise UserInputError(f"Unknown cache '{mode}'. Use one of {', '.join(CACHE_MODES)}.")
    low, high = CACHE_THRESHOLD_RANGE
    if mode == "first block cache" and not low <= threshold <= high:
        raise UserInputError(
            f"cache_threshold must be between {low} and {high} for the first block cache, got {threshold} "
            "(0.05 to 0.15 is typical)."
        )


def register_hunyuan15_blocks() -> None:
    """Tell diffusers' block registry how HunyuanVideo-1.5's block returns its outputs.

    First Block Cache (and MagCache) look blocks up in ``TransformerBlockRegistry``;
    diffusers 0.42 does not list the 1.5 block, so the cache refuses the model.
    The block returns (hidden_states, encoder_hidden_states). Registering from
    here keeps the model class untouched, and a diffusers that registers the
    block itself is left as it is.
    """
    from diffusers.hooks._helpers import TransformerBlockMetadata, TransformerBlockRegistry
    from diffusers.models.transformers.transformer_hunyuan_video15 import HunyuanVideo15TransformerBlock

    TransformerBlockRegistry._register()  # the library's own entries first, so ours cannot shadow them
    if HunyuanVideo15TransformerBlock not in TransformerBlockRegistry._registry:
        TransformerBlockRegistry.register(
            HunyuanVideo15TransformerBlock,
            TransformerBlockMetadata(return_hidden_states_index=0, return_encoder_hidden_states_index=1),
        )


@contextmanager
def step_cache(model: torch.nn.Module, mode: str, threshold: float, family: str = ""):
    """Enable a diffusers step cache for one sampling run, then remove it.

    The model object is shared by every graph that uses the loader, so the
    cache must not outlive the run that asked for it.
    """
    if mode == "off" or mode is None:
        yield
        return
    from diffusers import FirstBlockCacheConfig, TaylorSeerCacheConfig

    check_cache(mode, threshold)
    if family == "hunyuan_video_15":
        register_hunyuan15_blocks()
    if mode == "first block cache":
        config = FirstBlockCacheConfig(threshold=threshold)
    elif mode == "taylorseer":
        # Its own schedule (full compute every 5th step after 3 warm-up steps); threshold is not used.
        config = TaylorSeerCacheConfig(taylor_factors_dtype=torch.float32)
    else:
        raise UserInputError(f"Unknown cache '{mode}'. Use one of {', '.join(CACHE_MODES)}.")
    if getattr(model, "is_cache_enabled", False):
        model.disable_cache()
    model.enable_cache(config)
    try:
        yield
    finally:
        model.disable_cache()


# Modules left on a GPU after their stage (offload mode "none"), with the device to send them back to. Weak, so a
# model the host drops is not kept alive by this list.
_RESIDENT: "weakref.WeakKeyDictionary[torch.nn.Module, torch.device]" = weakref.WeakKeyDictionary()


@contextmanager
def on_device(modules, device: torch.device, offload_device: torch.device, keep: bool = False):
    """Run with ``modules`` on ``device``; move them back after unless ``keep``.

    Modules under group offloading manage their own placement and are left alone. Kept modules are remembered,
    so that a host asking for its GPU back (``release_resident``) gets them too.
    """
    movable = [m for m in modules if not has_group_offload(m)]
    for module in movable:
        _RESIDENT.pop(module, None)
        module.to(device)
    try:
        yield
    finally:
        if not keep and device != offload_device:
            for module in movable:
                module.to(offload_device)
            if device.type == "cuda":
                torch.cuda.empty_cache()
        elif keep:  # on a CPU-only host too: there the release is only the pack's own accounting
            for module in movable:
                _RESIDENT[module] = offload_device


def resident_bytes() -> int:
    """Bytes of weights kept on a GPU between runs."""
    return module_bytes(list(_RESIDENT.keys()))


def release_resident(keep=()) -> int:
    """Send every module kept on a GPU, but ``keep``, back to its offload device (the host wants the memory);
    bytes released. The next run brings it back, as it would after a restart.
    """
    released = 0
    for module, offload_device in list(_RESIDENT.items()):
        if any(module is kept for kept in keep):
            continue
        size = module_bytes([module])
        released += size
        module.to(offload_device)
        _RESIDENT.pop(module, None)
        log.info("HunyuanVideo I2V: unloaded %s (%.2f GB of weights) to %s", type(module).__name__, size / 2**30,
                 offload_device)
    if released and torch.cuda.is_available():
        torch.cuda.empty_cache()
    return released


def module_bytes(modules) -> int:
    return sum(p.numel() * p.element_size() for m in modules for p in m.parameters())


def explain_oom(stage: str, exc: BaseException) -> OutOfMemoryAdvice:
    """torch's out-of-memory error, with what to change in its message: hosts recognise the class (ComfyUI frees
    all its models on it), users read the advice."""
    tips = {
        "sample": "lower the resolution or frames, set offload mode to 'block' (or 'auto'), turn fp8 storage on",
        "decode": "keep VAE tiling on and lower the tile size (or set it to 0 = auto)",
        "encode": "load the text encoders on the CPU or with fp8 storage",
    }
    return OutOfMemoryAdvice(
        f"Out of GPU memory during {stage}: {tips.get(stage, 'free memory')}; other models loaded on the same GPU "
        f"count too (ComfyUI's 'Unload models' frees them). ({exc})"
    )
