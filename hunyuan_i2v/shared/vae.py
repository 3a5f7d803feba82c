"""A loaded video VAE, whichever family it belongs to.

The latent convention is owned here: ``encode_image`` returns latents in the
transformer's space (multiplied by the VAE's scaling factor), and
``decode`` takes *unscaled* latents, the form a ComfyUI LATENT holds.
``to_unscaled`` converts a sampler's output to that form, so no node ever
multiplies or divides by a scale.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ModelFileError


@dataclass
class LoadedVAE:
    model: torch.nn.Module
    source: str
    family: str  # hunyuan_i2v.families name

    @property
    def scaling_factor(self) -> float:
        return float(self.model.config.scaling_factor)

    @property
    def spatial_ratio(self) -> int:
        return int(self.model.spatial_compression_ratio)

    @property
    def temporal_ratio(self) -> int:
        return int(self.model.temporal_compression_ratio)

    @property
    def latent_channels(self) -> int:
        return int(self.model.config.latent_channels)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def tile_kwargs(self, tile_size: int) -> dict:
        """``enable_tiling`` arguments for a tile edge in pixels (each diffusers VAE names them differently)."""
        return {}

    @contextmanager
    def tiling(self, enabled: bool, tile_size: int | None = None):
        """Tiles (or none) for one call only.

        diffusers keeps tiling as attributes of the VAE object, which every graph using this loader shares: set by
        one decode, they would change how the next start image is encoded. So each call states its own tiling and
        the attributes are put back as they were after it.
        """
        saved = {k: v for k, v in vars(self.model).items() if k.startswith(("use_tiling", "tile_"))}
        if enabled:
            self.model.enable_tiling(**(self.tile_kwargs(tile_size) if tile_size else {}))
        else:
            self.model.disable_tiling()
        try:
            yield
        finally:
            vars(self.model).update(saved)

    @torch.no_grad()
    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] in -1..1 -> scaled latent [B, C, 1, h, w] (the distribution's mode), float32.

        Always whole, never tiled: one frame needs little memory, and diffusers' reference pipelines (tiling off by
        default, what the parity tests compare against) encode it whole; so the conditioning does not depend on the
        tile settings of anything that ran before. (Tencent's own scripts may tile it at 720p: not checked.)
        """
        device = next(self.model.parameters()).device
        video = pixels.to(device=device, dtype=self.dtype).unsqueeze(2)
        with self.tiling(False):
            latents = [self.model.encode(frame.unsqueeze(0)).latent_dist.mode() for frame in video]
        return torch.cat(latents).float() * self.scaling_factor

    def to_unscaled(self, latents: torch.Tensor) -> torch.Tensor:
        return latents / self.scaling_factor

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, tiling: bool = True, tile_size: int | None = None) -> torch.Tensor:
        """Unscaled latent [B, C, f, h, w] -> video [B, 3, F, H, W] in -1..1, tiled as this call asks."""
        device = next(self.model.parameters()).device
        with self.tiling(tiling, tile_size):
            return self.model.decode(latents.to(device=device, dtype=self.dtype), return_dict=False)[0]


def load_folder_model(folder: str | Path, model_class, what: str, dtype: torch.dtype) -> torch.nn.Module:
    """``model_class`` from a diffusers folder's vae/, after checking that its config names that class."""
    folder = Path(folder)
    sub = folder / "vae"
    if not (sub / "config.json").exists():
        raise ModelFileError(f"'{folder}' has no vae/config.json; it is not a complete {what} diffusers folder.")
    name = json.loads((sub / "config.json").read_text()).get("_class_name")
    if name and name != model_class.__name__:
        raise ModelFileError(f"'{sub}' holds a {name}, not the {what} VAE ({model_class.__name__}).")
    return model_class.from_pretrained(sub, dtype=dtype).eval().requires_grad_(False)
