"""The start image: checking ComfyUI IMAGE tensors, resolution buckets, resize and crop.

Which buckets a model has, and on which grid, is the family's to say (its
``defaults`` module); this module does the arithmetic and the pixels.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..errors import UserInputError


class _TorchvisionFallbackNotice(logging.Filter):
    """Drops transformers' notice that an image processor falls back to its PIL twin without torchvision.

    The pack uses the PIL processors on purpose (no torchvision needed), but diffusers' HunyuanVideo-1.5
    pipeline module imports ``SiglipImageProcessor`` by name, so the notice would print on every run and
    suggest installing a package nobody needs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("requires torchvision" in message and "falling back to" in message)


def _quiet_torchvision_fallback_notice() -> None:
    logger = logging.getLogger("transformers.utils.import_utils")  # where transformers emits it
    if not any(type(f).__name__ == _TorchvisionFallbackNotice.__name__ for f in logger.filters):
        logger.addFilter(_TorchvisionFallbackNotice())


_quiet_torchvision_fallback_notice()

# Buckets: the references pick, for each quality level, the size on a grid
# with about base_size^2 pixels whose aspect ratio is closest to the image's.
MAX_ASPECT = 4.0
MAX_SIDE = 4096  # what the nodes offer; larger videos do not fit any GPU
SMALL_IMAGE_FACTOR = 4  # warn when the video is this many times wider or taller than the image


@dataclass
class StartImage:
    pil: Image.Image  # RGB, already at the video size
    tensor: torch.Tensor  # [1, H, W, 3] in 0..1

    @property
    def width(self) -> int:
        return self.pil.width

    @property
    def height(self) -> int:
        return self.pil.height

    def pixels_signed(self) -> torch.Tensor:
        """[1, 3, H, W] in -1..1, as the VAE takes it."""
        return self.tensor.permute(0, 3, 1, 2) * 2.0 - 1.0


def bucket_sizes(base_size: int, grid: int) -> list[tuple[int, int]]:
    """All (width, height) on ``grid`` with about base_size^2 pixels."""
    patches = round((base_size / grid) ** 2)
    sizes = []
    for h in range(1, patches + 1):
        w = patches // h
        if w and max(w, h) / min(w, h) <= MAX_ASPECT:
            sizes.append((w * grid, h * grid))
    return sizes


def choose_bucket(width: int, height: int, base_size: int, grid: int) -> tuple[int, int]:
    ratio = width / height
    return min(bucket_sizes(base_size, grid), key=lambda s: abs(np.log(s[0] / s[1]) - np.log(ratio)))


def check_size(width: int, height: int, grid: int) -> None:
    for name, value in (("width", width), ("height", height)):
        if value <= 0:
            raise UserInputError(
                f"{name} {value} must be positive: a multiple of {grid} up to {MAX_SIDE}, or 0 with the other also "
                "0 to size the video from the image."
            )
        if value > MAX_SIDE:
            raise UserInputError(f"{name} {value} is larger than {MAX_SIDE}, more than any GPU can generate.")
        if value % grid:
            lower = max(grid, value // grid * grid)
            raise UserInputError(
                f"{name} {value} is not a multiple of {grid} (the model's grid). Use {lower} or "
                f"{lower + grid}, or pick a resolution bucket to size the video from the image."
            )


def to_rgb_array(image: torch.Tensor) -> np.ndarray:
    """One ComfyUI IMAGE ([1, H, W, C] in 0..1) as uint8 RGB, alpha and gray handled."""
    if not isinstance(image, torch.Tensor) or image.ndim not in (3, 4):
        raise UserInputError("The start image must be a ComfyUI IMAGE ([batch, height, width, channels]).")
    if image.ndim == 3:
        image = image.unsqueeze(0)
    if image.shape[0] != 1:
        raise UserInputError(
            f"The start image is a batch of {image.shape[0]} images; one video starts from one image. "
            "Pick one with an 'ImageFromBatch' node (batch_index, length 1) before this node."
        )
    channels = image.shape[-1]
    array = image[0].detach().float().cpu().clamp(0, 1).numpy()
    if channels == 1:  # grayscale: the model was trained on RGB
        array = np.repeat(array, 3, axis=-1)
    elif channels == 4:  # alpha: composite on white so transparent areas do not turn black
        rgb, alpha = array[..., :3], array[..., 3:]
        array = rgb * alpha + (1.0 - alpha)
    elif channels != 3:
        raise UserInputError(
            f"The start image has {channels} channels; expected RGB (3), RGBA (4) or grayscale (1)."
        )
    return (array * 255.0).round().astype(np.uint8)


def target_size(image: torch.Tensor, width: int, height: int, grid: int, from_image) -> tuple[int, int]:
    """The video size: explicit (both on ``grid``), or ``from_image(src_w, src_h)`` when both are 0."""
    array_shape = to_rgb_array(image).shape
    src_h, src_w = array_shape[:2]
    if width or height:
        if not (width and height):
            raise UserInputError("Give both width and height, or set both to 0 to use the resolution bucket.")
        check_size(width, height, grid)
        return width, height
    return from_image(src_w, src_h)


def small_image_warning(image: torch.Tensor, width: int, height: int) -> str | None:
    src_h, src_w = to_rgb_array(image).shape[:2]
    if width >= SMALL_IMAGE_FACTOR * src_w or height >= SMALL_IMAGE_FACTOR * src_h:
        return (
            f"Note: the start image is {src_w}x{src_h} and the video {width}x{height}; upscaled that much it will "
            "look blurred. Use a larger start image or a smaller resolution."
        )
    return None


def prepare_start_image(image: torch.Tensor, width: int, height: int) -> StartImage:
    """Resize to cover ``width`` x ``height`` and crop the centre (the 13 B reference's way)."""
    array = to_rgb_array(image)
    src_h, src_w = array.shape[:2]
    pil = Image.fromarray(array)
    if (src_w, src_h) != (width, height):
        scale = max(width / src_w, height / src_h)
        new_w, new_h = max(width, round(src_w * scale)), max(height, round(src_h * scale))
        pil = pil.resize((new_w, new_h), Image.Resampling.LANCZOS)
        left, top = (new_w - width) // 2, (new_h - height) // 2
        pil = pil.crop((left, top, left + width, top + height))
    tensor = torch.from_numpy(np.asarray(pil).astype(np.float32) / 255.0).unsqueeze(0)
    return StartImage(pil, tensor)


def black_image_like(pil: Image.Image) -> Image.Image:
    return Image.new("RGB", pil.size, 0)


def load_image_file(path) -> torch.Tensor:
    """An image file as a ComfyUI IMAGE [1, H, W, C] in 0..1 (RGB, or RGBA when it has transparency).

    Decodes the whole image, so a damaged file is found here rather than after
    the models have loaded. Camera photos are turned upright as their EXIF tag
    says, as ComfyUI's Load Image does.
    """
    from pathlib import Path

    from PIL import ImageOps, UnidentifiedImageError

    path = Path(path).expanduser()
    if not path.exists():
        raise UserInputError(f"Start image '{path}' does not exist. Check the name and the folder.")
    if path.is_dir():
        raise UserInputError(f"Start image '{path}' is a folder; give an image file (PNG, JPEG, WebP, ...).")
    try:
        with Image.open(path) as pil:
            pil.load()
            pil = ImageOps.exif_transpose(pil)
    except UnidentifiedImageError:
        raise UserInputError(
            f"Start image '{path}' is not an image file this pack can read; use a PNG, JPEG or WebP."
        ) from None
    except (OSError, ValueError) as exc:
        raise UserInputError(f"Start image '{path}' could not be decoded ({exc}); the file is damaged.") from None
    has_alpha = pil.mode in ("RGBA", "LA", "PA") or (pil.mode == "P" and "transparency" in pil.info)
    array = np.asarray(pil.convert("RGBA" if has_alpha else "RGB")).astype(np.float32) / 255.0
    return torch.from_numpy(array).unsqueeze(0)


def demo_image(size: int = 96) -> torch.Tensor:
    """A colour gradient to start a demo video from, when no image is given."""
    gradient = np.linspace(0, 1, size, dtype=np.float32)
    array = np.stack(np.broadcast_arrays(gradient[None, :], gradient[:, None], np.full((size, size), 0.5)), -1)
    return torch.from_numpy(array.astype(np.float32)).unsqueeze(0)
