"""HunyuanVideo-1.5's latent upsamplers: the first half of its super-resolution stage.

Tencent's SR pipeline resizes the base stage's final latents (the scaled latent space the transformer samples in)
bilinearly, frame by frame, to the SR size, then refines them with a small convolutional network in float32. The
network never changes the size. Two kinds exist, told apart by their keys:

- 720p (Tencent's ``SRTo720pUpsampler``, for 480p -> 720p): ``in_conv``, ``blocks.N.block.{0,2,4}`` (causal 3-D
  convolutions with SiLU between them, each block residual), ``out_conv``.
- 1080p (``SRTo1080pUpsampler``, for 720p -> 1080p): ``conv_in`` plus the input repeated over its channels,
  ``up.N.block.M`` RMS-norm ResNet blocks, ``norm_out``, SiLU, ``conv_out``.

Files: ComfyUI's ``latent_upscale_models/hunyuanvideo15_latent_upsampler_{720p,1080p}.safetensors``, or Tencent's
release folder ``upsampler/{720p,1080p}_sr_distilled/`` (``config.json`` + ``diffusion_pytorch_model.safetensors``,
same key names). Both are built from diffusers' own HunyuanVideo-1.5 VAE blocks; only the 720p kind's
conv-SiLU-conv-SiLU-conv residual block has no counterpart there, so it is assembled here from diffusers' causal conv.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers.models.autoencoders.autoencoder_kl_hunyuanvideo15 import (
    HunyuanVideo15CausalConv3d,
    HunyuanVideo15RMS_norm,
    HunyuanVideo15UpBlock3D,
)
from torch import nn

from ..errors import ModelFileError, UserInputError
from ..shared import file_config, files
from . import defaults

KIND_720P, KIND_1080P = "720p", "1080p"
KINDS = (KIND_720P, KIND_1080P)
# The base resolution each kind takes up: Tencent pairs 480p bases with the 720p SR release, 720p with 1080p.
SOURCE_RESOLUTION = {KIND_720P: "480p", KIND_1080P: "720p"}
COMFYUI_FILES = {kind: f"hunyuanvideo15_latent_upsampler_{kind}.safetensors" for kind in KINDS}
TENCENT_FOLDERS = {kind: f"{kind}_sr_distilled" for kind in KINDS}
TENCENT_CLASSES = {"SRTo720pUpsampler": KIND_720P, "SRTo1080pUpsampler": KIND_1080P}
WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"
FOLDER = "latent_upscale_models"

_EXPECTED = (
    f"a HunyuanVideo-1.5 latent upsampler: {COMFYUI_FILES[KIND_720P]} or {COMFYUI_FILES[KIND_1080P]} "
    f"(ComfyUI/models/{FOLDER}/), or Tencent's upsampler/{TENCENT_FOLDERS[KIND_720P]} or "
    f"upsampler/{TENCENT_FOLDERS[KIND_1080P]} folder"
)


class ResidualCausalBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.block = nn.Sequential(
            HunyuanVideo15CausalConv3d(channels, channels, kernel_size=3),
            nn.SiLU(),
            HunyuanVideo15CausalConv3d(channels, channels, kernel_size=3),
            nn.SiLU(),
            HunyuanVideo15CausalConv3d(channels, channels, kernel_size=3),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class Upsampler720p(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int, num_blocks: int,
                 global_residual: bool = False):
        super().__init__()
        self.in_conv = HunyuanVideo15CausalConv3d(in_channels, hidden_channels, kernel_size=3)
        self.blocks = nn.ModuleList(ResidualCausalBlock(hidden_channels) for _ in range(num_blocks))
        self.out_conv = HunyuanVideo15CausalConv3d(hidden_channels, out_channels, kernel_size=3)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.global_residual = global_residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.in_conv(x)
        for block in self.blocks:
            y = block(y)
        y = self.out_conv(y)
        # Tencent adds the input back only when its config asks and the shapes allow.
        return y + x if self.global_residual and y.shape == x.shape else y


class Upsampler1080p(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, block_out_channels: tuple[int, ...],
                 num_res_blocks: int):
        super().__init__()
        self.conv_in = HunyuanVideo15CausalConv3d(in_channels, block_out_channels[0], kernel_size=3)
        widths = (block_out_channels[0],) + tuple(block_out_channels)
        # Tencent's ResNet stages hold num_res_blocks + 1 blocks each and never resample.
        self.up = nn.ModuleList(HunyuanVideo15UpBlock3D(widths[i], widths[i + 1], num_layers=num_res_blocks + 1)
                                for i in range(len(block_out_channels)))
        self.norm_out = HunyuanVideo15RMS_norm(block_out_channels[-1], images=False)
        self.conv_out = HunyuanVideo15CausalConv3d(block_out_channels[-1], out_channels, kernel_size=3)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.repeats = block_out_channels[0] // in_channels

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(z) + z.repeat_interleave(self.repeats, dim=1)
        for stage in self.up:
            h = stage(h)
        return self.conv_out(F.silu(self.norm_out(h)))


# Each kind's settings as Tencent's config.json names them; the sizes come from the tensors and are checked.
CONFIG_NAMES = {
    KIND_720P: (
        file_config.Name("in_channels", derived=True),
        file_config.Name("out_channels", derived=True),
        file_config.Name("hidden_channels", derived=True),
        file_config.Name("num_blocks", derived=True),
        file_config.Name("global_residual", kind="bool"),
    ),
    KIND_1080P: (
        file_config.Name("in_channels", ("z_channels",), derived=True),
        file_config.Name("out_channels", derived=True),
        file_config.Name("block_out_channels", kind="ints", derived=True),
        file_config.Name("num_res_blocks", derived=True),
        file_config.Name("is_residual", kind="bool"),  # stored by Tencent's class, never read by its forward
    ),
}
_MARKERS = {
    KIND_720P: ("in_conv.conv.weight", "blocks.0.block.0.conv.weight", "out_conv.conv.weight"),
    KIND_1080P: ("conv_in.conv.weight", "up.0.block.0.conv1.conv.weight", "norm_out.gamma", "conv_out.conv.weight"),
}
_RENAMES = {
    KIND_720P: (),
    KIND_1080P: ((re.compile(r"^up\.(\d+)\.block\.(\d+)\."), r"up.\1.resnets.\2."),
                 (re.compile(r"\.nin_shortcut\."), ".conv_shortcut.")),
}


def detect_kind(keys) -> str | None:
    """"720p", "1080p" or None, from a state dict's keys (wrapper prefix already stripped)."""
    keys = set(keys)
    return next((kind for kind in KINDS if all(marker in keys for marker in _MARKERS[kind])), None)


def original_to_module(state: dict[str, torch.Tensor], kind: str) -> dict[str, torch.Tensor]:
    """Tencent's (= ComfyUI's) names -> this module's (diffusers' block names)."""
    out = {}
    for key, tensor in state.items():
        for pattern, replacement in _RENAMES[kind]:
            key = pattern.sub(replacement, key)
        out[key] = tensor
    return out


def infer_config(shapes: dict[str, tuple], kind: str, overrides: dict, source: str,
                 notes: list | None = None) -> dict:
    """The builder's arguments: sizes from the tensors (original names), the rest from ``overrides`` (config)."""
    keys = list(shapes)
    if kind == KIND_720P:
        from_shapes = {
            "in_channels": shapes["in_conv.conv.weight"][1],
            "out_channels": shapes["out_conv.conv.weight"][0],
            "hidden_channels": shapes["in_conv.conv.weight"][0],
            "num_blocks": files.block_count(keys, "blocks."),
        }
        config = {**from_shapes, "global_residual": False}
    else:
        stages = files.block_count(keys, "up.")
        from_shapes = {
            "in_channels": shapes["conv_in.conv.weight"][1],
            "out_channels": shapes["conv_out.conv.weight"][0],
            "block_out_channels": tuple(shapes[f"up.{i}.block.0.conv1.conv.weight"][0] for i in range(stages)),
            "num_res_blocks": files.block_count(keys, "up.0.block.") - 1,
        }
        config = dict(from_shapes)
        if from_shapes["block_out_channels"][0] % from_shapes["in_channels"]:
            raise ModelFileError(
                f"{source}: its first stage is {from_shapes['block_out_channels'][0]} channels wide, not a multiple "
                f"of its {from_shapes['in_channels']} input channels, so the input cannot be repeated onto it. The "
                "file is damaged or not a 1080p latent upsampler."
            )
    values, ignored = file_config.read(overrides, CONFIG_NAMES[kind], source, from_shapes)
    values.pop("is_residual", None)
    config.update(values)
    if notes is not None:
        notes.extend(ignored)
    return config


@dataclass
class LatentUpsampler:
    model: nn.Module
    kind: str  # "720p" | "1080p": the SR release it belongs to, the target resolution
    source: str
    notes: list[str] = field(default_factory=list)

    @property
    def latent_channels(self) -> int:
        return self.model.in_channels

    @property
    def info(self) -> str:
        lines = [f"HunyuanVideo-1.5 {self.kind} latent upsampler ({SOURCE_RESOLUTION[self.kind]} -> {self.kind}) "
                 f"from {self.source}, {sum(p.numel() for p in self.model.parameters()) / 1e6:.1f} M parameters, "
                 "run in float32."]
        return "\n".join(lines + self.notes)


def _folder_files(folder: Path, target: str | None) -> tuple[Path, Path | None]:
    """(weights file, config.json or None) in Tencent's layout: the release folder, its upsampler/ folder, or the
    *_sr_distilled folder itself; with both kinds there, ``target`` picks."""
    if (folder / "upsampler").is_dir():
        folder = folder / "upsampler"
    found = [kind for kind in KINDS if (folder / TENCENT_FOLDERS[kind]).is_dir()]
    if found:
        if target in found:
            folder = folder / TENCENT_FOLDERS[target]
        elif len(found) == 1 and target is None:
            folder = folder / TENCENT_FOLDERS[found[0]]
        else:
            names = " and ".join(TENCENT_FOLDERS[kind] for kind in found)
            raise ModelFileError(
                f"'{folder}' holds {names}; pick the {TENCENT_FOLDERS[KIND_720P]} folder for 480p -> 720p or the "
                f"{TENCENT_FOLDERS[KIND_1080P]} folder for 720p -> 1080p."
            )
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        others = sorted(p.name for p in folder.glob("*.safetensors"))
        if len(others) == 1:
            weights = folder / others[0]
        else:
            raise ModelFileError(f"'{folder}' has no {WEIGHTS_FILE}; it is not {_EXPECTED}.")
    config = folder / "config.json"
    return weights, config if config.is_file() else None


def _read_folder_config(path: Path, kind: str, source: str) -> dict:
    try:
        config = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"'{path}' is not valid JSON ({exc}). Download it again.") from exc
    if not isinstance(config, dict):
        raise ModelFileError(f"'{path}' must hold a JSON object.")
    declared = TENCENT_CLASSES.get(config.get("_class_name"))
    if declared is not None and declared != kind:
        raise ModelFileError(
            f"{source}: config.json names {config['_class_name']} (the {declared} upsampler) but the weights are the "
            f"{kind} kind. The folder mixes two releases: download it again."
        )
    return config


def load_upsampler(path: str | Path, target: str | None = None) -> LatentUpsampler:
    """Either kind from a single file or Tencent's folder, in float32. ``target`` ("720p" / "1080p") picks the kind
    in a folder that holds both; it is not checked here (``check_target`` does that, in a sentence)."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"'{path}' does not exist. Pick {_EXPECTED}.")
    if path.is_dir():
        weights, config_path = _folder_files(path, target)
    else:  # Tencent's weights file picked on its own still takes the config.json beside it
        beside = path.parent / "config.json"
        weights, config_path = path, beside if path.name == WEIGHTS_FILE and beside.is_file() else None
    source = (f"Tencent's latent upsampler folder '{weights.parent.name}'" if weights.name == WEIGHTS_FILE
              else f"'{weights.name}'")
    keys = files.tensor_keys(weights)  # refuses what is not safetensors, in a sentence
    prefix = files.strip_prefix(keys)
    kind = detect_kind(k[len(prefix):] for k in keys)
    if kind is None:
        if any(k.endswith("post_upsample_res_blocks.0.conv2.bias") for k in keys):
            found = "an LTX-Video latent upsampler"
        else:
            role = files.detect_role(keys)
            found = files.ROLE_DESCRIPTIONS.get(role, "not a model this pack knows") if role else (
                "not a model this pack knows")
        raise ModelFileError(f"{source} is {found}, but this loader needs {_EXPECTED}.")
    overrides = _read_folder_config(config_path, kind, source) if config_path else files.metadata_config(weights)
    state = files.load_state_dict(weights, torch.float32)
    notes = []
    config = infer_config({k: tuple(v.shape) for k, v in state.items()}, kind, overrides, source, notes)
    model_class = Upsampler720p if kind == KIND_720P else Upsampler1080p
    model = files.build_with_weights(model_class, config, original_to_module(state, kind), source,
                                     f"{kind} latent upsampler")
    return LatentUpsampler(model.float(), kind, source, notes)


def check_target(upsampler: LatentUpsampler, target: str) -> None:
    """Refuse an upsampler of the other kind than the SR target ("720p" or "1080p") needs, in a sentence."""
    if target not in KINDS:
        raise UserInputError(f"Unknown super-resolution target '{target}'. Use {' or '.join(KINDS)}.")
    if upsampler.kind != target:
        raise UserInputError(
            f"{upsampler.source} is the {upsampler.kind} latent upsampler ({SOURCE_RESOLUTION[upsampler.kind]} -> "
            f"{upsampler.kind}), but the target is {target} ({SOURCE_RESOLUTION[target]} -> {target}). Load "
            f"{COMFYUI_FILES[target]} (Tencent's upsampler/{TENCENT_FOLDERS[target]}) instead."
        )


@torch.no_grad()
def upsample_latent(latent: torch.Tensor, upsampler: LatentUpsampler, height: int, width: int,
                    scaling_factor: float = 1.0) -> torch.Tensor:
    """A video latent [B, C, f, h, w] -> [B, C, f, height / 16, width / 16], float32, on the latent's device.

    ``height`` and ``width`` are the SR video's size in pixels. The upsampler works in the scaled latent space (what
    the transformer samples in): pass a LATENT's unscaled samples with the VAE's ``scaling_factor``, and the result
    comes back unscaled; a latent already in the scaled space goes in with the default 1.

    Tencent (``HunyuanVideo_1_5_SR_Pipeline``), followed here, and ComfyUI 0.8.0 (``HunyuanVideo15LatentUpscaleWith
    Model``) differ: ComfyUI feeds its LATENT, which is unscaled (divided by 1.03682), to the network, and takes the
    size as ``width // 16`` of any pixel width, where Tencent's sizes are its buckets. Both resize with bilinear,
    ``align_corners=False``, per frame, and both run the network in float32 (ComfyUI unless --bf16-vae/--fp16-vae).
    """
    grid = defaults.MODEL_GRID
    if not isinstance(latent, torch.Tensor) or latent.ndim != 5:
        shape = tuple(latent.shape) if isinstance(latent, torch.Tensor) else type(latent).__name__
        raise UserInputError(
            f"The latent upsampler takes a video latent [batch, channels, frames, height, width], got {shape}. "
            "Connect the LATENT of the HunyuanVideo-1.5 sampler."
        )
    if latent.shape[1] != upsampler.latent_channels:
        raise UserInputError(
            f"The latent has {latent.shape[1]} channels, but {upsampler.source} takes HunyuanVideo-1.5's "
            f"{upsampler.latent_channels}: super-resolution runs only on a HunyuanVideo-1.5 latent (not the 13 B "
            "model's)."
        )
    if height % grid or width % grid or height <= 0 or width <= 0:
        raise UserInputError(
            f"The super-resolution size {width}x{height} must be positive multiples of {grid} pixels (the latent "
            f"grid), e.g. {max(grid, width // grid * grid)}x{max(grid, height // grid * grid)}."
        )
    size = (height // grid, width // grid)
    if size[0] < latent.shape[-2] or size[1] < latent.shape[-1]:
        raise UserInputError(
            f"The super-resolution size {width}x{height} is smaller than the input video "
            f"({latent.shape[-1] * grid}x{latent.shape[-2] * grid}); pick a larger target (720p from 480p, 1080p "
            "from 720p)."
        )
    parameter = next(upsampler.model.parameters())
    batch, frames = latent.shape[0], latent.shape[2]
    x = latent.to(device=parameter.device, dtype=torch.float32) * scaling_factor
    # Per frame: frames join the batch, so the 2-D resize never mixes frames.
    x = x.permute(0, 2, 1, 3, 4).flatten(0, 1)
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    x = x.unflatten(0, (batch, frames)).permute(0, 2, 1, 3, 4)
    out = upsampler.model(x.to(parameter.dtype)).float()
    return (out / scaling_factor).to(latent.device)
