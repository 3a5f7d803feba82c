"""The stages of the local path (encode, sample, decode), for either model family.

The nodes and the command line both call these, so a graph and a shell run
take the same path. Each stage checks that the parts wired to it belong to
one family, brings its models to the GPU, runs the family's code, and sends
them back to CPU RAM (unless the transformer's offload mode says otherwise).

The LATENT that crosses the graph holds unscaled latents, as ComfyUI's own
do; ``run_sample`` makes it and ``run_decode`` takes it, and nothing else
touches the VAE's scaling factor.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

import torch
from einops import rearrange

from . import families
from .errors import UserInputError
from .shared import acceleration, images, loras
from .shared.sampling import SamplingSettings, StepInfo, check_frames

LATENT_INFO_KEY = "hunyuan_i2v"  # our entry in a LATENT dict: family, frames to drop at decode


def gpu_bytes_for_encode(encoders, vae) -> int:
    """Weight bytes the encode stage brings to the GPU (text encoders set to the CPU stay there)."""
    return acceleration.module_bytes([vae.model] + ([] if encoders.run_on_cpu else encoders.modules()))


def gpu_bytes_for_sample(transformer) -> int:
    """Weight bytes sampling brings to the GPU at once (block offload streams them, so none up front)."""
    return 0 if acceleration.has_group_offload(transformer.model) else acceleration.module_bytes([transformer.model])


def gpu_bytes_for_decode(vae) -> int:
    return acceleration.module_bytes([vae.model])


@contextmanager
def _oom_guard(stage: str):
    try:
        yield
    except torch.OutOfMemoryError as exc:
        raise acceleration.explain_oom(stage, exc) from exc


def run_encode(
    encoders,
    vae,
    image: torch.Tensor,
    prompt: str,
    negative_prompt: str = "",
    resolution: str = "720p",
    width: int = 0,
    height: int = 0,
    device: torch.device | None = None,
    offload_device: torch.device | None = None,
):
    """Start image + prompts -> the family's conditioning (and notes for the user in ``cond.notes``)."""
    families.check_match([("the text encoders", encoders, ("text_encoders",)), ("the VAE", vae, ("vae",))])
    fam = families.family(encoders.family)
    width, height = fam.video_size(image, resolution, width, height)
    warning = images.small_image_warning(image, width, height)
    device = device or torch.device("cpu")
    offload_device = offload_device or torch.device("cpu")
    encoder_device = torch.device("cpu") if encoders.run_on_cpu else device
    with _oom_guard("encode"), acceleration.on_device(encoders.modules(), encoder_device, offload_device), \
            acceleration.on_device([vae.model], device, offload_device):
        cond = fam.encode(encoders, vae, image, prompt, negative_prompt, width, height)
    if warning:
        cond.notes.append(warning)
    return cond


@dataclass
class SampleResult:
    latent: dict  # a ComfyUI LATENT: {"samples": unscaled latents, LATENT_INFO_KEY: {...}}
    settings: SamplingSettings  # what was used after the model's defaults were filled in
    notes: list[str] = field(default_factory=list)


def resolve_settings(transformer, requested: SamplingSettings) -> tuple[SamplingSettings, list[str]]:
    """The model's defaults for the values the user left at 0, and notes on settings the model ignores."""
    return families.family(transformer.family).resolve_settings(transformer, requested)


def run_sample(
    transformer,
    cond,
    requested: SamplingSettings,
    cache: str = "off",
    cache_threshold: float = 0.1,
    device: torch.device | None = None,
    offload_device: torch.device | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
) -> SampleResult:
    families.check_match([
        ("the model", transformer, ("transformer",)),
        ("the conditioning (its text encoders and VAE)", cond, ("text_encoders", "vae")),
    ])
    fam = families.family(transformer.family)
    settings, notes = fam.resolve_settings(transformer, requested)
    check_frames(settings.num_frames)
    acceleration.check_cache(cache, cache_threshold)
    device = device or torch.device("cpu")
    keep = transformer.offload_mode == "none"
    with _oom_guard("sample"), acceleration.on_device(
        [transformer.model], device, offload_device or torch.device("cpu"), keep=keep
    ), loras.applied(transformer.model, transformer.loras, fam.lora_to_diffusers), acceleration.step_cache(
        transformer.model, cache, cache_threshold, transformer.family
    ):
        latents = fam.sample(transformer, cond, settings, device, on_step)
    latent = {
        "samples": (latents.float() / cond.latent_scale).cpu(),
        LATENT_INFO_KEY: {"family": transformer.family, "drop_frames": fam.frames_to_drop(transformer)},
    }
    return SampleResult(latent, settings, notes)


def run_decode(
    vae,
    latent: dict,
    tiling: bool = True,
    tile_size: int | None = None,
    device: torch.device | None = None,
    offload_device: torch.device | None = None,
) -> torch.Tensor:
    """A LATENT (unscaled [1, C, f, h, w]) -> IMAGE frames [F, H, W, 3] in 0..1."""
    if not isinstance(latent, dict) or "samples" not in latent:
        raise UserInputError("latent must be a LATENT from the HunyuanVideo I2V sampler.")
    latents = latent["samples"]
    info = latent.get(LATENT_INFO_KEY, {}) or {}
    if latents.ndim != 5:
        raise UserInputError(
            f"Expected a video latent [batch, channels, frames, height, width], got shape {tuple(latents.shape)}. "
            "Connect the HunyuanVideo I2V sampler's LATENT."
        )
    if info.get("family") and info["family"] != vae.family:
        right = families.family(info["family"])
        raise UserInputError(
            f"This latent was made by {right.DISPLAY_NAME} but the VAE is {families.DISPLAY_NAMES[vae.family]}: "
            f"decode with {right.FILES['vae']}."
        )
    if latents.shape[1] != vae.latent_channels:
        raise UserInputError(
            f"The latent has {latents.shape[1]} channels but this VAE takes {vae.latent_channels}: "
            "decode with the VAE of the model that sampled it."
        )
    drop = int(info.get("drop_frames", 0))
    vae.set_tiling(tiling, tile_size)
    device = device or torch.device("cpu")
    with _oom_guard("decode"), acceleration.on_device([vae.model], device, offload_device or torch.device("cpu")):
        video = vae.decode(latents.float())
    video = video[:, :, drop:] if drop else video
    frames = (video.float() / 2 + 0.5).clamp(0, 1)
    # ComfyUI's IMAGE is a batch of frames, channels last
    return rearrange(frames, "b c f h w -> (b f) h w c").cpu()
