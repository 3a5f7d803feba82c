"""Loader nodes: transformer, VAE, text encoders, LoRA. Both model families; the files say which."""

from __future__ import annotations

from pathlib import Path

from ..hunyuan_i2v import loading, model_files as files
from ..hunyuan_i2v.parallel import pool
from ..hunyuan_i2v.shared import acceleration
from . import comfy_bridge as comfy
from .types import CATEGORY, MODEL, SEARCH_WORDS, TEXT_ENCODERS, VAE

DIFFUSERS_TAG = "[diffusers] "
MAX_GPUS = 8
FROM_FOLDER = "(from the diffusers folder)"


def _names(part: str) -> str:
    """The files of a part, both families, from the engine's table (the README and the workflows use it too)."""
    return "; ".join(f"{', '.join(files.names_for(family, part))} ({label})"
                     for family, label in ((files.HUNYUAN_VIDEO_15, "1.5"), (files.HUNYUAN_VIDEO_13B, "13 B")))


def _choices(kind: str) -> list[str]:
    """Single files of ``kind`` plus diffusers folders, which hold every part."""
    options = comfy.list_model_files(kind) + [DIFFUSERS_TAG + f for f in comfy.list_diffusers_folders()]
    return options or [f"(no files in models/{kind} or models/diffusers)"]


def _resolve(kind: str, choice: str) -> Path:
    if choice.startswith(DIFFUSERS_TAG):
        return comfy.resolve_model_path("diffusers", choice[len(DIFFUSERS_TAG):])
    return comfy.resolve_model_path(kind, choice)


TRANSFORMER_TIP = (
    "Transformer file or diffusers folder. ComfyUI's files: hunyuanvideo1.5_{480p,720p}_i2v[_cfg_distilled, "
    "_step_distilled]_{fp16,fp8_scaled}.safetensors (1.5, e.g. "
    f"{files.release_files(files.HUNYUAN_VIDEO_15, '480p_step_distilled')[0].name}); "
    f"{', '.join(files.names_for(files.HUNYUAN_VIDEO_13B, files.TRANSFORMER))} (13 B v2, v1). "
    "`hunyuan-i2v download` fetches them."
)


class HunyuanI2VLoadTransformer:
    DESCRIPTION = (
        "Loads the transformer of HunyuanVideo-1.5 (8.3 B) or HunyuanVideo-I2V (13 B) from models/diffusion_models "
        "(single .safetensors) or a diffusers folder in models/diffusers. The family and the release (13 B: v1 latent "
        "concat / v2 token replace; 1.5: 480p/720p, CFG-distilled, step-distilled) are read from the weights; the "
        "info output says what was found."
    )
    CATEGORY = CATEGORY
    SEARCH_ALIASES = [*SEARCH_WORDS, "load diffusion model", "unet loader", "model loader", "transformer", "fp8"]
    FUNCTION = "load"
    RETURN_TYPES = (MODEL, "STRING")
    RETURN_NAMES = ("model", "info")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model_name": (_choices("diffusion_models"), {"tooltip": TRANSFORMER_TIP}),
                "weight_dtype": (list(acceleration.DTYPES), {"default": "bf16", "tooltip": "Compute precision. bf16 is what the models were trained in; fp16 can overflow to black frames."}),
                "fp8_storage": ("BOOLEAN", {"default": False, "tooltip": "Store weights in fp8 (half the memory of bf16), upcast per layer while computing."}),
                "attention": (list(acceleration.ATTENTION_BACKENDS), {"default": "native (PyTorch SDPA)", "tooltip": "Attention kernel, tried on your GPU before the weights load. Others than native need their package installed. Both families mask their padded prompt: flash-attn and sageattention switch to their varlen kind, sdpa flash to sdpa efficient; the info says which kernel runs."}),
                "offload_mode": (list(acceleration.OFFLOAD_MODES), {"default": "model", "tooltip": "; ".join(f"{k}: {v}" for k, v in acceleration.OFFLOAD_MODES.items())}),
                "variant": (list(loading.VARIANT_CHOICES), {"default": "auto", "tooltip": "What the file cannot tell (HunyuanVideo-1.5: whether it is CFG- or step-distilled, which only changes the sampler's defaults). 'auto' reads the file's metadata; the info output says what was used."}),
                "compile_blocks": ("BOOLEAN", {"default": False, "tooltip": "torch.compile each transformer block (regional compilation): the first run pays the compilation (minutes), later steps are faster. Needs a working compiler (Triton on NVIDIA GPUs)."}),
                "gpus": ("INT", {"default": 1, "min": 1, "max": MAX_GPUS, "tooltip": "GPUs to use for each video (sequence parallel). Above 1, one worker process per GPU holds a full copy of the weights and samples a share of every video's tokens: about N times faster. The head count must divide by it: 13 B (24 heads) 2, 3, 4, 6 or 8; 1.5 (16 heads) 2, 4 or 8."}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def load(self, model_name, weight_dtype, fp8_storage, attention, offload_mode, variant="auto",
             compile_blocks=False, gpus=1, unique_id=None):
        path = _resolve("diffusion_models", model_name)
        if gpus > 1:
            loaded = pool.load_model_on_gpus(
                gpus, path, weight_dtype, fp8_storage, attention, offload_mode, variant, compile_blocks,
                device_type=comfy.torch_device().type, poll=comfy.check_interrupt,
            )
        else:
            loaded = loading.load_model(
                path, weight_dtype, fp8_storage, attention, offload_mode, comfy.torch_device(),
                comfy.offload_device(), variant=variant, compile_blocks=compile_blocks,
            )
        info = loaded.describe()
        comfy.node_text_sender(unique_id)(info)
        return (loaded, info)


class HunyuanI2VLoadVAE:
    DESCRIPTION = "Loads the video VAE of HunyuanVideo-1.5 or HunyuanVideo-I2V (13 B) from models/vae or a diffusers folder."
    CATEGORY = CATEGORY
    SEARCH_ALIASES = [*SEARCH_WORDS, "vae", "load vae", "vae loader"]
    FUNCTION = "load"
    RETURN_TYPES = (VAE,)
    RETURN_NAMES = ("vae",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "vae_name": (_choices("vae"), {"tooltip": f"{_names(files.VAE)}, or a diffusers folder."}),
                "dtype": (list(acceleration.DTYPES), {"default": "bf16", "tooltip": "bf16 saves memory; fp32 is exact but twice the size."}),
            }
        }

    def load(self, vae_name, dtype):
        return (loading.load_vae(_resolve("vae", vae_name), dtype),)


class HunyuanI2VLoadTextEncoders:
    DESCRIPTION = (
        "Loads the text and image encoders. Pick a diffusers folder as text_encoder (everything comes from it), or "
        "single files. HunyuanVideo-1.5: text_encoders/qwen_2.5_vl_7b_fp8_scaled.safetensors, "
        "clip_vision/sigclip_vision_patch14_384.safetensors, text_encoders/byt5_small_glyphxl_fp16.safetensors. "
        "HunyuanVideo-I2V (13 B): text_encoders/llava_llama3_fp8_scaled.safetensors, "
        "clip_vision/llava_llama3_vision.safetensors, text_encoders/clip_l.safetensors."
    )
    CATEGORY = CATEGORY
    SEARCH_ALIASES = [*SEARCH_WORDS, "load clip", "text encoder", "clip", "clip vision", "qwen", "llava", "byt5"]
    FUNCTION = "load"
    RETURN_TYPES = (TEXT_ENCODERS,)
    RETURN_NAMES = ("text_encoders",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "text_encoder": (_choices("text_encoders"), {"tooltip": f"The language model: {_names(files.TEXT_ENCODER)}; or a diffusers folder holding every encoder."}),
                "vision": ([FROM_FOLDER] + comfy.list_model_files("clip_vision"), {"default": FROM_FOLDER, "tooltip": f"{_names(files.VISION)}; needed when text_encoder is a single file."}),
                "text_encoder_2": ([FROM_FOLDER] + comfy.list_model_files("text_encoders"), {"default": FROM_FOLDER, "tooltip": f"{_names(files.TEXT_ENCODER_2)}; needed when text_encoder is a single file. ByT5 reads text in double quotes in the prompt."}),
                "dtype": (list(acceleration.DTYPES), {"default": "bf16"}),
                "fp8_storage": ("BOOLEAN", {"default": False, "tooltip": "Store the language model's weights in fp8 (about half the memory of bf16), upcast per layer while encoding."}),
                "device": (["gpu", "cpu"], {"default": "gpu", "tooltip": "cpu keeps the 7-8 B language model off the GPU: slower encode, no VRAM used."}),
            }
        }

    def load(self, text_encoder, vision, text_encoder_2, dtype, fp8_storage, device):
        sources = loading.TextEncoderSources(
            comfy_package=comfy.comfy_package_dir(),
            diffusers_folders=[comfy.resolve_model_path("diffusers", f) for f in comfy.list_diffusers_folders()],
        )
        if text_encoder.startswith(DIFFUSERS_TAG):
            sources.folder = _resolve("text_encoders", text_encoder)
        else:
            sources.primary = _resolve("text_encoders", text_encoder)
        if vision != FROM_FOLDER:
            sources.vision = comfy.resolve_model_path("clip_vision", vision)
        if text_encoder_2 != FROM_FOLDER:
            sources.second = comfy.resolve_model_path("text_encoders", text_encoder_2)
        return (loading.load_text_encoders(sources, dtype, fp8_storage, device),)


class HunyuanI2VLoRA:
    DESCRIPTION = (
        "Adds a LoRA from models/loras to the transformer (kohya, original or diffusers key names; either model "
        "family). It is applied only while sampling, so other graphs using the same loaded model are not affected. "
        "Chain several. Effect LoRAs usually need their trigger word in the prompt."
    )
    CATEGORY = CATEGORY
    SEARCH_ALIASES = [*SEARCH_WORDS, "lora", "load lora", "lora loader"]
    FUNCTION = "apply"
    RETURN_TYPES = (MODEL,)
    RETURN_NAMES = ("model",)

    @classmethod
    def INPUT_TYPES(cls):
        loras = comfy.list_model_files("loras") or ["(no files in models/loras)"]
        return {
            "required": {
                "model": (MODEL,),
                "lora_name": (loras, {"tooltip": "A HunyuanVideo LoRA .safetensors file of the loaded model's family."}),
                "strength": ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.05, "tooltip": "0 turns it off."}),
            }
        }

    def apply(self, model, lora_name, strength):
        return (loading.with_lora(model, comfy.resolve_model_path("loras", lora_name), strength),)


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
