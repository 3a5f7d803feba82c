"""Loader nodes: transformer, VAE, text encoders."""

from __future__ import annotations

from pathlib import Path

from ..hunyuan_i2v import acceleration, stages, text_encoder_files, text_encoders, vae
from ..hunyuan_i2v.errors import ModelFileError
from . import comfy_bridge as comfy
from .types import CATEGORY, MODEL, TEXT_ENCODERS, VAE

DIFFUSERS_TAG = "[diffusers] "


def _choices(kind: str) -> list[str]:
    """Single files of ``kind`` plus diffusers folders, which hold every part."""
    options = comfy.list_model_files(kind) + [DIFFUSERS_TAG + f for f in comfy.list_diffusers_folders()]
    return options or [f"(no files in models/{kind} or models/diffusers)"]


def _resolve(kind: str, choice: str) -> Path:
    if choice.startswith(DIFFUSERS_TAG):
        return comfy.resolve_model_path("diffusers", choice[len(DIFFUSERS_TAG):])
    return comfy.resolve_model_path(kind, choice)


class HunyuanI2VLoadTransformer:
    DESCRIPTION = (
        "Loads the HunyuanVideo-I2V transformer from models/diffusion_models (single .safetensors) or a "
        "diffusers folder in models/diffusers. The release (v1 latent concat / v2 token replace) is read from "
        "the weights; the info output says which."
    )
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = (MODEL, "STRING")
    RETURN_NAMES = ("model", "info")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model_name": (_choices("diffusion_models"), {"tooltip": "Transformer file or diffusers folder."}),
                "weight_dtype": (list(acceleration.DTYPES), {"default": "bf16", "tooltip": "Compute precision. bf16 is what the model was trained in; fp16 can overflow to black frames."}),
                "fp8_storage": ("BOOLEAN", {"default": False, "tooltip": "Store weights in fp8 (half the memory of bf16), upcast per layer while computing."}),
                "attention": (list(acceleration.ATTENTION_BACKENDS), {"default": "native (PyTorch SDPA)", "tooltip": "Attention kernel. Others need their package installed."}),
                "offload_mode": (list(acceleration.OFFLOAD_MODES), {"default": "model", "tooltip": "; ".join(f"{k}: {v}" for k, v in acceleration.OFFLOAD_MODES.items())}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def load(self, model_name, weight_dtype, fp8_storage, attention, offload_mode, unique_id=None):
        loaded = stages.load_model(
            _resolve("diffusion_models", model_name), weight_dtype, fp8_storage, attention, offload_mode,
            comfy.torch_device(), comfy.offload_device(),
        )
        info = loaded.describe()
        comfy.node_text_sender(unique_id)(info)
        return (loaded, info)


class HunyuanI2VLoadVAE:
    DESCRIPTION = "Loads the HunyuanVideo 3D VAE from models/vae or a diffusers folder."
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = (VAE,)
    RETURN_NAMES = ("vae",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "vae_name": (_choices("vae"), {"tooltip": "hunyuan_video_vae_bf16.safetensors or a diffusers folder."}),
                "dtype": (list(acceleration.DTYPES), {"default": "bf16", "tooltip": "bf16 saves memory; fp32 is exact but twice the size."}),
            }
        }

    def load(self, vae_name, dtype):
        return (vae.load_vae(_resolve("vae", vae_name), acceleration.parse_dtype(dtype)),)


FROM_FOLDER = "(from the diffusers folder)"


def _tokenizer_dir(kind: str, folder_sub: str) -> Path:
    """Tokenizers for single files: ComfyUI's bundled ones, else a diffusers folder's."""
    bundled = comfy.bundled_tokenizer_dir(kind)
    if bundled is not None:
        return bundled
    for name in comfy.list_diffusers_folders():
        candidate = comfy.resolve_model_path("diffusers", name) / folder_sub
        if any(candidate.glob("tokenizer*.json")) or (candidate / "vocab.json").exists():
            return candidate
    raise ModelFileError(
        f"No {kind} tokenizer found: ComfyUI's bundled tokenizer folder is missing and no diffusers folder in "
        "models/diffusers has one. Put the HunyuanVideo-I2V diffusers conversion's tokenizer folders there."
    )


class HunyuanI2VLoadTextEncoders:
    DESCRIPTION = (
        "Loads llava-llama-3 (the MLLM, with its vision tower) and CLIP-L. Either pick a HunyuanVideo-I2V "
        "diffusers folder as mllm (everything comes from it), or the single files: "
        "text_encoders/llava_llama3_fp16.safetensors (or _fp8_scaled), clip_vision/llava_llama3_vision.safetensors "
        "and text_encoders/clip_l.safetensors."
    )
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = (TEXT_ENCODERS,)
    RETURN_NAMES = ("text_encoders",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "mllm": (_choices("text_encoders"), {"tooltip": "llava_llama3 file, or a diffusers folder holding all text encoders."}),
                "vision": ([FROM_FOLDER] + comfy.list_model_files("clip_vision"), {"default": FROM_FOLDER, "tooltip": "llava_llama3_vision.safetensors; needed when mllm is a single file."}),
                "clip": ([FROM_FOLDER] + comfy.list_model_files("text_encoders"), {"default": FROM_FOLDER, "tooltip": "clip_l.safetensors; needed when mllm is a single file."}),
                "dtype": (list(acceleration.DTYPES), {"default": "bf16"}),
                "fp8_storage": ("BOOLEAN", {"default": False, "tooltip": "Store the MLLM's weights in fp8 (about 8 GB instead of 16 GB), upcast per layer while encoding."}),
                "device": (["gpu", "cpu"], {"default": "gpu", "tooltip": "cpu keeps the 8 B MLLM off the GPU: slower encode, no VRAM used."}),
            }
        }

    def load(self, mllm, vision, clip, dtype, fp8_storage, device):
        encoders = self._load(mllm, vision, clip, acceleration.parse_dtype(dtype))
        encoders.run_on_cpu = device == "cpu"
        if fp8_storage:
            acceleration.enable_fp8_storage_text_encoders(encoders, acceleration.parse_dtype(dtype))
        return (encoders,)

    @staticmethod
    def _load(mllm, vision, clip, torch_dtype):
        if mllm.startswith(DIFFUSERS_TAG):
            folder = _resolve("text_encoders", mllm)
            if vision == FROM_FOLDER and clip == FROM_FOLDER:
                return text_encoders.load_diffusers_folder(folder, torch_dtype)
            raise ModelFileError(
                f"mllm is the diffusers folder '{mllm[len(DIFFUSERS_TAG):]}', which holds its own vision tower and "
                f"CLIP: set vision and clip to '{FROM_FOLDER}', or pick single files for all three."
            )
        missing = [name for name, value in (("vision", vision), ("clip", clip)) if value == FROM_FOLDER]
        if missing:
            raise ModelFileError(
                f"mllm is a single file, so {' and '.join(missing)} must be single files too: pick "
                "llava_llama3_vision.safetensors (clip_vision) and clip_l.safetensors (text_encoders)."
            )
        return text_encoder_files.load_single_files(
            _resolve("text_encoders", mllm), comfy.resolve_model_path("clip_vision", vision),
            comfy.resolve_model_path("text_encoders", clip),
            _tokenizer_dir("llama", "tokenizer"), _tokenizer_dir("clip", "tokenizer_2"), torch_dtype,
        )


class HunyuanI2VLoRA:
    DESCRIPTION = (
        "Adds a LoRA from models/loras to the transformer (kohya, original or diffusers key names). It is applied "
        "only while sampling, so other graphs using the same loaded model are not affected. Chain several. "
        "Effect LoRAs usually need their trigger word in the prompt."
    )
    CATEGORY = CATEGORY
    FUNCTION = "apply"
    RETURN_TYPES = (MODEL,)
    RETURN_NAMES = ("model",)

    @classmethod
    def INPUT_TYPES(cls):
        loras = comfy.list_model_files("loras") or ["(no files in models/loras)"]
        return {
            "required": {
                "model": (MODEL,),
                "lora_name": (loras, {"tooltip": "A HunyuanVideo LoRA .safetensors file."}),
                "strength": ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.05, "tooltip": "0 turns it off."}),
            }
        }

    def apply(self, model, lora_name, strength):
        return (stages.with_lora(model, comfy.resolve_model_path("loras", lora_name), strength),)


NODE_CLASS_MAPPINGS = {
    "HunyuanI2VLoadTransformer": HunyuanI2VLoadTransformer,
    "HunyuanI2VLoadVAE": HunyuanI2VLoadVAE,
    "HunyuanI2VLoadTextEncoders": HunyuanI2VLoadTextEncoders,
    "HunyuanI2VLoRA": HunyuanI2VLoRA,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "HunyuanI2VLoadTransformer": "HunyuanVideo I2V Load Transformer",
    "HunyuanI2VLoadVAE": "HunyuanVideo I2V Load VAE",
    "HunyuanI2VLoadTextEncoders": "HunyuanVideo I2V Load Text Encoders",
    "HunyuanI2VLoRA": "HunyuanVideo I2V LoRA",
}
