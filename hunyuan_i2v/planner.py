"""Know before you run: the GPU memory each stage will need, and the settings that make it fit.

Weights are counted from the loaded tensors (their storage dtype, so fp8
storage is already in); activations come from the token count and the model's
shapes, per family (``<family>/memory.py`` says where each term comes from).
The estimate is what PyTorch allocates; the CUDA context and the allocator's
cache come on top, so a plan keeps ``HEADROOM`` of the free memory spare.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module

import torch

from .shared import acceleration, sequence_parallel

HEADROOM = 0.9  # plan to use at most 90 % of the free memory
GIB = 2**30
# Tile edges the automatic decode setting tries, largest (fastest) first.
TILE_SIZES = (512, 384, 256, 192, 128, 96, 64)


def _memory(family: str):
    return import_module(f".{family}.memory", __package__)


def gib(n: int) -> str:
    return f"{n / GIB:.2f} GB" if n < GIB else f"{n / GIB:.1f} GB"


@dataclass
class Estimate:
    stage: str
    weights: int  # bytes of weights on the GPU during the stage
    activations: int  # peak bytes of everything the stage computes
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.weights + self.activations

    def fits(self, free: int | None) -> bool:
        return free is None or self.total <= HEADROOM * free

    def describe(self, free: int | None) -> str:
        line = f"{self.stage}: about {gib(self.total)} ({gib(self.weights)} weights + {gib(self.activations)} working)"
        if free is not None:
            line += f" of {gib(free)} free" + ("" if self.fits(free) else " - does not fit")
        return "\n".join([line] + self.notes)


# ---------------------------------------------------------------- weights

def weight_bytes(modules) -> int:
    return sum(t.numel() * t.element_size() for m in modules for t in list(m.parameters()) + list(m.buffers()))


def _castable(model: torch.nn.Module):
    """Parameters diffusers' layerwise casting would store in fp8 (its skip patterns: embedders and norms)."""
    import re

    skip = tuple(getattr(model, "_skip_layerwise_casting_patterns", None) or ()) + ("norm",)
    for name, module in model.named_modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv3d, torch.nn.Conv2d)) and not any(
            re.search(pattern, name) for pattern in skip
        ):
            yield from module.parameters(recurse=False)


def transformer_weights_on_gpu(transformer, offload_mode: str, fp8: bool) -> int:
    """Weight bytes on the GPU while sampling, for an offload mode and fp8 storage (whether or not applied yet)."""
    model = transformer.model
    total = weight_bytes([model])
    if fp8:
        # Layers already in fp8 count as stored; the others would shrink to one byte a value.
        total -= sum(p.numel() * (p.element_size() - 1) for p in _castable(model) if p.element_size() > 1)
    if offload_mode != "block":
        return total
    # Block offload keeps the current block and the next one (streamed ahead) on the GPU, plus what is
    # outside the blocks (embedders, final layer).
    blocks = [b for name in ("transformer_blocks", "single_transformer_blocks") for b in getattr(model, name, [])]
    sizes = sorted((weight_bytes([b]) for b in blocks), reverse=True)
    if fp8 and sizes:
        scale = total / max(1, weight_bytes([model]))
        sizes = [int(s * scale) for s in sizes]
    outside = total - sum(sizes)
    return outside + sum(sizes[:2])


# ---------------------------------------------------------------- stages

def _tokens(transformer, cond, num_frames: int) -> tuple[int, int]:
    config = transformer.model.config
    ratio_t = getattr(cond, "temporal_ratio", 4)
    ratio_s = getattr(cond, "spatial_ratio", 8)
    frames = (num_frames - 1) // ratio_t + 1
    image = (frames // config.patch_size_t) * (cond.height // ratio_s // config.patch_size) * (
        cond.width // ratio_s // config.patch_size)
    # Split over several GPUs, each holds its share of the image tokens (and all of the text).
    image = -(-image // sequence_parallel.degree(transformer.model))
    if hasattr(cond.positive, "text"):  # 1.5: the Qwen tokens (glyph and image tokens are the family's to add)
        text = cond.positive.text.shape[1]
    else:  # 13 B: the MLLM's image tokens (subsampled per release, as the sampler does) and text tokens
        from .hunyuan_video_13b.sampling import IMAGE_EMBED_INTERLEAVE

        every = IMAGE_EMBED_INTERLEAVE.get(transformer.variant, 1)
        text = -(-cond.positive.image_tokens.shape[1] // every) + cond.positive.text_tokens.shape[1]
    return image, text


def sample_estimate(transformer, cond, num_frames: int, offload_mode: str | None = None,
                    fp8: bool | None = None, attention: str = "") -> Estimate:
    offload_mode = offload_mode or transformer.offload_mode
    fp8 = acceleration.is_fp8_stored(transformer.model) if fp8 is None else fp8
    element = torch.tensor([], dtype=transformer.compute_dtype).element_size()
    image, text = _tokens(transformer, cond, num_frames)
    memory = _memory(transformer.family)
    working = memory.transformer_step_bytes(transformer.model.config, image, text, element)
    notes = []
    if attention == "_native_math":
        working += memory.attention_scores_bytes(transformer.model.config, image, text, element)
        notes.append("The math attention kernel holds every attention score: a fused kernel needs far less.")
    # Latents, the image condition and the noise prediction stay in float32 beside the model.
    latent = 4 * transformer.latent_channels * image * 4
    if getattr(transformer, "super_resolution", False):
        # The SR release's extra channels, held twice (before and after the low-resolution half is zeroed), and
        # the 98-channel model input.
        extra = transformer.model.config.in_channels - transformer.latent_channels
        latent += 4 * image * 2 * extra + element * image * transformer.model.config.in_channels
    return Estimate("sample", transformer_weights_on_gpu(transformer, offload_mode, fp8), working + latent, notes)


def decode_estimate(vae, latent_shape, tiling: bool, tile_size: int | None) -> Estimate:
    _, _, frames, height, width = latent_shape
    out_frames = (frames - 1) * vae.temporal_ratio + 1
    out_h, out_w = height * vae.spatial_ratio, width * vae.spatial_ratio
    tile = tile_size or 256
    tile_h, tile_w = (min(tile, out_h), min(tile, out_w)) if tiling else (out_h, out_w)
    channels = vae.model.config.block_out_channels[0]
    element = torch.tensor([], dtype=vae.dtype).element_size()
    per_value = _memory(vae.family).DECODE_ACTIVATIONS_PER_VALUE
    working = per_value * channels * out_frames * tile_h * tile_w * element
    # The decoded video and, when tiled, the decoded tiles before they are blended: about 1.3 videos.
    video = 3 * out_frames * out_h * out_w * element
    return Estimate("decode", weight_bytes([vae.model]), int(working + 1.3 * video))


def super_resolution_estimate(vae, upsampler, encoders, latent_shape, width: int, height: int) -> Estimate:
    """The Super-Resolution node's stage: the latent upsampler over the video at the high size (float32), and the
    VAE encoding the start image there (and SigLIP, when the text encoders are wired)."""
    _, channels, frames, _, _ = latent_shape
    latent_h, latent_w = height // vae.spatial_ratio, width // vae.spatial_ratio
    volume = frames * latent_h * latent_w
    padded = (frames + 2) * (latent_h + 2) * (latent_w + 2)  # each causal convolution's padded input copy
    memory = _memory(vae.family)
    widest = max(p.shape[0] for p in upsampler.model.parameters() if p.ndim == 5)
    # The upsampler's widest activations in float32: a padded copy and the block's live outputs, plus the
    # resized input, its result and the caller's copy.
    per_value = memory.UPSAMPLER_ACTIVATIONS_PER_VALUE[upsampler.kind]
    upsample = 4 * (widest * (per_value * volume + padded) + 3 * channels * volume)
    # One frame through the VAE's encoder: its first blocks at full resolution dominate.
    element = torch.tensor([], dtype=vae.dtype).element_size()
    encode = memory.ENCODE_ACTIVATIONS_PER_VALUE * vae.model.config.block_out_channels[0] * height * width * element
    modules = [vae.model, upsampler.model] + ([encoders.image_encoder] if encoders is not None else [])
    return Estimate("super-resolution", weight_bytes(modules), int(max(upsample, encode)))


def encode_estimate(encoders, vae) -> Estimate:
    on_gpu = [vae.model] + ([] if encoders.run_on_cpu else encoders.modules())
    large = encoders.large_module.config
    # A few hidden-size and MLP-width copies over the ~1.1 k prompt tokens: small beside the weights.
    tokens = 1200
    hidden = getattr(large, "hidden_size", None) or getattr(getattr(large, "text_config", None), "hidden_size", 4096)
    working = tokens * hidden * 4 * 12
    return Estimate("encode", weight_bytes(on_gpu), working)


# ---------------------------------------------------------------- choices

# Time the memory-saving options add per denoising step (upper bounds: diffusers' stream prefetch
# hides much of the transfer behind compute). Block offload moves every weight over the bus once per
# transformer pass; fp8 storage upcasts each layer's weights before it runs, a pass over GPU memory.
HOST_TO_GPU_BYTES_PER_S = 25e9  # PCIe 4.0 x16 in practice
GPU_MEMORY_BYTES_PER_S = 1e12  # a current consumer GPU's memory bandwidth, order of magnitude


def extra_seconds_per_pass(transformer, offload_mode: str, fp8: bool) -> float:
    stored = transformer_weights_on_gpu(transformer, "model", fp8)
    seconds = 0.0
    if offload_mode == "block":
        seconds += stored / HOST_TO_GPU_BYTES_PER_S
    if fp8:
        seconds += 3 * stored / GPU_MEMORY_BYTES_PER_S  # read fp8, write and read the upcast copy
    return seconds


SAMPLING_PRESETS = (  # fastest first: (offload mode, fp8 storage, why it is slower)
    ("model", False, "the whole model on the GPU"),
    ("model", True, "fp8 storage (weights upcast per layer: a little slower)"),
    ("block", False, "block offload (blocks streamed to the GPU: slower)"),
    ("block", True, "block offload with fp8 storage (least memory, slowest)"),
)


def choose_sampling(transformer, cond, num_frames: int, free: int | None) -> tuple[str, bool, Estimate, str]:
    """The fastest (offload mode, fp8) whose estimate fits ``free``; with why."""
    stored_fp8 = acceleration.is_fp8_stored(transformer.model)
    tried = []
    for mode, fp8, what in SAMPLING_PRESETS:
        if stored_fp8 and not fp8:
            continue  # weights already in fp8 cannot be made wider again
        estimate = sample_estimate(transformer, cond, num_frames, mode, fp8)
        if estimate.fits(free):
            cost = extra_seconds_per_pass(transformer, mode, fp8)
            what += f", at most {cost:.1f} s more per transformer pass" if cost >= 0.05 else ""
            why = f"auto picked {what}: needs about {gib(estimate.total)}" + (
                f" of {gib(free)} free" if free is not None else "") + (
                f" (faster settings need {', '.join(tried)})" if tried else "")
            return mode, fp8, estimate, why
        tried.append(gib(estimate.total))
    return mode, fp8, estimate, (
        f"auto: even block offload with fp8 storage needs about {gib(estimate.total)} of {gib(free)} free; "
        "lower the resolution or the frames"
    )


def choose_tile(vae, latent_shape, free: int | None) -> tuple[bool, int | None, Estimate, str]:
    """No tiling if it fits, else the largest tile that does."""
    whole = decode_estimate(vae, latent_shape, False, None)
    if whole.fits(free):
        return False, None, whole, f"auto: decoding in one piece needs about {gib(whole.total)}"
    for tile in TILE_SIZES:
        estimate = decode_estimate(vae, latent_shape, True, tile)
        if estimate.fits(free):
            return True, tile, estimate, f"auto: {tile} px tiles need about {gib(estimate.total)} of {gib(free)} free"
    return True, TILE_SIZES[-1], estimate, (
        f"auto: even {TILE_SIZES[-1]} px tiles need about {gib(estimate.total)} of {gib(free)} free")


def advice(estimate: Estimate, transformer=None, cond=None, num_frames: int = 0, free: int | None = None) -> str:
    """The setting that would make a stage fit, named before any work is done."""
    if estimate.fits(free):
        return ""
    if estimate.stage == "sample" and transformer is not None:
        mode, fp8, fitting, _ = choose_sampling(transformer, cond, num_frames, free)
        if fitting.fits(free):
            return (f"To fit, load the transformer with offload_mode '{mode}'" + (" and fp8_storage on" if fp8 else "")
                    + " (or offload_mode 'auto').")
        if getattr(cond, "low_res", None) is not None:  # the super-resolution stage: its size and frames come from before
            return ("It does not fit with any offload setting: lower the base video's frames, or upscale to a smaller "
                    "size (720p instead of 1080p, or a smaller width and height on the Super-Resolution node).")
        return "It does not fit with any offload setting: lower the resolution or the frames."
    if estimate.stage == "decode":
        return "To fit, turn tiling on and lower the tile size (or set it to 'auto')."
    return "To fit, load the text encoders with device 'cpu' or fp8_storage on."
