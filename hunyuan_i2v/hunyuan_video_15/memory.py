"""HunyuanVideo-1.5's activation memory, for the planner (hunyuan_i2v/planner.py).

Counted from the tensors diffusers' HunyuanVideo15Transformer3DModel and
AutoencoderKLHunyuanVideo15 hold at their peak; the coefficients were checked
against PyTorch's profiler on CPU (tests/test_planner.py, within 10 %).
"""

from __future__ import annotations

# ByT5 glyph tokens and SigLIP image tokens the transformer always receives.
GLYPH_TOKENS = 256
SIGLIP_TOKENS = 729


def transformer_step_bytes(config, image_tokens: int, text_tokens: int, element: int, dense_mask: bool = False) -> int:
    """Peak transient bytes of one transformer forward (batch 1; CFG runs its two passes one after the other).

    S = image + text-side tokens, T = text-side tokens (Qwen text, ByT5 glyphs, SigLIP image tokens), H the
    hidden size, M the MLP width. The peak is inside a double block, whichever phase is larger:
    - attention, just after its output projections: the block's input and norm outputs (2 x S x H), q, k, v
      after joining image and text (3 x S x H), the attention output and its projection (2 x S x H), plus
      the text-side q, k, v kept from before the join (3 x T x H);
    - MLP, at the activation of the larger of the image or text MLP: the block's input (still held by the
      caller), the residual stream, the attention outputs and the modulated norm (4 x S x H), the image
      MLP's output (I x H), and the MLP's two M-wide tensors over the larger token set (2 x M x max(I, T));
    - in both, the text, glyph and image-token streams the model's forward keeps while the blocks run
      (2 x T x H) and the rope cosine and sine tables in float32 over the image tokens.
    The pack's key-mask attention (attention.py) holds no S x S mask; with diffusers' own processor
    (``dense_mask``) the attention phase also holds its [S, S] boolean mask, twice while building it.
    """
    hidden = config.num_attention_heads * config.attention_head_dim
    mlp = int(config.mlp_ratio * hidden)
    text_side = text_tokens + GLYPH_TOKENS + SIGLIP_TOKENS
    total = image_tokens + text_side
    kept = element * hidden * 2 * text_side + 2 * image_tokens * config.attention_head_dim * 4
    attention = element * hidden * (7 * total + 3 * text_side) + (2 * total * total if dense_mask else 0)
    feed_forward = element * hidden * (4 * total + image_tokens) + 2 * element * mlp * max(image_tokens, text_side)
    return max(attention, feed_forward) + kept


def attention_scores_bytes(config, image_tokens: int, text_tokens: int, element: int) -> int:
    """What a kernel that materialises the scores (PyTorch's math path) adds: heads x S x S."""
    total = image_tokens + text_tokens + GLYPH_TOKENS + SIGLIP_TOKENS
    return config.num_attention_heads * total * total * element


# Full-resolution activations alive in the decoder's last up block per (channel x frame x pixel):
# its resnets' inputs, norms and convolutions; measured on CPU with the profiler.
DECODE_ACTIVATIONS_PER_VALUE = 5.6

# The latent upsampler's live float32 activations per (widest channel x latent value) at its peak beside the padded
# input copy (the 1080p kind's ResNet blocks hold norms and a shortcut too), and the VAE encoder's per (first block
# channel x pixel) for one frame; measured on CPU with the profiler (tests/test_planner.py).
UPSAMPLER_ACTIVATIONS_PER_VALUE = {"720p": 1.5, "1080p": 3.0}
ENCODE_ACTIVATIONS_PER_VALUE = 6.1
