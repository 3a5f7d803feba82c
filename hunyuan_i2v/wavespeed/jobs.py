"""WaveSpeed jobs: what to ask for, and running a batch without paying twice.

A job is one image (PNG bytes or a URL) plus the endpoint's settings. A batch
runs its jobs on worker threads, at most ``concurrency`` at once, while the
calling thread reports status and watches for an interrupt. Each job first asks
the journal whether its inputs already have a task (resume it), a finished
video URL (download it) or a saved file (reuse it); only otherwise does it pay
for a new task.
"""

from __future__ import annotations

import io
import logging
import os
import queue
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..errors import UserInputError
from ..shared.video import read_mp4
from .client import (
    MODEL_ID, PRICE_PER_RUN_USD, SIZES, STEPS_RANGE, DURATION_RANGE, SEED_RANGE, ClientSettings,
    WaveSpeedClient, estimate_price, extract_inference_s, extract_nsfw, extract_output_url,
)
from .errors import WaveSpeedError, WaveSpeedInterrupted, WaveSpeedTaskFailed
from .journal import COMPLETED, DOWNLOADING, REMOTE_RETENTION_S, JobJournal, job_key

log = logging.getLogger(__name__)

DEFAULT_FILE_PREFIX = "wavespeed/hunyuan_i2v"


# ---------------------------------------------------------------- jobs

@dataclass(frozen=True)
class I2VJob:
    """One video request. Give ``image_png`` (uploaded first) or ``image_url``."""

    prompt: str
    steps: int = 30
    duration: int = 5
    seed: int = -1
    size: str = SIZES[0]
    enable_safety_checker: bool = True
    image_png: bytes | None = field(default=None, repr=False)
    image_digest: str | None = None   # hash of the pixels; keys the journal
    image_url: str | None = None
    occurrence: int = 0               # the n-th identical job in one batch

    def __post_init__(self) -> None:
        checks = [("num_inference_steps", self.steps, STEPS_RANGE), ("duration", self.duration, DURATION_RANGE),
                  ("seed", self.seed, SEED_RANGE)]
        for name, value, (low, high) in checks:
            if not low <= int(value) <= high:
                raise UserInputError(f"{name} is {value}; WaveSpeed accepts {low}..{high}.")
        if self.size not in SIZES:
            raise UserInputError(f"size '{self.size}' is not one of {', '.join(SIZES)}.")
        if (self.image_png is None) == (not self.image_url):
            raise UserInputError("Give exactly one image: connect an IMAGE or fill in image_url.")
        if self.image_url and not re.match(r"^https?://", self.image_url):
            raise UserInputError(f"image_url must start with http:// or https:// (got '{self.image_url[:80]}').")
        if self.image_png is not None and not self.image_digest:
            raise UserInputError("An uploaded image needs its pixel digest (use encode_image()).")

    @property
    def random_seed(self) -> bool:
        return self.seed == -1

    def journal_inputs(self) -> dict[str, Any]:
        return {"model": MODEL_ID, "prompt": self.prompt, "image": self.image_url or f"sha256:{self.image_digest}",
                "num_inference_steps": int(self.steps), "duration": int(self.duration), "seed": int(self.seed),
                "size": self.size, "enable_safety_checker": bool(self.enable_safety_checker),
                "occurrence": int(self.occurrence)}

    @property
    def key(self) -> str:
        return job_key(self.journal_inputs())

    def payload(self, image_url: str) -> dict[str, Any]:
        return {"prompt": self.prompt, "image": image_url, "num_inference_steps": int(self.steps),
                "duration": int(self.duration), "seed": int(self.seed), "size": self.size,
                "enable_safety_checker": bool(self.enable_safety_checker)}


def encode_image(pixels: np.ndarray) -> tuple[bytes, str]:
    """PNG bytes and a pixel digest for an [H, W, C] uint8 image."""
    import hashlib

    from PIL import Image

    pixels = np.ascontiguousarray(pixels)
    if pixels.ndim != 3 or pixels.shape[-1] not in (1, 3, 4) or pixels.dtype != np.uint8:
        raise UserInputError(f"Expected an [H, W, C] uint8 image, got {pixels.shape} {pixels.dtype}.")
    digest = hashlib.sha256(repr(pixels.shape).encode() + pixels.tobytes()).hexdigest()
    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(buffer, format="PNG")
    return buffer.getvalue(), digest


def size_for(width: int, height: int) -> str:
    """The endpoint size matching an image's orientation (square counts as landscape)."""
    return SIZES[1] if height > width else SIZES[0]


def assign_occurrences(jobs: Sequence[I2VJob]) -> list[I2VJob]:
    """Number identical jobs so each gets its own task and journal entry."""
    seen: dict[str, int] = {}
    numbered = []
    for job in jobs:
        base = replace(job, occurrence=0).key
        numbered.append(replace(job, occurrence=seen.get(base, 0)))
        seen[base] = seen.get(base, 0) + 1
    return numbered


def output_path(output_dir: str | os.PathLike, file_prefix: str, task_id: str) -> Path:
    """Where a task's MP4 is saved: ``<output>/<prefix folders>/<prefix name>_<task id>.mp4``."""
    prefix = (file_prefix or "").strip().replace("\\", "/").rstrip("/") or "wavespeed"
    parts = prefix.split("/")
    if any(p in ("", ".", "..") for p in parts) or ":" in prefix:
        raise UserInputError(f"filename_prefix '{file_prefix}' must be a relative name inside the output folder, "
                             "such as 'wavespeed/hunyuan_i2v'.")
    safe_id = re.sub(r"[^A-Za-z0-9_-]", "_", task_id)[:64]
    path = Path(output_dir).joinpath(*parts[:-1]) / f"{parts[-1]}_{safe_id}.mp4"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path



# ---------------------------------------------------------------- running

@dataclass
class JobResult:
    index: int
    task_id: str
    video_url: str
    path: Path
    frames: torch.Tensor = field(repr=False)
    fps: float
    nsfw: bool
    inference_s: float | None
    source: str  # "new task", "resumed task", "saved file"


@dataclass
class JobStatus:
    index: int
    phase: str = "queued"
    task_id: str | None = None
    elapsed_s: float = 0.0
    inference_s: float | None = None
    note: str = ""
    charged: bool = False  # this run submitted (and pays for) a new task


def status_text(statuses: Sequence[JobStatus]) -> str:
    """The lines shown on the node while a batch runs."""
    new_runs = sum(s.charged for s in statuses)
    done = sum(s.phase == "done" for s in statuses)
    lines = [f"WaveSpeed: {done}/{len(statuses)} done - est. ${estimate_price(new_runs):.2f} "
             f"({new_runs} new run{'s' if new_runs != 1 else ''} x ${PRICE_PER_RUN_USD:.2f} published price)"]
    for s in statuses:
        parts = [f"#{s.index + 1}", s.task_id[:12] if s.task_id else "-", s.phase, f"{s.elapsed_s:.0f} s"]
        if s.inference_s is not None:
            parts.append(f"inference {s.inference_s:.1f} s")
        lines.append(" ".join(parts) + (f" ({s.note})" if s.note else ""))
    return "\n".join(lines)


class _Skipped(Exception):
    """Not started because another job of the batch already failed."""


def run_job(client: WaveSpeedClient, journal: JobJournal, job: I2VJob, index: int = 0, *,
            output_dir: str | os.PathLike, file_prefix: str = DEFAULT_FILE_PREFIX, timeout_s: float = 1200.0,
            report: Callable[[JobStatus], None] = lambda status: None,
            may_submit: Callable[[], bool] = lambda: True) -> JobResult:
    """One job from journal lookup to decoded frames; see the module text."""
    started = time.monotonic()
    deadline = started + timeout_s
    status = JobStatus(index)

    def emit(**changes: Any) -> None:
        for name, value in changes.items():
            setattr(status, name, value)
        status.elapsed_s = time.monotonic() - started
        report(replace(status))

    key = job.key
    entry = journal.resumable(key, job.random_seed)
    if entry and entry["state"] == COMPLETED:
        saved = _read_saved(Path(entry.get("local_file", "")))
        if saved is not None:
            emit(phase="done", task_id=entry["task_id"], inference_s=entry.get("inference_s"),
                 note="reused the saved video, no new run")
            return JobResult(index, entry["task_id"], entry["video_url"], Path(entry["local_file"]), saved[0],
                             saved[1], bool(entry.get("nsfw")), entry.get("inference_s"), "saved file")
        fresh = time.time() - float(entry.get("updated_at", 0)) <= REMOTE_RETENTION_S
        entry = dict(entry, state=DOWNLOADING) if fresh and entry.get("video_url") else None

    source = "resumed task"
    if entry and entry["state"] == DOWNLOADING:
        task_id, url = entry["task_id"], entry["video_url"]
        nsfw, inference_s = bool(entry.get("nsfw")), entry.get("inference_s")
        emit(task_id=task_id, note="resuming a finished task")
    else:
        if entry:
            task_id = entry["task_id"]
            emit(phase="resuming", task_id=task_id, note="resuming a task already paid for")
        else:
            if not may_submit():
                raise _Skipped()
            source = "new task"
            image_url = job.image_url
            if image_url is None:
                emit(phase="uploading image")
                image_url = client.upload_image(job.image_png)
            emit(phase="submitting")
            task_id = client.submit(job.payload(image_url), deadline)
            journal.record_pending(key, task_id, job.journal_inputs(), job.random_seed)
            emit(phase="submitted", task_id=task_id, charged=True)
        try:
            data = client.wait_for(task_id, deadline, timeout_s,
                                   lambda st, inf, note: emit(phase=st, inference_s=inf, note=note))
        except WaveSpeedTaskFailed:
            journal.forget(key)  # a failed task never delivers; the next run submits afresh
            raise
        url, nsfw, inference_s = extract_output_url(data), extract_nsfw(data), extract_inference_s(data)
        journal.record_output(key, url, nsfw, inference_s)
    if nsfw:
        log.warning("WaveSpeed's safety checker flagged the output of task %s as NSFW.", task_id)
    emit(phase="downloading", inference_s=inference_s,
         note="output flagged NSFW by WaveSpeed's safety checker" if nsfw else "")
    path = output_path(output_dir, file_prefix, task_id)
    frames, fps = client.fetch_video(url, path, task_id)
    journal.record_saved(key, path)
    emit(phase="done", note=status.note or f"saved {path.name}")
    return JobResult(index, task_id, url, path, frames, fps, nsfw, inference_s, source)


def _read_saved(path: Path) -> tuple[torch.Tensor, float] | None:
    if not path.is_file():
        return None
    try:
        return read_mp4(path)
    except UserInputError:
        return None


class WaveSpeedBatchError(WaveSpeedError):
    def __init__(self, message: str, errors: list[tuple[int, BaseException]]):
        super().__init__(message)
        self.errors = errors


def run_batch(jobs: Sequence[I2VJob], *, api_key: str, output_dir: str | os.PathLike, journal: JobJournal,
              settings: ClientSettings | None = None, concurrency: int = 2, timeout_s: float = 1200.0,
              file_prefix: str = DEFAULT_FILE_PREFIX, interrupted: Callable[[], bool] = lambda: False,
              on_update: Callable[[list[JobStatus]], None] | None = None,
              state_dir: str | os.PathLike | None = None) -> list[JobResult]:
    """Run ``jobs`` concurrently; results in input order.

    ``interrupted`` and ``on_update`` are called from the calling thread only,
    so they may use services that are not thread-safe. After a job fails, jobs
    not yet started are skipped (no money spent on a batch that will error),
    while submitted ones finish and are saved, so nothing paid for is lost.
    """
    if not jobs:
        raise UserInputError("There is no image to animate.")
    jobs = assign_occurrences(jobs)
    stop, failed = threading.Event(), threading.Event()
    client = WaveSpeedClient(api_key, settings, should_stop=stop.is_set, state_dir=state_dir)
    updates: queue.SimpleQueue[JobStatus] = queue.SimpleQueue()
    statuses = [JobStatus(i) for i in range(len(jobs))]

    def publish() -> None:
        changed = False
        while not updates.empty():
            update = updates.get()
            statuses[update.index] = update
            changed = True
        if changed and on_update is not None:
            on_update(list(statuses))

    try:
        with ThreadPoolExecutor(max_workers=max(1, min(int(concurrency), len(jobs))),
                                thread_name_prefix="wavespeed") as pool:
            def guarded(job: I2VJob, index: int) -> JobResult:
                try:
                    return run_job(client, journal, job, index, output_dir=output_dir, file_prefix=file_prefix,
                                   timeout_s=timeout_s, report=updates.put, may_submit=lambda: not failed.is_set())
                except BaseException:
                    failed.set()  # before this worker takes the next job, which must then not submit
                    raise

            futures = [pool.submit(guarded, job, i) for i, job in enumerate(jobs)]
            try:
                remaining = set(futures)
                while remaining:
                    _, remaining = wait(remaining, timeout=client.settings.ui_tick_s)
                    if interrupted():
                        stop.set()
                    publish()
            except BaseException:
                stop.set()  # the caller's own interrupt: let the workers end, then re-raise
                raise
        publish()
    finally:
        client.close()

    outcomes = [(i, f.exception()) for i, f in enumerate(futures)]
    errors = [(i, e) for i, e in outcomes if e is not None and not isinstance(e, _Skipped)]
    if stop.is_set() or any(isinstance(e, WaveSpeedInterrupted) for _, e in errors):
        raise WaveSpeedInterrupted("Stopped on request; recorded WaveSpeed tasks resume when the same inputs run again.")
    if errors:
        raise _batch_error(errors, [f.result() for f in futures if f.exception() is None], len(jobs), client)
    return [f.result() for f in futures]


def _batch_error(errors: list[tuple[int, BaseException]], finished: list[JobResult], total: int,
                 client: WaveSpeedClient) -> BaseException:
    index, first = errors[0]
    if total == 1 or not isinstance(first, WaveSpeedError):
        text = str(first)
        # A last guard: whatever raised, the key must not travel on in its text.
        return first if client.scrub(text) == text else WaveSpeedError(client.scrub(text))
    saved = ", ".join(r.path.name for r in finished) or "none"
    skipped = total - len(errors) - len(finished)
    message = (f"{len(errors)} of {total} WaveSpeed videos failed. Video {index + 1}: {first} "
               f"Saved in the output folder: {saved}."
               + (f" {skipped} not started because of the failure." if skipped else ""))
    return WaveSpeedBatchError(client.scrub(message), errors)
