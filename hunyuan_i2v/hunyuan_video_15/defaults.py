"""HunyuanVideo-1.5's reference settings (Tencent's release notes; diffusers' pipeline)."""

from __future__ import annotations

NAME = "hunyuan_video_15"
DISPLAY_NAME = "HunyuanVideo-1.5 (8.3 B)"

# Quality level -> target size in pixels (the transformer config's ``target_size``): the video
# has about target_size^2 pixels, on the VAE's 16 px grid, with the image's aspect ratio.
RESOLUTIONS = {"480p": 640, "720p": 960}
MODEL_GRID = 16  # VAE 16x times patch 1
DEFAULT_FRAMES = 121

# The super-resolution (SR) stage: an SR-distilled transformer re-samples an upsampled low-resolution latent at the
# SR release's size. Tencent pairs 480p bases with the 720p SR release and 720p bases with the 1080p one; the target
# size comes from the same buckets as the base (1080p: target 1440, so 1280x720 -> 1904x1072, on the 16 px grid).
SR_RESOLUTIONS = {"720p": 960, "1080p": 1440}
SR_BASE = {"720p": "480p", "1080p": "720p"}  # the base release each SR release follows
# Tencent's SR settings: shift 2, no CFG, 6 (720p) or 8 (1080p) steps, MeanFlow's second timestep on.
SR_SETTINGS = {"720p": {"steps": 6, "flow_shift": 2.0, "cfg_scale": 1.0},
               "1080p": {"steps": 8, "flow_shift": 2.0, "cfg_scale": 1.0}}
SR_NOISE_AUGMENTATION = 0.7  # the share of noise in the low-resolution channels (Tencent: 0.3 x latent + 0.7 x noise)
SR_CONDITION_UNTIL = 700  # the low-resolution channels are zeroed once the timestep falls below this (Tencent)
SR_DISTILLED = "sr_distilled"

# Distillations (what the file cannot tell; a widget or the file's metadata says).
PLAIN, CFG_DISTILLED, STEP_DISTILLED = "i2v", "cfg_distilled", "step_distilled"
DISTILLATION_NAMES = {PLAIN: "I2V", CFG_DISTILLED: "I2V CFG-distilled", STEP_DISTILLED: "I2V step-distilled",
                      SR_DISTILLED: "super-resolution (SR-distilled)"}

# Reference settings per (resolution, distillation); resolution None = not known from the file.
# 480p I2V: CFG 6, shift 5, 50 steps; 720p I2V: CFG 6, shift 7, 50 steps; CFG-distilled: CFG 1;
# 480p step-distilled: CFG 1, shift 7, 8 or 12 steps.
def reference_settings(resolution: str | None, distillation: str) -> dict:
    shift = 5.0 if resolution == "480p" else 7.0
    if distillation == STEP_DISTILLED:
        return {"steps": 8, "flow_shift": 7.0, "cfg_scale": 1.0}
    if distillation == CFG_DISTILLED:
        return {"steps": 50, "flow_shift": shift, "cfg_scale": 1.0}
    return {"steps": 50, "flow_shift": shift, "cfg_scale": 6.0}


# The reference pipeline's system message. Its source continues the string with "\" at line
# ends, so each numbered item follows nine spaces: the model was trained with them.
SYSTEM_MESSAGE = (
    "You are a helpful assistant. Describe the video by detailing the following aspects:"
    "         1. The main content and theme of the video."
    "         2. The color, shape, size, texture, quantity, text, and spatial relationships of the objects."
    "         3. Actions, events, behaviors temporal relationships, physical movement changes of the objects."
    "         4. background environment, light, style and atmosphere."
    "         5. camera angles, movements, and transitions used in the video."
)
MAX_TEXT_TOKENS = 1000  # Qwen tokens after the system part
MAX_GLYPH_TOKENS = 256  # ByT5 tokens of the quoted text
HIDDEN_LAYERS_TO_SKIP = 2  # the text embedding is the hidden state 3 from the end
DEFAULT_NEGATIVE_PROMPT = ""  # the reference encodes an empty negative prompt (as " ")

FILES = {
    "transformer": "diffusion_models/hunyuanvideo1.5_480p_i2v_step_distilled_fp8_scaled.safetensors (or another "
                   "hunyuanvideo1.5_*_i2v_* file)",
    "vae": "vae/hunyuanvideo15_vae_fp16.safetensors",
    "text_encoders": "text_encoders/qwen_2.5_vl_7b_fp8_scaled.safetensors + clip_vision/sigclip_vision_patch14_384"
                     ".safetensors + text_encoders/byt5_small_glyphxl_fp16.safetensors",
}
SR_FILES = {
    "transformer": "diffusion_models/hunyuanvideo1.5_1080p_sr_distilled_fp8_scaled.safetensors (720p base) or "
                   "hunyuanvideo1.5_720p_sr_distilled_fp8_scaled.safetensors (480p base), or their _fp16 twins",
    "upsampler": "latent_upscale_models/hunyuanvideo15_latent_upsampler_1080p.safetensors (720p -> 1080p) or "
                 "hunyuanvideo15_latent_upsampler_720p.safetensors (480p -> 720p)",
}
TEXT_ENCODER_SLOTS = {
    "vision": "sigclip_vision_patch14_384.safetensors (SigLIP)",
    "text_encoder_2": "byt5_small_glyphxl_fp16.safetensors (the ByT5 glyph encoder)",
}
