"""Memory and speed of each option against plain diffusers, with the planner's estimate beside each peak.

    python benchmarks/bench_memory.py                 # on a GPU: real-size transformers, random weights
    python benchmarks/bench_memory.py --small         # anywhere (CPU): mid-size models, to prove it runs

Real sizes: HunyuanVideo-I2V 13 B at 720p x 129 frames and HunyuanVideo-1.5 at 720p and 480p x 121
frames; one denoising step per option (plain, fp8 storage, block offload, both, and the planner's
choice for the free memory), then the VAE decode with and without tiling. Every figure is printed as
a ratio to the plain run in the same process. On a CPU the peak is the working memory PyTorch's
profiler records (weights excluded) beside the planner's working-memory estimate. Nothing is
downloaded; nothing is asserted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hunyuan_i2v import planner  # noqa: E402
from hunyuan_i2v.hunyuan_video_13b.transformer import HunyuanVideoTransformer  # noqa: E402
from hunyuan_i2v.hunyuan_video_13b.vae import HunyuanVideoVAE  # noqa: E402
from hunyuan_i2v.hunyuan_video_15.transformer import HunyuanVideo15Transformer  # noqa: E402
from hunyuan_i2v.hunyuan_video_15.vae import HunyuanVideo15VAE  # noqa: E402
from hunyuan_i2v.shared import acceleration  # noqa: E402

CASES = {  # name: (family, width, height, frames)
    "13B 720p x 129": ("hunyuan_video_13b", 1280, 720, 129),
    "1.5 720p x 121": ("hunyuan_video_15", 1280, 720, 121),
    "1.5 480p x 121": ("hunyuan_video_15", 848, 480, 121),
}
SMALL = {"13B small": ("hunyuan_video_13b", 256, 160, 9), "1.5 small": ("hunyuan_video_15", 256, 160, 9)}


def build(family: str, small: bool, dtype):
    from diffusers import (AutoencoderKLHunyuanVideo, AutoencoderKLHunyuanVideo15, HunyuanVideo15Transformer3DModel,
                           HunyuanVideoTransformer3DModel)

    torch.manual_seed(0)
    if family == "hunyuan_video_13b":
        size = dict(num_attention_heads=4, attention_head_dim=64, num_layers=4, num_single_layers=8,
                    text_embed_dim=64, pooled_projection_dim=32, rope_axes_dim=(16, 24, 24)) if small else {}
        model = HunyuanVideoTransformer3DModel(image_condition_type="token_replace", **size).to(dtype).eval()
        vae_size = dict(block_out_channels=(32, 64, 64, 64), norm_num_groups=8, layers_per_block=1) if small else {}
        vae = HunyuanVideoVAE(AutoencoderKLHunyuanVideo(**vae_size).to(dtype).eval(), "random", family)
        return HunyuanVideoTransformer(model, family, "token_replace", "random", dtype), vae, 8
    size = dict(num_attention_heads=4, attention_head_dim=64, num_layers=8, text_embed_dim=64, text_embed_2_dim=32,
                image_embed_dim=32, rope_axes_dim=(16, 24, 24)) if small else {}
    model = HunyuanVideo15Transformer3DModel(**size).to(dtype).eval()
    vae_size = dict(block_out_channels=(32, 64, 64, 64, 64), layers_per_block=1) if small else {}
    vae = HunyuanVideo15VAE(AutoencoderKLHunyuanVideo15(**vae_size).to(dtype).eval(), "random", family)
    return HunyuanVideo15Transformer(model, family, "i2v", "random", dtype), vae, 16


def inputs(transformer, ratio: int, width: int, height: int, frames: int, device, dtype):
    config = transformer.model.config
    latent_frames = (frames - 1) // 4 + 1
    shape = (1, config.in_channels, latent_frames, height // ratio, width // ratio)
    g = torch.Generator().manual_seed(0)
    if transformer.family == "hunyuan_video_13b":
        text = 256 + 576 // 4
        kw = dict(encoder_hidden_states=torch.randn(1, text, config.text_embed_dim, generator=g),
                  encoder_attention_mask=torch.ones(1, text), pooled_projections=torch.randn(1, config.pooled_projection_dim),
                  guidance=torch.tensor([6000.0]))
        cond = SimpleNamespace(height=height, width=width, spatial_ratio=ratio, temporal_ratio=4,
                               positive=SimpleNamespace(image_tokens=torch.zeros(1, 576, 1), text_tokens=torch.zeros(1, 256, 1)))
    else:
        text = 1000
        kw = dict(encoder_hidden_states=torch.randn(1, text, config.text_embed_dim, generator=g),
                  encoder_attention_mask=torch.ones(1, text),
                  encoder_hidden_states_2=torch.randn(1, 256, config.text_embed_2_dim, generator=g),
                  encoder_attention_mask_2=torch.ones(1, 256), image_embeds=torch.randn(1, 729, config.image_embed_dim))
        cond = SimpleNamespace(height=height, width=width, spatial_ratio=ratio, temporal_ratio=4,
                               positive=SimpleNamespace(text=torch.zeros(1, text, 1)))
    kw = {k: v.to(device, dtype) for k, v in kw.items()}
    kw.update(hidden_states=torch.randn(shape, generator=g).to(device, dtype),
              timestep=torch.tensor([500.0], device=device, dtype=dtype))
    return kw, cond, frames


def cpu_allocated_peak(fn) -> int:
    """Peak of tensor bytes allocated while ``fn`` runs on the CPU, from PyTorch's profiler."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    current = peak = 0
    for event in sorted((e for e in prof.events() if e.self_cpu_memory_usage), key=lambda e: e.time_range.start):
        current += event.self_cpu_memory_usage
        peak = max(peak, current)
    return peak


def measure(fn, device):
    if device.type == "cpu":
        with torch.no_grad():
            fn()  # warm-up: first calls pay for kernel selection and allocation
        start = time.perf_counter()
        with torch.no_grad():
            fn()
        seconds = time.perf_counter() - start
        with torch.no_grad():
            return seconds, cpu_allocated_peak(fn)  # working memory only: the weights are already allocated
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    start = time.perf_counter()
    with torch.no_grad():
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
        return time.perf_counter() - start, torch.cuda.max_memory_allocated() - base
    return time.perf_counter() - start, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="mid-size models and videos (runs on a CPU)")
    args = parser.parse_args()
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # casting random models with .to() warns once per build
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    free = planner_free(device)
    print(f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}), "
          f"free {planner.gib(free) if free else 'n/a'}, torch {torch.__version__}")
    for name, (family, width, height, frames) in (SMALL if args.small or device.type == "cpu" else CASES).items():
        transformer, vae, ratio = build(family, args.small or device.type == "cpu", dtype)
        kw, cond, frames = inputs(transformer, ratio, width, height, frames, device, dtype)
        print(f"\n{name}: {sum(p.numel() for p in transformer.model.parameters()) / 1e9:.2f} B parameters")
        baseline = None
        options = [("plain", "model", False), ("fp8 storage", "model", True), ("block offload", "block", False),
                   ("block + fp8", "block", True)]
        mode, fp8, _, why = planner.choose_sampling(transformer, cond, frames, free)
        options.append((f"auto ({why.split(':')[0].removeprefix('auto picked ')})", mode, fp8))
        for label, offload, use_fp8 in options:
            model, _, _ = build(family, args.small or device.type == "cpu", dtype)
            if use_fp8:
                acceleration.enable_fp8_storage(model.model, dtype)
            if offload == "block" and device.type == "cuda":
                acceleration.enable_block_offload(model.model, device, torch.device("cpu"))
            else:
                model.model.to(device)
            estimate = planner.sample_estimate(model, cond, frames, offload, use_fp8)
            try:
                seconds, peak = measure(lambda: model.model(**kw, return_dict=False), device)
            except torch.OutOfMemoryError:
                print(f"  {label:<34} out of memory (estimate {planner.gib(estimate.total)})")
                continue
            finally:
                model.model.to("cpu")
            baseline = baseline or seconds
            shown = estimate.total if device.type == "cuda" else estimate.activations
            print(f"  {label:<34} {seconds:7.2f} s/step  x{seconds / baseline:5.2f}  peak {planner.gib(peak)}  "
                  f"estimate {planner.gib(shown)}")
        latent = torch.randn(1, vae.latent_channels, (frames - 1) // 4 + 1, height // ratio, width // ratio)
        vae.model.to(device)
        decode_base = None
        for label, tiling, tile in (("decode whole", False, None), ("decode tiles 256", True, 256),
                                    ("decode tiles 128", True, 128)):
            estimate = planner.decode_estimate(vae, latent.shape, tiling, tile)
            try:
                seconds, peak = measure(lambda: vae.decode(latent.to(device), tiling, tile), device)
            except torch.OutOfMemoryError:
                print(f"  {label:<34} out of memory (estimate {planner.gib(estimate.total)})")
                continue
            decode_base = decode_base or seconds
            shown = estimate.total if device.type == "cuda" else estimate.activations
            print(f"  {label:<34} {seconds:7.2f} s       x{seconds / decode_base:5.2f}  peak {planner.gib(peak)}  "
                  f"estimate {planner.gib(shown)}")
        vae.model.to("cpu")


def planner_free(device) -> int | None:
    return int(torch.cuda.mem_get_info(device)[0]) if device.type == "cuda" else None


if __name__ == "__main__":
    main()
