"""HunyuanVideo-1.5's activation memory, for the planner (hunyuan_i2v/planner.py).

Counted from the tensors diffusers' HunyuanVideo15Transformer3DModel and
AutoencoderKLHunyuanVideo15 hold at their peak; the coefficients were checked
against PyTorch's profiler on CPU (tests/test_planner.py, within 10 %).
"""

from __future__ import annotations

# ByT5 glyph tokens and SigLIP image tokens the transformer always receives.
GLYPH_TOKENS = 256
SIGLIP_TOKENS = 729


def transformer_step_bytes(config, image_tokens: int, text_tokens: int, element: int) -> int:
    """Peak transient bytes of one transformer forward (batch 1; CFG runs its two passes one after the other).

    The peak is in a double block's attention, just after its output projections:
    - 7 x S x H: the block's input and norm outputs (2), q, k, v after joining image and text (3), the
      attention output (1) and its projection (1), over all S = image + text tokens;
    - 5 x T x H: the text-side q, k, v kept before the join (3), plus the text, glyph and image-token
      streams the model's forward keeps while the blocks run (2), over the T text-side tokens;
    - 2 x S x S bytes: the query-by-key boolean mask the 1.5 attention processor builds (the repeated
      mask and its AND with its transpose);
    - rope: cosine and sine tables in float32 over the image tokens.
    """
    hidden = config.num_attention_heads * config.attention_head_dim
    text_side = text_tokens + GLYPH_TOKENS + SIGLIP_TOKENS
    total = image_tokens + text_side
    rope = 2 * image_tokens * config.attention_head_dim * 4
    return element * hidden * (7 * total + 5 * text_side) + 2 * total * total + rope


def attention_scores_bytes(config, image_tokens: int, text_tokens: int, element: int) -> int:
    """What a kernel that materialises the scores (PyTorch's math path) adds: heads x S x S."""
    total = image_tokens + text_tokens + GLYPH_TOKENS + SIGLIP_TOKENS
    return config.num_attention_heads * total * total * element


# Full-resolution activations alive in the decoder's last up block per (channel x frame x pixel):
# its resnets' inputs, norms and convolutions; measured on CPU with the profiler.
DECODE_ACTIVATIONS_PER_VALUE = 5.6
