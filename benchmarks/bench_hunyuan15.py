"""HunyuanVideo-1.5 on the CPU: the pack's stages against diffusers' reference pipeline on identical
mid-size random components, and the step-skip ratio of each cache. Prints ratios; asserts nothing.

    python benchmarks/bench_hunyuan15.py [--steps 8] [--frames 9] [--repeats 3]

The same folder, image, prompt, seed and settings go through both paths; the
wall-time ratio (pack / pipeline, goal at most 1.05) is the median of
``--repeats`` alternating runs. Random weights make caches skip differently
from the trained model: the skip ratios show the mechanism, not real speed-ups.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hunyuan_i2v import loading, stages  # noqa: E402
from hunyuan_i2v.hunyuan_video_15 import conditioning, demo  # noqa: E402
from hunyuan_i2v.shared.sampling import SamplingSettings  # noqa: E402

PROMPT = 'a cat walks past a sign that says "HELLO"'
NEGATIVE = "blurry, static"


def write_mid_size_folder(folder: Path, target_size: int = 128) -> Path:
    """The tiny components with a mid-size transformer (real block layout, 8 blocks of 4 x 64 heads)."""
    from diffusers import HunyuanVideo15ImageToVideoPipeline, HunyuanVideo15Transformer3DModel

    components = demo.build_components(seed=0, target_size=target_size)
    torch.manual_seed(0)
    components["transformer"] = HunyuanVideo15Transformer3DModel(
        in_channels=2 * demo.LATENT_CHANNELS + 1, out_channels=demo.LATENT_CHANNELS, num_attention_heads=4,
        attention_head_dim=64, num_layers=8, num_refiner_layers=2, text_embed_dim=demo.TEXT_HIDDEN,
        text_embed_2_dim=demo.BYT5_HIDDEN, image_embed_dim=demo.IMAGE_HIDDEN, rope_axes_dim=(16, 24, 24),
        target_size=target_size, task_type="i2v",
    ).eval()
    HunyuanVideo15ImageToVideoPipeline(**components).save_pretrained(str(folder))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    from diffusers import FlowMatchEulerDiscreteScheduler, HunyuanVideo15ImageToVideoPipeline
    from PIL import Image

    folder = write_mid_size_folder(Path(tempfile.mkdtemp()) / "mid15")
    pixels = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    pil = Image.fromarray(pixels)
    image = torch.from_numpy(pixels.astype(np.float32) / 255).unsqueeze(0)

    pipe = HunyuanVideo15ImageToVideoPipeline.from_pretrained(str(folder), dtype=torch.float32)
    pipe.vae.enable_tiling()
    pipe.scheduler = FlowMatchEulerDiscreteScheduler(shift=5.0)
    pipe.set_progress_bar_config(disable=True)
    model = loading.load_model(folder, "fp32")
    vae = loading.load_vae(folder, "fp32")
    encoders = loading.load_text_encoders(loading.TextEncoderSources(folder=folder), "fp32", device="cpu")
    pipe.prompt_template_encode_start_idx = conditioning.system_prefix_length(encoders.tokenizer)
    height, width = pipe.video_processor.calculate_default_height_width(96, 128, pipe.target_size)
    settings = SamplingSettings(seed=7, steps=args.steps, num_frames=args.frames, flow_shift=5.0, cfg_scale=6.0)

    def run_pipeline():
        return pipe(image=pil, prompt=PROMPT, negative_prompt=NEGATIVE, num_frames=args.frames,
                    num_inference_steps=args.steps, generator=torch.Generator().manual_seed(7), output_type="pt").frames

    def run_pack(cache="off"):
        cond = stages.run_encode(encoders, vae, image, PROMPT, NEGATIVE, width=width, height=height)
        result = stages.run_sample(model, cond, settings, cache=cache, cache_threshold=0.1)
        return stages.run_decode(vae, result.latent)

    reference, ours = run_pipeline(), run_pack()  # warm-up, and the frames to compare
    difference = (ours - reference[0].permute(0, 2, 3, 1)).abs().max().item()
    pipe_times, pack_times = [], []
    for _ in range(args.repeats):
        for fn, bucket in ((run_pipeline, pipe_times), (run_pack, pack_times)):
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    print(f"HunyuanVideo-1.5 mid-size ({sum(p.numel() for p in model.model.parameters()) / 1e6:.0f} M transformer "
          f"parameters), {width}x{height}, {args.frames} frames, {args.steps} steps, CFG 6, "
          f"{torch.get_num_threads()} threads")
    print(f"  max abs difference of the frames: {difference:.2e}")
    print(f"  pipeline {statistics.median(pipe_times):.2f} s, pack {statistics.median(pack_times):.2f} s, "
          f"ratio pack / pipeline {statistics.median(pack_times) / statistics.median(pipe_times):.3f}")

    cond = stages.run_encode(encoders, vae, image, PROMPT, NEGATIVE, width=width, height=height)
    for cache in ("first block cache", "taylorseer"):
        calls = []
        # the last block's query projection runs only when its attention is computed (not skipped or predicted)
        handle = model.model.transformer_blocks[-1].attn.to_q.register_forward_hook(lambda *a: calls.append(1))
        stages.run_sample(model, cond, settings, cache=cache, cache_threshold=0.1)
        handle.remove()
        full = 2 * args.steps  # CFG: two transformer passes per step
        print(f"  {cache}: last block's attention ran {len(calls)} of {full} passes, {1 - len(calls) / full:.0%} skipped")


if __name__ == "__main__":
    main()
