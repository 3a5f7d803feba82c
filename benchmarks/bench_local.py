"""Local path: speed and memory of the acceleration options against a baseline run
in the same process. Prints ratios; asserts nothing.

    python benchmarks/bench_local.py [--steps 20] [--device cuda] [--full-size]

Without --full-size it uses a random mid-size transformer (real block layout,
fewer and narrower blocks) so it runs on a CPU. Random weights make caches skip
differently from the trained model: the cache ratios here show the mechanism's
overhead and ceiling, not the published 1.6x-2.1x on the real model.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hunyuan_i2v import stages  # noqa: E402
from hunyuan_i2v.hunyuan_video_13b.conditioning import I2VConditioning, PromptEmbedding  # noqa: E402
from hunyuan_i2v.hunyuan_video_13b.transformer import FAMILY, TOKEN_REPLACE, HunyuanVideoTransformer  # noqa: E402
from hunyuan_i2v.shared import acceleration, sampling  # noqa: E402


def build(full_size: bool, dtype: torch.dtype) -> HunyuanVideoTransformer:
    from diffusers import HunyuanVideoTransformer3DModel

    torch.manual_seed(0)
    if full_size:
        model = HunyuanVideoTransformer3DModel(image_condition_type=TOKEN_REPLACE)
    else:
        model = HunyuanVideoTransformer3DModel(
            num_attention_heads=4, attention_head_dim=64, num_layers=4, num_single_layers=8, num_refiner_layers=1,
            text_embed_dim=256, pooled_projection_dim=64, rope_axes_dim=(16, 24, 24), image_condition_type=TOKEN_REPLACE,
        )
    return HunyuanVideoTransformer(model.to(dtype).eval().requires_grad_(False), FAMILY, TOKEN_REPLACE, "random", dtype)


def conditioning(model, width, height) -> I2VConditioning:
    g = torch.Generator().manual_seed(1)
    dim, pooled = model.model.config.text_embed_dim, model.model.config.pooled_projection_dim
    prompt = PromptEmbedding(
        torch.randn(1, 576, dim, generator=g), torch.randn(1, 64, dim, generator=g), torch.ones(1, 64, dtype=torch.long),
        torch.randn(1, pooled, generator=g),
    )
    latent = torch.randn(1, 16, 1, height // 8, width // 8, generator=g)
    return I2VConditioning(prompt, None, latent, width, height, torch.zeros(1, height, width, 3), 0.476986)


def timed(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else 0
    return out, time.perf_counter() - start, peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--full-size", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    settings = sampling.SamplingSettings(seed=0, steps=args.steps, num_frames=args.frames)

    model = build(args.full_size, dtype)
    cond = conditioning(model, args.size, args.size)
    run = lambda m, cache="off", threshold=0.1: stages.run_sample(  # noqa: E731
        m, cond, settings, cache, threshold, device
    ).latent["samples"]
    run(model)  # warm-up
    base, base_s, base_peak = timed(lambda: run(model), device)
    print(f"device {device}, {args.size}x{args.size}, {args.frames} frames, {args.steps} steps, {dtype}")
    print(f"baseline                 {base_s:8.2f} s   1.00x")
    for label, cache, threshold in (
        ("first block cache 0.05", "first block cache", 0.05),
        ("first block cache 0.10", "first block cache", 0.10),
        ("first block cache 0.15", "first block cache", 0.15),
        ("taylorseer", "taylorseer", 0.0),
    ):
        out, seconds, _ = timed(lambda: run(model, cache, threshold), device)
        drift = (out - base).abs().max().item() / base.abs().max().item()
        print(f"{label:24} {seconds:8.2f} s   {base_s / seconds:4.2f}x speed-up, max drift {drift:.3f}")
    fp8 = build(args.full_size, dtype)
    acceleration.enable_fp8_storage(fp8.model, dtype)
    bytes_ratio = acceleration.module_bytes([fp8.model]) / acceleration.module_bytes([model.model])
    _, fp8_s, fp8_peak = timed(lambda: run(fp8), device)
    print(f"fp8 storage              {fp8_s:8.2f} s   {base_s / fp8_s:4.2f}x speed, weights {bytes_ratio:.2f}x of {dtype}")
    if device.type == "cuda":
        print(f"peak GPU memory: baseline {base_peak / 2**30:.2f} GiB, fp8 {fp8_peak / 2**30:.2f} GiB "
              f"({fp8_peak / base_peak:.2f}x)")


if __name__ == "__main__":
    main()
