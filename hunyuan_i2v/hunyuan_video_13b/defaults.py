"""The 13 B model's reference settings (Tencent's HunyuanVideo-I2V release)."""

from __future__ import annotations

from .transformer import LATENT_CONCAT, TOKEN_REPLACE

NAME = "hunyuan_video_13b"
DISPLAY_NAME = "HunyuanVideo-I2V (13 B)"

# Quality level -> base size of the reference's buckets (32 px grid, aspect from the image).
RESOLUTIONS = {"720p": 960, "540p": 720, "360p": 480}
BUCKET_GRID = 32
MODEL_GRID = 16  # VAE 8x times patch 2: explicit sizes must be multiples of this
DEFAULT_FRAMES = 129

# Per release: steps, flow shift (with i2v stability on; 17 with it off), embedded guidance, true CFG.
SAMPLING = {
    TOKEN_REPLACE: {"steps": 50, "flow_shift": 7.0, "embedded_guidance": 6.0, "cfg_scale": 1.0},
    LATENT_CONCAT: {"steps": 50, "flow_shift": 7.0, "embedded_guidance": 6.0, "cfg_scale": 1.0},
}
FLOW_SHIFT_WITHOUT_STABILITY = 17.0

# The reference drops the first 4 decoded frames of v1 (latent concat) videos.
V1_DROPPED_FRAMES = 4

# Files of this family as ComfyUI's repackaged layout names them (for messages).
FILES = {
    "transformer": "diffusion_models/hunyuan_video_v2_replace_image_to_video_720p_bf16.safetensors",
    "vae": "vae/hunyuan_video_vae_bf16.safetensors",
    "text_encoders": "text_encoders/llava_llama3_fp8_scaled.safetensors + clip_vision/llava_llama3_vision.safetensors "
                     "+ text_encoders/clip_l.safetensors",
}
TEXT_ENCODER_SLOTS = {
    "vision": "llava_llama3_vision.safetensors (the llava vision tower)",
    "text_encoder_2": "clip_l.safetensors (CLIP-L)",
}
