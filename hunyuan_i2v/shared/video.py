"""Frames <-> MP4 through PyAV."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import UserInputError


FPS_RANGE = (1.0, 120.0)  # what the Decode node offers and the command line accepts

# The same frames must give the same file, on any machine: x264's output depends on its thread count
# (which defaults to the number of cores), and the muxer stamps library versions unless told to be
# bit-exact. One encoder thread costs seconds next to the minutes a video takes to sample.
_ENCODER_THREADS = 1
_BITEXACT = {"fflags": "+bitexact", "flags": "+bitexact"}


def write_mp4(
    frames: torch.Tensor,
    path: str | os.PathLike,
    fps: float = 24.0,
    crf: int = 18,
    on_frame: Callable[[], None] | None = None,
) -> Path:
    """Write IMAGE-style frames [F, H, W, C] in 0..1 to an H.264 MP4 (byte-identical for identical frames).

    H.264 with yuv420p needs even sizes; an odd edge is padded by repeating the
    last row/column rather than failing. ``on_frame`` is called after each frame
    is encoded (progress).
    """
    import av

    if frames.ndim != 4 or frames.shape[-1] not in (1, 3, 4):
        raise UserInputError(f"Expected frames shaped [F, H, W, C], got {tuple(frames.shape)}.")
    if not fps > 0:
        raise UserInputError(f"fps must be above 0, got {fps:g}; both models are trained at 24.")
    array = (frames[..., :3].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    pad_h, pad_w = array.shape[1] % 2, array.shape[2] % 2
    if pad_h or pad_w:
        array = np.pad(array, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1000)
    # The format is named, not guessed from the suffix, so a temporary name ending in .partial works too.
    with av.open(str(path), mode="w", format="mp4", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = array.shape[2], array.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), **_BITEXACT}
        stream.codec_context.thread_count = _ENCODER_THREADS
        for frame in array:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
            if on_frame is not None:
                on_frame()
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
