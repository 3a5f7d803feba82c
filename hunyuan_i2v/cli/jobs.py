"""One video to make: its start image, output file and per-video settings, checked before any model loads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .. import families
from ..errors import UserInputError
from ..shared import images
from . import checks, options


@dataclass
class Job:
    label: str  # how messages name it: "the video" or "jobs.csv line 3"
    image: Path | None  # None: the demo's gradient
    output: Path
    settings: dict  # PER_VIDEO name -> value
    number: int = 1  # its place in a batch

    def __getattr__(self, name):
        try:
            return self.__dict__["settings"][name]
        except KeyError:
            raise AttributeError(name) from None


def from_args(args) -> Job:
    image = Path(args.image).expanduser() if args.image else None
    settings = {s.name: getattr(args, s.name) for s in options.PER_VIDEO}
    return Job("the video", image, Path(args.output).expanduser(), settings)


def start_image(job: Job, demo: bool) -> torch.Tensor:
    if job.image is not None:
        return images.load_image_file(job.image)
    if demo:
        return images.demo_image()
    raise UserInputError("--image is required: the start image of the video (or use --demo to try a tiny model).")


def check_paths(job: Job, demo: bool) -> None:
    """The output can be written and the start image read: checked first, as they need no model."""
    checks.check_output(job.output, "--output" if job.label == "the video" else "output")
    start_image(job, demo)


def check_for_model(job: Job, plan: checks.ModelPlan) -> None:
    """What the job asks of the model, checked against the model's family (sizes, resolution, CFG)."""
    fam = families.family(plan.family)
    fam.video_size(start_image(job, plan.demo), job.resolution, job.width, job.height)
    checks.check_upscale(job.upscale, plan, "--upscale" if job.label == "the video" else f"{job.label}: upscale")
    if plan.family == families.HUNYUAN_VIDEO_13B and job.cfg_scale > 1 and not job.negative_prompt:
        raise UserInputError(
            f"cfg scale {job.cfg_scale:g} needs a negative prompt with HunyuanVideo-I2V (13 B); give one, or set the "
            "cfg scale to 0 (the model's default) or 1 (off)."
        )
