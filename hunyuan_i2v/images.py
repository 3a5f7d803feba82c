"""The start image: checking ComfyUI IMAGE tensors, resolution buckets, resize and crop."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .errors import UserInputError

# Buckets: the reference picks, for each quality level, the size on a 32 px grid
# with about base_size^2 pixels whose aspect ratio is closest to the image's.
BUCKET_BASE_SIZES = {"720p": 960, "540p": 720, "360p": 480}
BUCKET_GRID = 32
MAX_ASPECT = 4.0
MODEL_GRID = 16  # VAE 8x times patch 2: every size must be a multiple of this


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


def bucket_sizes(base_size: int) -> list[tuple[int, int]]:
    """All (width, height) on the bucket grid with about base_size^2 pixels."""
    patches = round((base_size / BUCKET_GRID) ** 2)
    sizes = []
    for h in range(1, patches + 1):
        w = patches // h
        if w and max(w, h) / min(w, h) <= MAX_ASPECT:
            sizes.append((w * BUCKET_GRID, h * BUCKET_GRID))
    return sizes


def choose_bucket(width: int, height: int, bucket: str) -> tuple[int, int]:
    if bucket not in BUCKET_BASE_SIZES:
        raise UserInputError(f"Unknown resolution bucket '{bucket}'. Use one of {', '.join(BUCKET_BASE_SIZES)}.")
    ratio = width / height
    return min(bucket_sizes(BUCKET_BASE_SIZES[bucket]), key=lambda s: abs(np.log(s[0] / s[1]) - np.log(ratio)))


def check_size(width: int, height: int) -> None:
    for name, value in (("width", width), ("height", height)):
        if value <= 0 or value % MODEL_GRID:
            lower = max(MODEL_GRID, value // MODEL_GRID * MODEL_GRID)
            raise UserInputError(
                f"{name} {value} is not a multiple of {MODEL_GRID} (the model's grid). Use {lower} or "
                f"{lower + MODEL_GRID}, or pick a resolution bucket to size the video from the image."
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


def prepare_start_image(
    image: torch.Tensor, bucket: str = "720p", width: int = 0, height: int = 0
) -> StartImage:
    """Resize to cover the target size and crop the centre.

    width and height of 0 choose the size from the bucket and the image's
    aspect ratio; otherwise both must be on the model's 16 px grid.
    """
    array = to_rgb_array(image)
    src_h, src_w = array.shape[:2]
    if width or height:
        if not (width and height):
            raise UserInputError("Give both width and height, or set both to 0 to use the resolution bucket.")
        check_size(width, height)
    else:
        width, height = choose_bucket(src_w, src_h, bucket)
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
