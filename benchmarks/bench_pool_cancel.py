"""Cancel latency in the worker pool on the CPU (gloo): time from the user's Cancel to the sample raising, with
every worker stopped at the same block. Prints figures; asserts nothing.

    python benchmarks/bench_pool_cancel.py [--workers 2] [--repeats 8]

A timer thread sets the cancel flag at a random moment of a sampling run; the pool's wait loop calls ``poll``
every pool.POLL_S, sends the cancel to the workers, and they agree on it before every transformer block (one
all-reduce of one value). The baseline column is the pool's time per step, measured in the same run: what
agreeing only between steps (the pool before) cost at worst. Mid-size random HunyuanVideo-1.5 (8 blocks,
hidden 256, 4 heads) at 256x256 x 33 frames, each worker on one CPU thread.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hunyuan_i2v import loading, stages  # noqa: E402
from hunyuan_i2v.parallel import pool  # noqa: E402
from hunyuan_i2v.shared.sampling import SamplingSettings  # noqa: E402
from bench_cancel import measure  # noqa: E402  (this folder is the script's, first on sys.path)
from bench_hunyuan15 import write_mid_size_folder  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"  # the workers inherit it: one thread each, no oversubscription
    torch.set_num_threads(1)
    folder = write_mid_size_folder(Path(tempfile.mkdtemp()) / "mid15", target_size=256)
    encoders = loading.load_text_encoders(loading.TextEncoderSources(folder=folder), "fp32", device="cpu")
    image = torch.rand(1, 256, 256, 3, generator=torch.Generator().manual_seed(0))
    cond = stages.run_encode(encoders, loading.load_vae(folder, "fp32"), image, "a cat", "", width=256, height=256)
    model = pool.load_model_on_gpus(args.workers, folder, "fp32", device_type="cpu")
    steps = 4
    settings = SamplingSettings(seed=1, steps=steps, num_frames=33, cfg_scale=1.0)
    try:
        stages.run_sample(model, cond, settings)  # warm-up
        step_times = []
        start = time.perf_counter()
        stages.run_sample(model, cond, settings, on_step=lambda info: step_times.append(time.perf_counter()))
        whole = time.perf_counter() - start
        per_step = max(b - a for a, b in zip([start] + step_times, step_times))
        def run(poll):
            try:
                stages.run_sample(model, cond, settings, poll=poll)
            finally:
                assert model.pool.running  # the workers left together and kept their weights

        latencies = measure(run, whole, args.repeats)
        latencies.sort()
        print(f"{args.workers} CPU workers: whole run {whole:.2f} s ({steps} steps), slowest step {per_step:.2f} s; "
              f"cancel worst {latencies[-1]:.3f} s, median {latencies[len(latencies) // 2]:.3f} s over "
              f"{len(latencies)} cancels (x{latencies[-1] / per_step:.3f} of the slowest step, the old worst case)")
    finally:
        model.pool.stop()


if __name__ == "__main__":
    main()
