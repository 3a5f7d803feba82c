"""What sampling shares across families: settings, seeded noise, the flow-matching schedule, step reports."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import UserInputError

MAX_SEED = 0xFFFFFFFFFFFFFFFF

# What the Sample node's widgets offer and the command line accepts; every value inside runs on both
# families (0 = the loaded model's default for steps, flow shift, embedded guidance and CFG).
SEED_RANGE = (0, MAX_SEED)
STEPS_RANGE = (0, 200)
FRAMES_RANGE = (1, 1025)
FLOW_SHIFT_RANGE = (0.0, 100.0)
GUIDANCE_RANGE = (0.0, 30.0)
CFG_SCALE_RANGE = (0.0, 30.0)


@dataclass
class SamplingSettings:
    seed: int = 0
    steps: int = 50
    num_frames: int = 129
    flow_shift: float = 7.0
    embedded_guidance: float = 6.0
    cfg_scale: float = 1.0
    i2v_stability: bool = True


@dataclass
class StepInfo:
    index: int  # 0-based step just finished
    total: int
    latents: torch.Tensor  # current noisy latents [1, C, f, h, w]
    denoised: torch.Tensor  # the model's estimate of the clean latents


def check_frames(num_frames: int, temporal_ratio: int = 4) -> None:
    if num_frames < 1 or (num_frames - 1) % temporal_ratio:
        lower = max(1, (num_frames - 1) // temporal_ratio * temporal_ratio + 1)
        raise UserInputError(
            f"frames must be {temporal_ratio}n+1 (1, 5, ..., 125, 129), got {num_frames}. "
            f"Use {lower} or {lower + temporal_ratio}."
        )


def initial_noise(shape, seed: int) -> torch.Tensor:
    """Seeded noise made on the CPU, so a seed gives the same video on any GPU."""
    from diffusers.utils.torch_utils import randn_tensor

    if not 0 <= seed <= MAX_SEED:
        raise UserInputError(f"seed must be between 0 and {MAX_SEED}, got {seed}.")
    generator = torch.Generator("cpu").manual_seed(seed)
    return randn_tensor(shape, generator=generator, dtype=torch.float32)


def flow_sigmas(steps: int) -> np.ndarray:
    """The references' sigma schedule before the shift: 1 down to 1/steps, evenly spaced."""
    return np.linspace(1.0, 0.0, steps + 1)[:-1]


def make_scheduler(flow_shift: float, steps: int, device):
    """diffusers' flow-matching Euler scheduler with the references' schedule."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    if not flow_shift > 0:
        raise UserInputError(f"flow_shift must be above 0, got {flow_shift}. 0 on the node means the model's default.")
    scheduler = FlowMatchEulerDiscreteScheduler(shift=flow_shift)
    scheduler.set_timesteps(sigmas=flow_sigmas(steps), device=device)
    return scheduler
