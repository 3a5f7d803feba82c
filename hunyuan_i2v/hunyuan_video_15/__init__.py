"""HunyuanVideo-1.5 (8.3 B, Tencent, November 2025): what only this family knows.

- ``transformer``: architecture read from the tensors, original (Tencent / ComfyUI) -> diffusers names, releases
- ``vae``: the 16x / 4x VAE, original -> diffusers names
- ``text_encoders``: Qwen2.5-VL (language part), ByT5 glyph encoder, SigLIP, from a folder or single files
- ``conditioning``: the system prompt in Qwen's chat template, glyph text, image embeddings, image latent
- ``sampling``: latent concat with mask, CFG, MeanFlow
- ``upsampler``: the super-resolution stage's latent upsamplers (720p and 1080p kinds), resize + refine
- ``defaults``: resolutions, steps, shifts, CFG per release
- ``lora_keys``: kohya / original LoRA names
- ``family``: the interface the stages call
- ``demo``: a tiny random model for tests and ``--demo``
"""
