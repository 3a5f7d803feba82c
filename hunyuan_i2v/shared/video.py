"""Frames <-> MP4 through PyAV."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from ..errors import UserInputError


def write_mp4(frames: torch.Tensor, path: str | os.PathLike, fps: float = 24.0, crf: int = 18) -> Path:
    """Write IMAGE-style frames [F, H, W, C] in 0..1 to an H.264 MP4.

    H.264 with yuv420p needs even sizes; an odd edge is padded by repeating the
    last row/column rather than failing.
    """
    import av

    if frames.ndim != 4 or frames.shape[-1] not in (1, 3, 4):
        raise UserInputError(f"Expected frames shaped [F, H, W, C], got {tuple(frames.shape)}.")
    array = (frames[..., :3].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    pad_h, pad_w = array.shape[1] % 2, array.shape[2] % 2
    if pad_h or pad_w:
        array = np.pad(array, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1000)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = array.shape[2], array.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf)}
        for frame in array:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def read_mp4(path: str | os.PathLike) -> tuple[torch.Tensor, float]:
    """Decode a video file to IMAGE frames [F, H, W, 3] in 0..1 and its frame rate."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 24)
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    except (av.error.FFmpegError, IndexError) as exc:
        raise UserInputError(f"Could not decode video '{path}': {exc}. The file is damaged or not a video.") from exc
    if not frames:
        raise UserInputError(f"Video '{path}' holds no frames; the file is damaged or empty.")
    return torch.from_numpy(np.stack(frames)).float() / 255.0, fps
