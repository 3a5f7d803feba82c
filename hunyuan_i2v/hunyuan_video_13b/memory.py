"""HunyuanVideo-I2V (13 B)'s activation memory, for the planner (hunyuan_i2v/planner.py).

Counted from the tensors diffusers' HunyuanVideoTransformer3DModel and
AutoencoderKLHunyuanVideo hold at their peak; the coefficients were checked
against PyTorch's profiler on CPU (tests/test_planner.py, within 10 %).
"""

from __future__ import annotations


def transformer_step_bytes(config, image_tokens: int, text_tokens: int, element: int) -> int:
    """Peak transient bytes of one transformer forward (batch 1).

    The peak is in a single-stream block at its output projection, over all S = image + text tokens:
    the block input and its norm (2), q, k, v still held (3), the attention output (1), the MLP branch
    (mlp_ratio), both joined again (1 + mlp_ratio), the projection and its gated copy (2):
    9 + 2 x mlp_ratio = 17 x S x H at the reference ratio 4; the text mask is a key mask (no S x S).
    Rope tables in float32 over the image tokens come on top.
    """
    hidden = config.num_attention_heads * config.attention_head_dim
    total = image_tokens + text_tokens
    per_token = 9 + 2 * config.mlp_ratio
    rope = 2 * image_tokens * config.attention_head_dim * 4
    return int(element * hidden * per_token * total) + rope


def attention_scores_bytes(config, image_tokens: int, text_tokens: int, element: int) -> int:
    total = image_tokens + text_tokens
    return config.num_attention_heads * total * total * element


DECODE_ACTIVATIONS_PER_VALUE = 8.7
