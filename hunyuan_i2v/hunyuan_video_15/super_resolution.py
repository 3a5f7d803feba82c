"""HunyuanVideo-1.5's super-resolution (SR) stage: a 480p or 720p video latent re-sampled at 720p or 1080p.

Follows Tencent's ``HunyuanVideo_1_5_SR_Pipeline``:
- the output size is the high-resolution bucket whose aspect ratio is closest to the base video's (Tencent's
  bucket lists: 848x480 -> 1280x720, 1280x720 -> 1904x1072);
- the base latent (VAE-scaled) is resized bilinearly per frame to the high latent size and refined by the latent
  upsampler in float32;
- the SR transformer reads [noisy latent | start image's latent at the high size on frame 0 | mask | upsampled
  latent with noise mixed in | ones] (98 channels), the same prompt's Qwen and ByT5 states, and SigLIP tokens of
  the start image cropped at the high size; no CFG;
- the upsampled latent gets ``(1 - a) * latent + a * noise`` (a = 0.7), and once the timestep falls below
  ``1000 * a`` its channels and the ones channel are zeroed (the image channels stay).

Where ComfyUI's own SR support (0.8.0) differs, the pack follows Tencent: ComfyUI feeds unscaled latents to the
upsampler and the conditioning, puts the frame-0 mask in the first low-resolution channel instead of the mask channel,
mixes ``a * noise + min(1 - a, 0.75) * latent`` (the same as Tencent's for a >= 0.25), draws that noise from the seed
minus 10, and samples its second half with plain text conditioning (no image channels, no vision tokens)
(tests/test_super_resolution_comfyui.py asserts each).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image

from ..errors import UserInputError
from ..shared import images
from ..shared.sampling import SamplingSettings, check_frames
from . import conditioning, defaults
from .conditioning import I2VConditioning
from .sampling import denoise, first_frame_condition


@dataclass
class SRConditioning(I2VConditioning):
    """What the Super-Resolution node hands the sampler: the base conditioning's prompt states, the start image
    at the high size, and the upsampled base latent."""

    low_res: torch.Tensor | None = None  # [1, C, f, H/16, W/16] upsampled base latent, VAE-scaled, no noise yet
    noise_augmentation: float = defaults.SR_NOISE_AUGMENTATION
    resolution: str | None = None  # the SR release the size was picked for: 720p or 1080p
    base_width: int = 0
    base_height: int = 0

    @property
    def num_frames(self) -> int:
        return (self.low_res.shape[2] - 1) * self.temporal_ratio + 1


def bucket_sizes(base_size: int, stride: int = 16, max_ratio: float = 4.0) -> list[tuple[int, int]]:
    """Tencent's (width, height) buckets of about ``base_size``^2 pixels on a ``stride`` grid, widest first.

    Written here because no library has them: for each width in patches, from the widest down, the heights that keep
    width x height within the patch budget, as Tencent's data_utils walks them.
    """
    budget = round((base_size / stride) ** 2)
    sizes, wide, high = [], budget, 1
    while wide > 0:
        if max(wide, high) / min(wide, high) <= max_ratio:
            sizes.append((wide * stride, high * stride))
        if (high + 1) * wide <= budget:
            high += 1
        else:
            wide -= 1
    return sizes


def target_size(base_width: int, base_height: int, resolution: str, width: int = 0, height: int = 0) -> tuple[int, int]:
    """(width, height) of the SR video: given, or Tencent's high-resolution bucket closest in aspect to the base."""
    if resolution not in defaults.SR_RESOLUTIONS:
        raise UserInputError(f"The super-resolution releases are 720p and 1080p; '{resolution}' is neither.")
    if width or height:
        if not (width and height):
            raise UserInputError("Give both width and height for the super-resolution size, or neither (0 = from "
                                 "the resolution).")
        for name, value in (("width", width), ("height", height)):
            if value % defaults.MODEL_GRID:
                raise UserInputError(f"The super-resolution {name} must be a multiple of {defaults.MODEL_GRID}, got "
                                     f"{value}.")
        chosen = (width, height)
    else:
        ratio = base_width / base_height
        buckets = bucket_sizes(defaults.SR_RESOLUTIONS[resolution], defaults.MODEL_GRID)
        chosen = min(buckets, key=lambda size: abs(size[0] / size[1] - ratio))  # first of equals, as numpy's argmin
    if chosen[0] < base_width or chosen[1] < base_height or chosen == (base_width, base_height):
        raise UserInputError(
            f"The super-resolution size {chosen[0]}x{chosen[1]} is not larger than the base video "
            f"({base_width}x{base_height}). Upscale a 480p video to 720p or a 720p video to 1080p, or give a larger "
            "width and height."
        )
    return chosen


def check_pairing(resolution: str, base_width: int, base_height: int) -> str | None:
    """A note when the base size is not the release the SR step was trained after (480p -> 720p, 720p -> 1080p)."""
    base = defaults.SR_BASE[resolution]
    expected = {(w, h) for w, h in bucket_sizes(defaults.RESOLUTIONS[base], defaults.MODEL_GRID)}
    if (base_width, base_height) in expected:
        return None
    return (f"The {resolution} super-resolution release follows a {base} base video; this one is "
            f"{base_width}x{base_height}, off the {base} sizes, so results may be softer.")


def prepare(
    cond: I2VConditioning,
    base_latent: torch.Tensor,
    upsample,
    vae,
    image: Image.Image,
    resolution: str,
    width: int = 0,
    height: int = 0,
    noise_augmentation: float = defaults.SR_NOISE_AUGMENTATION,
    encoders=None,
) -> SRConditioning:
    """The SR conditioning from the base stage's conditioning and latent (VAE-scaled [1, C, f, h, w]).

    ``upsample(latent, height, width)``: resize the latent to the video size (height, width) in pixels and refine it
    (the latent upsampler).
    ``encoders``: when given, SigLIP reads the start image cropped at the high size, as Tencent's SR pipeline does;
    otherwise the base stage's image tokens are kept (the same image, cropped at the base size).
    """
    if not 0.0 <= noise_augmentation <= 1.0:
        raise UserInputError(f"noise_augmentation must be between 0 and 1, got {noise_augmentation}.")
    if isinstance(cond, SRConditioning):
        raise UserInputError("This conditioning is already a super-resolution one: connect the Encode node's "
                             "conditioning and the base Sample node's latent.")
    base_height = base_latent.shape[-2] * cond.spatial_ratio
    base_width = base_latent.shape[-1] * cond.spatial_ratio
    width, height = target_size(base_width, base_height, resolution, width, height)
    notes = [f"Super-resolution: {base_width}x{base_height} -> {width}x{height} ({resolution} release)."]
    pairing = check_pairing(resolution, base_width, base_height)
    if pairing:
        notes.append(pairing)
    processor = conditioning.image_processor(cond.spatial_ratio)
    start = cover_and_crop(image, width, height)
    image_latent = vae.encode_image(processor.preprocess(start, height=height, width=width))
    image_embeds = cond.image_embeds
    if encoders is not None:
        # Tencent crops SigLIP's view to the high-resolution bucket closest to the image's own aspect (the
        # video's bucket follows the base video's aspect instead; they differ only for images between buckets).
        buckets = bucket_sizes(defaults.SR_RESOLUTIONS[resolution], defaults.MODEL_GRID)
        aspect = image.height / image.width
        view_w, view_h = min(buckets, key=lambda size: abs(round(size[1] / size[0], 5) - aspect))
        view = cover_and_crop(image, view_w, view_h)
        image_embeds = conditioning.vision_states(encoders, view)
    else:
        notes.append("SigLIP tokens: the base stage's (Tencent's SR pipeline reads the image cropped at the high size).")
    low_res = upsample(base_latent.float(), height, width)
    return SRConditioning(
        cond.positive, cond.negative, image_embeds, image_latent, width, height,
        torch.from_numpy(processor.pil_to_numpy(start)).float(), cond.latent_scale, cond.spatial_ratio,
        cond.temporal_ratio, notes=cond.notes + notes, low_res=low_res.float().cpu(),
        noise_augmentation=float(noise_augmentation), resolution=resolution, base_width=base_width,
        base_height=base_height,
    )


def cover_and_crop(image: Image.Image, width: int, height: int) -> Image.Image:
    """Tencent's SR resize: LANCZOS to cover ``width`` x ``height`` (sizes rounded to nearest), then the centre crop
    (offsets rounded as torchvision's CenterCrop). Written here because diffusers' crop rounds down and offsets by
    halves of each size, a pixel off Tencent's at 1280x720 -> 1904x1072."""
    if image.size == (width, height):
        return image.convert("RGB")
    scale = max(width / image.width, height / image.height)
    covered = (int(round(image.width * scale)), int(round(image.height * scale)))
    resized = image.convert("RGB").resize(covered, Image.LANCZOS)
    left, top = int(round((covered[0] - width) / 2)), int(round((covered[1] - height) / 2))
    return resized.crop((left, top, left + width, top + height))


def augmentation_noise(shape: tuple, seed: int) -> torch.Tensor:
    """The noise mixed into the upsampled latent: the sampler's seed, its second draw (the first is the starting
    noise), on the CPU so a seed gives the same video on any GPU. Tencent draws it from the global RNG instead."""
    generator = torch.Generator("cpu").manual_seed(seed)
    torch.randn(shape, generator=generator)  # the starting noise's draw
    return torch.randn(shape, generator=generator)


def condition_channels(cond: SRConditioning, first_frame: torch.Tensor, seed: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(early, late) channels beside the noisy latent: [image latent, mask, noised upsampled latent, ones], and the
    same with the upsampled latent and the ones zeroed, for timesteps below 1000 x noise_augmentation."""
    low_res = cond.low_res.to(device, torch.float32)
    a = cond.noise_augmentation
    noised = (1 - a) * low_res + a * augmentation_noise(tuple(low_res.shape), seed).to(device)
    ones = torch.ones((1, 1, *low_res.shape[2:]), device=device)
    early = torch.cat([first_frame, noised, ones], dim=1)
    late = torch.cat([first_frame, torch.zeros_like(noised), torch.zeros_like(ones)], dim=1)
    return early, late


def sample(transformer, cond: SRConditioning, settings: SamplingSettings, device, on_step=None) -> torch.Tensor:
    """Denoise at the high size and return latents [1, C, f, H/16, W/16] (float32, VAE-scaled)."""
    check_frames(settings.num_frames, cond.temporal_ratio)
    device = torch.device(device)
    shape = tuple(cond.low_res.shape)
    first_frame = first_frame_condition(transformer, cond, shape, device)
    early, late = condition_channels(cond, first_frame, settings.seed, device)
    threshold = 1000.0 * cond.noise_augmentation
    return denoise(transformer, cond, settings, shape, device, lambda t: early if t >= threshold else late, on_step)


def check_model(transformer, cond) -> None:
    """An SR transformer needs the Super-Resolution node's conditioning, and an I2V transformer the Encode node's."""
    is_sr_cond = isinstance(cond, SRConditioning)
    if transformer.super_resolution and not is_sr_cond:
        raise UserInputError(
            f"{transformer.source} is a super-resolution release: feed its Sample node the conditioning of the "
            "Super-Resolution node (Encode -> Sample -> Super-Resolution -> Sample), or load an "
            "hunyuanvideo1.5_*_i2v_* file for the base video."
        )
    if is_sr_cond and not transformer.super_resolution:
        raise UserInputError(
            f"This conditioning comes from the Super-Resolution node, but {transformer.source} is an image-to-video "
            f"release. Load the SR transformer for it: {defaults.SR_FILES['transformer']}."
        )
    if is_sr_cond and transformer.resolution and cond.resolution and transformer.resolution != cond.resolution:
        raise UserInputError(
            f"The Super-Resolution node targets {cond.resolution}, but {transformer.source} is the "
            f"{transformer.resolution} super-resolution release. Set the node's resolution to {transformer.resolution} "
            f"or load the {cond.resolution} SR file."
        )


def check_base_latent(latent: torch.Tensor, family: str | None, channels: int) -> None:
    if family and family != defaults.NAME:
        raise UserInputError(
            "This latent was made by the 13 B HunyuanVideo-I2V model; super-resolution belongs to HunyuanVideo-1.5. "
            "Connect the LATENT of a HunyuanVideo-1.5 Sample node."
        )
    if latent.ndim != 5 or latent.shape[0] != 1:
        raise UserInputError(f"Expected one video latent [1, channels, frames, height, width], got shape "
                             f"{tuple(latent.shape)}. Connect the base Sample node's LATENT.")
    if latent.shape[1] != channels:
        raise UserInputError(f"The latent has {latent.shape[1]} channels; HunyuanVideo-1.5's VAE makes {channels}. "
                             "Connect the LATENT of a HunyuanVideo-1.5 Sample node.")


def image_from_tensor(image: torch.Tensor) -> Image.Image:
    return Image.fromarray(images.to_rgb_array(image))
