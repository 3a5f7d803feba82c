"""HunyuanVideo-1.5 super-resolution nodes: load a latent upsampler; turn a base video's LATENT into the
conditioning the SR transformer samples from (the same Sample node runs it)."""

from __future__ import annotations

from ..hunyuan_i2v import stages
from ..hunyuan_i2v.hunyuan_video_15 import defaults as defaults_15, upsampler as upsampler_module
from ..hunyuan_i2v.shared import images
from . import comfy_bridge as comfy
from .types import CATEGORY, CONDITIONING, SEARCH_WORDS, TEXT_ENCODERS, UPSAMPLER, VAE

UPSAMPLER_FOLDER = "latent_upscale_models"
comfy.register_model_folder(UPSAMPLER_FOLDER)


class HunyuanI2VLoadLatentUpsampler:
    DESCRIPTION = (
        "Loads a HunyuanVideo-1.5 latent upsampler from models/latent_upscale_models: the 720p kind (480p -> 720p) or "
        "the 1080p kind (720p -> 1080p), in ComfyUI's single-file or Tencent's layout. The kind is read from the weights."
    )
    CATEGORY = CATEGORY
    SEARCH_ALIASES = [*SEARCH_WORDS, "latent upscale", "upscale model", "latent upsampler", "super resolution", "sr",
                      "1080p"]
    FUNCTION = "load"
    RETURN_TYPES = (UPSAMPLER,)
    RETURN_NAMES = ("upsampler",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "upsampler_name": (comfy.list_model_files(UPSAMPLER_FOLDER), {"tooltip": defaults_15.SR_FILES["upsampler"]}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def load(self, upsampler_name, unique_id=None):
        loaded = upsampler_module.load_upsampler(comfy.resolve_model_path(UPSAMPLER_FOLDER, upsampler_name))
        comfy.node_text_sender(unique_id)(loaded.info)
        return (loaded,)


class HunyuanI2VSuperResolution:
    DESCRIPTION = (
        "HunyuanVideo-1.5 super-resolution, step one: upsamples the base Sample node's LATENT and encodes the start "
        "image at the high size. Feed its conditioning to a second Sample node that runs an *_sr_distilled "
        "transformer (480p -> 720p with the 720p SR release, 720p -> 1080p with the 1080p one), then Decode."
    )
    CATEGORY = CATEGORY
    SEARCH_ALIASES = [*SEARCH_WORDS, "super resolution", "sr", "upscale", "video upscale", "1080p", "720p",
                      "latent upscale with model"]
    FUNCTION = "prepare"
    RETURN_TYPES = (CONDITIONING,)
    RETURN_NAMES = ("conditioning",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "conditioning": (CONDITIONING, {"tooltip": "The Encode node's conditioning (the same prompt and image)."}),
                "latent": ("LATENT", {"tooltip": "The base Sample node's LATENT (480p or 720p HunyuanVideo-1.5)."}),
                "upsampler": (UPSAMPLER,),
                "vae": (VAE,),
                "image": ("IMAGE", {"tooltip": "The original start image: encoded again at the high size."}),
                "resolution": (list(defaults_15.SR_RESOLUTIONS), {"default": "1080p", "tooltip": "720p after a 480p base, 1080p after a 720p base; the size is Tencent's bucket closest to the base video's aspect (1280x720 -> 1904x1072). Ignored when width and height are set."}),
                "width": ("INT", {"default": 0, "min": 0, "max": images.MAX_SIDE, "step": 16, "tooltip": "0 = from resolution. Otherwise a multiple of 16, larger than the base video."}),
                "height": ("INT", {"default": 0, "min": 0, "max": images.MAX_SIDE, "step": 16, "tooltip": "0 = from resolution. Otherwise a multiple of 16, larger than the base video."}),
                "noise_augmentation": ("FLOAT", {"default": defaults_15.SR_NOISE_AUGMENTATION, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip": "Share of noise mixed into the upsampled latent (Tencent: 0.7). Higher lets the SR model redraw more detail; lower keeps closer to the base video."}),
            },
            "optional": {
                "text_encoders": (TEXT_ENCODERS, {"tooltip": "Optional: SigLIP reads the start image at the high size, as Tencent's pipeline does. Without it the Encode node's image tokens are reused."}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def prepare(self, conditioning, latent, upsampler, vae, image, resolution, width, height, noise_augmentation,
                text_encoders=None, unique_id=None):
        device = comfy.torch_device()
        comfy.make_room_on_device(device, stages.super_resolution_memory_request(
            conditioning, latent, upsampler, vae, resolution, width, height, text_encoders, device))
        comfy.check_interrupt()
        cond = stages.run_super_resolution(
            conditioning, latent, upsampler, vae, image, resolution, width, height, noise_augmentation, text_encoders,
            device, comfy.offload_device(), poll=comfy.check_interrupt,
        )
        comfy.node_text_sender(unique_id)("\n".join([f"{cond.width}x{cond.height}, {cond.num_frames} frames"]
                                                     + cond.notes))
        return (cond,)


NODE_CLASS_MAPPINGS = {
    "HunyuanI2VLoadLatentUpsampler": HunyuanI2VLoadLatentUpsampler,
    "HunyuanI2VSuperResolution": HunyuanI2VSuperResolution,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "HunyuanI2VLoadLatentUpsampler": "HunyuanVideo I2V Load Latent Upsampler (1.5 SR)",
    "HunyuanI2VSuperResolution": "HunyuanVideo I2V Super-Resolution (1.5, 720p/1080p)",
}
