"""HunyuanVideo-1.5 super-resolution on the CPU: wall time of the SR stage against the base stage on the same tiny
model, each stage timed in this process. Prints seconds and ratios; asserts nothing.

    python benchmarks/bench_super_resolution.py [--frames 9] [--repeats 3]

The base stage samples at 128x96 with the step-distilled release's 8 steps; the SR stage (the Super-Resolution
node's work, then the SR release's 6 steps) goes to 192x144 (1.5x, as 480p -> 720p), and each result is decoded.
The SR transformer is the base one's architecture with 3 x C + 2 input channels; the latent upsampler is the 720p
kind at a small width. Random weights: the times show the stages' shape, not a real model's speed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hunyuan_i2v import loading, stages  # noqa: E402
from hunyuan_i2v.hunyuan_video_15 import demo, upsampler as upsampler_module  # noqa: E402
from hunyuan_i2v.hunyuan_video_15.transformer import HunyuanVideo15Transformer  # noqa: E402
from hunyuan_i2v.hunyuan_video_15.attention import use_key_mask_attention  # noqa: E402
from hunyuan_i2v.shared.sampling import SamplingSettings  # noqa: E402

BASE, HIGH = (128, 96), (192, 144)


def sr_transformer(base) -> HunyuanVideo15Transformer:
    from diffusers import HunyuanVideo15Transformer3DModel

    config = dict(base.model.config)
    config.update(in_channels=3 * base.latent_channels + 2, use_meanflow=True)
    torch.manual_seed(1)
    model = HunyuanVideo15Transformer3DModel.from_config(config).eval()
    use_key_mask_attention(model)
    return HunyuanVideo15Transformer(model, "hunyuan_video_15", "sr_distilled", "bench", torch.float32,
                                     resolution="720p")


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as tmp:
        folder = demo.write_diffusers_folder(Path(tmp) / "tiny15", seed=0)
        encoders = loading.load_text_encoders(loading.TextEncoderSources(folder=folder), "fp32", device="cpu")
        vae = loading.load_vae(folder, "fp32")
        base = loading.load_model(folder, "fp32")
        sr = sr_transformer(base)
        torch.manual_seed(2)
        network = upsampler_module.Upsampler720p(base.latent_channels, base.latent_channels, 16, 2).eval()
        upsampler = upsampler_module.LatentUpsampler(network, "720p", "bench")
        image = torch.rand(1, 96, 128, 3, generator=torch.Generator().manual_seed(0))
        cond = stages.run_encode(encoders, vae, image, "a cat", "", width=BASE[0], height=BASE[1])
        times = {name: [] for name in ("base sample", "base decode", "SR prepare", "SR sample", "SR decode")}
        for _ in range(args.repeats):
            result, seconds = timed(lambda: stages.run_sample(base, cond, SamplingSettings(
                seed=1, steps=8, num_frames=args.frames, flow_shift=7.0, cfg_scale=1.0)))
            times["base sample"].append(seconds)
            times["base decode"].append(timed(lambda: stages.run_decode(vae, result.latent, False))[1])
            sr_cond, seconds = timed(lambda: stages.run_super_resolution(
                cond, result.latent, upsampler, vae, image, "720p", HIGH[0], HIGH[1], encoders=encoders))
            times["SR prepare"].append(seconds)
            sr_result, seconds = timed(lambda: stages.run_sample(sr, sr_cond, SamplingSettings(
                seed=1, steps=0, num_frames=sr_cond.num_frames, flow_shift=0.0, cfg_scale=0.0)))
            times["SR sample"].append(seconds)
            times["SR decode"].append(timed(lambda: stages.run_decode(vae, sr_result.latent, False))[1])
    median = {name: statistics.median(values) for name, values in times.items()}
    base_stage = median["base sample"] + median["base decode"]
    sr_stage = median["SR prepare"] + median["SR sample"] + median["SR decode"]
    print(f"tiny HunyuanVideo-1.5, {args.frames} frames, {BASE[0]}x{BASE[1]} -> {HIGH[0]}x{HIGH[1]}, "
          f"median of {args.repeats} (s):")
    for name, value in median.items():
        print(f"  {name:12s} {value:7.3f}")
    print(f"SR stage / base stage (sample + decode each; SR adds its prepare): {sr_stage / base_stage:.2f}")
    print(f"SR sample (6 steps) / base sample (8 steps): {median['SR sample'] / median['base sample']:.2f}; "
          f"image tokens x{(HIGH[0] * HIGH[1]) / (BASE[0] * BASE[1]):.2f}")


if __name__ == "__main__":
    main()
