"""A stand-in for WaveSpeed's API on 127.0.0.1, for tests and the benchmark.

It implements the documented endpoints (submit, result, media upload) plus
file downloads of real MP4s made with PyAV, and injects the faults a real
service shows: HTTP errors, rate limits with Retry-After, resets, slow answers,
malformed JSON, failed / stuck / NSFW tasks, missing and truncated outputs.

Faults are queued per endpoint and used once each, in order:

    server.inject("result", Fault(status=503), Fault(status=503))

Task outcomes are queued the same way (``server.outcomes.append(...)``); a
task with no queued outcome completes after ``processing_s`` seconds. Counters
(``submits_received``, ``tasks_created``, ``polls``...) let tests prove that
nothing was sent twice. Every request's headers are kept for the key checks.
"""

from __future__ import annotations

import io
import json
import socket
import struct
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import av
import numpy as np
from PIL import Image

SUBMIT_PATH = "/api/v3/wavespeed-ai/hunyuan-video/i2v"
UPLOAD_PATH = "/api/v3/media/upload/binary"
SIZES = ("1280*720", "720*1280")

# Client timing for tests: short waits, every loop bounded. The read timeout
# stays well above a loopback answer even on a busy machine.
FAST_TIMING = dict(connect_timeout_s=2.0, read_timeout_s=0.5, submit_read_timeout_s=0.5,
                   poll_start_s=0.02, poll_max_s=0.1, poll_growth=1.5,
                   http_retries=3, backoff_s=0.01, backoff_max_s=0.05, retry_after_max_s=2.0,
                   submit_connect_retries=3, submit_rate_limit_retries=3, download_attempts=3, ui_tick_s=0.02)
SLOW_S = 1.0  # an answer this late is past FAST_TIMING's read timeout


@dataclass
class Fault:
    """One injected misbehaviour.

    status: answer with this HTTP status (and ``message`` / ``retry_after``);
    reset: drop the connection with a TCP reset after reading the request;
    delay_s: wait this long before answering (longer than the client's read timeout);
    malformed: answer 200 with a body that is not JSON;
    truncate: (downloads) promise the whole file, send half, close.
    For submits, reset / delay / malformed happen after the task was created,
    as when a request reached the server and only the answer got lost.
    """

    status: int | None = None
    message: str = ""
    code: int | None = None
    retry_after: str | None = None
    reset: bool = False
    delay_s: float = 0.0
    malformed: bool = False
    truncate: bool = False


@dataclass
class Outcome:
    """How a task ends: completed (optionally NSFW), failed with a code, or stuck."""

    kind: str = "completed"  # completed | failed | stuck | hold
    code: int | None = None
    message: str = ""
    nsfw: bool = False
    processing_s: float | None = None


@dataclass
class Task:
    id: str
    payload: dict[str, Any]
    outcome: Outcome
    created: float
    released: threading.Event = field(default_factory=threading.Event)
    done_at: float | None = None       # when the task became completed or failed
    done_seen_at: float | None = None  # when a poll first reported it


def make_mp4(color: tuple[int, int, int] = (128, 128, 128), frames: int = 9, width: int = 64, height: int = 48,
             fps: int = 24) -> bytes:
    """A small real H.264 MP4 whose frames are ``color`` plus a moving bar."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            array = np.empty((height, width, 3), dtype=np.uint8)
            array[:] = color
            array[:, (i * 4) % width: (i * 4) % width + 4] = 255 - np.array(color, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


class StandInWaveSpeed:
    def __init__(self, api_key: str = "ws-test-key-5f0c1e7d9a", processing_s: float = 0.0, port: int = 0):
        self.api_key = api_key
        self.processing_s = processing_s
        self.faults: dict[str, deque[Fault]] = {k: deque() for k in ("submit", "result", "upload", "download", "media")}
        self.outcomes: deque[Outcome] = deque()
        self.outcomes_by_prompt: dict[str, Outcome] = {}  # for concurrent submits, whose order is not fixed
        self.damaged_outputs = False  # serve half of every MP4 with a matching length
        self.fixed_video: bytes | None = None  # serve these bytes for every task (the benchmark's full-size video)
        self.tasks: dict[str, Task] = {}
        self.media: dict[str, bytes] = {}
        self.videos: dict[str, bytes] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path, headers)
        self.submit_times: list[float] = []    # when tasks were created
        self.submit_arrivals: list[float] = []  # when submit requests arrived, refused ones included
        self.submits_received = self.tasks_created = self.polls = self.uploads = self.downloads = 0
        self.max_running = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._httpd = _QuietServer(("127.0.0.1", port), _Handler)
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

    def release_all(self) -> None:
        """Let held tasks finish."""
        for task in list(self.tasks.values()):
            task.released.set()

    def headers_seen(self, path_part: str) -> list[dict[str, str]]:
        return [h for _, path, h in self.requests if path_part in path]

    # ------------------------------------------------------------ behaviour

    def next_fault(self, endpoint: str) -> Fault | None:
        with self._lock:
            queue_ = self.faults[endpoint]
            return queue_.popleft() if queue_ else None

    def create_task(self, payload: dict[str, Any]) -> Task:
        with self._lock:
            outcome = self.outcomes_by_prompt.get(payload.get("prompt"))
            if outcome is None:
                outcome = self.outcomes.popleft() if self.outcomes else Outcome()
            task = Task(uuid.uuid4().hex, payload, outcome, time.monotonic())
            self.tasks[task.id] = task
            self.tasks_created += 1
            self.submit_times.append(time.monotonic())
            running = sum(1 for t in self.tasks.values() if self._state(t) in ("created", "processing"))
            self.max_running = max(self.max_running, running)
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

    def video_for(self, task: Task) -> bytes:
        """The task's MP4: its color is the mean color of the uploaded image (so order can be checked)."""
        if self.fixed_video is not None:
            return self.fixed_video
        with self._lock:
            if task.id not in self.videos:
                name = task.payload.get("image", "").rsplit("/", 1)[-1]
                color = (128, 128, 128)
                if name in self.media:
                    with Image.open(io.BytesIO(self.media[name])) as image:
                        mean = np.asarray(image.convert("RGB"), dtype=np.float64).mean(axis=(0, 1))
                    color = tuple(int(round(c)) for c in mean)
                self.videos[task.id] = make_mp4(color)
            return self.videos[task.id]

    def task_json(self, task: Task) -> dict[str, Any]:
        state = self._state(task)
        data: dict[str, Any] = {
            "id": task.id, "model": "wavespeed-ai/hunyuan-video/i2v", "outputs": [],
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


def _validate(payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return "body must be a JSON object"
    if not isinstance(payload.get("prompt"), str) or not payload["prompt"].strip():
        return "prompt is required"
    if not isinstance(payload.get("image"), str) or not payload["image"].startswith("http"):
        return "image must be a URL"
    steps, duration, seed = payload.get("num_inference_steps"), payload.get("duration"), payload.get("seed")
    if not isinstance(steps, int) or not 2 <= steps <= 30:
        return "num_inference_steps must be 2..30"
    if duration not in range(5, 11):
        return "duration must be 5..10"
    if not isinstance(seed, int) or not -1 <= seed <= 9_999_999_999:
        return "seed must be -1..9999999999"
    if payload.get("size") not in SIZES:
        return "size must be 1280*720 or 720*1280"
    if not isinstance(payload.get("enable_safety_checker"), bool):
        return "enable_safety_checker must be a boolean"
    return None


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and left is part of the faults under test


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the per-request log
        pass

    @property
    def api(self) -> StandInWaveSpeed:
        return self.server.stand_in  # type: ignore[attr-defined]

    # ------------------------------------------------------------ plumbing

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, content_type: str = "application/json",
              extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, document: Any, extra: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(document).encode(), extra=extra)

    def _reset(self) -> None:
        # SO_LINGER 0 turns the close into a TCP reset.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    def _apply(self, fault: Fault | None) -> bool:
        """Act out a fault; True when the answer was given (or withheld)."""
        if fault is None:
            return False
        if fault.delay_s:
            self.api._closing.wait(fault.delay_s)
        if fault.reset:
            self._reset()
            return True
        if fault.malformed:
            self._send(200, b'{"code": 200, "data": {"id": ')
            return True
        if fault.status is not None:
            extra = {"Retry-After": fault.retry_after} if fault.retry_after else None
            self._json(fault.status, {"code": fault.code or fault.status, "message": fault.message or "injected",
                                      "data": None}, extra)
            return True
        return False

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {self.api.api_key}":
            return True
        self._json(401, {"code": 401, "message": "Unauthorized: invalid API key", "data": None})
        return False

    def _record(self) -> None:
        with self.api._lock:
            self.api.requests.append((self.command, self.path, dict(self.headers.items())))

    # ------------------------------------------------------------ endpoints

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        self._record()
        body = self._body()
        if self.path == SUBMIT_PATH:
            self._submit(body)
        elif self.path == UPLOAD_PATH:
            self._upload(body)
        else:
            self._json(404, {"code": 404, "message": "not found", "data": None})

    def do_GET(self) -> None:  # noqa: N802
        self._record()
        path = self.path
        if path.startswith("/api/v3/predictions/"):
            self._result(path.split("/")[4])
        elif path.startswith("/outputs/"):
            self._download(path[len("/outputs/"):].removesuffix(".mp4"))
        elif path.startswith("/media/"):
            name = path[len("/media/"):]
            if self._apply(self.api.next_fault("media")):
                return
            data = self.api.media.get(name)
            self._send(200, data, "image/png") if data else self._json(404, {"code": 404, "message": "no file"})
        else:
            self._json(404, {"code": 404, "message": "not found", "data": None})

    def _submit(self, body: bytes) -> None:
        api = self.api
        with api._lock:
            api.submits_received += 1
            api.submit_arrivals.append(time.monotonic())
        fault = api.next_fault("submit")
        if fault and fault.status is not None:
            self._apply(fault)  # refused before any task exists
            return
        if not self._authorized():
            return
        try:
            payload = json.loads(body)
        except ValueError:
            self._json(400, {"code": 400, "message": "body is not JSON", "data": None})
            return
        problem = _validate(payload)
        if problem:
            self._json(400, {"code": 1401, "message": problem, "data": None})
            return
        task = api.create_task(payload)
        if self._apply(fault):
            return
        self._json(200, api.task_json(task))

    def _upload(self, body: bytes) -> None:
        if self._apply(self.api.next_fault("upload")) or not self._authorized():
            return
        message = BytesParser(policy=email_policy).parsebytes(
            b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body)
        parts = [p for p in message.iter_parts() if p.get_param("name", header="content-disposition") == "file"]
        if not parts:
            self._json(400, {"code": 400, "message": "multipart field 'file' is required", "data": None})
            return
        data = parts[0].get_payload(decode=True)
        name = f"{uuid.uuid4().hex}.png"
        with self.api._lock:
            self.api.media[name] = data
            self.api.uploads += 1
        self._json(200, {"code": 200, "message": "success", "data": {
            "type": "image", "download_url": f"{self.api.base_url}/media/{name}", "filename": name,
            "size": len(data)}})

    def _result(self, task_id: str) -> None:
        api = self.api
        with api._lock:
            api.polls += 1
        fault = api.next_fault("result")
        if fault and (fault.status is not None or fault.reset):
            self._apply(fault)
            return
        if not self._authorized():
            return
        task = api.tasks.get(task_id)
        if task is None:
            self._json(404, {"code": 404, "message": f"prediction {task_id} not found", "data": None})
            return
        if self._apply(fault):
            return
        answer = api.task_json(task)
        if answer["data"]["status"] in ("completed", "failed") and task.done_seen_at is None:
            task.done_seen_at = time.monotonic()
        self._json(200, answer)

    def _download(self, task_id: str) -> None:
        api = self.api
        with api._lock:
            api.downloads += 1
        fault = api.next_fault("download")
        if fault and not fault.truncate and self._apply(fault):
            return
        task = api.tasks.get(task_id)
        if task is None or api._state(task) != "completed":
            self._json(404, {"code": 404, "message": "no such file"})
            return
        data = api.video_for(task)
        if api.damaged_outputs:
            data = data[: len(data) // 2]
        if fault and fault.truncate:
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self._send(200, data, "video/mp4")
