"""HunyuanVideo-I2V (13 B, Tencent, March 2025): what only this family knows.

- ``transformer``: architecture read from the tensors, original -> diffusers names, v1/v2 release
- ``vae``: the 8x / 4x causal VAE
- ``text_encoders`` / ``text_encoder_files``: llava-llama-3 + CLIP-L, from a folder or ComfyUI's single files
- ``conditioning``: the I2V prompt template, image tokens, CLIP pooled vector
- ``sampling``: latent concat (v1) and token replace (v2) denoising
- ``defaults``: buckets, steps, shifts, guidance of the reference
- ``lora_keys``: kohya / original LoRA names
- ``family``: the interface the stages call
- ``demo``: a tiny random model for tests and ``--demo``
"""
