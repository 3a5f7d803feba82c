"""Loading the parts of a model, for the nodes and the command line alike.

The family of every part is read from the file or folder; the family's own
loader does the rest. Placement and storage choices (fp8, CPU text encoders,
offloading, attention) are applied here, so no node decides them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from . import families
from .errors import ModelFileError, UserInputError
from .shared import acceleration, files, fp8_scaled, kernels, loras, sequence_parallel
from .shared.tokenizers import find_tokenizer_dir


# What a checkpoint cannot tell about itself (HunyuanVideo-1.5's distillation only changes the
# sampler's defaults, not a single tensor): "auto" reads the file's metadata, else the plain release.
VARIANT_CHOICES = {
    "auto": None,
    "i2v": "i2v",
    "i2v cfg-distilled": "cfg_distilled",
    "i2v step-distilled": "step_distilled",
}


def load_model(
    path: str | Path,
    weight_dtype: str = "bf16",
    fp8_storage: bool = False,
    attention: str = "native (PyTorch SDPA)",
    offload_mode: str = "model",
    device: torch.device | None = None,
    offload_device: torch.device | None = None,
    variant: str = "auto",
    compile_blocks: bool = False,
    ranks=None,
):
    """The transformer of either family, with its speed and memory options applied.

    ``ranks`` (parallel.ranks.Ranks): this process is one of several sharing each video's tokens.
    """
    check_choices(offload_mode, variant)
    dtype = acceleration.parse_dtype(weight_dtype)
    path = Path(path)
    name = family_for_slot(path, "transformer", "the transformer", "diffusion_models")
    notes = []
    if ranks is not None and attention != sequence_parallel.PARALLEL_ATTENTION:
        notes.append(f"Attention: '{attention}' cannot be split across GPUs with the key masks this needs; "
                     f"using '{sequence_parallel.PARALLEL_ATTENTION}'.")
        attention = sequence_parallel.PARALLEL_ATTENTION
    # Every choice is tried on the device before the weights load, so a refusal costs no wait.
    run_device = device or torch.device("cpu")
    if fp8_storage:
        kernels.check_fp8_device(run_device)
    if compile_blocks:
        kernels.check_compile(run_device)
    acceleration.usable_attention_backend(attention, name, run_device, dtype)
    loaded = families.family(name).load_transformer(path, dtype, VARIANT_CHOICES[variant])
    loaded.offload_mode = offload_mode
    loaded.notes.extend(notes)
    loaded.notes.extend(acceleration.set_attention_backend(loaded.model, attention, name, run_device, dtype))
    if fp8_storage:
        kept = [] if path.is_dir() else fp8_scaled.keep_file_scales(
            loaded.model, path, families.family(name).original_to_diffusers, dtype,
            families.family(name).SHAPE_KEYS)
        acceleration.enable_fp8_storage(loaded.model, dtype, skip=kept)
        loaded.notes.append("Weights stored in fp8 (e4m3fn), computed in " + weight_dtype + "." + (
            f" {len(kept)} layers keep the file's own fp8 values and scales." if kept else ""))
    if compile_blocks:
        count = acceleration.compile_blocks(loaded.model)
        loaded.notes.append(f"{count} blocks compiled with torch.compile: the first run (and a new video size) pays "
                            "the compilation, later steps run faster.")
    if offload_mode == "block" and device is not None:
        acceleration.enable_block_offload(loaded.model, device, offload_device or torch.device("cpu"))
    if ranks is not None:
        sequence_parallel.enable(loaded.model, ranks.rank, ranks.world)
        loaded.notes.append(parallel_note(loaded, ranks.world))
    return loaded


def attention_heads(path: Path) -> int | None:
    """The transformer's attention heads, from a folder's config or a file's header (no weights read).

    Both families' files name the first block's query norm, one weight per head channel, after the
    image embedder, whose output is heads x head size. None when the file does not say.
    """
    if path.is_dir():
        config = path / "transformer" / "config.json"
        return json.loads(config.read_text()).get("num_attention_heads") if config.is_file() else None
    shapes = {key: info.get("shape") for key, info in files.check_safetensors(path).items() if key != "__metadata__"}
    prefix = files.strip_prefix(list(shapes))
    hidden = (shapes.get(prefix + "img_in.proj.weight") or [None])[0]
    head = (shapes.get(prefix + "double_blocks.0.img_attn_q_norm.weight") or [None])[0]
    return hidden // head if hidden and head else None


def parallel_note(loaded, gpus: int) -> str:
    weights = acceleration.module_bytes([loaded.model]) / 1024**3
    return (f"Split over {gpus} GPUs (sequence parallel): each GPU holds the whole transformer, {weights:.1f} GB of "
            "weights, and a share of every video's tokens.")


def check_choices(offload_mode: str, variant: str) -> None:
    if offload_mode not in acceleration.OFFLOAD_MODES:
        raise UserInputError(f"Unknown offload mode '{offload_mode}'. Use one of {', '.join(acceleration.OFFLOAD_MODES)}.")
    if variant not in VARIANT_CHOICES:
        raise UserInputError(f"Unknown variant '{variant}'. Use one of {', '.join(VARIANT_CHOICES)}.")


def load_vae(path: str | Path, dtype: str | torch.dtype = "bf16"):
    """The VAE of either family; tiling is chosen by each encode and decode call, not here."""
    dtype = acceleration.parse_dtype(dtype) if isinstance(dtype, str) else dtype
    path = Path(path)
    name = family_for_slot(path, "vae", "the VAE", "vae")
    return families.family(name).load_vae(path, dtype)


def with_lora(transformer, path: str | Path, strength: float):
    """A view of ``transformer`` that samples with one more LoRA; the original is unchanged."""
    path = Path(path)
    files.check_safetensors(path)
    return replace(transformer, loras=transformer.loras + (loras.LoraSpec(path, strength),), notes=list(transformer.notes))


@dataclass
class TextEncoderSources:
    """Where a family's text encoders and tokenizers come from."""

    folder: Path | None = None  # a diffusers folder holding every part
    primary: Path | None = None  # the language model file (llava_llama3 / qwen_2.5_vl_7b)
    vision: Path | None = None  # llava_llama3_vision / sigclip_vision_patch14_384
    second: Path | None = None  # clip_l / byt5_small_glyphxl
    comfy_package: Path | None = None  # a ComfyUI ``comfy`` folder: its bundled tokenizers
    diffusers_folders: list[Path] = field(default_factory=list)  # fallbacks for tokenizers

    def tokenizer(self, kind: str) -> Path:
        return find_tokenizer_dir(kind, self.comfy_package, self.diffusers_folders)


def load_text_encoders(
    sources: TextEncoderSources, dtype: str = "bf16", fp8_storage: bool = False, device: str = "gpu"
):
    """Text encoders of the family the language model file (or folder) belongs to."""
    if device not in ("gpu", "cpu"):
        raise UserInputError(f"Text encoder device must be 'gpu' or 'cpu', got '{device}'.")
    torch_dtype = acceleration.parse_dtype(dtype)
    if sources.folder is not None:
        if sources.primary or sources.vision or sources.second:
            raise ModelFileError(
                f"'{sources.folder.name}' is a diffusers folder, which holds its own text encoders, vision model and "
                "tokenizers: leave the other text encoder slots on '(from the diffusers folder)', or pick single "
                "files for all of them."
            )
        name = families.of_folder(sources.folder)
    else:
        if sources.primary is None:
            raise ModelFileError("Pick the language model file (llava_llama3 or qwen_2.5_vl_7b) or a diffusers folder.")
        name = family_for_slot(sources.primary, "text_encoders", "the language model", "text_encoders")
        fam = families.family(name)
        for slot, path, folder in (("vision", sources.vision, "clip_vision"), ("text_encoder_2", sources.second, "text_encoders")):
            wanted = fam.TEXT_ENCODER_SLOTS[slot]
            if path is None:
                raise ModelFileError(
                    f"'{sources.primary.name}' is {fam.DISPLAY_NAME}'s language model, which also needs {wanted} "
                    f"(models/{folder}/). Pick it in the {slot} slot."
                )
            other, other_slot, role = families.of_file(path)
            if (other, other_slot) != (name, slot):
                raise files.wrong_role_error(path, role, f"{wanted} for {fam.DISPLAY_NAME}", folder)
    encoders = families.family(name).load_text_encoders(sources, torch_dtype)
    encoders.run_on_cpu = device == "cpu"
    if fp8_storage:
        kept = []
        if sources.primary is not None and sources.primary.is_file():  # ComfyUI's *_fp8_scaled language models
            kept = fp8_scaled.keep_file_scales(encoders.large_module, sources.primary,
                                               _language_model_names(encoders.large_module), torch_dtype)
        acceleration.enable_fp8_storage_text_encoders(encoders, torch_dtype, skip=kept)
    return encoders


def _language_model_names(module: torch.nn.Module):
    """File key names (``model.layers.N...``, or llava's ``language_model.model.layers.N...``) -> the names of the
    loaded language model inside ``module`` (the decoder stack is the module holding embed_tokens and layers)."""
    inner = next((name for name, m in module.named_modules() if hasattr(m, "embed_tokens") and hasattr(m, "layers")),
                 "")
    prefix = inner + "." if inner else ""

    def rename(state: dict) -> dict:
        out = {}
        for key, tensor in state.items():
            for wrapper in ("language_model.model.", "model."):
                if key.startswith(wrapper):
                    key = key[len(wrapper):]
                    break
            out[prefix + key] = tensor
        return out

    return rename


def family_for_slot(path: Path, slot: str, what: str, folder: str) -> str:
    """The family of a file given for ``slot``; a clear error when it is another slot's file or no Hunyuan part."""
    if path.is_dir():
        return families.of_folder(path)
    files.check_safetensors(path)
    name, found_slot, role = families.of_file(path)
    if name is None or found_slot != slot:
        if role == "hunyuan15_transformer_diffusers" or role == "hunyuan_transformer_diffusers":
            raise ModelFileError(
                f"'{path.name}' holds a transformer in diffusers' names without its config. Put it in a diffusers "
                "folder (transformer/config.json beside it) and pick that folder instead."
            )
        raise files.wrong_role_error(path, role, f"{what} of HunyuanVideo-I2V (13 B) or HunyuanVideo-1.5", folder)
    return name
