"""The HunyuanVideo-1.5 VAE (16x spatial, 4x temporal, 32 latent channels): loading and its tile settings.

ComfyUI's ``hunyuanvideo15_vae_fp16.safetensors`` keeps Tencent's original
names (``encoder.down.N.block.M``, ``mid.block_1``, ``mid.attn_1.q``,
``nin_shortcut``); diffusers has no single-file loader for it, so they are
mapped here with the architecture read from the shapes.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import torch

from ..errors import ModelFileError
from ..shared import file_config, files
from ..shared.vae import LoadedVAE, load_folder_model
from . import defaults

# Not readable from tensor shapes: the real VAE's values, overridable with a JSON
# "config" entry in the file's safetensors metadata.
log = logging.getLogger(__name__)

REAL_VAE_DEFAULTS = {"scaling_factor": 1.03682, "downsample_match_channel": True, "upsample_match_channel": True}

_RENAMES = [
    (re.compile(r"^encoder\.down\.(\d+)\.block\.(\d+)\."), r"encoder.down_blocks.\1.resnets.\2."),
    (re.compile(r"^encoder\.down\.(\d+)\.downsample\."), r"encoder.down_blocks.\1.downsamplers.0."),
    (re.compile(r"^decoder\.up\.(\d+)\.block\.(\d+)\."), r"decoder.up_blocks.\1.resnets.\2."),
    (re.compile(r"^decoder\.up\.(\d+)\.upsample\."), r"decoder.up_blocks.\1.upsamplers.0."),
    (re.compile(r"^(encoder|decoder)\.mid\.block_1\."), r"\1.mid_block.resnets.0."),
    (re.compile(r"^(encoder|decoder)\.mid\.block_2\."), r"\1.mid_block.resnets.1."),
    (re.compile(r"^(encoder|decoder)\.mid\.attn_1\.([qkv])\."), r"\1.mid_block.attentions.0.to_\2."),
    (re.compile(r"^(encoder|decoder)\.mid\.attn_1\.(norm|proj_out)\."), r"\1.mid_block.attentions.0.\2."),
]


class HunyuanVideo15VAE(LoadedVAE):
    """diffusers' AutoencoderKLHunyuanVideo15 takes a tile edge in pixels and in latents, and an overlap factor."""

    def tile_kwargs(self, tile_size: int) -> dict:
        return {
            "tile_sample_min_height": tile_size,
            "tile_sample_min_width": tile_size,
            "tile_latent_min_height": max(1, tile_size // self.spatial_ratio),
            "tile_latent_min_width": max(1, tile_size // self.spatial_ratio),
        }


def original_to_diffusers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, tensor in state.items():
        for pattern, replacement in _RENAMES:
            if pattern.match(key):
                key = pattern.sub(replacement, key)
                break
        out[key.replace(".nin_shortcut.", ".conv_shortcut.")] = tensor
    return out


# The file's config metadata, in diffusers' and Tencent's names (``ffactor_*``); sizes come from the shapes.
METADATA_NAMES = (
    file_config.Name("in_channels", derived=True),
    file_config.Name("out_channels", derived=True),
    file_config.Name("latent_channels", ("z_channels",), derived=True),
    file_config.Name("block_out_channels", kind="ints", derived=True),
    file_config.Name("layers_per_block", ("num_res_blocks",), derived=True),
    file_config.Name("spatial_compression_ratio", ("ffactor_spatial",)),
    file_config.Name("temporal_compression_ratio", ("ffactor_temporal",)),
    file_config.Name("downsample_match_channel", kind="bool"),
    file_config.Name("upsample_match_channel", kind="bool"),
    file_config.Name("scaling_factor", kind="float"),
)


def infer_config(shapes: dict[str, tuple], overrides: dict, source: str = "The VAE file",
                 notes: list | None = None) -> dict:
    """diffusers config from diffusers-named shapes (after ``original_to_diffusers``) plus the file's config
    metadata (either dialect); ignored entries are noted in ``notes``."""
    keys = list(shapes)
    blocks = files.block_count(keys, "encoder.down_blocks.")
    if not blocks:
        raise ModelFileError("The VAE file has no encoder blocks; it is incomplete or not the HunyuanVideo-1.5 VAE.")
    channels = [shapes[f"encoder.down_blocks.{i}.resnets.0.conv2.conv.weight"][0] for i in range(blocks)]
    config = {
        "in_channels": shapes["encoder.conv_in.conv.weight"][1],
        "out_channels": shapes["decoder.conv_out.conv.weight"][0],
        "latent_channels": shapes["decoder.conv_in.conv.weight"][1],
        "block_out_channels": channels,
        "layers_per_block": files.block_count(keys, "encoder.down_blocks.0.resnets."),
        **REAL_VAE_DEFAULTS,
    }
    from_shapes = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items() if k not in REAL_VAE_DEFAULTS}
    values, ignored = file_config.read(overrides, METADATA_NAMES, source, from_shapes)
    if notes is not None:
        notes.extend(ignored)
    config.update(values)
    # Each downsampler halves height and width; the ones that also halve time pack 8 values per channel
    # instead of 4, which their conv's output width shows.
    spatial = temporal = 0
    for i in range(blocks):
        key = f"encoder.down_blocks.{i}.downsamplers.0.conv.conv.weight"
        if key in shapes:
            spatial += 1
            packed = channels[i + 1] if config["downsample_match_channel"] and i + 1 < blocks else channels[i]
            temporal += packed // shapes[key][0] == 8
    config.setdefault("spatial_compression_ratio", 2 ** spatial)
    config.setdefault("temporal_compression_ratio", 2 ** temporal)
    if config["spatial_compression_ratio"] > 2 ** blocks or not math.log2(config["spatial_compression_ratio"]).is_integer():
        raise ModelFileError(f"The VAE's compression ({config['spatial_compression_ratio']}) does not fit its {blocks} blocks.")
    return config


def load_single_file(path: str | Path, dtype: torch.dtype) -> LoadedVAE:
    from diffusers import AutoencoderKLHunyuanVideo15

    path = Path(path)
    state = original_to_diffusers(files.load_state_dict(path, dtype))
    notes = []
    config = infer_config({k: tuple(v.shape) for k, v in state.items()}, files.metadata_config(path),
                          f"'{path.name}'", notes)
    for note in notes:
        log.warning(note)
    model = files.build_with_weights(
        AutoencoderKLHunyuanVideo15, config, state, f"'{path.name}'", "HunyuanVideo-1.5 VAE"
    )
    return HunyuanVideo15VAE(model, f"'{path.name}'", defaults.NAME)


def load_diffusers_folder(folder: str | Path, dtype: torch.dtype) -> LoadedVAE:
    from diffusers import AutoencoderKLHunyuanVideo15

    model = load_folder_model(folder, AutoencoderKLHunyuanVideo15, "HunyuanVideo-1.5", dtype)
    return HunyuanVideo15VAE(model, f"diffusers folder '{Path(folder).name}'", defaults.NAME)


def load_vae(path: str | Path, dtype: torch.dtype = torch.float32) -> LoadedVAE:
    path = Path(path)
    return load_diffusers_folder(path, dtype) if path.is_dir() else load_single_file(path, dtype)
