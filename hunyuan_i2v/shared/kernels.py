"""What this machine's kernels can run, found out by trying, before any weights load.

A kernel's package can be installed and still refuse the job: flash-attn on a CPU or in float32, PyTorch's fused
SDPA kernels where the build or the GPU lacks them, SageAttention with a mask. diffusers only finds out at the
first attention call, after minutes of loading and encoding. A tiny call shaped like the models' (a padded-text key
mask, head size 128, the compute dtype, the device) finds out in milliseconds, so the loader can refuse at once.
"""

from __future__ import annotations

import shutil
import sys

import torch

from ..errors import UserInputError

HEAD_DIM = 128  # both HunyuanVideo families (13 B: 24 x 128, 1.5: 16 x 128)


def key_mask_probe(device: torch.device, dtype: torch.dtype, tokens: int = 16):
    """q, k, v [batch, tokens, heads, head] and a boolean key mask [batch, 1, 1, tokens] with padded keys at the end,
    the layout both families hand to diffusers' attention dispatch."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, tokens, 2, HEAD_DIM, generator=g).to(device=device, dtype=dtype) for _ in range(3))
    mask = torch.ones(1, 1, 1, tokens, dtype=torch.bool)
    mask[..., tokens - 3:] = False
    return q, k, v, mask.to(device)


def attention_failure(backend: str, device: torch.device, dtype: torch.dtype) -> str | None:
    """Why diffusers' ``backend`` cannot run a masked attention call here, or None when it can."""
    from diffusers.models.attention_dispatch import AttentionBackendName, dispatch_attention_fn

    q, k, v, mask = key_mask_probe(device, dtype)
    try:
        with torch.no_grad():
            out = dispatch_attention_fn(q, k, v, attn_mask=mask, backend=AttentionBackendName(backend))
    except Exception as exc:  # noqa: BLE001 - each kernel refuses in its own way (ValueError, RuntimeError, ...)
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if not torch.isfinite(out.float()).all():
        return "it returned NaN or infinite values"
    return None


def fused_sdpa_available(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether PyTorch has a fused (flash, memory-efficient or cuDNN) kernel for masked attention here; without one,
    "native" SDPA runs its math kernel, which builds the whole score matrix."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q, k, v, mask = key_mask_probe(device, dtype)
    fused = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION]
    try:
        with torch.no_grad(), sdpa_kernel(fused):
            torch.nn.functional.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                                             v.transpose(1, 2), attn_mask=mask)
    except RuntimeError:
        return False
    return True


def check_compile(device: torch.device) -> None:
    """torch.compile needs Triton for GPU code and a C++ compiler for CPU code; refuse before loading without them."""
    if device.type in ("cuda", "xpu"):
        from torch.utils._triton import has_triton

        if not has_triton():
            raise UserInputError(
                "compile_blocks needs Triton, which this PyTorch cannot use (pip install triton; on Windows, "
                "triton-windows). Turn compile_blocks off."
            )
    elif device.type == "cpu":
        compilers = ("cl",) if sys.platform == "win32" else ("g++", "c++", "clang++")
        if not any(shutil.which(name) for name in compilers):
            raise UserInputError(
                f"compile_blocks on the CPU needs a C++ compiler ({' or '.join(compilers)}) on the PATH. Install one "
                "or turn compile_blocks off."
            )
    elif device.type == "mps":
        raise UserInputError("compile_blocks does not work on Apple MPS with these models. Turn compile_blocks off.")


def check_fp8_device(device: torch.device) -> None:
    """fp8 storage upcasts each layer's weights on the device; Apple MPS has no float8 tensors."""
    if not hasattr(torch, "float8_e4m3fn"):
        raise UserInputError("This PyTorch has no float8 support; turn fp8 storage off or update PyTorch.")
    if device.type == "mps":
        raise UserInputError(
            "fp8 storage does not work on Apple MPS (it has no float8 tensors). Turn fp8 storage off; use offload "
            "mode 'block' to save memory instead."
        )


def check_several_gpus(device_type: str) -> None:
    """Several GPUs per video talk through NCCL, which PyTorch does not ship for Windows."""
    if device_type == "cuda" and sys.platform == "win32":
        raise UserInputError(
            "Several GPUs per video need NCCL, which PyTorch has no Windows build of. Set gpus to 1 here, or run on "
            "Linux (WSL2 works)."
        )
