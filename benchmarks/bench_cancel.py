"""Cancel latency per stage on the CPU: time from the user's Cancel to the stage raising. Prints figures; asserts
nothing.

    python benchmarks/bench_cancel.py [--repeats 5]

A timer thread sets the cancel flag at a random moment of each stage; the host's check (``poll``) raises once it
sees the flag. Stages check before every block, so the latency is at most one block's time (the baseline column:
the same stage's time per step / decode / encode, what checking only between steps would cost at worst). Mid-size
random HunyuanVideo-1.5 components (a 1.5 transformer of 8 blocks, hidden 256) at 256x256 x 33 frames.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hunyuan_i2v import loading, stages  # noqa: E402
from hunyuan_i2v.shared.sampling import SamplingSettings  # noqa: E402
from bench_hunyuan15 import write_mid_size_folder  # noqa: E402  (this folder is the script's, first on sys.path)


class Cancelled(Exception):
    pass


def measure(run, whole_seconds: float, repeats: int) -> list[float]:
    """Latencies (s) from the flag to the raise, the flag set at a random point of a run of ``whole_seconds``."""
    latencies = []
    for _ in range(repeats):
        flag = {"at": None}

        def poll():
            if flag["at"] is not None:
                raise Cancelled()

        timer = threading.Timer(random.uniform(0.1, 0.9) * whole_seconds, lambda: flag.update(at=time.perf_counter()))
        timer.start()
        try:
            run(poll)
        except Cancelled:
            latencies.append(time.perf_counter() - flag["at"])
        timer.cancel()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(2)
    folder = write_mid_size_folder(Path(tempfile.mkdtemp()) / "mid15", target_size=256)
    encoders = loading.load_text_encoders(loading.TextEncoderSources(folder=folder), "fp32", device="cpu")
    vae = loading.load_vae(folder, "fp32")
    model = loading.load_model(folder, "fp32")
    image = torch.from_numpy(np.random.default_rng(0).random((1, 256, 256, 3), dtype=np.float32))
    settings = SamplingSettings(seed=1, steps=3, num_frames=33, cfg_scale=1.0)

    def encode(poll=None):
        return stages.run_encode(encoders, vae, image, "a cat", "", width=256, height=256, poll=poll)

    cond = encode()
    latent = stages.run_sample(model, cond, settings).latent

    def sample(poll=None):
        return stages.run_sample(model, cond, settings, poll=poll)

    def decode(poll=None):
        return stages.run_decode(vae, latent, True, 128, poll=poll)

    print(f"{'stage':<8} {'whole run':>10} {'per unit':>12} {'cancel worst':>13} {'median':>8}")
    for name, run, units in (("encode", encode, 1), ("sample", sample, settings.steps), ("decode", decode, 1)):
        start = time.perf_counter()
        run()
        whole = time.perf_counter() - start
        latencies = sorted(measure(run, whole, args.repeats))
        print(f"{name:<8} {whole:9.2f}s {whole / units:11.2f}s {latencies[-1]:12.3f}s {latencies[len(latencies) // 2]:7.3f}s"
              f"  (x{latencies[-1] / (whole / units):.3f} of checking once per {'step' if units > 1 else 'stage'})")


if __name__ == "__main__":
    main()
