"""The local path's working nodes: encode image + text, sample, decode."""

from __future__ import annotations

from ..hunyuan_i2v import acceleration, images, sampling, stages
from ..hunyuan_i2v.conditioning import DEFAULT_NEGATIVE_PROMPT
from ..hunyuan_i2v.errors import UserInputError
from . import comfy_bridge as comfy
from .types import CATEGORY, CONDITIONING, MODEL, TEXT_ENCODERS, VAE

LATENT_INFO_KEY = "hunyuan_i2v"  # extra entry in the LATENT dict: frames to drop at decode


class HunyuanI2VEncode:
    DESCRIPTION = (
        "Encodes the start image and the prompt: the image is resized and centre-cropped to the video size, "
        "read by the MLLM's vision tower together with the prompt, and encoded by the VAE."
    )
    CATEGORY = CATEGORY
    FUNCTION = "encode"
    RETURN_TYPES = (CONDITIONING, "IMAGE")
    RETURN_NAMES = ("conditioning", "start_image")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "text_encoders": (TEXT_ENCODERS,),
                "vae": (VAE,),
                "image": ("IMAGE", {"tooltip": "One start image. Alpha is composited on white; grayscale is expanded to RGB."}),
                "prompt": ("STRING", {"multiline": True, "default": "", "tooltip": "What happens in the video."}),
                "negative_prompt": ("STRING", {"multiline": True, "default": DEFAULT_NEGATIVE_PROMPT, "tooltip": "Used only when the sampler's cfg_scale is above 1 (v1 true CFG)."}),
                "resolution": (list(images.BUCKET_BASE_SIZES), {"default": "720p", "tooltip": "Video size from the image's aspect ratio, on a 32 px grid. Ignored when width and height are set."}),
                "width": ("INT", {"default": 0, "min": 0, "max": 4096, "step": 16, "tooltip": "0 = from resolution. Otherwise a multiple of 16."}),
                "height": ("INT", {"default": 0, "min": 0, "max": 4096, "step": 16, "tooltip": "0 = from resolution. Otherwise a multiple of 16."}),
            }
        }

    def encode(self, text_encoders, vae, image, prompt, negative_prompt, resolution, width, height):
        on_gpu = [vae.model] + ([] if text_encoders.run_on_cpu else text_encoders.modules())
        comfy.make_room_on_device(comfy.torch_device(), acceleration.module_bytes(on_gpu))
        cond = stages.run_encode(
            text_encoders, vae, image, prompt, negative_prompt, resolution, width, height,
            comfy.torch_device(), comfy.offload_device(),
        )
        return (cond, cond.start_image)


class HunyuanI2VSample:
    DESCRIPTION = (
        "Generates the video latent with flow-matching Euler. v2 models use embedded guidance; v1 models use "
        "cfg_scale with the negative prompt (1 = off)."
    )
    CATEGORY = CATEGORY
    FUNCTION = "sample"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (MODEL,),
                "conditioning": (CONDITIONING,),
                "seed": ("INT", {"default": 0, "min": 0, "max": sampling.MAX_SEED, "control_after_generate": True}),
                "steps": ("INT", {"default": 50, "min": 1, "max": 200, "tooltip": "50 in the reference; 30 is a fair trade."}),
                "frames": ("INT", {"default": 129, "min": 1, "max": 1025, "step": 4, "tooltip": "4n+1 frames; 129 = 5.4 s at 24 fps. v1 models return 4 fewer (the reference drops its first 4 decoded frames)."}),
                "flow_shift": ("FLOAT", {"default": 7.0, "min": 0.0, "max": 100.0, "step": 0.1, "tooltip": "7 with i2v stability on, 17 with it off (reference advice)."}),
                "embedded_guidance": ("FLOAT", {"default": 6.0, "min": 0.0, "max": 30.0, "step": 0.1, "tooltip": "Guidance strength for v2 models (ignored by v1, which has no guidance embedder)."}),
                "cfg_scale": ("FLOAT", {"default": 1.0, "min": 1.0, "max": 30.0, "step": 0.1, "tooltip": "True CFG with the negative prompt; above 1 doubles the work."}),
                "i2v_stability": ("BOOLEAN", {"default": True, "tooltip": "Start from noise leaning 0.1% towards the image: steadier motion."}),
                "cache": (list(acceleration.CACHE_MODES), {"default": "off", "tooltip": "Skip work on steps that change little: faster, slightly different video."}),
                "cache_threshold": ("FLOAT", {"default": 0.1, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "First block cache only: higher is faster and looser (0.05-0.15)."}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def sample(self, model, conditioning, seed, steps, frames, flow_shift, embedded_guidance, cfg_scale,
               i2v_stability, cache, cache_threshold, unique_id=None):
        settings = sampling.SamplingSettings(
            seed=seed, steps=steps, num_frames=frames, flow_shift=flow_shift,
            embedded_guidance=embedded_guidance, cfg_scale=cfg_scale, i2v_stability=i2v_stability,
        )
        sampling.check_frames(frames)
        bar = comfy.progress_bar(steps)
        device = comfy.torch_device()
        preview = comfy.latent_previewer(device)

        def on_step(info: sampling.StepInfo):
            comfy.check_interrupt()
            bar.update_absolute(info.index + 1, info.total, preview(info.denoised) if preview else None)

        comfy.check_interrupt()
        if not acceleration.has_group_offload(model.model):
            comfy.make_room_on_device(device, acceleration.module_bytes([model.model]))
        latents, drop = stages.run_sample(
            model, conditioning, settings, cache, cache_threshold, device, comfy.offload_device(), on_step
        )
        return ({"samples": latents / conditioning.latent_scale, LATENT_INFO_KEY: {"drop_frames": drop}},)


class HunyuanI2VDecode:
    DESCRIPTION = "Decodes the video latent to frames (IMAGE) and a VIDEO. Tiling keeps memory flat at any size."
    CATEGORY = CATEGORY
    FUNCTION = "decode"
    RETURN_TYPES = ("IMAGE", "VIDEO")
    RETURN_NAMES = ("frames", "video")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "vae": (VAE,),
                "latent": ("LATENT",),
                "tiling": ("BOOLEAN", {"default": True, "tooltip": "Decode in overlapping tiles; turn off only with memory to spare."}),
                "tile_size": ("INT", {"default": 256, "min": 64, "max": 1024, "step": 32, "tooltip": "Tile edge in pixels; lower it if decode runs out of memory."}),
                "fps": ("FLOAT", {"default": 24.0, "min": 1.0, "max": 120.0, "step": 1.0, "tooltip": "Frame rate of the VIDEO output (the model is trained at 24)."}),
            }
        }

    def decode(self, vae, latent, tiling, tile_size, fps):
        if not isinstance(latent, dict) or "samples" not in latent:
            raise UserInputError("latent must be a LATENT from the HunyuanVideo I2V sampler.")
        drop = int(latent.get(LATENT_INFO_KEY, {}).get("drop_frames", 0))
        comfy.make_room_on_device(comfy.torch_device(), acceleration.module_bytes([vae.model]))
        frames = stages.run_decode(
            vae, latent["samples"].float() * vae.scaling_factor, drop, tiling, tile_size,
            comfy.torch_device(), comfy.offload_device(),
        )
        return (frames, comfy.make_video(frames, fps))


NODE_CLASS_MAPPINGS = {
    "HunyuanI2VEncode": HunyuanI2VEncode,
    "HunyuanI2VSample": HunyuanI2VSample,
    "HunyuanI2VDecode": HunyuanI2VDecode,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "HunyuanI2VEncode": "HunyuanVideo I2V Encode Image + Text",
    "HunyuanI2VSample": "HunyuanVideo I2V Sample",
    "HunyuanI2VDecode": "HunyuanVideo I2V Decode",
}
