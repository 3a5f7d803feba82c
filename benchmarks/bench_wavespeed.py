"""What the WaveSpeed client adds on top of the service's own processing time.

Runs against the stand-in server (tests/wavespeed_server.py) on 127.0.0.1,
whose tasks take exactly ``--processing`` seconds and whose output is a real
H.264 MP4 of the size WaveSpeed returns (1280x720, 5 s at 24 fps by default).

Prints:
- overhead of one job beyond the processing time, with the real poll schedule
  (1 s growing to 5 s) and with near-continuous polling (what is left is the
  client's own work: upload, submit, journal, download, decode);
- wall time of a batch of 4 at concurrency 4 against one job (goal <= 1.3x).

    python benchmarks/bench_wavespeed.py [--processing 5] [--repeats 3] [--small]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import conftest  # noqa: E402,F401 - loads the pack as hyv_pack, as ComfyUI would
import numpy as np  # noqa: E402

from hyv_pack.hunyuan_i2v.wavespeed import client as ws  # noqa: E402
from hyv_pack.hunyuan_i2v.wavespeed.jobs import encode_image, I2VJob, run_batch  # noqa: E402
from hyv_pack.hunyuan_i2v.wavespeed.journal import JobJournal  # noqa: E402
from wavespeed_server import StandInWaveSpeed, make_mp4  # noqa: E402


def jobs(count: int, tag: str) -> list[I2VJob]:
    result = []
    for i in range(count):
        pixels = np.full((720, 1280, 3), (40 * i) % 255, dtype=np.uint8)
        png, digest = encode_image(pixels)
        # A fresh prompt per measurement so the journal never short-cuts a run.
        result.append(I2VJob(prompt=f"benchmark {tag} {i}", image_png=png, image_digest=digest, seed=-1))
    return result


def timed_run(server: StandInWaveSpeed, settings: ws.ClientSettings, batch: list[I2VJob],
              concurrency: int) -> tuple[float, float]:
    """(wall seconds, mean poll lag): lag is how late a poll saw a finished task."""
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        results = run_batch(batch, api_key=server.api_key, output_dir=folder, journal=JobJournal(folder),
                            settings=settings, concurrency=concurrency, timeout_s=600)
        elapsed = time.perf_counter() - started
        assert len(results) == len(batch) and all(r.frames.shape[0] > 0 for r in results)
        tasks = [server.tasks[r.task_id] for r in results]
        del results
    return elapsed, statistics.mean(t.done_seen_at - t.done_at for t in tasks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processing", type=float, default=20.0, help="seconds the server spends on a task")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--small", action="store_true", help="a 64x48, 9-frame output instead of 720p, 121 frames")
    args = parser.parse_args()

    width, height, frames = (64, 48, 9) if args.small else (1280, 720, 121)
    video = make_mp4((90, 120, 160), frames=frames, width=width, height=height)
    print(f"server: {args.processing:.1f} s per task, output {width}x{height}, {frames} frames "
          f"({len(video) / 1e6:.2f} MB MP4); medians of {args.repeats} runs")

    with StandInWaveSpeed(processing_s=args.processing) as server:
        server.fixed_video = video
        real = ws.ClientSettings(base_url=server.base_url)
        eager = ws.ClientSettings(base_url=server.base_url, poll_start_s=0.01, poll_max_s=0.01, ui_tick_s=0.01)

        def median(settings: ws.ClientSettings, count: int, concurrency: int, tag: str) -> tuple[float, float]:
            runs = [timed_run(server, settings, jobs(count, f"{tag}{r}"), concurrency) for r in range(args.repeats)]
            return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)

        single, single_lag = median(real, 1, 1, "single-real")
        eager_single, _ = median(eager, 1, 1, "single-eager")
        batch, batch_lag = median(real, 4, 4, "batch-real")
        submits = server.submits_received

    P = args.processing
    print(f"one job, real poll schedule (1 s growing to 5 s): wall {single:.2f} s = processing {P:.2f} s "
          f"+ overhead {single - P:.2f} s ({single / P:.3f}x); of the overhead, {single_lag:.2f} s is poll lag "
          f"and {single - P - single_lag:.2f} s client work")
    print(f"one job, polling every 10 ms: wall {eager_single:.2f} s, overhead {eager_single - P:.2f} s "
          "(upload, submit, journal, download, decode)")
    print(f"batch of 4 at concurrency 4: wall {batch:.2f} s (poll lag {batch_lag:.2f} s); "
          f"ratio to one job {batch / single:.2f}x (goal <= 1.30x)")
    print(f"submits received: {submits} (expected {args.repeats * 6}: none doubled)")


if __name__ == "__main__":
    main()
