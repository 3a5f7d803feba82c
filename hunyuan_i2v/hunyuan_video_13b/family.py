"""The stages' interface to the 13 B family (hunyuan_video_15/family.py has the same functions)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import UserInputError
from ..shared import images
from ..shared.sampling import SamplingSettings
from . import conditioning, defaults, lora_keys, sampling, text_encoder_files, text_encoders, vae
from . import transformer as transformer_module
from .transformer import LATENT_CONCAT

NAME, DISPLAY_NAME, FILES = defaults.NAME, defaults.DISPLAY_NAME, defaults.FILES
TEXT_ENCODER_SLOTS = defaults.TEXT_ENCODER_SLOTS
RESOLUTIONS = list(defaults.RESOLUTIONS)
DEFAULT_FRAMES = defaults.DEFAULT_FRAMES
DEFAULT_NEGATIVE_PROMPT = conditioning.DEFAULT_NEGATIVE_PROMPT
lora_to_diffusers = lora_keys.to_diffusers
original_to_diffusers = transformer_module.original_to_diffusers  # single-file key names -> diffusers'
SHAPE_KEYS = ("img_in.proj.weight",)  # tensors the key mapping reads sizes from


def load_transformer(path: Path, dtype: torch.dtype, distillation: str | None = None):
    loaded = transformer_module.load_transformer(path, dtype)
    if distillation is not None:
        loaded.notes.append(
            f"The variant setting '{distillation}' is ignored: HunyuanVideo-I2V (13 B) releases are told apart by "
            "their weights."
        )
    return loaded


def load_vae(path: Path, dtype: torch.dtype):
    return vae.load_vae(path, dtype)


def load_text_encoders(sources, dtype: torch.dtype):
    """``sources``: loading.TextEncoderSources with this family's kinds resolved."""
    if sources.folder is not None:
        return text_encoders.load_diffusers_folder(sources.folder, dtype)
    return text_encoder_files.load_single_files(
        sources.primary, sources.vision, sources.second,
        sources.tokenizer("llama"), sources.tokenizer("clip"), dtype,
    )


def video_size(image: torch.Tensor, resolution: str, width: int, height: int) -> tuple[int, int]:
    if not (width or height) and resolution not in defaults.RESOLUTIONS:
        raise UserInputError(
            f"{DISPLAY_NAME} has the resolutions {', '.join(defaults.RESOLUTIONS)}; '{resolution}' is not one of "
            "them. Pick one, or give width and height."
        )
    base = defaults.RESOLUTIONS.get(resolution)
    return images.target_size(
        image, width, height, defaults.MODEL_GRID,
        lambda w, h: images.choose_bucket(w, h, base, defaults.BUCKET_GRID),
    )


def encode(encoders, vae_, image: torch.Tensor, prompt: str, negative_prompt: str, width: int, height: int):
    start = images.prepare_start_image(image, width, height)
    return conditioning.encode(encoders, vae_, start, prompt, negative_prompt or None)


def resolve_settings(transformer, requested: SamplingSettings, cond=None) -> tuple[SamplingSettings, list[str]]:
    """Fill the node's 0 = "model default" values from the reference and say what is ignored (``cond``: unused,
    the 13 B model has one kind of conditioning)."""
    reference = defaults.SAMPLING[transformer.variant]
    notes = []
    steps = requested.steps or reference["steps"]
    shift = requested.flow_shift or (
        reference["flow_shift"] if requested.i2v_stability else defaults.FLOW_SHIFT_WITHOUT_STABILITY
    )
    guidance = requested.embedded_guidance or reference["embedded_guidance"]
    cfg = requested.cfg_scale or reference["cfg_scale"]
    if not transformer.uses_embedded_guidance and requested.embedded_guidance:
        notes.append("embedded_guidance is ignored: v1 (latent concat) has no guidance embedder; use cfg_scale.")
    settings = SamplingSettings(
        seed=requested.seed, steps=steps, num_frames=requested.num_frames, flow_shift=shift,
        embedded_guidance=guidance, cfg_scale=cfg, i2v_stability=requested.i2v_stability,
    )
    return settings, notes


def sample(transformer, cond, settings, device, on_step=None) -> torch.Tensor:
    return sampling.sample(transformer, cond, settings, device, on_step)


def frames_to_drop(transformer) -> int:
    return defaults.V1_DROPPED_FRAMES if transformer.variant == LATENT_CONCAT else 0


def write_demo_folder(folder: Path) -> Path:
    """A tiny random v2 model in the diffusers layout, for ``generate --demo``."""
    from . import demo

    return demo.write_diffusers_folder(folder, "token_replace")
