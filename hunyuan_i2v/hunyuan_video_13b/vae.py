"""The HunyuanVideo causal 3D VAE: loading, image encode, tiled video decode."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..shared import file_config, files
from ..errors import ModelFileError
from ..shared.vae import LoadedVAE, load_folder_model

# Not readable from tensor shapes: the real VAE's values, overridable with a
# JSON "config" entry in the file's safetensors metadata.
REAL_VAE_DEFAULTS = {
    "norm_num_groups": 32,
    "scaling_factor": 0.476986,
    "temporal_compression_ratio": 4,
    "act_fn": "silu",
}


# The file's config metadata in diffusers' or Tencent's names (``ffactor_*``); sizes are only checked.
METADATA_NAMES = (
    file_config.Name("in_channels", derived=True),
    file_config.Name("out_channels", derived=True),
    file_config.Name("latent_channels", derived=True),
    file_config.Name("block_out_channels", kind="ints", derived=True),
    file_config.Name("layers_per_block", derived=True),
    file_config.Name("spatial_compression_ratio", ("ffactor_spatial",), derived=True),
    file_config.Name("temporal_compression_ratio", ("ffactor_temporal",)),
    file_config.Name("mid_block_add_attention", kind="bool", derived=True),
    file_config.Name("norm_num_groups"),
    file_config.Name("scaling_factor", kind="float"),
    file_config.Name("act_fn", kind="str", choices=file_config.diffusers_activations),
)

log = logging.getLogger(__name__)

FAMILY = "hunyuan_video_13b"


class HunyuanVideoVAE(LoadedVAE):
    """The 13 B model's VAE: diffusers' AutoencoderKLHunyuanVideo names its tile settings this way."""

    def tile_kwargs(self, tile_size: int) -> dict:
        return {
            "tile_sample_min_height": tile_size,
            "tile_sample_min_width": tile_size,
            "tile_sample_stride_height": tile_size * 3 // 4,
            "tile_sample_stride_width": tile_size * 3 // 4,
        }


def infer_config(keys_shapes: dict[str, tuple], overrides: dict, source: str = "The VAE file") -> dict:
    keys = list(keys_shapes)
    blocks = files.block_count(keys, "encoder.down_blocks.")
    channels = [keys_shapes[f"encoder.down_blocks.{i}.resnets.0.conv2.conv.weight"][0] for i in range(blocks)]
    downsamplers = sum(1 for i in range(blocks) if f"encoder.down_blocks.{i}.downsamplers.0.conv.conv.weight" in keys)
    config = {
        "in_channels": keys_shapes["encoder.conv_in.conv.weight"][1],
        "out_channels": keys_shapes["decoder.conv_out.conv.weight"][0],
        "latent_channels": keys_shapes["decoder.conv_in.conv.weight"][1],
        "down_block_types": ["HunyuanVideoDownBlock3D"] * blocks,
        "up_block_types": ["HunyuanVideoUpBlock3D"] * blocks,
        "block_out_channels": channels,
        "layers_per_block": files.block_count(keys, "encoder.down_blocks.0.resnets."),
        "spatial_compression_ratio": 2 ** downsamplers,
        "mid_block_add_attention": any(k.startswith("encoder.mid_block.attentions.") for k in keys),
        **REAL_VAE_DEFAULTS,
    }
    from_shapes = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()
                   if k not in REAL_VAE_DEFAULTS and not k.endswith("_block_types")}
    values, ignored = file_config.read(overrides, METADATA_NAMES, source, from_shapes)
    for note in ignored:
        log.warning(note)
    config.update(values)
    bad = [c for c in channels if c % config["norm_num_groups"]]
    if bad:
        raise ModelFileError(
            f"The VAE's channel counts {channels} are not divisible by norm_num_groups={config['norm_num_groups']}. "
            "Add a JSON 'config' entry with the right 'norm_num_groups' to the file's safetensors metadata."
        )
    return config


def load_single_file(path: str | Path, dtype: torch.dtype) -> LoadedVAE:
    from diffusers import AutoencoderKLHunyuanVideo

    path = Path(path)
    keys = files.tensor_keys(path)
    role = files.detect_role(keys)
    if role != "hunyuan_vae":
        raise files.wrong_role_error(path, role, "the HunyuanVideo VAE (hunyuan_video_vae_bf16.safetensors)", "vae")
    state = files.load_state_dict(path, dtype)
    config = infer_config({k: tuple(v.shape) for k, v in state.items()}, files.metadata_config(path), f"'{path.name}'")
    model = files.build_with_weights(AutoencoderKLHunyuanVideo, config, state, f"'{path.name}'", "HunyuanVideo VAE")
    return HunyuanVideoVAE(model, f"'{path.name}'", FAMILY)


def load_diffusers_folder(folder: str | Path, dtype: torch.dtype) -> LoadedVAE:
    from diffusers import AutoencoderKLHunyuanVideo

    model = load_folder_model(folder, AutoencoderKLHunyuanVideo, "HunyuanVideo", dtype)
    return HunyuanVideoVAE(model, f"diffusers folder '{Path(folder).name}'", FAMILY)


def load_vae(path: str | Path, dtype: torch.dtype = torch.float32) -> LoadedVAE:
    path = Path(path)
    return load_diffusers_folder(path, dtype) if path.is_dir() else load_single_file(path, dtype)
