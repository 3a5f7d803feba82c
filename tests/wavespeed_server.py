"""A stand-in for WaveSpeed's API on 127.0.0.1, for tests and the benchmark.

It implements the documented endpoints (submit for both Hunyuan image-to-video
models, result, the SDK's upload ticket with its signed PUT, the older binary
upload) plus file downloads of real MP4s made with PyAV, and injects the faults
a real service shows: HTTP errors, rate limits with Retry-After, resets, answers
withheld until the client gives up, malformed JSON, failed / stuck / NSFW tasks,
missing and truncated outputs.

Faults are queued per endpoint and used once each, in order:

    server.inject("result", Fault(status=503), Fault(status=503))

Endpoints: ticket, put, binary, submit, result, download, media. Task outcomes
are queued the same way (``server.outcomes.append(...)``); a task with no
queued outcome completes after ``processing_s`` seconds.

Ordering without sleeps: ``gate = server.hold("result")`` makes requests to an
endpoint wait at a fixed point until ``gate.release()``; ``gate.wait_arrived(n)``
returns once n requests are waiting or went through, and
``server.wait_until(predicate)`` once the server's state satisfies it. Counters
(``submits_received``, ``tasks_created``, ``polls``...) let tests prove that
nothing was sent twice. Every request's headers are kept for the key checks.

This module holds the server's state and controls; the tests and the benchmark
import from here only. Its parts: ``wavespeed_faults`` (faults, holds, how an
answer is sent), ``wavespeed_tasks`` (outcomes, request schemas, the MP4s),
``wavespeed_uploads`` (the upload routes) and ``wavespeed_routes`` (the rest).
"""

from __future__ import annotations

import io
import threading
import time
import uuid
from collections import deque
from typing import Any, Callable

import numpy as np
from PIL import Image

from wavespeed_faults import Fault, Gate
from wavespeed_routes import Handler, QuietServer
from wavespeed_tasks import Outcome, Task, decode_inline_image, make_mp4

__all__ = ["FAST_TIMING", "Fault", "Gate", "Outcome", "StandInWaveSpeed", "Task", "decode_inline_image", "make_mp4"]

# Client timing for tests: short waits, every loop bounded. The read timeouts
# stay well above a loopback answer even on a busy machine (a submit timing out
# would be an "uncertain" error); answers "slower than the read timeout" are
# stalled until the client hangs up, not timed.
FAST_TIMING = dict(connect_timeout_s=2.0, read_timeout_s=1.0, submit_read_timeout_s=2.0,
                   poll_start_s=0.02, poll_max_s=0.1, poll_growth=1.5,
                   http_retries=3, backoff_s=0.01, backoff_max_s=0.05, retry_after_max_s=2.0,
                   submit_connect_retries=3, submit_rate_limit_retries=3, download_attempts=3, ui_tick_s=0.02,
                   stop_check_s=0.01)


class StandInWaveSpeed:
    def __init__(self, api_key: str = "ws-test-key-5f0c1e7d9a", processing_s: float = 0.0, port: int = 0):
        self.api_key = api_key
        self.processing_s = processing_s
        self.faults: dict[str, deque[Fault]] = {k: deque() for k in
                                                ("ticket", "put", "binary", "submit", "result", "download", "media")}
        self.gates: dict[str, Gate] = {}
        self.ticket_route = True  # False: the server knows only the older binary upload route (404 on tickets)
        self.outcomes: deque[Outcome] = deque()
        self.outcomes_by_prompt: dict[str, Outcome] = {}  # for concurrent submits, whose order is not fixed
        self.damaged_outputs = False  # serve half of every MP4 with a matching length
        self.fixed_video: bytes | None = None  # serve these bytes for every task (the benchmark's full-size video)
        self.tasks: dict[str, Task] = {}
        self.media: dict[str, bytes] = {}
        self.tickets: dict[str, dict[str, Any]] = {}
        self.videos: dict[str, bytes] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path, headers)
        self.submit_times: list[float] = []    # when tasks were created
        self.submit_arrivals: list[float] = []  # when submit requests arrived, refused ones included
        self.submits_received = self.tasks_created = self.polls = self.uploads = self.downloads = 0
        self.ticket_requests = self.puts = self.binary_uploads = 0
        self.finished = 0  # requests whose handling ended (answered, refused or dropped)
        self.max_running = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._closing = threading.Event()
        self._httpd = QuietServer(("127.0.0.1", port), Handler)
        self._httpd.daemon_threads = True
        self._httpd.stand_in = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    # ------------------------------------------------------------ control

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> "StandInWaveSpeed":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()
        for task in self.tasks.values():
            task.released.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "StandInWaveSpeed":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def inject(self, endpoint: str, *faults: Fault) -> None:
        self.faults[endpoint].extend(faults)

    def hold(self, endpoint: str) -> Gate:
        """From now on, hold ``endpoint``'s requests until the returned gate is released."""
        self.gates[endpoint] = gate = Gate()
        return gate

    def release_all(self) -> None:
        """Let held tasks finish and held requests through."""
        for task in list(self.tasks.values()):
            task.released.set()
        for gate in list(self.gates.values()):
            gate.release()

    def wait_until(self, predicate: Callable[["StandInWaveSpeed"], bool], timeout: float = 30.0) -> bool:
        """Block until ``predicate(server)`` holds (checked whenever a request starts or ends)."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout)

    def headers_seen(self, path_part: str) -> list[dict[str, str]]:
        return [h for _, path, h in self.requests if path_part in path]

    # ------------------------------------------------------------ behaviour

    def count(self, name: str) -> None:
        with self._changed:
            setattr(self, name, getattr(self, name) + 1)
            self._changed.notify_all()

    def next_fault(self, endpoint: str) -> Fault | None:
        with self._lock:
            queue_ = self.faults[endpoint]
            return queue_.popleft() if queue_ else None

    def at_gate(self, endpoint: str) -> None:
        gate = self.gates.get(endpoint)
        if gate is not None:
            gate.enter(self._closing)

    def create_task(self, model: str, payload: dict[str, Any]) -> Task:
        with self._changed:
            outcome = self.outcomes_by_prompt.get(payload.get("prompt"))
            if outcome is None:
                outcome = self.outcomes.popleft() if self.outcomes else Outcome()
            task = Task(uuid.uuid4().hex, model, payload, outcome, time.monotonic())
            self.tasks[task.id] = task
            self.tasks_created += 1
            self.submit_times.append(time.monotonic())
            running = sum(1 for t in self.tasks.values() if self._state(t) in ("created", "processing"))
            self.max_running = max(self.max_running, running)
            self._changed.notify_all()
        return task

    def _state(self, task: Task) -> str:
        outcome = task.outcome
        if outcome.kind == "stuck":
            return "processing"
        if outcome.kind == "hold" and not task.released.is_set():
            return "processing"
        wait = self.processing_s if outcome.processing_s is None else outcome.processing_s
        if time.monotonic() - task.created < wait:
            return "processing"
        if task.done_at is None:
            task.done_at = task.created + wait if outcome.kind != "hold" else time.monotonic()
        return "failed" if outcome.kind == "failed" else "completed"

    def image_bytes(self, task: Task) -> bytes | None:
        image = task.payload.get("image", "")
        if image.startswith("http"):
            return self.media.get(image.rsplit("/", 1)[-1])
        return decode_inline_image(image)

    def video_for(self, task: Task) -> bytes:
        """The task's MP4: its color is the mean color of the start image (so order can be checked)."""
        if self.fixed_video is not None:
            return self.fixed_video
        with self._lock:
            if task.id not in self.videos:
                color = (128, 128, 128)
                data = self.image_bytes(task)
                if data:
                    with Image.open(io.BytesIO(data)) as image:
                        mean = np.asarray(image.convert("RGB"), dtype=np.float64).mean(axis=(0, 1))
                    color = tuple(int(round(c)) for c in mean)
                self.videos[task.id] = make_mp4(color)
            return self.videos[task.id]

    def task_json(self, task: Task) -> dict[str, Any]:
        state = self._state(task)
        data: dict[str, Any] = {
            "id": task.id, "model": task.model, "outputs": [],
            "urls": {"get": f"{self.base_url}/api/v3/predictions/{task.id}/result"},
            "has_nsfw_contents": [], "status": state, "created_at": "2025-03-07T10:00:00Z", "error": "",
            "timings": {"inference": 0},
        }
        envelope: dict[str, Any] = {"code": 200, "message": "success", "data": data}
        if state == "completed":
            data["outputs"] = [f"{self.base_url}/outputs/{task.id}.mp4"]
            data["has_nsfw_contents"] = [task.outcome.nsfw]
            data["timings"] = {"inference": 1234}
        elif state == "failed":
            data["error"] = task.outcome.message or "task failed"
            envelope["code"] = task.outcome.code or 1403
            envelope["message"] = task.outcome.message or "task failed"
        return envelope
