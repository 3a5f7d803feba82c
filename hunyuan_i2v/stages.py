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

from . import families, planner
from .errors import UserInputError
from .shared import acceleration, images, interrupt, loras, sequence_parallel
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


# What each stage needs free on its device before it starts: the planner's whole estimate (weights the stage
# brings, and its working memory). A host program (ComfyUI) frees that much from its own models first; asking
# for the weights alone let another loaded model stay and the stage run out of memory.

def _already_on(modules, device) -> int:
    """Bytes of ``modules`` that sit on ``device`` already (a transformer kept resident): not asked for again."""
    return sum(p.numel() * p.element_size() for m in modules for p in m.parameters()
               if p.device.type == getattr(device, "type", "cpu") and p.device.type != "cpu")


def encode_memory_request(encoders, vae, device=None) -> int:
    estimate = planner.encode_estimate(encoders, vae)
    on_gpu = [vae.model] + ([] if encoders.run_on_cpu else encoders.modules())
    return max(0, estimate.total - _already_on(on_gpu, device))


def sample_memory_request(transformer, cond, requested: SamplingSettings, device=None) -> int:
    """With offload mode "auto", the fastest mode's need: the host frees what it can, and "auto" then plans against
    what is free after that."""
    if transformer.pool is not None:  # the workers' GPUs are their own
        return 0
    settings, _ = resolve_settings(transformer, requested, cond)
    mode = "model" if transformer.offload_mode == "auto" else transformer.offload_mode
    estimate = planner.sample_estimate(transformer, cond, settings.num_frames, offload_mode=mode)
    return max(0, estimate.total - _already_on([transformer.model], device))


def super_resolution_memory_request(cond, latent: dict, upsampler, vae, resolution: str, width: int = 0,
                                    height: int = 0, encoders=None, device=None) -> int:
    """The Super-Resolution node's need at its target size (0 when the inputs are wrong: the stage says why)."""
    from .hunyuan_video_15 import super_resolution

    samples = latent.get("samples") if isinstance(latent, dict) else None
    if samples is None or samples.ndim != 5 or getattr(cond, "spatial_ratio", None) is None:
        return 0
    try:
        width, height = super_resolution.target_size(samples.shape[-1] * cond.spatial_ratio,
                                                     samples.shape[-2] * cond.spatial_ratio, resolution, width, height)
    except UserInputError:
        return 0
    estimate = planner.super_resolution_estimate(vae, upsampler, encoders, tuple(samples.shape), width, height)
    modules = [vae.model, upsampler.model] + ([encoders.image_encoder] if encoders is not None else [])
    return max(0, estimate.total - _already_on(modules, device))


def decode_memory_request(vae, latent: dict, tiling: bool = True, tile_size: int | None = None, device=None) -> int:
    """Tile size 0 ("auto") asks for an untiled decode; the tile is then chosen against what is free."""
    samples = latent.get("samples") if isinstance(latent, dict) else None
    if samples is None or samples.ndim != 5:
        return gpu_bytes_for_decode(vae)  # run_decode refuses it in a sentence
    tiled = tiling and tile_size != 0
    estimate = planner.decode_estimate(vae, tuple(samples.shape), tiled, tile_size or None)
    return max(0, estimate.total - _already_on([vae.model], device))


@contextmanager
def _oom_guard(stage: str):
    """An out-of-memory error stays one (with the pack's advice), so a host's own recovery runs: ComfyUI unloads
    every model when a node fails with torch's out-of-memory error."""
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
    poll: Callable[[], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
):
    """Start image + prompts -> the family's conditioning (and notes for the user in ``cond.notes``).

    ``poll`` is called before every block of the encoders and may raise (Cancel); ``on_progress(done, total)``
    counts those blocks.
    """
    families.check_match([("the text encoders", encoders, ("text_encoders",)), ("the VAE", vae, ("vae",))])
    fam = families.family(encoders.family)
    width, height = fam.video_size(image, resolution, width, height)
    warning = images.small_image_warning(image, width, height)
    device = device or torch.device("cpu")
    offload_device = offload_device or torch.device("cpu")
    encoder_device = torch.device("cpu") if encoders.run_on_cpu else device
    with _oom_guard("encode"), acceleration.on_device(encoders.modules(), encoder_device, offload_device), \
            acceleration.on_device([vae.model], device, offload_device):
        encoding = encoders.modules() + [vae.model.encoder]
        total = len(interrupt.repeated_blocks(encoding))
        with interrupt.counted(encoding, poll, on_progress, total):
            cond = fam.encode(encoders, vae, image, prompt, negative_prompt, width, height)
    if warning:
        cond.notes.append(warning)
    return cond


def run_super_resolution(
    cond,
    latent: dict,
    upsampler,
    vae,
    image: torch.Tensor,
    resolution: str = "1080p",
    width: int = 0,
    height: int = 0,
    noise_augmentation: float | None = None,
    encoders=None,
    device: torch.device | None = None,
    offload_device: torch.device | None = None,
    poll: Callable[[], None] | None = None,
):
    """The base stage's conditioning and LATENT -> the conditioning an SR transformer samples from (HunyuanVideo-1.5).

    The start image is encoded again at the high size; the latent is upsampled by ``upsampler``. ``encoders`` (the
    text encoders) let SigLIP read the image at the high size too; without them the base's image tokens are kept.
    """
    from .hunyuan_video_15 import defaults as defaults_15, super_resolution, upsampler as upsampler_module

    families.check_match([
        ("the conditioning (its text encoders and VAE)", cond, ("text_encoders", "vae")),
        ("the VAE", vae, ("vae",)),
        ("the text encoders", encoders, ("text_encoders",)),
    ])
    if cond.family != families.HUNYUAN_VIDEO_15:
        raise UserInputError("Super-resolution belongs to HunyuanVideo-1.5; this conditioning is the 13 B model's. "
                             "Use the 1.5 files (hunyuanvideo1.5_*_i2v_*) for the base video.")
    if not isinstance(latent, dict) or "samples" not in latent:
        raise UserInputError("latent must be the LATENT of the base HunyuanVideo I2V Sample node.")
    info = latent.get(LATENT_INFO_KEY, {}) or {}
    samples = latent["samples"]
    super_resolution.check_base_latent(samples, info.get("family"), vae.latent_channels)
    upsampler_module.check_target(upsampler, resolution)
    noise = defaults_15.SR_NOISE_AUGMENTATION if noise_augmentation is None else noise_augmentation
    device = device or torch.device("cpu")
    offload_device = offload_device or torch.device("cpu")
    modules = [vae.model, upsampler.model] + ([encoders.image_encoder] if encoders is not None else [])
    pil = super_resolution.image_from_tensor(image)

    def upsample(latents, height_, width_):
        return upsampler_module.upsample_latent(latents.to(device), upsampler, height_, width_)

    with _oom_guard("super-resolution"), acceleration.on_device(modules, device, offload_device), \
            interrupt.checkpoints(modules, poll):
        return super_resolution.prepare(
            cond, samples.float() * cond.latent_scale, upsample, vae, pil, resolution, width, height, noise,
            encoders,
        )


@dataclass
class SampleResult:
    latent: dict  # a ComfyUI LATENT: {"samples": unscaled latents, LATENT_INFO_KEY: {...}}
    settings: SamplingSettings  # what was used after the model's defaults were filled in
    notes: list[str] = field(default_factory=list)


def resolve_settings(transformer, requested: SamplingSettings, cond=None) -> tuple[SamplingSettings, list[str]]:
    """The model's defaults for the values the user left at 0, and notes on settings the model ignores; ``cond``
    (when known) is checked against the model (an SR release needs the Super-Resolution node's conditioning)."""
    return families.family(transformer.family).resolve_settings(transformer, requested, cond)


def run_sample(
    transformer,
    cond,
    requested: SamplingSettings,
    cache: str = "off",
    cache_threshold: float = 0.1,
    device: torch.device | None = None,
    offload_device: torch.device | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
    free_memory: int | None = None,
    poll: Callable[[], None] | None = None,
    previews: bool = False,
) -> SampleResult:
    """Sample; ``free_memory`` (bytes free on ``device``, None = unknown) drives the memory plan.

    ``poll`` is called before every transformer block (or, with a worker pool, while the workers run) and may
    raise (Cancel), so a cancel lands inside a step. ``previews`` asks the pool's first worker to send each step's
    estimate (``StepInfo.denoised``).
    """
    families.check_match([
        ("the model", transformer, ("transformer",)),
        ("the conditioning (its text encoders and VAE)", cond, ("text_encoders", "vae")),
    ])
    fam = families.family(transformer.family)
    settings, notes = fam.resolve_settings(transformer, requested, cond)
    check_frames(settings.num_frames)
    acceleration.check_cache(cache, cache_threshold)
    if cache == "first block cache" and (transformer.pool is not None or sequence_parallel.is_enabled(transformer.model)):
        raise UserInputError(
            "The first block cache cannot run on several GPUs: each would decide on its own share of the video "
            "whether to skip a step. Use the 'taylorseer' cache (a fixed schedule) or none."
        )
    if transformer.pool is not None:  # the weights are in worker processes, one per GPU: they sample
        return transformer.pool.sample(transformer, cond, requested, cache, cache_threshold, on_step, poll,
                                       previews)
    device = device or torch.device("cpu")
    notes += plan_sample(transformer, cond, settings.num_frames, device, offload_device, free_memory)
    keep = transformer.offload_mode == "none"
    with _oom_guard("sample"), acceleration.on_device(
        [transformer.model], device, offload_device or torch.device("cpu"), keep=keep
    ), loras.applied(
        transformer.model, transformer.loras, fam.lora_to_diffusers, transformer.compute_dtype
    ), acceleration.step_cache(
        transformer.model, cache, cache_threshold, transformer.family
    ), interrupt.checkpoints([transformer.model], poll):
        latents = fam.sample(transformer, cond, settings, device, on_step)
    latent = {
        "samples": (latents.float() / cond.latent_scale).cpu(),
        LATENT_INFO_KEY: {"family": transformer.family, "drop_frames": fam.frames_to_drop(transformer)},
    }
    return SampleResult(latent, settings, notes)


def plan_sample(transformer, cond, num_frames: int, device, offload_device, free_memory: int | None) -> list[str]:
    """The memory estimate before sampling; with offload mode "auto", pick and apply what fits."""
    if transformer.offload_mode != "auto":
        estimate = planner.sample_estimate(transformer, cond, num_frames)
        text = estimate.describe(free_memory) if free_memory is not None else ""
        tip = planner.advice(estimate, transformer, cond, num_frames, free_memory)
        return [line for line in (text, tip) if line]
    mode, fp8, estimate, why = planner.choose_sampling(transformer, cond, num_frames, free_memory)
    if fp8 and not acceleration.is_fp8_stored(transformer.model):
        acceleration.enable_fp8_storage(transformer.model, transformer.compute_dtype)
    if mode == "block" and not acceleration.has_group_offload(transformer.model) and device.type != "cpu":
        acceleration.enable_block_offload(transformer.model, device, offload_device or torch.device("cpu"))
    # fp8 storage and block offload stay on this loaded model for later runs (neither can be undone in place).
    return [why]


def plan_decode(vae, latent_shape, tiling: bool, tile_size: int | None, free_memory: int | None):
    """(tiling, tile size, notes): tile size 0 means "auto", the largest tile that fits (or none)."""
    if tile_size == 0:
        tiling, tile_size, _, why = planner.choose_tile(vae, latent_shape, free_memory if tiling else None)
        return tiling, tile_size, [why]
    estimate = planner.decode_estimate(vae, latent_shape, tiling, tile_size)
    notes = [estimate.describe(free_memory)] if free_memory is not None else []
    tip = planner.advice(estimate, free=free_memory)
    return tiling, tile_size, notes + ([tip] if tip else [])


def run_decode(
    vae,
    latent: dict,
    tiling: bool = True,
    tile_size: int | None = None,
    device: torch.device | None = None,
    offload_device: torch.device | None = None,
    free_memory: int | None = None,
    notes: list | None = None,
    poll: Callable[[], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """A LATENT (unscaled [1, C, f, h, w]) -> IMAGE frames [F, H, W, 3] in 0..1.

    ``tile_size`` 0 picks the tile from the memory plan; what was decided is appended to ``notes``. ``poll`` is
    called before every VAE decoder block (of every tile) and may raise (Cancel); ``on_progress(done, total)``
    counts those blocks.
    """
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
    tiling, tile_size, plan_notes = plan_decode(vae, tuple(latents.shape), tiling, tile_size, free_memory)
    if notes is not None:
        notes.extend(plan_notes)
    device = device or torch.device("cpu")
    with _oom_guard("decode"), acceleration.on_device([vae.model], device, offload_device or torch.device("cpu")):
        with vae.tiling(tiling, tile_size):
            per_call = len(interrupt.repeated_blocks([vae.model.decoder]))
            total = per_call * interrupt.decoder_calls(vae.model, latents) if on_progress else 1
        with interrupt.counted([vae.model.decoder], poll, on_progress, total):
            video = vae.decode(latents.float(), tiling, tile_size)
    video = video[:, :, drop:] if drop else video
    frames = (video.float() / 2 + 0.5).clamp(0, 1)
    # ComfyUI's IMAGE is a batch of frames, channels last
    return rearrange(frames, "b c f h w -> (b f) h w c").cpu()
