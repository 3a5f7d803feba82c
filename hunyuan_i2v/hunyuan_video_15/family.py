"""The stages' interface to HunyuanVideo-1.5 (hunyuan_video_13b/family.py has the same functions)."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from ..errors import UserInputError
from ..shared import images
from ..shared.sampling import SamplingSettings
from . import (
    conditioning, defaults, lora_keys, sampling, super_resolution, text_encoders, transformer as transformer_module, vae,
)

NAME, DISPLAY_NAME, FILES = defaults.NAME, defaults.DISPLAY_NAME, defaults.FILES
TEXT_ENCODER_SLOTS = defaults.TEXT_ENCODER_SLOTS
RESOLUTIONS = list(defaults.RESOLUTIONS)
DEFAULT_FRAMES = defaults.DEFAULT_FRAMES
DEFAULT_NEGATIVE_PROMPT = defaults.DEFAULT_NEGATIVE_PROMPT
lora_to_diffusers = lora_keys.to_diffusers
original_to_diffusers = transformer_module.original_to_diffusers  # single-file key names -> diffusers'
SHAPE_KEYS = ()  # tensors the key mapping reads sizes from


def load_transformer(path: Path, dtype: torch.dtype, distillation: str | None = None):
    return transformer_module.load_transformer(path, dtype, distillation)


def load_vae(path: Path, dtype: torch.dtype):
    return vae.load_vae(path, dtype)


def load_text_encoders(sources, dtype: torch.dtype):
    """``sources``: loading.TextEncoderSources."""
    if sources.folder is not None:
        return text_encoders.load_diffusers_folder(sources.folder, dtype)
    glyph_tokens = sources.comfy_package / "text_encoders" / "byt5_tokenizer" if sources.comfy_package else None
    return text_encoders.load_single_files(
        sources.primary, sources.vision, sources.second, sources.tokenizer("qwen25"), glyph_tokens, dtype,
    )


def video_size(image: torch.Tensor, resolution: str, width: int, height: int) -> tuple[int, int]:
    if not (width or height) and resolution not in defaults.RESOLUTIONS:
        raise UserInputError(
            f"{DISPLAY_NAME} has 480p and 720p releases; '{resolution}' is not one of them. Pick the loaded "
            "release's resolution, or give width and height."
        )

    def from_image(w: int, h: int) -> tuple[int, int]:
        processor = conditioning.image_processor(defaults.MODEL_GRID)
        height_, width_ = processor.calculate_default_height_width(h, w, defaults.RESOLUTIONS[resolution])
        return width_, height_

    return images.target_size(image, width, height, defaults.MODEL_GRID, from_image)


def encode(encoders, vae_, image: torch.Tensor, prompt: str, negative_prompt: str, width: int, height: int):
    pil = Image.fromarray(images.to_rgb_array(image))
    return conditioning.encode(encoders, vae_, pil, prompt, negative_prompt, width, height)


def resolve_settings(transformer, requested: SamplingSettings, cond=None) -> tuple[SamplingSettings, list[str]]:
    """Fill the node's 0 = "model default" values from the release's reference and say what is ignored."""
    if cond is not None:
        super_resolution.check_model(transformer, cond)
    if transformer.super_resolution:
        return _resolve_sr_settings(transformer, requested, cond)
    reference = defaults.reference_settings(transformer.resolution, transformer.variant)
    notes = []
    if requested.embedded_guidance:
        notes.append("embedded_guidance is ignored: HunyuanVideo-1.5 has no guidance embedder; use cfg_scale.")
    notes.append("i2v_stability is ignored: it belongs to the 13 B model's sampling.")
    if not requested.flow_shift and transformer.resolution is None and transformer.variant != defaults.STEP_DISTILLED:
        notes.append("flow_shift: the release's resolution is unknown, so the 720p value 7 is used (480p: 5).")
    cfg = requested.cfg_scale or reference["cfg_scale"]
    if cfg > 1 and transformer.variant != defaults.PLAIN:
        notes.append(f"cfg_scale {cfg:g} on a distilled release doubles the work for little gain; 1 is its default.")
    settings = SamplingSettings(
        seed=requested.seed, steps=requested.steps or reference["steps"], num_frames=requested.num_frames,
        flow_shift=requested.flow_shift or reference["flow_shift"], embedded_guidance=0.0, cfg_scale=cfg,
        i2v_stability=False,
    )
    return settings, notes


def _resolve_sr_settings(transformer, requested: SamplingSettings, cond) -> tuple[SamplingSettings, list[str]]:
    """The SR release's defaults (Tencent: shift 2, CFG 1, 6 steps at 720p, 8 at 1080p); the frames are the base
    latent's."""
    resolution = transformer.resolution or getattr(cond, "resolution", None) or "1080p"
    reference = defaults.SR_SETTINGS[resolution]
    notes = []
    if requested.embedded_guidance:
        notes.append("embedded_guidance is ignored: HunyuanVideo-1.5 has no guidance embedder.")
    notes.append("i2v_stability is ignored: it belongs to the 13 B model's sampling.")
    frames = requested.num_frames
    if isinstance(cond, super_resolution.SRConditioning):
        frames = cond.num_frames
        if requested.num_frames != frames:
            notes.append(f"frames: {frames}, the base video's (the frames setting {requested.num_frames} is ignored "
                         "by the super-resolution step).")
    cfg = requested.cfg_scale or reference["cfg_scale"]
    if cfg > 1:
        notes.append(f"cfg_scale {cfg:g} on the SR-distilled release doubles the work for little gain; 1 is its "
                     "default.")
    settings = SamplingSettings(
        seed=requested.seed, steps=requested.steps or reference["steps"], num_frames=frames,
        flow_shift=requested.flow_shift or reference["flow_shift"], embedded_guidance=0.0, cfg_scale=cfg,
        i2v_stability=False,
    )
    return settings, notes


def sample(transformer, cond, settings, device, on_step=None) -> torch.Tensor:
    super_resolution.check_model(transformer, cond)
    if transformer.super_resolution:
        return super_resolution.sample(transformer, cond, settings, device, on_step)
    return sampling.sample(transformer, cond, settings, device, on_step)


def frames_to_drop(transformer) -> int:
    return 0


def write_demo_folder(folder: Path) -> Path:
    """A tiny random model in the diffusers layout, for ``generate --demo``."""
    from . import demo

    return demo.write_diffusers_folder(folder)
