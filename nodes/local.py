"""The local path's working nodes: encode image + text, sample, decode. Both model families."""

from __future__ import annotations

from ..hunyuan_i2v import stages
from ..hunyuan_i2v.families import DISPLAY_NAMES
from ..hunyuan_i2v.hunyuan_video_13b.conditioning import DEFAULT_NEGATIVE_PROMPT
from ..hunyuan_i2v.shared import acceleration, images, sampling, video
from ..hunyuan_i2v.shared.sampling import SamplingSettings, StepInfo
from . import comfy_bridge as comfy
from .types import CATEGORY, CONDITIONING, MODEL, SEARCH_WORDS, TEXT_ENCODERS, VAE

RESOLUTIONS = ["720p", "540p", "480p", "360p"]  # 1.5 has 480p and 720p; the 13 B model 360p, 540p and 720p


class HunyuanI2VEncode:
    DESCRIPTION = (
        "Encodes the start image and the prompt for the model the text encoders belong to: the image is resized and "
        "centre-cropped to the video size, read by the vision encoder together with the prompt, and encoded by the VAE."
    )
    CATEGORY = CATEGORY
    SEARCH_ALIASES = [*SEARCH_WORDS, "encode", "text encode", "conditioning", "prompt", "start image", "first frame"]
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
                "prompt": ("STRING", {"multiline": True, "default": "", "tooltip": "What happens in the video. HunyuanVideo-1.5 renders text in \"double quotes\" as written text (glyphs)."}),
                "negative_prompt": ("STRING", {"multiline": True, "default": DEFAULT_NEGATIVE_PROMPT, "tooltip": "Used when the sampler's CFG is above 1 (HunyuanVideo-1.5 I2V; 13 B v1 true CFG)."}),
                "resolution": (RESOLUTIONS, {"default": "720p", "tooltip": "Video size from the image's aspect ratio: HunyuanVideo-1.5 480p or 720p (match the release you loaded), 13 B 360p/540p/720p. Ignored when width and height are set."}),
                "width": ("INT", {"default": 0, "min": 0, "max": images.MAX_SIDE, "step": 16, "tooltip": "0 = from resolution. Otherwise a multiple of 16."}),
                "height": ("INT", {"default": 0, "min": 0, "max": images.MAX_SIDE, "step": 16, "tooltip": "0 = from resolution. Otherwise a multiple of 16."}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def encode(self, text_encoders, vae, image, prompt, negative_prompt, resolution, width, height, unique_id=None):
        device = comfy.torch_device()
        comfy.make_room_on_device(device, stages.encode_memory_request(text_encoders, vae, device))
        comfy.check_interrupt()
        cond = stages.run_encode(
            text_encoders, vae, image, prompt, negative_prompt, resolution, width, height,
            device, comfy.offload_device(), poll=comfy.check_interrupt, on_progress=_progress_reporter(),
        )
        text = [f"{DISPLAY_NAMES[cond.family]}: {cond.width}x{cond.height}"] + cond.notes
        comfy.node_text_sender(unique_id)("\n".join(text))
        return (cond, cond.start_image)


class HunyuanI2VSample:
    DESCRIPTION = (
        "Generates the video latent with flow-matching Euler for either model family. Settings left at 0 take the "
        "loaded model's reference values (e.g. HunyuanVideo-1.5 480p step-distilled: 8 steps, shift 7, CFG 1); the "
        "node's text says what was used and which settings the model ignores."
    )
    CATEGORY = CATEGORY
    SEARCH_ALIASES = [*SEARCH_WORDS, "sampler", "ksampler", "sample", "generate", "denoise", "cache", "teacache",
                      "step distilled"]
    FUNCTION = "sample"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (MODEL,),
                "conditioning": (CONDITIONING,),
                "seed": ("INT", {"default": 0, "min": sampling.SEED_RANGE[0], "max": sampling.SEED_RANGE[1], "control_after_generate": True}),
                "steps": ("INT", {"default": 0, "min": sampling.STEPS_RANGE[0], "max": sampling.STEPS_RANGE[1], "tooltip": "0 = the model's default (50; 8 for 1.5 step-distilled)."}),
                "frames": ("INT", {"default": 121, "min": sampling.FRAMES_RANGE[0], "max": sampling.FRAMES_RANGE[1], "step": 4, "tooltip": "4n+1 frames: 121 (HunyuanVideo-1.5) or 129 (13 B) at 24 fps. 13 B v1 models return 4 fewer (the reference drops its first 4 decoded frames)."}),
                "flow_shift": ("FLOAT", {"default": 0.0, "min": sampling.FLOW_SHIFT_RANGE[0], "max": sampling.FLOW_SHIFT_RANGE[1], "step": 0.1, "tooltip": "0 = the model's default (1.5: 5 at 480p, 7 at 720p and step-distilled; 13 B: 7 with i2v stability, 17 without)."}),
                "embedded_guidance": ("FLOAT", {"default": 0.0, "min": sampling.GUIDANCE_RANGE[0], "max": sampling.GUIDANCE_RANGE[1], "step": 0.1, "tooltip": "13 B v2 only (0 = 6.0); other models ignore it."}),
                "cfg_scale": ("FLOAT", {"default": 0.0, "min": sampling.CFG_SCALE_RANGE[0], "max": sampling.CFG_SCALE_RANGE[1], "step": 0.1, "tooltip": "Classifier-free guidance with the negative prompt; 0 = the model's default (1.5 I2V: 6; distilled: 1; 13 B: 1). Above 1 doubles the work; 1 = off."}),
                "i2v_stability": ("BOOLEAN", {"default": True, "tooltip": "13 B only: start from noise leaning 0.1% towards the image for steadier motion."}),
                "cache": (list(acceleration.CACHE_MODES), {"default": "off", "tooltip": "Skip work on steps that change little: faster, slightly different video."}),
                "cache_threshold": ("FLOAT", {"default": 0.1, "min": acceleration.CACHE_THRESHOLD_RANGE[0], "max": acceleration.CACHE_THRESHOLD_RANGE[1], "step": 0.01, "tooltip": "First block cache only: higher is faster and looser (0.05-0.15)."}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def sample(self, model, conditioning, seed, steps, frames, flow_shift, embedded_guidance, cfg_scale,
               i2v_stability, cache, cache_threshold, unique_id=None):
        requested = SamplingSettings(
            seed=seed, steps=steps, num_frames=frames, flow_shift=flow_shift,
            embedded_guidance=embedded_guidance, cfg_scale=cfg_scale, i2v_stability=i2v_stability,
        )
        settings, notes = stages.resolve_settings(model, requested, conditioning)
        if cache == "off" and cache_threshold != 0.1:
            notes.append("cache_threshold is ignored: the cache is off.")
        send = comfy.node_text_sender(unique_id)
        send(_settings_text(settings, notes))
        bar = comfy.progress_bar(settings.steps)
        device = comfy.torch_device()
        preview = comfy.latent_previewer(device, model.family)

        def on_step(info: StepInfo):
            comfy.check_interrupt()
            shown = preview(info.denoised) if preview and info.denoised is not None else None
            bar.update_absolute(info.index + 1, info.total, shown)

        comfy.check_interrupt()
        comfy.make_room_on_device(device, stages.sample_memory_request(model, conditioning, requested, device),
                                  keep=[model.model])
        result = stages.run_sample(
            model, conditioning, requested, cache, cache_threshold, device, comfy.offload_device(), on_step,
            free_memory=comfy.free_memory(device), poll=comfy.check_interrupt, previews=preview is not None,
        )
        send(_settings_text(result.settings, result.notes))  # with the memory plan and what "auto" picked
        return (result.latent,)


def _progress_reporter():
    """(done, total) -> ComfyUI's progress bar, made when the stage knows its total."""
    bars = {}

    def report(done: int, total: int) -> None:
        bar = bars.get(total) or bars.setdefault(total, comfy.progress_bar(total))
        bar.update_absolute(done, total)

    return report


def _settings_text(settings: SamplingSettings, notes: list[str]) -> str:
    used = (
        f"steps {settings.steps}, shift {settings.flow_shift:g}, cfg {settings.cfg_scale:g}, "
        f"embedded guidance {settings.embedded_guidance:g}, {settings.num_frames} frames"
    )
    return "\n".join([used] + notes)


class HunyuanI2VDecode:
    DESCRIPTION = "Decodes the video latent to frames (IMAGE) and a VIDEO. Tiling keeps memory flat at any size."
    CATEGORY = CATEGORY
    SEARCH_ALIASES = [*SEARCH_WORDS, "vae decode", "decode", "video", "frames"]
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
                "tile_size": ("INT", {"default": 256, "min": 0, "max": 1024, "step": 32, "tooltip": "Tile edge in pixels; lower it if decode runs out of memory. 0 = auto: no tiles if the video fits the free GPU memory, else the largest tile that does."}),
                "fps": ("FLOAT", {"default": 24.0, "min": video.FPS_RANGE[0], "max": video.FPS_RANGE[1], "step": 1.0, "tooltip": "Frame rate of the VIDEO output (both models are trained at 24)."}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def decode(self, vae, latent, tiling, tile_size, fps, unique_id=None):
        device = comfy.torch_device()
        comfy.make_room_on_device(device, stages.decode_memory_request(vae, latent, tiling, tile_size, device))
        notes: list[str] = []
        comfy.check_interrupt()
        frames = stages.run_decode(
            vae, latent, tiling, tile_size, device, comfy.offload_device(), free_memory=comfy.free_memory(device),
            notes=notes, poll=comfy.check_interrupt, on_progress=_progress_reporter(),
        )
        comfy.node_text_sender(unique_id)("\n".join(notes))
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
