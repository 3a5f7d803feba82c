"""WaveSpeed jobs: what one video asks for, checked against its endpoint before anything is paid.

A job is one image (PNG bytes or a URL), a prompt and the endpoint's settings.
Its settings are validated against the endpoint's table when the job is made,
so a value the endpoint does not allow never reaches a paid request. The job
also decides how its image travels (inline data, an upload, or a URL), what
the request body holds, and the journal key of its inputs. Running jobs lives
in :mod:`.runner`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import UserInputError
from .endpoints import HUNYUAN_VIDEO_13B, Endpoint, Param
from .journal import job_key

DEFAULT_FILE_PREFIX = "wavespeed/hunyuan_i2v"


@dataclass(frozen=True)
class I2VJob:
    """One video request. Give ``image_png`` (with its pixel digest) or ``image_url``.

    ``settings`` holds the endpoint's parameters by API name; missing ones take
    the endpoint's default, unknown or out-of-range ones are refused here.
    """

    prompt: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    endpoint: Endpoint = HUNYUAN_VIDEO_13B
    image_png: bytes | None = field(default=None, repr=False)
    image_digest: str | None = None   # hash of the pixels; keys the journal
    image_url: str | None = None
    occurrence: int = 0               # the n-th identical job in one batch

    def __post_init__(self) -> None:
        object.__setattr__(self, "settings", self.endpoint.settings(self.settings))
        if self.endpoint.prompt_required and not (self.prompt or "").strip():
            raise UserInputError(f"The prompt is empty, and {self.endpoint.title} needs one: describe what should "
                                 "happen in the video.")
        if (self.image_png is None) == (not self.image_url):
            raise UserInputError("Give exactly one image: connect an IMAGE or fill in image_url.")
        if self.image_url and not re.match(r"^https?://", self.image_url):
            raise UserInputError(f"image_url must start with http:// or https:// (got '{self.image_url[:80]}').")
        if self.image_png is not None and not self.image_digest:
            raise UserInputError("An uploaded image needs its pixel digest (use encode_image()).")

    @property
    def random_seed(self) -> bool:
        return self.endpoint.is_random_seed(self.settings)

    @property
    def price_usd(self) -> float:
        return self.endpoint.price.estimate(self.settings)

    def journal_inputs(self) -> dict[str, Any]:
        return {"model": self.endpoint.model_id, "prompt": self.prompt,
                "image": self.image_url or f"sha256:{self.image_digest}", **self.settings,
                "occurrence": int(self.occurrence)}

    @property
    def key(self) -> str:
        return job_key(self.journal_inputs())

    def image_reference(self) -> str | None:
        """What the request's ``image`` field holds, or None when the image must be uploaded first."""
        if self.image_url:
            return self.image_url
        if self.endpoint.inline_image:
            return "data:image/png;base64," + base64.b64encode(self.image_png).decode("ascii")
        return None

    def payload(self, image: str) -> dict[str, Any]:
        """The request body: only fields this endpoint takes."""
        body: dict[str, Any] = {"image": image, **self.settings}
        if self.prompt or self.endpoint.prompt_required:
            body["prompt"] = self.prompt
        return body


def encode_image(pixels: np.ndarray) -> tuple[bytes, str]:
    """PNG bytes and a pixel digest for an [H, W, C] uint8 image."""
    from PIL import Image

    pixels = np.ascontiguousarray(pixels)
    if pixels.ndim != 3 or pixels.shape[-1] not in (1, 3, 4) or pixels.dtype != np.uint8:
        raise UserInputError(f"Expected an [H, W, C] uint8 image, got {pixels.shape} {pixels.dtype}.")
    digest = hashlib.sha256(repr(pixels.shape).encode() + pixels.tobytes()).hexdigest()
    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(buffer, format="PNG")
    return buffer.getvalue(), digest


def orientation_choice(param: Param, width: int, height: int) -> Any:
    """An "auto" parameter's value for an image: its portrait choice for tall images, else its landscape one."""
    return param.choices[1] if height > width else param.choices[0]


def assign_occurrences(jobs: Sequence[I2VJob]) -> list[I2VJob]:
    """Number identical jobs so each gets its own task and journal entry."""
    seen: dict[str, int] = {}
    numbered = []
    for job in jobs:
        base = replace(job, occurrence=0).key
        numbered.append(replace(job, occurrence=seen.get(base, 0)))
        seen[base] = seen.get(base, 0) + 1
    return numbered


def output_path(output_dir: str | os.PathLike, file_prefix: str, task_id: str) -> Path:
    """Where a task's MP4 is saved: ``<output>/<prefix folders>/<prefix name>_<task id>.mp4``."""
    prefix = (file_prefix or "").strip().replace("\\", "/").rstrip("/") or "wavespeed"
    parts = prefix.split("/")
    if any(p in ("", ".", "..") for p in parts) or ":" in prefix:
        raise UserInputError(f"filename_prefix '{file_prefix}' must be a relative name inside the output folder, "
                             "such as 'wavespeed/hunyuan_i2v'.")
    safe_id = re.sub(r"[^A-Za-z0-9_-]", "_", task_id)[:64]
    path = Path(output_dir).joinpath(*parts[:-1]) / f"{parts[-1]}_{safe_id}.mp4"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
