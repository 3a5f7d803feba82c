"""Loader nodes: transformer, VAE, text encoders."""

from __future__ import annotations

from pathlib import Path

from ..hunyuan_i2v import acceleration, stages, text_encoders, vae
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


class HunyuanI2VLoadTextEncoders:
    DESCRIPTION = (
        "Loads llava-llama-3 (with its vision tower) and CLIP-L with their tokenizers from a HunyuanVideo-I2V "
        "diffusers folder in models/diffusers."
    )
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = (TEXT_ENCODERS,)
    RETURN_NAMES = ("text_encoders",)

    @classmethod
    def INPUT_TYPES(cls):
        folders = comfy.list_diffusers_folders() or ["(no folders in models/diffusers)"]
        return {
            "required": {
                "diffusers_folder": (folders, {"tooltip": "A HunyuanVideo-I2V diffusers folder (text_encoder, tokenizer, text_encoder_2, tokenizer_2, image_processor)."}),
                "dtype": (list(acceleration.DTYPES), {"default": "bf16"}),
            }
        }

    def load(self, diffusers_folder, dtype):
        folder = comfy.resolve_model_path("diffusers", diffusers_folder)
        return (text_encoders.load_diffusers_folder(folder, acceleration.parse_dtype(dtype)),)


NODE_CLASS_MAPPINGS = {
    "HunyuanI2VLoadTransformer": HunyuanI2VLoadTransformer,
    "HunyuanI2VLoadVAE": HunyuanI2VLoadVAE,
    "HunyuanI2VLoadTextEncoders": HunyuanI2VLoadTextEncoders,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "HunyuanI2VLoadTransformer": "HunyuanVideo I2V Load Transformer",
    "HunyuanI2VLoadVAE": "HunyuanVideo I2V Load VAE",
    "HunyuanI2VLoadTextEncoders": "HunyuanVideo I2V Load Text Encoders",
}
