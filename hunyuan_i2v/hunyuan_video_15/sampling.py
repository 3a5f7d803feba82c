"""The HunyuanVideo-1.5 sampling loop: latent concat with a first-frame mask, CFG, MeanFlow.

Matches diffusers' HunyuanVideo15ImageToVideoPipeline step for step: the
transformer sees [noisy latent, image latent on frame 0, mask], the image
tokens (SigLIP), the Qwen text and the ByT5 glyphs; CFG mixes the negative
prompt's prediction in; MeanFlow (step-distilled) releases also get the next
step's time.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..errors import UserInputError
from ..shared.sampling import SamplingSettings, StepInfo, check_frames, initial_noise, make_scheduler
from .conditioning import I2VConditioning


def sample(
    transformer,
    cond: I2VConditioning,
    settings: SamplingSettings,
    device: torch.device | str = "cpu",
    on_step: Callable[[StepInfo], None] | None = None,
) -> torch.Tensor:
    """Denoise and return latents [1, C, f, h, w] (float32, VAE-scaled)."""
    check_frames(settings.num_frames, cond.temporal_ratio)
    device = torch.device(device)
    frames = (settings.num_frames - 1) // cond.temporal_ratio + 1
    shape = (1, transformer.latent_channels, frames, cond.height // cond.spatial_ratio, cond.width // cond.spatial_ratio)
    image_condition = first_frame_condition(transformer, cond, shape, device)
    return denoise(transformer, cond, settings, shape, device, lambda t: image_condition, on_step)


def first_frame_condition(transformer, cond, shape, device) -> torch.Tensor:
    """[image latent on frame 0 (zeros after), mask (1 on frame 0)]: what every I2V release reads beside the noise."""
    channels = transformer.latent_channels
    image_latent = cond.image_latent.to(device, torch.float32)
    if image_latent.shape[1] != channels:
        raise UserInputError(
            f"The conditioning's image latent has {image_latent.shape[1]} channels but the transformer expects "
            f"{channels}: the VAE does not belong to this model. Use vae/hunyuanvideo15_vae_fp16.safetensors."
        )
    image_cond = torch.zeros(shape, device=device)
    image_cond[:, :, :1] = image_latent
    mask = torch.zeros((1, 1, *shape[2:]), device=device)
    mask[:, :, 0] = 1
    return torch.cat([image_cond, mask], dim=1)


def denoise(
    transformer,
    cond,
    settings: SamplingSettings,
    shape: tuple,
    device: torch.device,
    condition_at: Callable[[torch.Tensor], torch.Tensor],
    on_step: Callable[[StepInfo], None] | None = None,
) -> torch.Tensor:
    """The flow-matching loop from seeded noise of ``shape``; ``condition_at(t)`` gives the channels the transformer
    reads beside the noisy latent at timestep ``t`` (the super-resolution release changes them part-way)."""
    if settings.steps < 1:
        raise UserInputError(f"steps must be at least 1, got {settings.steps}.")
    model, dtype = transformer.model, transformer.compute_dtype
    latents = initial_noise(shape, settings.seed).to(device)

    def prompt_inputs(embedding):
        return {
            "encoder_hidden_states": embedding.text.to(device, dtype),
            "encoder_attention_mask": embedding.text_mask.to(device, dtype),
            "encoder_hidden_states_2": embedding.glyph.to(device, dtype),
            "encoder_attention_mask_2": embedding.glyph_mask.to(device, dtype),
            "image_embeds": cond.image_embeds.to(device, dtype),
        }

    positive = prompt_inputs(cond.positive)
    use_cfg = settings.cfg_scale > 1.0
    negative = prompt_inputs(cond.negative) if use_cfg else None
    scheduler = make_scheduler(settings.flow_shift, settings.steps, device)
    timesteps = scheduler.timesteps
    meanflow = bool(model.config.use_meanflow)
    cached = getattr(model, "is_cache_enabled", False)
    if cached:  # a run that was interrupted may have left cache state behind
        model._reset_stateful_cache()

    def predict(model_input, timestep, timestep_r, prompt, branch):
        def call():
            return model(hidden_states=model_input, timestep=timestep, timestep_r=timestep_r, return_dict=False,
                         **prompt)[0]

        if cached:  # diffusers' cache hooks keep separate state per branch
            with model.cache_context(branch):
                return call()
        return call()

    with torch.no_grad():
        for i, t in enumerate(timesteps):
            model_input = torch.cat([latents, condition_at(t)], dim=1).to(dtype)
            timestep = t.expand(1).to(dtype)
            timestep_r = None
            if meanflow:  # MeanFlow predicts the average velocity up to the next step's time
                following = timesteps[i + 1] if i + 1 < len(timesteps) else torch.zeros((), device=device)
                timestep_r = following.expand(1).to(dtype)
            noise_pred = predict(model_input, timestep, timestep_r, positive, "cond").float()
            if use_cfg:
                uncond = predict(model_input, timestep, timestep_r, negative, "uncond").float()
                noise_pred = uncond + settings.cfg_scale * (noise_pred - uncond)
            sigma = scheduler.sigmas[i]  # this step's noise level: the clean estimate is x - sigma * v
            denoised = latents - sigma * noise_pred
            latents = scheduler.step(noise_pred, t, latents, return_dict=False)[0]
            if on_step is not None:
                on_step(StepInfo(i, len(timesteps), latents, denoised))
    if cached and hasattr(model, "_reset_stateful_cache"):
        model._reset_stateful_cache()
    return latents
