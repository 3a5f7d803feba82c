"""The WaveSpeed job journal: paid tasks survive interrupts, crashes and reruns.

Every WaveSpeed run costs money the moment it is submitted. The journal maps a
hash of a job's inputs to the task WaveSpeed created for it, so running the same
inputs again picks the task up where it was instead of paying for a new one.

An entry moves through three states:

- ``pending``: submitted, the result is not known yet (resume by polling);
- ``downloading``: WaveSpeed finished and the video URL is known, but the file
  is not saved yet (resume by downloading, no new task);
- ``completed``: the MP4 is saved locally (reuse the file, no network).

A job with a random seed asks for a new video on every run, so a completed
entry is never reused for it; its pending and downloading entries are, because
those are videos already paid for and not delivered yet.

The journal is one small JSON file written atomically (temp file + rename), so
a process killed mid-write leaves the previous version intact. It stores job
inputs, task ids, URLs and file paths, never the API key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)

JOURNAL_FILE_NAME = "wavespeed_jobs.json"
JOURNAL_VERSION = 1

PENDING = "pending"
DOWNLOADING = "downloading"
COMPLETED = "completed"

# WaveSpeed keeps predictions and their outputs for 7 days; a task older than
# that cannot be resumed. Completed entries live longer because their local
# file can still be reused.
REMOTE_RETENTION_S = 7 * 24 * 3600
LOCAL_RETENTION_S = 30 * 24 * 3600


def job_key(fields: dict[str, Any]) -> str:
    """A stable hash of the inputs that decide what WaveSpeed produces."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class JobJournal:
    """A JSON file of WaveSpeed tasks keyed by :func:`job_key`.

    Safe for the worker threads of one process (one lock around every
    read-modify-write). Writes from separate processes are atomic but not
    merged; ComfyUI runs one prompt at a time, so that is enough.
    """

    def __init__(self, directory: str | os.PathLike, clock: Callable[[], float] = time.time):
        self.path = Path(directory) / JOURNAL_FILE_NAME
        self._clock = clock
        self._lock = threading.Lock()

    # ------------------------------------------------------------ queries

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._load().get(key)
        return dict(entry) if entry else None

    def resumable(self, key: str, random_seed: bool) -> dict[str, Any] | None:
        """The entry a run with these inputs should continue from, if any."""
        entry = self.get(key)
        if entry is None:
            return None
        state = entry.get("state")
        age = self._clock() - float(entry.get("updated_at", 0))
        if state in (PENDING, DOWNLOADING) and age <= REMOTE_RETENTION_S:
            return entry
        if state == COMPLETED and not random_seed:
            return entry
        return None

    def entries(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: dict(v) for k, v in self._load().items()}

    # ------------------------------------------------------------ updates

    def record_pending(self, key: str, task_id: str, inputs: dict[str, Any], random_seed: bool) -> None:
        now = self._clock()
        self._update(key, lambda _old: {
            "state": PENDING,
            "task_id": task_id,
            "inputs": inputs,
            "random_seed": bool(random_seed),
            "created_at": now,
            "updated_at": now,
        })

    def record_output(self, key: str, video_url: str, nsfw: bool, inference_s: float | None) -> None:
        self._merge(key, state=DOWNLOADING, video_url=video_url, nsfw=bool(nsfw), inference_s=inference_s)

    def record_saved(self, key: str, local_file: str | os.PathLike) -> None:
        self._merge(key, state=COMPLETED, local_file=str(local_file))

    def forget(self, key: str) -> None:
        """Drop an entry whose task can never deliver (failed, expired, unknown)."""
        with self._lock:
            entries = self._load()
            if entries.pop(key, None) is not None:
                self._save(entries)

    # ------------------------------------------------------------ storage

    def _merge(self, key: str, **fields: Any) -> None:
        def merged(old: dict[str, Any] | None) -> dict[str, Any]:
            entry = dict(old or {})
            entry.update(fields)
            entry["updated_at"] = self._clock()
            return entry

        self._update(key, merged)

    def _update(self, key: str, make: Callable[[dict[str, Any] | None], dict[str, Any]]) -> None:
        with self._lock:
            entries = self._load()
            entries[key] = make(entries.get(key))
            self._save(self._pruned(entries))

    def _pruned(self, entries: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        now = self._clock()
        kept = {}
        for key, entry in entries.items():
            age = now - float(entry.get("updated_at", 0))
            limit = LOCAL_RETENTION_S if entry.get("state") == COMPLETED else REMOTE_RETENTION_S
            if age <= limit:
                kept[key] = entry
        return kept

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        try:
            document = json.loads(raw)
            entries = document["entries"]
            if not isinstance(entries, dict):
                raise TypeError("entries is not an object")
            return entries
        except (ValueError, KeyError, TypeError) as exc:
            # Keep the damaged file for a person to read rather than silently
            # overwriting the only record of paid tasks.
            backup = self.path.with_name(f"{self.path.name}.damaged-{int(self._clock())}")
            os.replace(self.path, backup)
            log.warning("WaveSpeed journal %s was unreadable (%s); moved it to %s and started a new one.",
                        self.path, exc, backup)
            return {}

    def _save(self, entries: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        document = {"version": JOURNAL_VERSION, "entries": entries}
        handle, temp_name = tempfile.mkstemp(prefix=".wavespeed_jobs.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(document, stream, indent=1, sort_keys=True)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temp_name, self.path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
