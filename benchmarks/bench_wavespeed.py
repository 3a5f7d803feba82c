"""The WaveSpeed client against the stand-in server: Cancel latency per phase, and a batch against one job.

Runs against tests/wavespeed_server.py on 127.0.0.1 with the client's real
timing (ClientSettings defaults: 30 s read timeouts, 120 s for a submit's
answer, polls from 1 s growing to 5 s, Retry-After honoured up to 60 s).

1. Cancel: each phase is reached by holding the stand-in's answer (or by a
   429 with Retry-After: 60, or the poll interval); then a second thread sets
   the stop flag, as ComfyUI's Cancel does, and the time until run_batch has
   raised is measured. Goal: at most 1.5 s in the worst case.
2. A batch of 4 at concurrency 4 against one job on the HunyuanVideo-1.5
   endpoint, tasks taking ``--processing`` seconds and returning a real H.264
   MP4 of 1280x720, 121 frames (5 s at 24 fps). Goal: wall ratio at most 1.3.

Prints figures and ratios; asserts nothing about time.

    python benchmarks/bench_wavespeed.py [--processing 20] [--repeats 2] [--cancel-repeats 5] [--small]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import conftest  # noqa: E402,F401 - loads the pack as hyv_pack, as ComfyUI would
import numpy as np  # noqa: E402

from hyv_pack.hunyuan_i2v.wavespeed.client import ClientSettings  # noqa: E402
from hyv_pack.hunyuan_i2v.wavespeed.endpoints import HUNYUAN_VIDEO_13B, HUNYUAN_VIDEO_15  # noqa: E402
from hyv_pack.hunyuan_i2v.wavespeed.errors import WaveSpeedInterrupted  # noqa: E402
from hyv_pack.hunyuan_i2v.wavespeed.jobs import I2VJob, encode_image  # noqa: E402
from hyv_pack.hunyuan_i2v.wavespeed.journal import JobJournal  # noqa: E402
from hyv_pack.hunyuan_i2v.wavespeed.runner import run_batch  # noqa: E402
from wavespeed_server import Fault, Outcome, StandInWaveSpeed, make_mp4  # noqa: E402

_counter = [0]


def jobs(count: int, endpoint=HUNYUAN_VIDEO_15, size=(720, 1280), **settings) -> list[I2VJob]:
    result = []
    for i in range(count):
        _counter[0] += 1
        pixels = np.full((*size, 3), (40 * i) % 255, dtype=np.uint8)
        png, digest = encode_image(pixels)
        # A fresh prompt per run so the journal never short-cuts one.
        result.append(I2VJob(f"benchmark {_counter[0]}", {"seed": -1, **settings}, endpoint, image_png=png,
                             image_digest=digest))
    return result


# ---------------------------------------------------------------- Cancel

def phases(video: bytes) -> dict[str, Callable[[StandInWaveSpeed], tuple[list[I2VJob], Callable[[], bool]]]]:
    """Phase name -> setup(server) returning (jobs, "the phase is reached")."""

    def held(endpoint: str, make_jobs: Callable[[], list[I2VJob]], arrivals: int = 1):
        def setup(server):
            gate = server.hold(endpoint)
            return make_jobs(), lambda: gate.arrived >= arrivals
        return setup

    def after(requests_done: int, make_jobs: Callable[[], list[I2VJob]], prepare=lambda server: None):
        def setup(server):
            prepare(server)
            return make_jobs(), lambda: server.finished >= requests_done
        return setup

    def decoding(server):
        server.fixed_video = video
        return jobs(1), lambda: server.downloads >= 1 and server.finished >= 3

    return {
        "upload: ticket request (13 B)": held("ticket", lambda: jobs(1, HUNYUAN_VIDEO_13B, size=(48, 64))),
        "upload: signed PUT (13 B)": held("put", lambda: jobs(1, HUNYUAN_VIDEO_13B, size=(48, 64))),
        "submit: answer on its way": held("submit", lambda: jobs(1)),
        "submit: waiting out a 429 (Retry-After 60)": after(
            1, lambda: jobs(1), lambda s: s.inject("submit", Fault(status=429, retry_after="60"))),
        "poll: answer on its way": held("result", lambda: jobs(1)),
        "poll: backoff after a 429 (Retry-After 60)": after(
            2, lambda: jobs(1), lambda s: (s.inject("result", Fault(status=429, retry_after="60")),
                                           s.outcomes.append(Outcome("hold")))),
        "poll: between polls": after(2, lambda: jobs(1), lambda s: s.outcomes.append(Outcome("hold"))),
        "download: mid-transfer": held("download", lambda: jobs(1)),
        "download: decoding 720p x 121 frames": decoding,
        "batch: 4 jobs, 2 polling, 2 queued": held("result", lambda: jobs(4, size=(48, 64)), arrivals=2),
    }


def cancel_latency(setup, folder: str) -> float:
    # ``folder`` outlives the measurement: a submit left on Cancel still journals into it afterwards.
    with StandInWaveSpeed() as server:
        batch, reached = setup(server)
        flag, signalled = threading.Event(), []

        def press_cancel() -> None:
            while not reached():
                time.sleep(0.002)
            signalled.append(time.perf_counter())
            flag.set()

        presser = threading.Thread(target=press_cancel, daemon=True)
        presser.start()
        try:
            run_batch(batch, api_key=server.api_key, output_dir=folder, journal=JobJournal(folder),
                      settings=ClientSettings(base_url=server.base_url), concurrency=2, timeout_s=3600,
                      interrupted=flag.is_set)
        except WaveSpeedInterrupted:
            stopped = time.perf_counter()
        else:
            raise RuntimeError("the run ended before Cancel")
        finally:
            server.release_all()
        return stopped - signalled[0]


# ---------------------------------------------------------------- batch against one job

def timed_run(server: StandInWaveSpeed, batch: list[I2VJob], concurrency: int) -> tuple[float, float]:
    """(wall seconds, mean poll lag): lag is how late a poll saw a finished task."""
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        results = run_batch(batch, api_key=server.api_key, output_dir=folder, journal=JobJournal(folder),
                            settings=ClientSettings(base_url=server.base_url), concurrency=concurrency,
                            timeout_s=600)
        elapsed = time.perf_counter() - started
        assert len(results) == len(batch) and all(r.frames.shape[0] > 0 for r in results)
        tasks = [server.tasks[r.task_id] for r in results]
        del results
    return elapsed, statistics.mean(t.done_seen_at - t.done_at for t in tasks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processing", type=float, default=20.0, help="seconds the server spends on a task")
    parser.add_argument("--repeats", type=int, default=2, help="runs per batch measurement (median)")
    parser.add_argument("--cancel-repeats", type=int, default=5, help="Cancels per phase")
    parser.add_argument("--small", action="store_true", help="a 64x48, 9-frame output instead of 720p, 121 frames")
    args = parser.parse_args()

    width, height, frames = (64, 48, 9) if args.small else (1280, 720, 121)
    video = make_mp4((90, 120, 160), frames=frames, width=width, height=height)

    print(f"Cancel -> run stopped, real client timing, {args.cancel_repeats} Cancels per phase (goal <= 1.5 s):")
    worst = 0.0
    with tempfile.TemporaryDirectory() as scratch:
        for number, (name, setup) in enumerate(phases(video).items()):
            times = [cancel_latency(setup, f"{scratch}/{number}-{r}") for r in range(args.cancel_repeats)]
            worst = max(worst, max(times))
            print(f"  {name:<46} median {statistics.median(times):.3f} s, max {max(times):.3f} s")
        time.sleep(1.0)  # let requests left on Cancel finish writing before the folder goes
    print(f"  worst case {worst:.3f} s ({worst / 1.5:.2f}x the 1.5 s goal)")

    print(f"\nHunyuanVideo-1.5 endpoint, server {args.processing:.1f} s per task, output {width}x{height}, {frames} "
          f"frames ({len(video) / 1e6:.2f} MB MP4); medians of {args.repeats} runs")
    with StandInWaveSpeed(processing_s=args.processing) as server:
        server.fixed_video = video

        def median(count: int, concurrency: int) -> tuple[float, float]:
            runs = [timed_run(server, jobs(count), concurrency) for _ in range(args.repeats)]
            return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)

        single, single_lag = median(1, 1)
        batch, batch_lag = median(4, 4)
        submits = server.submits_received

    P = args.processing
    print(f"one job: wall {single:.2f} s = processing {P:.2f} s + overhead {single - P:.2f} s "
          f"(poll lag {single_lag:.2f} s, client work {single - P - single_lag:.2f} s)")
    print(f"batch of 4 at concurrency 4: wall {batch:.2f} s (poll lag {batch_lag:.2f} s); "
          f"ratio to one job {batch / single:.3f}x (goal <= 1.30x)")
    # The poll lag depends on where a task's end falls in the 1 s .. 5 s poll schedule, so it varies from run
    # to run by seconds; without it the ratio shows what the batch itself costs (4 decodes on this machine).
    print(f"  without poll lag: one job {single - single_lag:.2f} s, batch {batch - batch_lag:.2f} s, "
          f"ratio {(batch - batch_lag) / (single - single_lag):.3f}x")
    print(f"submits received: {submits} (expected {args.repeats * 5}: none doubled)")


if __name__ == "__main__":
    main()
