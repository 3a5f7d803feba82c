"""The stand-in WaveSpeed's HTTP server: which handler answers each path; submits, status and downloads."""

from __future__ import annotations

import json
import time
from http.server import ThreadingHTTPServer
from typing import Any, Callable

from wavespeed_tasks import MODEL_13B, MODEL_15, validate_payload
from wavespeed_uploads import BINARY_PATH, TICKET_PATH, UploadRoutes

SUBMIT_PATHS = {f"/api/v3/{MODEL_13B}": MODEL_13B, f"/api/v3/{MODEL_15}": MODEL_15}


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and left is part of the faults under test


class Handler(UploadRoutes):
    """Every request to the stand-in: counted and recorded, then routed by method and path."""

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
        problem = validate_payload(model, payload)
        if problem:
            self._error(400, problem, 1401)
            return
        task = api.create_task(model, payload)
        api.at_gate("submit")
        if self._apply(fault):
            return
        self._json(200, api.task_json(task))

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
