"""Running WaveSpeed jobs: resume from the journal, pay only for what is new, stop on request.

A batch runs its jobs on worker threads, at most ``concurrency`` at once, while
the calling thread reports status and watches for a stop request. Each job
first asks the journal whether its inputs already have a task (resume it), a
finished video URL (download it) or a saved file (reuse it); only otherwise
does it pay for a new task.

A stop reaches every wait within a fraction of a second (see
:mod:`.transport`). What is paid is never lost: a task id is journaled before
its first poll, and a submit whose answer was still on its way when the user
cancelled is journaled by the thread that reads that answer; a rerun of the
same inputs in this process first waits for that answer instead of paying again.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..errors import UserInputError
from ..shared.video import read_mp4
from .answers import extract_inference_s, extract_nsfw, extract_output_url
from .client import ClientSettings, WaveSpeedClient
from .errors import WaveSpeedError, WaveSpeedInterrupted, WaveSpeedTaskFailed
from .jobs import DEFAULT_FILE_PREFIX, I2VJob, assign_occurrences, output_path
from .journal import COMPLETED, DOWNLOADING, REMOTE_RETENTION_S, JobJournal
from .transport import STOPPED, Stop

log = logging.getLogger(__name__)


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
    price_usd: float = 0.0  # the estimate for one run of this job
    price_note: str = ""    # how that estimate is made


def status_text(statuses: Sequence[JobStatus]) -> str:
    """The lines shown on the node while a batch runs."""
    new_runs = sum(s.charged for s in statuses)
    done = sum(s.phase == "done" for s in statuses)
    total = sum(s.price_usd for s in statuses if s.charged)
    note = statuses[0].price_note if statuses else ""
    lines = [f"WaveSpeed: {done}/{len(statuses)} done - est. ${total:.2f} "
             f"({new_runs} new run{'s' if new_runs != 1 else ''} x {note})"]
    for s in statuses:
        parts = [f"#{s.index + 1}", s.task_id[:12] if s.task_id else "-", s.phase, f"{s.elapsed_s:.0f} s"]
        if s.inference_s is not None:
            parts.append(f"inference {s.inference_s:.1f} s")
        lines.append(" ".join(parts) + (f" ({s.note})" if s.note else ""))
    return "\n".join(lines)


class _Skipped(Exception):
    """Not started because another job of the batch already failed."""


# Submits whose answer was still on its way when their run was cancelled, by
# job key: the event is set once the answer was read (and its task journaled).
_SUBMITS_IN_FLIGHT: dict[str, threading.Event] = {}
_IN_FLIGHT_LOCK = threading.Lock()


def _await_cancelled_submit(client: WaveSpeedClient, key: str, emit: Callable[..., None]) -> None:
    with _IN_FLIGHT_LOCK:
        finishing = _SUBMITS_IN_FLIGHT.get(key)
    if finishing is None:
        return
    if not finishing.is_set():
        emit(phase="waiting", note="a cancelled run's submit is still being answered; its task is this video's")
        s = client.settings
        # The exchange ends by its own timeouts; this bound only guards against a bug there.
        give_up = time.monotonic() + s.connect_timeout_s + s.submit_read_timeout_s + 5
        while not finishing.wait(s.stop_check_s) and time.monotonic() < give_up:
            client.check_stop()
    with _IN_FLIGHT_LOCK:
        if _SUBMITS_IN_FLIGHT.get(key) is finishing and finishing.is_set():
            del _SUBMITS_IN_FLIGHT[key]


def _submit(client: WaveSpeedClient, journal: JobJournal, job: I2VJob, key: str, image: str,
            deadline: float) -> str:
    def record(task_id: str) -> None:
        journal.record_pending(key, task_id, job.journal_inputs(), job.random_seed)

    try:
        return client.submit(job.endpoint.path, job.payload(image), deadline, on_task=record)
    except WaveSpeedInterrupted as stop:
        if stop.finishing is not None:
            with _IN_FLIGHT_LOCK:
                _SUBMITS_IN_FLIGHT[key] = stop.finishing
        raise


def run_job(client: WaveSpeedClient, journal: JobJournal, job: I2VJob, index: int = 0, *,
            output_dir: str | os.PathLike, file_prefix: str = DEFAULT_FILE_PREFIX, timeout_s: float = 1200.0,
            report: Callable[[JobStatus], None] = lambda status: None,
            may_submit: Callable[[], bool] = lambda: True) -> JobResult:
    """One job from journal lookup to decoded frames; see the module text."""
    started = time.monotonic()
    deadline = started + timeout_s
    status = JobStatus(index, price_usd=job.price_usd, price_note=job.endpoint.price.describe(job.settings))

    def emit(**changes: Any) -> None:
        for name, value in changes.items():
            setattr(status, name, value)
        status.elapsed_s = time.monotonic() - started
        report(replace(status))

    key = job.key
    _await_cancelled_submit(client, key, emit)
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
            image = job.image_reference()
            if image is None:
                emit(phase="uploading image")
                image = client.upload_image(job.image_png)
            emit(phase="submitting")
            task_id = _submit(client, journal, job, key, image, deadline)
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
    stop, failed = Stop(), threading.Event()
    client = WaveSpeedClient(api_key, settings, stop=stop, state_dir=state_dir)
    updates: queue.SimpleQueue[JobStatus] = queue.SimpleQueue()
    statuses = [JobStatus(i, price_usd=job.price_usd, price_note=job.endpoint.price.describe(job.settings))
                for i, job in enumerate(jobs)]

    def publish() -> None:
        changed = False
        while not updates.empty():
            update = updates.get()
            statuses[update.index] = update
            changed = True
        if changed and on_update is not None:
            on_update(list(statuses))

    def guarded(job: I2VJob, index: int) -> JobResult:
        latest = [statuses[index]]

        def report(update: JobStatus) -> None:
            latest[0] = update
            updates.put(update)

        try:
            return run_job(client, journal, job, index, output_dir=output_dir, file_prefix=file_prefix,
                           timeout_s=timeout_s, report=report, may_submit=lambda: not failed.is_set())
        except (_Skipped, WaveSpeedInterrupted):
            raise
        except BaseException as exc:
            # Set before anyone hears of the failure, so no worker submits after it is known.
            failed.set()
            updates.put(replace(latest[0], phase="failed", note=client.scrub(str(exc))[:160]))
            raise

    pool = ThreadPoolExecutor(max_workers=max(1, min(int(concurrency), len(jobs))), thread_name_prefix="wavespeed")
    futures = []
    try:
        futures = [pool.submit(guarded, job, i) for i, job in enumerate(jobs)]
        remaining = set(futures)
        while remaining:
            _, remaining = wait(remaining, timeout=client.settings.ui_tick_s)
            if not stop.is_set() and interrupted():
                stop.event.set()
                for future in remaining:
                    future.cancel()  # jobs not started yet never start; running ones see the stop at once
            publish()
    except BaseException:
        stop.event.set()  # the caller's own interrupt: let the workers end, then re-raise
        for future in futures:
            future.cancel()
        raise
    finally:
        pool.shutdown(wait=True)
        client.close()
    publish()

    outcomes = [(i, f.exception()) for i, f in enumerate(futures) if not f.cancelled()]
    errors = [(i, e) for i, e in outcomes if e is not None and not isinstance(e, _Skipped)]
    if stop.is_set() or any(isinstance(e, WaveSpeedInterrupted) for _, e in errors):
        raise WaveSpeedInterrupted(STOPPED)
    if errors:
        finished = [f.result() for f in futures if f.exception() is None]
        raise _batch_error(errors, finished, len(jobs), client)
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
