"""What the stand-in WaveSpeed knows of tasks: how each ends, what a submit may hold, and the videos it serves."""

from __future__ import annotations

import base64
import binascii
import io
import threading
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
from PIL import Image

MODEL_13B = "wavespeed-ai/hunyuan-video/i2v"
MODEL_15 = "wavespeed-ai/hunyuan-video-1.5/image-to-video"


@dataclass
class Outcome:
    """How a task ends: completed (optionally NSFW), failed with a code, stuck, or held until released."""

    kind: str = "completed"  # completed | failed | stuck | hold
    code: int | None = None
    message: str = ""
    nsfw: bool = False
    processing_s: float | None = None


@dataclass
class Task:
    id: str
    model: str
    payload: dict[str, Any]
    outcome: Outcome
    created: float
    released: threading.Event = field(default_factory=threading.Event)
    done_at: float | None = None       # when the task became completed or failed
    done_seen_at: float | None = None  # when a poll first reported it


def make_mp4(color: tuple[int, int, int] = (128, 128, 128), frames: int = 9, width: int = 64, height: int = 48,
             fps: int = 24) -> bytes:
    """A small real H.264 MP4 whose frames are ``color`` plus a moving bar."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            array = np.empty((height, width, 3), dtype=np.uint8)
            array[:] = color
            array[:, (i * 4) % width: (i * 4) % width + 4] = 255 - np.array(color, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def decode_inline_image(value: str) -> bytes | None:
    """The bytes of a base64 image (a data URI or bare base64), or None when it is not one."""
    data = value.split(",", 1)[1] if value.startswith("data:") and ";base64," in value[:64] else value
    try:
        raw = base64.b64decode(data, validate=True)
        Image.open(io.BytesIO(raw)).verify()
        return raw
    except (binascii.Error, ValueError, OSError):
        return None


# ---------------------------------------------------------------- request schemas

def int_in(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _validate_13b(p: dict[str, Any]) -> str | None:
    if not isinstance(p.get("prompt"), str) or not p["prompt"].strip():
        return "prompt is required"
    if not isinstance(p.get("image"), str) or not p["image"].startswith("http"):
        return "image must be a URL"
    if not int_in(p.get("num_inference_steps"), 2, 30):
        return "num_inference_steps must be 2..30"
    if not int_in(p.get("duration"), 5, 10):
        return "duration must be 5..10"
    if not int_in(p.get("seed"), -1, 9_999_999_999):
        return "seed must be -1..9999999999"
    if p.get("size") not in ("1280*720", "720*1280"):
        return "size must be 1280*720 or 720*1280"
    if not isinstance(p.get("enable_safety_checker"), bool):
        return "enable_safety_checker must be a boolean"
    return None


def _validate_15(p: dict[str, Any]) -> str | None:
    image = p.get("image")
    if not isinstance(image, str) or not (image.startswith("http") or decode_inline_image(image)):
        return "image must be a URL or base64 image data"
    if not isinstance(p.get("prompt", ""), str):
        return "prompt must be a string"
    if p.get("resolution", "720p") not in ("480p", "720p"):
        return "resolution must be 480p or 720p"
    if p.get("duration", 5) not in (5, 8) or isinstance(p.get("duration"), bool):
        return "duration must be 5 or 8"
    if not int_in(p.get("seed", -1), -1, 2_147_483_647):
        return "seed must be -1..2147483647"
    return None


SCHEMAS = {
    MODEL_13B: ({"prompt", "image", "num_inference_steps", "duration", "seed", "size", "enable_safety_checker"},
                _validate_13b),
    MODEL_15: ({"image", "prompt", "resolution", "duration", "seed"}, _validate_15),
}


def validate_payload(model: str, payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return "body must be a JSON object"
    fields, check = SCHEMAS[model]
    unknown = sorted(set(payload) - fields)
    return f"unknown field(s) for {model}: {', '.join(unknown)}" if unknown else check(payload)
