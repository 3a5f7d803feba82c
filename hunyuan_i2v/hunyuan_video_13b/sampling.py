"""The flow-matching sampling loop for both releases.

v1 (latent concat): the transformer sees [noisy latent, image latent on frame 0,
mask]; true CFG with a negative prompt. v2 (token replace): the clean image
latent replaces frame 0 at every step and only frames 1.. are denoised;
guidance is embedded. Matches diffusers' HunyuanVideoImageToVideoPipeline.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..errors import UserInputError
from ..shared.sampling import SamplingSettings, StepInfo, check_frames, initial_noise, make_scheduler
from .conditioning import I2VConditioning
from .transformer import LATENT_CONCAT, TOKEN_REPLACE, HunyuanVideoTransformer

# Image tokens kept from the MLLM per release: every 2nd (v1) or 4th (v2).
IMAGE_EMBED_INTERLEAVE = {LATENT_CONCAT: 2, TOKEN_REPLACE: 4}
STABILITY_NOISE_WEIGHT = 0.999  # start latents lean 0.1 % towards the image


def sample(
    transformer: HunyuanVideoTransformer,
    cond: I2VConditioning,
    settings: SamplingSettings,
    device: torch.device | str = "cpu",
    on_step: Callable[[StepInfo], None] | None = None,
    temporal_ratio: int = 4,
    spatial_ratio: int = 8,
) -> torch.Tensor:
    """Denoise and return latents [1, C, f, h, w] (float32, VAE-scaled)."""
    check_frames(settings.num_frames, temporal_ratio)
    if settings.steps < 1:
        raise UserInputError(f"steps must be at least 1, got {settings.steps}.")
    model, variant = transformer.model, transformer.variant
    compute_dtype = transformer.compute_dtype
    device = torch.device(device)

    image_latent = cond.image_latent.to(device, torch.float32)
    channels = transformer.latent_channels
    if image_latent.shape[1] != channels:
        raise UserInputError(
            f"The conditioning's image latent has {image_latent.shape[1]} channels but the transformer expects "
            f"{channels}: the VAE does not belong to this model. Use the HunyuanVideo VAE."
        )
    latent_frames = (settings.num_frames - 1) // temporal_ratio + 1
    shape = (1, channels, latent_frames, cond.height // spatial_ratio, cond.width // spatial_ratio)
    if tuple(image_latent.shape[-2:]) != shape[-2:]:
        raise UserInputError("The image latent does not match the conditioning size; re-run the encode node.")
    image_latents = image_latent.repeat(1, 1, latent_frames, 1, 1)
    latents = initial_noise(shape, settings.seed).to(device)
    if settings.i2v_stability:
        weight = torch.tensor([STABILITY_NOISE_WEIGHT], device=device)
        latents = latents * weight + image_latents * (1 - weight)

    if variant == LATENT_CONCAT:
        image_cond = image_latents.clone()
        image_cond[:, :, 1:] = 0
        mask = image_cond.new_zeros(image_cond.shape[0], 1, *image_cond.shape[2:])
        mask[:, :, 0] = 1
    else:
        first_frame = image_latents[:, :, :1]

    interleave = IMAGE_EMBED_INTERLEAVE[variant]

    def prompt_inputs(embedding):
        embeds, attn_mask = embedding.sequence(interleave)
        return {
            "encoder_hidden_states": embeds.to(device, compute_dtype),
            "encoder_attention_mask": attn_mask.to(device, compute_dtype),
            "pooled_projections": embedding.pooled.to(device, compute_dtype),
        }

    positive = prompt_inputs(cond.positive)
    use_cfg = settings.cfg_scale > 1.0
    if use_cfg and cond.negative is None:
        raise UserInputError("cfg_scale above 1 needs a negative prompt; type one in the encode node.")
    negative = prompt_inputs(cond.negative) if use_cfg else None

    scheduler = make_scheduler(settings.flow_shift, settings.steps, device)
    guidance = None
    if transformer.uses_embedded_guidance:
        guidance = torch.tensor([settings.embedded_guidance], dtype=compute_dtype, device=device) * 1000.0
    cached = getattr(model, "is_cache_enabled", False)
    if cached:  # a run that was interrupted may have left cache state behind
        model._reset_stateful_cache()

    def predict(model_input, timestep, prompt, branch):
        call = lambda: model(  # noqa: E731
            hidden_states=model_input, timestep=timestep, guidance=guidance, return_dict=False, **prompt
        )[0]
        if cached:  # diffusers' cache hooks keep separate state per branch
            with model.cache_context(branch):
                return call()
        return call()

    timesteps = scheduler.timesteps
    with torch.no_grad():
        for i, t in enumerate(timesteps):
            timestep = t.expand(latents.shape[0]).to(latents.dtype)
            if variant == LATENT_CONCAT:
                model_input = torch.cat([latents, image_cond, mask], dim=1).to(compute_dtype)
            else:
                model_input = torch.cat([first_frame, latents[:, :, 1:]], dim=2).to(compute_dtype)
            noise_pred = predict(model_input, timestep, positive, "cond")
            if use_cfg:
                neg_pred = predict(model_input, timestep, negative, "uncond")
                noise_pred = neg_pred + settings.cfg_scale * (noise_pred - neg_pred)
            sigma = scheduler.sigmas[i]  # this step's noise level: the clean estimate is x - sigma * v
            if variant == LATENT_CONCAT:
                denoised = latents - sigma * noise_pred.float()
                latents = scheduler.step(noise_pred, t, latents, return_dict=False)[0]
            else:
                denoised = latents[:, :, 1:] - sigma * noise_pred[:, :, 1:].float()
                denoised = torch.cat([first_frame, denoised], dim=2)
                stepped = scheduler.step(noise_pred[:, :, 1:], t, latents[:, :, 1:], return_dict=False)[0]
                latents = torch.cat([first_frame, stepped], dim=2)
            if on_step is not None:
                on_step(StepInfo(i, len(timesteps), latents, denoised))
    if cached and hasattr(model, "_reset_stateful_cache"):
        model._reset_stateful_cache()
    return latents
