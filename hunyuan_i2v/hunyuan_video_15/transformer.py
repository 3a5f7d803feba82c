"""Loading the HunyuanVideo-1.5 transformer from a single file (either original layout) or a diffusers folder.

diffusers 0.42 has the model class but no single-file loader for 1.5, so the
original names are mapped here, with every size read from the tensors (the
conversion script outside diffusers' wheel hard-codes the real ones).

Two original layouts hold the same weights: Tencent's release keeps each
double block's q, k and v apart (``img_attn_q``), ComfyUI's repackaged files
fuse them (``img_attn_qkv``, rows q | k | v). Both load.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ModelFileError
from ..shared import file_config, files
from ..shared.transformer import LoadedTransformer
from . import defaults
from .attention import use_key_mask_attention

# What tensor shapes cannot tell: the real model's values, overridable per file
# through a JSON "config" entry in the safetensors metadata.
REAL_MODEL_DEFAULTS = {"rope_theta": 256.0, "rope_axes_dim": (16, 56, 56), "qk_norm": "rms_norm", "task_type": "i2v"}
# Keys of a file's "config" metadata that describe the release rather than the architecture.
RELEASE_KEYS = ("resolution", "distillation")
# What the file may say of its release (the tensors cannot tell), read by the same reader.
RELEASE_NAMES = (file_config.Name("resolution", kind="str", choices=tuple(defaults.RESOLUTIONS)),
                 file_config.Name("distillation", kind="str", choices=tuple(defaults.DISTILLATION_NAMES)))
SR_RELEASE_NAMES = (file_config.Name("resolution", kind="str", choices=tuple(defaults.SR_RESOLUTIONS)),
                    file_config.Name("distillation", kind="str", choices=(defaults.SR_DISTILLED,)))

_REFINER = r"txt_in\.individual_token_refiner\.blocks\.(\d+)\."
_DIFF_REFINER = r"context_embedder.token_refiner.refiner_blocks.\1."
_BLOCK = r"double_blocks\.(\d+)\."
_DIFF_BLOCK = r"transformer_blocks.\1."

# One-to-one renames, original prefix -> diffusers prefix (the rest of the key is weight/bias).
_RENAMES = [
    (r"img_in\.proj\.", "x_embedder.proj."),
    (r"time_in\.mlp\.0\.", "time_embed.timestep_embedder.linear_1."),
    (r"time_in\.mlp\.2\.", "time_embed.timestep_embedder.linear_2."),
    (r"time_r_in\.mlp\.0\.", "time_embed.timestep_embedder_r.linear_1."),  # MeanFlow releases
    (r"time_r_in\.mlp\.2\.", "time_embed.timestep_embedder_r.linear_2."),
    (r"cond_type_embedding\.", "cond_type_embed."),
    (r"vision_in\.proj\.0\.", "image_embedder.norm_in."),
    (r"vision_in\.proj\.1\.", "image_embedder.linear_1."),
    (r"vision_in\.proj\.3\.", "image_embedder.linear_2."),
    (r"vision_in\.proj\.4\.", "image_embedder.norm_out."),
    (r"byt5_in\.layernorm\.", "context_embedder_2.norm."),
    (r"byt5_in\.fc1\.", "context_embedder_2.linear_1."),
    (r"byt5_in\.fc2\.", "context_embedder_2.linear_2."),
    (r"byt5_in\.fc3\.", "context_embedder_2.linear_3."),
    (r"txt_in\.input_embedder\.", "context_embedder.proj_in."),
    (r"txt_in\.t_embedder\.mlp\.0\.", "context_embedder.time_text_embed.timestep_embedder.linear_1."),
    (r"txt_in\.t_embedder\.mlp\.2\.", "context_embedder.time_text_embed.timestep_embedder.linear_2."),
    (r"txt_in\.c_embedder\.linear_1\.", "context_embedder.time_text_embed.text_embedder.linear_1."),
    (r"txt_in\.c_embedder\.linear_2\.", "context_embedder.time_text_embed.text_embedder.linear_2."),
    (_REFINER + r"norm1\.", _DIFF_REFINER + "norm1."),
    (_REFINER + r"norm2\.", _DIFF_REFINER + "norm2."),
    (_REFINER + r"self_attn_proj\.", _DIFF_REFINER + "attn.to_out.0."),
    (_REFINER + r"mlp\.fc1\.", _DIFF_REFINER + "ff.net.0.proj."),
    (_REFINER + r"mlp\.fc2\.", _DIFF_REFINER + "ff.net.2."),
    (_REFINER + r"adaLN_modulation\.1\.", _DIFF_REFINER + "norm_out.linear."),
    (_BLOCK + r"img_mod\.linear\.", _DIFF_BLOCK + "norm1.linear."),
    (_BLOCK + r"txt_mod\.linear\.", _DIFF_BLOCK + "norm1_context.linear."),
    (_BLOCK + r"img_attn_q_norm\.", _DIFF_BLOCK + "attn.norm_q."),
    (_BLOCK + r"img_attn_k_norm\.", _DIFF_BLOCK + "attn.norm_k."),
    (_BLOCK + r"txt_attn_q_norm\.", _DIFF_BLOCK + "attn.norm_added_q."),
    (_BLOCK + r"txt_attn_k_norm\.", _DIFF_BLOCK + "attn.norm_added_k."),
    (_BLOCK + r"img_attn_proj\.", _DIFF_BLOCK + "attn.to_out.0."),
    (_BLOCK + r"txt_attn_proj\.", _DIFF_BLOCK + "attn.to_add_out."),
    (_BLOCK + r"img_mlp\.fc1\.", _DIFF_BLOCK + "ff.net.0.proj."),
    (_BLOCK + r"img_mlp\.fc2\.", _DIFF_BLOCK + "ff.net.2."),
    (_BLOCK + r"txt_mlp\.fc1\.", _DIFF_BLOCK + "ff_context.net.0.proj."),
    (_BLOCK + r"txt_mlp\.fc2\.", _DIFF_BLOCK + "ff_context.net.2."),
    (r"final_layer\.linear\.", "proj_out."),
]
_RENAME_PATTERNS = [(re.compile("^" + pattern + r"(weight|bias)$"), repl) for pattern, repl in _RENAMES]

# q, k, v of one attention, fused (stem + "qkv") or split (stem + "q" / "k" / "v"): original stem -> diffusers names.
_QKV = [
    (re.compile(r"^txt_in\.individual_token_refiner\.blocks\.(\d+)\.self_attn_(qkv|q|k|v)\.(weight|bias)$"),
     "context_embedder.token_refiner.refiner_blocks.{0}.attn.to_{x}.{1}"),
    (re.compile(r"^double_blocks\.(\d+)\.img_attn_(qkv|q|k|v)\.(weight|bias)$"), "transformer_blocks.{0}.attn.to_{x}.{1}"),
    (re.compile(r"^double_blocks\.(\d+)\.txt_attn_(qkv|q|k|v)\.(weight|bias)$"),
     "transformer_blocks.{0}.attn.add_{x}_proj.{1}"),
]


def original_to_diffusers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename (and split, and reorder) original 1.5 keys into diffusers' ``HunyuanVideo15Transformer3DModel`` names.

    Written here because diffusers has no single-file support for 1.5; the
    mapping is checked at full size against diffusers' own class in the tests.
    Unknown keys are kept as they are, so the loader can name them.
    """
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        for pattern, target in _QKV:
            match = pattern.match(key)
            if match:
                index, part, kind = match.groups()
                if part == "qkv":  # rows q | k | v
                    for letter, piece in zip("qkv", tensor.chunk(3, dim=0)):
                        out[target.format(index, kind, x=letter)] = piece
                else:
                    out[target.format(index, kind, x=part)] = tensor
                break
        else:
            if key.startswith("final_layer.adaLN_modulation.1."):
                # The original holds (shift, scale); diffusers' AdaLayerNormContinuous reads (scale, shift).
                shift, scale = tensor.chunk(2, dim=0)
                out["norm_out.linear." + key.rsplit(".", 1)[1]] = torch.cat([scale, shift], dim=0)
                continue
            for pattern, replacement in _RENAME_PATTERNS:
                if pattern.match(key):
                    out[pattern.sub(replacement + r"\2" if pattern.groups == 2 else replacement + r"\1", key)] = tensor
                    break
            else:
                out[key] = tensor
    return out


# The file's config metadata, in the three dialects (diffusers' constructor, Tencent's config); the shapes give
# the sizes, so those are only checked.
METADATA_NAMES = (
    file_config.Name("in_channels", ("in_dim",), derived=True),
    file_config.Name("out_channels", ("out_dim",), derived=True),
    file_config.Name("num_attention_heads", ("heads_num", "num_heads"), derived=True),
    file_config.Name("attention_head_dim", ("head_dim",), derived=True),
    file_config.Name("hidden_size", ("hidden_dim",), derived=True),
    file_config.Name("num_layers", ("mm_double_blocks_depth", "depth"), derived=True),
    file_config.Name("num_refiner_layers", derived=True),
    file_config.Name("mlp_ratio", ("mlp_width_ratio",), "float", derived=True),
    file_config.Name("patch_size", derived=True),
    file_config.Name("patch_size_t", derived=True),
    file_config.Name("text_embed_dim", ("text_states_dim",), derived=True),
    file_config.Name("text_embed_2_dim", derived=True),
    file_config.Name("image_embed_dim", derived=True),
    file_config.Name("use_meanflow", kind="bool", derived=True),
    file_config.Name("rope_theta", kind="float"),
    file_config.Name("rope_axes_dim", ("rope_dim_list",), "ints"),
    file_config.Name("qk_norm", ("qk_norm_type",), "str", convert=file_config.qk_norm_name,
                     choices=file_config.QK_NORMS),
    file_config.Name("task_type", kind="str", choices=("i2v", "t2v")),
    file_config.Name("target_size"),
)


def infer_config(shapes: dict[str, tuple], overrides: dict, source: str = "The transformer file",
                 notes: list | None = None) -> dict:
    """diffusers config from original-layout tensor shapes plus the file's config metadata (any dialect); notes on
    metadata entries that were ignored go to ``notes``."""
    keys = list(shapes)

    def shape(key: str) -> tuple:
        if key not in shapes:
            raise ModelFileError(f"The transformer file lacks '{key}'; it is incomplete or not HunyuanVideo-1.5.")
        return shapes[key]

    hidden, in_channels, patch_t, patch, _ = shape("img_in.proj.weight")
    head_dim = shape("double_blocks.0.img_attn_q_norm.weight")[0]
    projection_width = shape("byt5_in.fc1.weight")[0]
    if projection_width != 2048:
        raise ModelFileError(
            f"The glyph (ByT5) projection of this file is {projection_width} wide; diffusers' HunyuanVideo-1.5 model "
            "has it fixed at 2048, so this is another model built on HunyuanVideo-1.5."
        )
    config = {
        "in_channels": in_channels,
        "out_channels": shape("final_layer.linear.weight")[0] // (patch_t * patch * patch),
        "num_attention_heads": hidden // head_dim,
        "attention_head_dim": head_dim,
        "num_layers": files.block_count(keys, "double_blocks."),
        "num_refiner_layers": files.block_count(keys, "txt_in.individual_token_refiner.blocks."),
        "mlp_ratio": shape("double_blocks.0.img_mlp.fc1.weight")[0] / hidden,
        "patch_size": patch,
        "patch_size_t": patch_t,
        "text_embed_dim": shape("txt_in.input_embedder.weight")[1],
        "text_embed_2_dim": shape("byt5_in.fc1.weight")[1],
        "image_embed_dim": shape("vision_in.proj.1.weight")[1],
        "use_meanflow": any(k.startswith("time_r_in.") for k in keys),
        **REAL_MODEL_DEFAULTS,
    }
    overrides = dict(overrides)
    if isinstance(overrides.get("patch_size"), (list, tuple)) and len(overrides["patch_size"]) == 3:
        # Tencent's [t, h, w]
        overrides["patch_size_t"], overrides["patch_size"], _ = overrides["patch_size"]
    from_shapes = {k: v for k, v in config.items() if k not in REAL_MODEL_DEFAULTS} | {"hidden_size": hidden}
    values, ignored = file_config.read(overrides, METADATA_NAMES, source, from_shapes, ignore=RELEASE_KEYS)
    if notes is not None:
        notes.extend(ignored)
    config.update(values)
    config["rope_axes_dim"] = tuple(config["rope_axes_dim"])
    if sum(config["rope_axes_dim"]) != config["attention_head_dim"]:
        raise ModelFileError(
            f"rope_axes_dim {config['rope_axes_dim']} must add up to the head size {config['attention_head_dim']}. "
            "Add a JSON 'config' entry with the right 'rope_axes_dim' to the file's safetensors metadata."
        )
    task_of(config["in_channels"], config["out_channels"])
    return config


def task_of(in_channels: int, out_channels: int) -> str:
    """"i2v" or "sr", from the input channels: image-to-video (and text-to-video) releases take the noisy latent,
    the image latent and a mask; the super-resolution releases add the upsampled low-resolution latent and a ones
    channel (98 = 32 + 32 + 1 + 32 + 1)."""
    if in_channels == 2 * out_channels + 1:
        return "i2v"
    if in_channels == 3 * out_channels + 2:
        return "sr"
    raise ModelFileError(
        f"This HunyuanVideo-1.5 transformer has {in_channels} input channels for {out_channels} latent channels; "
        f"the image-to-video releases have {2 * out_channels + 1} (noisy latent, image latent, mask) and the "
        f"super-resolution releases {3 * out_channels + 2}. It is another model derived from HunyuanVideo-1.5: use "
        "an hunyuanvideo1.5_*_i2v_* or hunyuanvideo1.5_*_sr_distilled_* file."
    )


def release_from_header(path: str | Path) -> tuple[str, str | None]:
    """(task "i2v" | "sr", SR output resolution or None) of a single file, from its header alone (no weights read),
    so the command line can check a file before anything loads."""
    header = files.check_safetensors(path)
    keys = [k for k in header if k != "__metadata__"]
    prefix = files.strip_prefix(keys)

    def shape(name: str) -> list:
        entry = header.get(prefix + name)
        if entry is None:
            raise ModelFileError(f"'{Path(path).name}' lacks '{name}'; it is incomplete or not HunyuanVideo-1.5.")
        return entry["shape"]

    in_channels = shape("img_in.proj.weight")[1]
    out_channels = shape("final_layer.linear.weight")[0]
    task = task_of(in_channels, out_channels)
    model_type = (header.get("__metadata__") or {}).get("model_type") or ""
    resolution = next((name for name in defaults.SR_RESOLUTIONS if f"_{name}_sr" in model_type.lower()), None)
    return task, resolution if task == "sr" else None


@dataclass
class HunyuanVideo15Transformer(LoadedTransformer):
    """``variant`` is the distillation (defaults.PLAIN / CFG_DISTILLED / STEP_DISTILLED, or SR_DISTILLED for the
    super-resolution releases); ``resolution`` 480p/720p (SR: the output's, 720p/1080p) or None."""

    resolution: str | None = None

    @property
    def super_resolution(self) -> bool:
        """The SR release, told by its input channels (the file name is never read)."""
        return task_of(int(self.model.config.in_channels), int(self.model.config.out_channels)) == "sr"

    def summary(self) -> list[str]:
        c = self.model.config
        size = f"{self.resolution} release" if self.resolution else "resolution not stored in the file"
        if self.super_resolution:
            size = (f"{self.resolution} super-resolution release (after a {defaults.SR_BASE[self.resolution]} base)"
                    if self.resolution else "output resolution not stored in the file (720p or 1080p: the "
                    "Super-Resolution node's target decides)")
        lines = [
            f"HunyuanVideo-1.5 {defaults.DISTILLATION_NAMES[self.variant]} from {self.source}",
            f"{size}; {c.num_layers} blocks, {c.num_attention_heads}x{c.attention_head_dim} heads, "
            f"{c.in_channels} input channels{', MeanFlow' if c.use_meanflow else ''}, "
            f"{str(self.compute_dtype).removeprefix('torch.')}",
        ]
        return lines


def _sr_release(overrides: dict, distillation: str | None, source: str, model_type: str | None,
                folder_config: dict | None = None):
    """(SR_DISTILLED, output resolution, notes) of a super-resolution file: its metadata may name the release
    (ComfyUI's header ``model_type: hunyuanvideo1.5_1080p_sr_distilled``, or a config ``resolution``)."""
    notes = ["Super-resolution release: read from the weights (98 input channels for the upsampled latent). Wire it "
             "to a Sample node fed by the Super-Resolution node."]
    if distillation is not None:
        notes.append("The loader's variant setting is ignored: the super-resolution releases have their own defaults.")
    release, _ = file_config.read({k: overrides[k] for k in RELEASE_KEYS if k in overrides}, SR_RELEASE_NAMES, source)
    resolution = release.get("resolution")
    if resolution is None and model_type:
        resolution = next((name for name in defaults.SR_RESOLUTIONS if f"_{name}_sr" in model_type.lower()), None)
    if resolution is None and folder_config is not None:
        target = folder_config.get("target_size")
        resolution = next((name for name, size in defaults.SR_RESOLUTIONS.items() if size == target), None)
    return defaults.SR_DISTILLED, resolution, notes


def _release(overrides: dict, distillation: str | None, source: str, meanflow: bool, folder_config: dict | None = None):
    """(distillation, resolution, notes): the widget wins, then the file's metadata, then the plain release."""
    notes = []
    release, _ = file_config.read({k: overrides[k] for k in RELEASE_KEYS if k in overrides}, RELEASE_NAMES, source)
    declared = release.get("distillation")
    if distillation is not None:
        chosen = distillation
        notes.append(f"Distillation: '{defaults.DISTILLATION_NAMES[chosen]}' from the loader's variant setting.")
    elif declared is not None:
        chosen = declared
        notes.append(f"Distillation: '{defaults.DISTILLATION_NAMES[chosen]}' from the file's metadata.")
    elif meanflow:
        chosen = defaults.STEP_DISTILLED
        notes.append("Distillation: step-distilled, read from the weights (its MeanFlow time input).")
    else:
        chosen = defaults.PLAIN
        notes.append(
            "Distillation: the file cannot tell whether it is CFG- or step-distilled; sampling defaults assume the "
            "plain I2V release. For a *_cfg_distilled or *_step_distilled file set the loader's variant accordingly."
        )
    resolution = release.get("resolution")
    if resolution is None and folder_config is not None:
        target = folder_config.get("target_size")
        resolution = next((name for name, size in defaults.RESOLUTIONS.items() if size == target), None)
    if resolution is None:
        notes.append("Resolution: not stored in the file; set the Encode node's resolution to the release's "
                     "(480p or 720p).")
    return chosen, resolution, notes


def load_single_file(path: str | Path, dtype: torch.dtype, distillation: str | None = None):
    from diffusers import HunyuanVideo15Transformer3DModel

    path = Path(path)
    source = f"'{path.name}'"
    overrides = files.metadata_config(path)
    state = files.load_state_dict(path, dtype)
    if any(k.startswith("guidance_in.") for k in state):
        raise ModelFileError(
            f"{source} has an embedded-guidance input (guidance_in.*), which diffusers' HunyuanVideo-1.5 model does "
            "not have. Use the release without it (the *_cfg_distilled files of ComfyUI's repackaged set load)."
        )
    read_notes = []
    config = infer_config({k: tuple(v.shape) for k, v in state.items()}, overrides, source, read_notes)
    if task_of(config["in_channels"], config["out_channels"]) == "sr":
        model_type = files.file_metadata(path).get("model_type")
        variant, resolution, notes = _sr_release(overrides, distillation, source, model_type)
        sizes = defaults.SR_RESOLUTIONS
    else:
        variant, resolution, notes = _release(overrides, distillation, source, config["use_meanflow"])
        notes.append(
            "Note: 1.5's image-to-video and text-to-video releases share every key, so the file cannot tell them "
            "apart. If the video ignores your image, this is a *_t2v_* file: use an hunyuanvideo1.5_*_i2v_* one."
        )
        sizes = defaults.RESOLUTIONS
    notes.extend(read_notes)
    if resolution in sizes:
        config["target_size"] = sizes[resolution]
    model = files.build_with_weights(
        HunyuanVideo15Transformer3DModel, config, original_to_diffusers(state), source, "HunyuanVideo-1.5 transformer"
    )
    use_key_mask_attention(model)
    return HunyuanVideo15Transformer(model, defaults.NAME, variant, source, dtype, notes, resolution=resolution)


def load_diffusers_folder(folder: str | Path, dtype: torch.dtype, distillation: str | None = None):
    from diffusers import HunyuanVideo15Transformer3DModel

    folder = Path(folder)
    sub = folder / "transformer"
    if not (sub / "config.json").exists():
        raise ModelFileError(f"'{folder}' has no transformer/config.json; it is not a complete diffusers folder.")
    config = json.loads((sub / "config.json").read_text())
    source = f"diffusers folder '{folder.name}'"
    if config.get("task_type", "i2v") not in ("i2v", "sr"):
        raise ModelFileError(f"{source} holds a {config.get('task_type')} transformer; use the image-to-video one.")
    if task_of(int(config.get("in_channels", 65)), int(config.get("out_channels") or config.get("in_channels", 65))) == "sr":
        variant, resolution, notes = _sr_release({}, distillation, source, None, config)
    else:
        variant, resolution, notes = _release({}, distillation, source, bool(config.get("use_meanflow")), config)
    model = HunyuanVideo15Transformer3DModel.from_pretrained(sub, dtype=dtype)
    use_key_mask_attention(model)
    return HunyuanVideo15Transformer(
        model.eval().requires_grad_(False), defaults.NAME, variant, source, dtype, notes, resolution=resolution
    )


def load_transformer(path: str | Path, dtype: torch.dtype = torch.bfloat16, distillation: str | None = None):
    path = Path(path)
    if path.is_dir():
        return load_diffusers_folder(path, dtype, distillation)
    return load_single_file(path, dtype, distillation)
