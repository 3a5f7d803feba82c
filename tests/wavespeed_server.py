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
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import secrets
import select
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
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import av
import numpy as np
from PIL import Image

MODEL_13B = "wavespeed-ai/hunyuan-video/i2v"
MODEL_15 = "wavespeed-ai/hunyuan-video-1.5/image-to-video"
SUBMIT_PATHS = {f"/api/v3/{MODEL_13B}": MODEL_13B, f"/api/v3/{MODEL_15}": MODEL_15}
TICKET_PATH = "/api/v3/media/uploads"
BINARY_PATH = "/api/v3/media/upload/binary"
SIGNED_PREFIX = "/signed-uploads/"

# Client timing for tests: short waits, every loop bounded. The read timeouts
# stay well above a loopback answer even on a busy machine (a submit timing out
# would be an "uncertain" error); answers "slower than the read timeout" are
# stalled until the client hangs up, not timed.
FAST_TIMING = dict(connect_timeout_s=2.0, read_timeout_s=1.0, submit_read_timeout_s=2.0,
                   poll_start_s=0.02, poll_max_s=0.1, poll_growth=1.5,
                   http_retries=3, backoff_s=0.01, backoff_max_s=0.05, retry_after_max_s=2.0,
                   submit_connect_retries=3, submit_rate_limit_retries=3, download_attempts=3, ui_tick_s=0.02,
                   stop_check_s=0.01)


@dataclass
class Fault:
    """One injected misbehaviour.

    status: answer with this HTTP status (and ``message`` / ``retry_after``);
    reset: drop the connection with a TCP reset after reading the request;
    stall: withhold the answer until the client gives up and hangs up;
    delay_s: wait this long before answering;
    malformed: answer 200 with a body that is not JSON;
    truncate: (downloads) promise the whole file, send half, close.
    For submits, reset / stall / delay / malformed happen after the task was
    created, as when a request reached the server and only the answer got lost.
    """

    status: int | None = None
    message: str = ""
    code: int | None = None
    retry_after: str | None = None
    reset: bool = False
    stall: bool = False
    delay_s: float = 0.0
    malformed: bool = False
    truncate: bool = False


@dataclass
class Outcome:
    """How a task ends: completed (optionally NSFW), failed with a code, stuck, or held until released."""

    kind: str = "completed"  # completed | failed | stuck | hold
    code: int | None = None
    message: str = ""
    nsfw: bool = False
    processing_s: float | None = None


@dataclass
class Task:
    id: str
    model: str
    payload: dict[str, Any]
    outcome: Outcome
    created: float
    released: threading.Event = field(default_factory=threading.Event)
    done_at: float | None = None       # when the task became completed or failed
    done_seen_at: float | None = None  # when a poll first reported it


class Gate:
    """Holds one endpoint's requests at a fixed point until released."""

    def __init__(self) -> None:
        self.arrived = 0
        self._open = threading.Event()
        self._changed = threading.Condition()

    def enter(self, closing: threading.Event) -> None:
        with self._changed:
            self.arrived += 1
            self._changed.notify_all()
        while not self._open.wait(0.02) and not closing.is_set():
            pass

    def wait_arrived(self, count: int = 1, timeout: float = 30.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.arrived >= count, timeout)

    def release(self) -> None:
        self._open.set()


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


def decode_inline_image(value: str) -> bytes | None:
    """The bytes of a base64 image (a data URI or bare base64), or None when it is not one."""
    data = value.split(",", 1)[1] if value.startswith("data:") and ";base64," in value[:64] else value
    try:
        raw = base64.b64decode(data, validate=True)
        Image.open(io.BytesIO(raw)).verify()
        return raw
    except (binascii.Error, ValueError, OSError):
        return None


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


# ---------------------------------------------------------------- request schemas

def _int_in(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _validate_13b(p: dict[str, Any]) -> str | None:
    if not isinstance(p.get("prompt"), str) or not p["prompt"].strip():
        return "prompt is required"
    if not isinstance(p.get("image"), str) or not p["image"].startswith("http"):
        return "image must be a URL"
    if not _int_in(p.get("num_inference_steps"), 2, 30):
        return "num_inference_steps must be 2..30"
    if not _int_in(p.get("duration"), 5, 10):
        return "duration must be 5..10"
    if not _int_in(p.get("seed"), -1, 9_999_999_999):
        return "seed must be -1..9999999999"
    if p.get("size") not in ("1280*720", "720*1280"):
        return "size must be 1280*720 or 720*1280"
    if not isinstance(p.get("enable_safety_checker"), bool):
        return "enable_safety_checker must be a boolean"
    return None


def _validate_15(p: dict[str, Any]) -> str | None:
    image = p.get("image")
    if not isinstance(image, str) or not (image.startswith("http") or decode_inline_image(image)):
        return "image must be a URL or base64 image data"
    if not isinstance(p.get("prompt", ""), str):
        return "prompt must be a string"
    if p.get("resolution", "720p") not in ("480p", "720p"):
        return "resolution must be 480p or 720p"
    if p.get("duration", 5) not in (5, 8) or isinstance(p.get("duration"), bool):
        return "duration must be 5 or 8"
    if not _int_in(p.get("seed", -1), -1, 2_147_483_647):
        return "seed must be -1..2147483647"
    return None


SCHEMAS = {
    MODEL_13B: ({"prompt", "image", "num_inference_steps", "duration", "seed", "size", "enable_safety_checker"},
                _validate_13b),
    MODEL_15: ({"image", "prompt", "resolution", "duration", "seed"}, _validate_15),
}


def _validate(model: str, payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return "body must be a JSON object"
    fields, check = SCHEMAS[model]
    unknown = sorted(set(payload) - fields)
    return f"unknown field(s) for {model}: {', '.join(unknown)}" if unknown else check(payload)


# ---------------------------------------------------------------- HTTP

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

    def _error(self, status: int, message: str, code: int | None = None) -> None:
        self._json(status, {"code": code or status, "message": message, "data": None})

    def _reset(self) -> None:
        # SO_LINGER 0 turns the close into a TCP reset.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    def _stall(self) -> None:
        """Answer nothing until the client closes its end (it gave up waiting)."""
        while not self.api._closing.is_set():
            readable, _, _ = select.select([self.connection], [], [], 0.05)
            if readable and not self.connection.recv(1, socket.MSG_PEEK):
                break
        self.close_connection = True

    def _apply(self, fault: Fault | None) -> bool:
        """Act out a fault; True when the answer was given (or withheld)."""
        if fault is None:
            return False
        if fault.delay_s:
            self.api._closing.wait(fault.delay_s)
        if fault.stall:
            self._stall()
            return True
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
        self._error(401, "Unauthorized: invalid API key")
        return False

    def _handle(self, route: Callable[[], None]) -> None:
        with self.api._changed:
            self.api.requests.append((self.command, self.path, dict(self.headers.items())))
            self.api._changed.notify_all()
        try:
            route()
        finally:
            self.api.count("finished")

    # ------------------------------------------------------------ routes

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        def route() -> None:
            body = self._body()
            if self.path in SUBMIT_PATHS:
                self._submit(SUBMIT_PATHS[self.path], body)
            elif self.path == TICKET_PATH and self.api.ticket_route:
                self._ticket(body)
            elif self.path == BINARY_PATH:
                self._binary(body)
            else:
                self._error(404, "not found")
        self._handle(route)

    def do_PUT(self) -> None:  # noqa: N802
        self._handle(lambda: self._put(self._body()))

    def do_GET(self) -> None:  # noqa: N802
        def route() -> None:
            path = self.path
            if path.startswith("/api/v3/predictions/"):
                self._result(path.split("/")[4])
            elif path.startswith("/outputs/"):
                self._download(path[len("/outputs/"):].removesuffix(".mp4"))
            elif path.startswith("/media/"):
                if self._apply(self.api.next_fault("media")):
                    return
                data = self.api.media.get(path[len("/media/"):])
                self._send(200, data, "image/png") if data else self._error(404, "no file")
            else:
                self._error(404, "not found")
        self._handle(route)

    def _submit(self, model: str, body: bytes) -> None:
        api = self.api
        api.count("submits_received")
        with api._lock:
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
            self._error(400, "body is not JSON")
            return
        problem = _validate(model, payload)
        if problem:
            self._error(400, problem, 1401)
            return
        task = api.create_task(model, payload)
        api.at_gate("submit")
        if self._apply(fault):
            return
        self._json(200, api.task_json(task))

    def _ticket(self, body: bytes) -> None:
        api = self.api
        api.count("ticket_requests")
        if self._apply(api.next_fault("ticket")) or not self._authorized():
            return
        try:
            request = json.loads(body)
            name, size, kind = request["filename"], request["size"], request["content_type"]
            assert isinstance(name, str) and name and _int_in(size, 1, 200 << 20) and kind.startswith("image/")
        except (ValueError, KeyError, TypeError, AttributeError, AssertionError):
            self._error(400, "filename, size and an image content_type are required")
            return
        api.at_gate("ticket")
        stored = f"{uuid.uuid4().hex}.png"
        signature, token = secrets.token_hex(8), secrets.token_hex(8)
        with api._lock:
            api.tickets[stored] = {"size": size, "signature": signature, "headers": {
                "Content-Type": kind, "x-upload-token": token}}
        self._json(200, {"code": 200, "message": "success", "data": {
            "upload": {"method": "PUT", "url": f"{api.base_url}{SIGNED_PREFIX}{stored}?signature={signature}",
                       "headers": api.tickets[stored]["headers"]},
            "download_url": f"{api.base_url}/media/{stored}", "filename": name}})

    def _put(self, body: bytes) -> None:
        api = self.api
        api.count("puts")
        parts = urlsplit(self.path)
        ticket = api.tickets.get(parts.path.removeprefix(SIGNED_PREFIX))
        if self._apply(api.next_fault("put")):
            return
        if not parts.path.startswith(SIGNED_PREFIX) or ticket is None:
            self._error(404, "no such upload")
        elif parse_qs(parts.query).get("signature") != [ticket["signature"]]:
            self._error(403, "signature does not match")
        elif "Authorization" in self.headers:
            self._error(400, "a signed upload takes no Authorization header")
        elif any(self.headers.get(k) != v for k, v in ticket["headers"].items()):
            self._error(403, "the ticket's headers are missing")
        elif len(body) != ticket["size"]:
            self._error(400, f"expected {ticket['size']} bytes, got {len(body)}")
        else:
            api.at_gate("put")
            with api._lock:
                api.media[parts.path.removeprefix(SIGNED_PREFIX)] = body
            api.count("uploads")
            self._send(200, b"")

    def _binary(self, body: bytes) -> None:
        api = self.api
        api.count("binary_uploads")
        if self._apply(api.next_fault("binary")) or not self._authorized():
            return
        message = BytesParser(policy=email_policy).parsebytes(
            b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body)
        parts = [p for p in message.iter_parts() if p.get_param("name", header="content-disposition") == "file"]
        if not parts:
            self._error(400, "multipart field 'file' is required")
            return
        api.at_gate("binary")
        data = parts[0].get_payload(decode=True)
        name = f"{uuid.uuid4().hex}.png"
        with api._lock:
            api.media[name] = data
        api.count("uploads")
        self._json(200, {"code": 200, "message": "success", "data": {
            "type": "image", "download_url": f"{api.base_url}/media/{name}", "filename": name, "size": len(data)}})

    def _result(self, task_id: str) -> None:
        api = self.api
        api.count("polls")
        fault = api.next_fault("result")
        if fault and (fault.status is not None or fault.reset):
            self._apply(fault)
            return
        if not self._authorized():
            return
        task = api.tasks.get(task_id)
        if task is None:
            self._error(404, f"prediction {task_id} not found")
            return
        api.at_gate("result")
        if self._apply(fault):
            return
        answer = api.task_json(task)
        if answer["data"]["status"] in ("completed", "failed") and task.done_seen_at is None:
            task.done_seen_at = time.monotonic()
        self._json(200, answer)

    def _download(self, task_id: str) -> None:
        api = self.api
        api.count("downloads")
        fault = api.next_fault("download")
        if fault and not fault.truncate and self._apply(fault):
            return
        task = api.tasks.get(task_id)
        if task is None or api._state(task) != "completed":
            self._error(404, "no such file")
            return
        data = api.video_for(task)
        if api.damaged_outputs:
            data = data[: len(data) // 2]
        held = "download" in api.gates
        if not (fault and fault.truncate) and not held:
            self._send(200, data, "video/mp4")
            return
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        if fault and fault.truncate:
            self.close_connection = True
            return
        api.at_gate("download")  # half the file is out: a hold mid-transfer
        try:
            self.wfile.write(data[len(data) // 2:])
        except OSError:
            self.close_connection = True
