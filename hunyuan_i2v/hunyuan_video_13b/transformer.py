"""Loading the HunyuanVideo-I2V transformer from a single file or a diffusers folder.

The architecture and the release (v1 latent concat / v2 token replace) are read
from the tensors, never from the file name, so any size loads.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..shared import file_config, files
from ..errors import ModelFileError
from ..shared.transformer import LoadedTransformer

LATENT_CONCAT = "latent_concat"  # v1: 33 input channels, true CFG
TOKEN_REPLACE = "token_replace"  # v2: 16 channels + guidance embedder
VARIANT_NAMES = {LATENT_CONCAT: "v1 (latent concat)", TOKEN_REPLACE: "v2 (token replace)"}

# What tensor shapes cannot tell: the real model's values, overridable per file
# through a JSON "config" entry in the safetensors metadata.
REAL_MODEL_DEFAULTS = {"rope_theta": 256.0, "rope_axes_dim": (16, 56, 56), "qk_norm": "rms_norm"}


FAMILY = "hunyuan_video_13b"


class HunyuanVideoTransformer(LoadedTransformer):
    """The 13 B transformer; ``variant`` is LATENT_CONCAT (v1) or TOKEN_REPLACE (v2)."""

    @property
    def latent_channels(self) -> int:
        config = self.model.config
        return (config.in_channels - 1) // 2 if self.variant == LATENT_CONCAT else config.in_channels

    @property
    def uses_embedded_guidance(self) -> bool:
        return bool(self.model.config.guidance_embeds)

    def summary(self) -> list[str]:
        c = self.model.config
        return [
            f"HunyuanVideo-I2V (13 B family) {VARIANT_NAMES[self.variant]} from {self.source}",
            f"{c.num_layers} double + {c.num_single_layers} single blocks, "
            f"{c.num_attention_heads}x{c.attention_head_dim} heads, {c.in_channels} input channels, "
            f"{str(self.compute_dtype).removeprefix('torch.')}",
        ]


# The file's config metadata, in diffusers' constructor names or Tencent's config names; sizes are only checked.
METADATA_NAMES = (
    file_config.Name("in_channels", derived=True),
    file_config.Name("out_channels", derived=True),
    file_config.Name("num_attention_heads", ("heads_num", "num_heads"), derived=True),
    file_config.Name("attention_head_dim", ("head_dim",), derived=True),
    file_config.Name("hidden_size", derived=True),
    file_config.Name("num_layers", ("mm_double_blocks_depth",), derived=True),
    file_config.Name("num_single_layers", ("mm_single_blocks_depth",), derived=True),
    file_config.Name("num_refiner_layers", derived=True),
    file_config.Name("mlp_ratio", ("mlp_width_ratio",), "float", derived=True),
    file_config.Name("patch_size", derived=True),
    file_config.Name("patch_size_t", derived=True),
    file_config.Name("guidance_embeds", ("guidance_embed",), "bool", derived=True),
    file_config.Name("text_embed_dim", ("text_states_dim",), derived=True),
    file_config.Name("pooled_projection_dim", ("text_states_dim_2",), derived=True),
    file_config.Name("rope_theta", kind="float"),
    file_config.Name("rope_axes_dim", ("rope_dim_list",), "ints"),
    file_config.Name("qk_norm", ("qk_norm_type",), "str", convert=file_config.qk_norm_name,
                     choices=file_config.QK_NORMS),
    file_config.Name("image_condition_type", kind="str", choices=(LATENT_CONCAT, TOKEN_REPLACE)),
)


def infer_config(keys_shapes: dict[str, tuple], overrides: dict, source: str = "The transformer file",
                 notes: list | None = None) -> dict:
    """Transformer config from original-layout tensor shapes plus the file's config metadata (either dialect);
    ignored entries are noted in ``notes``."""
    keys = list(keys_shapes)

    def shape(key: str) -> tuple:
        if key not in keys_shapes:
            raise ModelFileError(f"The transformer file lacks '{key}'; it is incomplete or not HunyuanVideo.")
        return keys_shapes[key]

    hidden, in_channels, patch_t, patch, _ = shape("img_in.proj.weight")
    head_dim = shape("double_blocks.0.img_attn_q_norm.weight")[0]
    out_features = shape("final_layer.linear.weight")[0]
    config = {
        "in_channels": in_channels,
        "out_channels": out_features // (patch_t * patch * patch),
        "num_attention_heads": hidden // head_dim,
        "attention_head_dim": head_dim,
        "num_layers": files.block_count(keys, "double_blocks."),
        "num_single_layers": files.block_count(keys, "single_blocks."),
        "num_refiner_layers": files.block_count(keys, "txt_in.individual_token_refiner.blocks."),
        "mlp_ratio": shape("double_blocks.0.img_mlp.fc1.weight")[0] / hidden,
        "patch_size": patch,
        "patch_size_t": patch_t,
        "guidance_embeds": any(k.startswith("guidance_in.") for k in keys),
        "text_embed_dim": shape("txt_in.input_embedder.weight")[1],
        "pooled_projection_dim": shape("vector_in.in_layer.weight")[1],
        **REAL_MODEL_DEFAULTS,
    }
    overrides = dict(overrides)
    if isinstance(overrides.get("patch_size"), (list, tuple)) and len(overrides["patch_size"]) == 3:
        overrides["patch_size_t"], overrides["patch_size"], _ = overrides["patch_size"]  # Tencent's [t, h, w]
    from_shapes = {k: v for k, v in config.items() if k not in REAL_MODEL_DEFAULTS} | {"hidden_size": hidden}
    values, ignored = file_config.read(overrides, METADATA_NAMES, source, from_shapes)
    if notes is not None:
        notes.extend(ignored)
    config.update(values)
    config["rope_axes_dim"] = tuple(config["rope_axes_dim"])
    if sum(config["rope_axes_dim"]) != config["attention_head_dim"]:
        raise ModelFileError(
            f"rope_axes_dim {config['rope_axes_dim']} must add up to the head size {config['attention_head_dim']}. "
            "Add a JSON 'config' entry with the right 'rope_axes_dim' to the file's safetensors metadata."
        )
    return config


def variant_from_config(config: dict, source: str) -> tuple[str, list[str]]:
    """Which release a checkpoint is, and what the file could not tell."""
    declared = config.get("image_condition_type")
    channels, guidance = config["in_channels"], config["guidance_embeds"]
    if declared in (LATENT_CONCAT, TOKEN_REPLACE):
        return declared, []
    if channels == 2 * config["out_channels"] + 1:
        return LATENT_CONCAT, []
    if channels == config["out_channels"] and guidance:
        return TOKEN_REPLACE, [
            "Note: v2 (token replace) and the text-to-video HunyuanVideo share every key, so the file cannot tell "
            "them apart. If the video ignores your image, this is the text-to-video model: use "
            "hunyuan_video_v2_replace_image_to_video_720p_bf16.safetensors."
        ]
    if channels == config["out_channels"]:
        raise ModelFileError(
            f"{source} has {channels} input channels and no guidance embedder: it is not an image-to-video "
            "HunyuanVideo checkpoint. Use the I2V v1 (33 channels) or v2 (16 channels + guidance) file."
        )
    raise ModelFileError(
        f"{source} has {channels} input channels; HunyuanVideo-I2V has 33 (v1) or 16 (v2). It is another model "
        "built on HunyuanVideo (e.g. SkyReels) that this pack does not support."
    )


def original_to_diffusers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename Tencent's original keys to diffusers' names.

    diffusers' own converter hard-codes hidden size 3072 when splitting the
    single blocks' fused ``linear1``; we split those tensors with the size read
    from the checkpoint first and let the library convert everything else.
    """
    from diffusers.loaders.single_file_utils import convert_hunyuan_video_transformer_to_diffusers

    state = dict(state)
    hidden = state["img_in.proj.weight"].shape[0]
    for key in [k for k in state if k.startswith("single_blocks.") and ".linear1." in k]:
        tensor = state.pop(key)
        block, kind = key.removeprefix("single_blocks.").split(".linear1.")
        q, k, v, mlp = torch.split(tensor, (hidden, hidden, hidden, tensor.shape[0] - 3 * hidden), dim=0)
        base = f"single_transformer_blocks.{block}"
        for name, part in (("attn.to_q", q), ("attn.to_k", k), ("attn.to_v", v), ("proj_mlp", mlp)):
            state[f"{base}.{name}.{kind}"] = part
    return convert_hunyuan_video_transformer_to_diffusers(state)


def load_single_file(path: str | Path, dtype: torch.dtype) -> LoadedTransformer:
    from diffusers import HunyuanVideoTransformer3DModel

    path = Path(path)
    header = files.check_safetensors(path)
    keys = [k for k in header if k != "__metadata__"]
    role = files.detect_role(keys)
    if role not in ("hunyuan_transformer", "hunyuan_transformer_diffusers"):
        raise files.wrong_role_error(path, role, "the HunyuanVideo-I2V transformer", "diffusion_models")
    overrides = files.metadata_config(path)
    state = files.load_state_dict(path, dtype)
    source = f"'{path.name}'"
    if role == "hunyuan_transformer":
        shapes = {k: tuple(v.shape) for k, v in state.items()}
        read_notes = []
        config = infer_config(shapes, overrides, source, read_notes)
        variant, notes = variant_from_config(config, source)
        notes = notes + read_notes
        state = original_to_diffusers(state)
    else:
        raise ModelFileError(
            f"{source} holds a transformer in diffusers' names without its config. Put it in a diffusers folder "
            "(transformer/config.json beside it) and pick that folder instead."
        )
    config["image_condition_type"] = variant
    model = files.build_with_weights(HunyuanVideoTransformer3DModel, config, state, source, "HunyuanVideo transformer")
    return HunyuanVideoTransformer(model, FAMILY, variant, source, dtype, notes)


def load_diffusers_folder(folder: str | Path, dtype: torch.dtype) -> LoadedTransformer:
    from diffusers import HunyuanVideoTransformer3DModel

    folder = Path(folder)
    check_i2v_pipeline(folder)
    sub = folder / "transformer"
    if not (sub / "config.json").exists():
        raise ModelFileError(f"'{folder}' has no transformer/config.json; it is not a complete diffusers folder.")
    config = json.loads((sub / "config.json").read_text())
    source = f"diffusers folder '{folder.name}'"
    variant = config.get("image_condition_type")
    if variant not in (LATENT_CONCAT, TOKEN_REPLACE):
        # diffusers writes the condition type into I2V conversions; a folder without it is text-to-video.
        raise ModelFileError(
            f"{source} is the text-to-video HunyuanVideo (its transformer config has no image_condition_type). "
            "Use a HunyuanVideo-I2V diffusers folder."
        )
    model = HunyuanVideoTransformer3DModel.from_pretrained(sub, dtype=dtype)
    return HunyuanVideoTransformer(model.eval().requires_grad_(False), FAMILY, variant, source, dtype)


def check_i2v_pipeline(folder: Path) -> None:
    index = folder / "model_index.json"
    if not index.exists():
        raise ModelFileError(f"'{folder}' is not a diffusers folder (no model_index.json).")
    cls = json.loads(index.read_text()).get("_class_name", "")
    if cls and cls != "HunyuanVideoImageToVideoPipeline":
        raise ModelFileError(
            f"diffusers folder '{folder.name}' holds a {cls}, not HunyuanVideoImageToVideoPipeline. "
            "Use the HunyuanVideo-I2V conversion (model_index.json names HunyuanVideoImageToVideoPipeline)."
        )


def load_transformer(path: str | Path, dtype: torch.dtype = torch.bfloat16) -> LoadedTransformer:
    """Load from a .safetensors file or a diffusers folder (either is accepted)."""
    path = Path(path)
    if path.is_dir():
        return load_diffusers_folder(path, dtype)
    return load_single_file(path, dtype)
