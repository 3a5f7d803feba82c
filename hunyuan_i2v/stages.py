"""The four stages of the local path with device placement and memory errors.

The nodes and the command line both call these, so a graph and a shell run
take the same path. Each stage brings its models to the GPU, runs, and sends
them back to CPU RAM (unless the transformer's offload mode says otherwise),
so the next stage has the room.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch
from einops import rearrange

from . import acceleration, files, images, loras, sampling
from .conditioning import I2VConditioning, encode
from .errors import UserInputError
from .text_encoders import TextEncoders
from .transformer import LATENT_CONCAT, LoadedTransformer, load_transformer
from .vae import LoadedVAE

# The reference drops the first 4 decoded frames of v1 (latent concat) videos.
V1_DROPPED_FRAMES = 4


def load_model(
    path: str | Path,
    weight_dtype: str = "bf16",
    fp8_storage: bool = False,
    attention: str = "native (PyTorch SDPA)",
    offload_mode: str = "model",
    device: torch.device | None = None,
    offload_device: torch.device | None = None,
) -> LoadedTransformer:
    if offload_mode not in acceleration.OFFLOAD_MODES:
        raise UserInputError(f"Unknown offload mode '{offload_mode}'. Use one of {', '.join(acceleration.OFFLOAD_MODES)}.")
    dtype = acceleration.parse_dtype(weight_dtype)
    loaded = load_transformer(path, dtype)
    loaded.offload_mode = offload_mode
    acceleration.set_attention_backend(loaded.model, attention)
    if fp8_storage:
        acceleration.enable_fp8_storage(loaded.model, dtype)
        loaded.notes.append("Weights stored in fp8 (e4m3fn), computed in " + weight_dtype + ".")
    if offload_mode == "block" and device is not None:
        acceleration.enable_block_offload(loaded.model, device, offload_device or torch.device("cpu"))
    return loaded


def with_lora(transformer: LoadedTransformer, path: str | Path, strength: float) -> LoadedTransformer:
    """A view of ``transformer`` that samples with one more LoRA; the original is unchanged."""
    path = Path(path)
    files.check_safetensors(path)
    return replace(transformer, loras=transformer.loras + (loras.LoraSpec(path, strength),), notes=list(transformer.notes))


def _oom_guard(stage: str):
    class Guard:
        def __enter__(self):
            return self

        def __exit__(self, kind, exc, tb):
            if kind is not None and issubclass(kind, torch.OutOfMemoryError):
                raise acceleration.explain_oom(stage, exc) from exc
            return False

    return Guard()


def run_encode(
    encoders: TextEncoders,
    vae: LoadedVAE,
    image: torch.Tensor,
    prompt: str,
    negative_prompt: str = "",
    bucket: str = "720p",
    width: int = 0,
    height: int = 0,
    device: torch.device | None = None,
    offload_device: torch.device | None = None,
) -> I2VConditioning:
    start = images.prepare_start_image(image, bucket, width, height)
    device = device or torch.device("cpu")
    offload_device = offload_device or torch.device("cpu")
    encoder_device = torch.device("cpu") if encoders.run_on_cpu else device
    with _oom_guard("encode"), acceleration.on_device(encoders.modules(), encoder_device, offload_device), \
            acceleration.on_device([vae.model], device, offload_device):
        return encode(encoders, vae, start, prompt, negative_prompt or None)


def run_sample(
    transformer: LoadedTransformer,
    cond: I2VConditioning,
    settings: sampling.SamplingSettings,
    cache: str = "off",
    cache_threshold: float = 0.1,
    device: torch.device | None = None,
    offload_device: torch.device | None = None,
    on_step: Callable[[sampling.StepInfo], None] | None = None,
) -> tuple[torch.Tensor, int]:
    """Latents (VAE-scaled) and how many decoded frames to drop at the start."""
    device = device or torch.device("cpu")
    keep = transformer.offload_mode == "none"
    with _oom_guard("sample"), acceleration.on_device(
        [transformer.model], device, offload_device or torch.device("cpu"), keep=keep
    ), loras.applied(transformer.model, transformer.loras), acceleration.step_cache(
        transformer.model, cache, cache_threshold
    ):
        latents = sampling.sample(transformer, cond, settings, device, on_step)
    drop = V1_DROPPED_FRAMES if transformer.variant == LATENT_CONCAT else 0
    return latents.float().cpu(), drop


def run_decode(
    vae: LoadedVAE,
    latents: torch.Tensor,
    drop_frames: int = 0,
    tiling: bool = True,
    tile_size: int | None = None,
    device: torch.device | None = None,
    offload_device: torch.device | None = None,
) -> torch.Tensor:
    """Scaled latents [1, C, f, h, w] -> IMAGE frames [F, H, W, 3] in 0..1."""
    if latents.ndim != 5:
        raise UserInputError(
            f"Expected a video latent [batch, channels, frames, height, width], got shape {tuple(latents.shape)}. "
            "Connect the HunyuanVideo I2V sampler's LATENT."
        )
    if latents.shape[1] != vae.latent_channels:
        raise UserInputError(
            f"The latent has {latents.shape[1]} channels but this VAE takes {vae.latent_channels}: "
            "decode with the HunyuanVideo VAE."
        )
    vae.set_tiling(tiling, tile_size)
    device = device or torch.device("cpu")
    with _oom_guard("decode"), acceleration.on_device([vae.model], device, offload_device or torch.device("cpu")):
        video = vae.decode(latents)
    video = video[:, :, drop_frames:] if drop_frames else video
    frames = (video.float() / 2 + 0.5).clamp(0, 1)
    # ComfyUI's IMAGE is a batch of frames, channels last
    return rearrange(frames, "b c f h w -> (b f) h w c").cpu()
