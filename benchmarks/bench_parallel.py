"""Seconds per transformer step on several GPUs (sequence parallel) against one GPU, in the same run.

    torchrun --standalone --nproc_per_node N benchmarks/bench_parallel.py [--family 13b|1.5]
             [--size 720p|480p|tiny] [--frames 129] [--steps 3] [--dtype bf16]

Random weights at the real architecture (13 B v2: 20 double + 40 single blocks, 24 x 128 heads;
1.5: 54 blocks, 16 x 128 heads), a real token count (720p x 129 frames: 33 latent frames of 45 x 80
patches for 13 B), 256 text tokens. The first rank times the model alone first (the baseline, on its
GPU, the others waiting), then every rank times the split model; it prints both and the speed-up.
Run it with N = 1, 2, 4, 8 for the scaling curve (xDiT's figure for the 13 B at 720p x 129 on 8 H100s:
5.64x). ``--size tiny`` runs on CPU ranks (gloo) in seconds, to check the script itself.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hunyuan_i2v.parallel import ranks as process_ranks  # noqa: E402
from hunyuan_i2v.shared import sequence_parallel as sequence  # noqa: E402

# (height, width) in pixels; both VAEs compress 4x in time; 13 B 8x and 1.5 16x in space.
SIZES = {"720p": (720, 1280), "480p": (480, 848), "tiny": (64, 96)}
TEXT_TOKENS = 256


def build(family: str, tiny: bool, dtype: torch.dtype):
    from diffusers import HunyuanVideo15Transformer3DModel, HunyuanVideoTransformer3DModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the same random weights on every rank
        if family == "13b":
            small = dict(num_layers=1, num_single_layers=1, num_attention_heads=8, attention_head_dim=16,
                         text_embed_dim=64, pooled_projection_dim=32, rope_axes_dim=(4, 6, 6)) if tiny else {}
            model = HunyuanVideoTransformer3DModel(image_condition_type="token_replace", **small)
        else:
            small = dict(num_layers=2, num_attention_heads=8, attention_head_dim=16, text_embed_dim=64,
                         text_embed_2_dim=32, image_embed_dim=32, rope_axes_dim=(4, 6, 6)) if tiny else {}
            model = HunyuanVideo15Transformer3DModel(**small)
    if family == "1.5":
        from hunyuan_i2v.hunyuan_video_15.attention import use_key_mask_attention

        use_key_mask_attention(model)
    return model.to(dtype).eval()


def inputs(model, family: str, size: str, frames: int, device, dtype):
    height, width = SIZES[size]
    ratio = 8 if family == "13b" else 16
    c = model.config
    latent_frames = (frames - 1) // 4 + 1
    generator = torch.Generator().manual_seed(1)

    def rand(*shape):
        return torch.randn(*shape, generator=generator).to(device, dtype)

    args = {"hidden_states": rand(1, c.in_channels, latent_frames, height // ratio, width // ratio),
            "timestep": torch.tensor([500.0], device=device, dtype=dtype), "return_dict": False,
            "encoder_hidden_states": rand(1, TEXT_TOKENS, c.text_embed_dim),
            "encoder_attention_mask": torch.ones(1, TEXT_TOKENS, device=device, dtype=dtype)}
    if family == "13b":
        args |= {"pooled_projections": rand(1, c.pooled_projection_dim),
                 "guidance": torch.tensor([6000.0], device=device, dtype=dtype)}
    else:
        args |= {"encoder_hidden_states_2": rand(1, 256, c.text_embed_2_dim),
                 "encoder_attention_mask_2": torch.ones(1, 256, device=device, dtype=dtype),
                 "image_embeds": rand(1, 729, c.image_embed_dim)}
    return args


def seconds_per_step(model, args, steps: int, device) -> float:
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    with torch.no_grad():
        model(**args)  # warm-up: kernels, allocator
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            model(**args)
        sync()
    return (time.perf_counter() - start) / steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", choices=("13b", "1.5"), default="13b")
    parser.add_argument("--size", choices=tuple(SIZES), default="720p")
    parser.add_argument("--frames", type=int, default=129)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16")
    args = parser.parse_args()
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    tiny = args.size == "tiny"
    ranks = process_ranks.join("cpu" if tiny or not torch.cuda.is_available() else "cuda") \
        if process_ranks.launched_by_torchrun() else None
    device = ranks.device if ranks else torch.device("cuda" if torch.cuda.is_available() and not tiny else "cpu")
    model = build(args.family, tiny, dtype).to(device)
    step_args = inputs(model, args.family, args.size, args.frames, device, dtype)
    first = ranks is None or ranks.is_first
    alone = seconds_per_step(model, step_args, args.steps, device) if first else None
    if ranks is None:
        print(f"{args.family} {args.size} x {args.frames} frames, 1 GPU: {alone:.3f} s/step")
        return 0
    torch.distributed.barrier()
    sequence.enable(model, ranks.rank, ranks.world)
    split = seconds_per_step(model, step_args, args.steps, device)
    if first:
        print(f"{args.family} {args.size} x {args.frames} frames on {device.type}: 1 rank {alone:.3f} s/step, "
              f"{ranks.world} ranks {split:.3f} s/step, speed-up {alone / split:.2f}x (ideal {ranks.world}x)")
    process_ranks.leave()
    return 0


if __name__ == "__main__":
    sys.exit(main())
