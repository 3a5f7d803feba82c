"""The stand-in WaveSpeed's faults and holds, and the ways its handler answers (see wavespeed_server)."""

from __future__ import annotations

import json
import select
import socket
import struct
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any


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


class Replies(BaseHTTPRequestHandler):
    """How the stand-in answers a request: normally, refused, or as an injected :class:`Fault` says."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the per-request log
        pass

    @property
    def api(self) -> Any:
        """The ``StandInWaveSpeed`` serving this request (its queues, counters and stored files)."""
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

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {self.api.api_key}":
            return True
        self._error(401, "Unauthorized: invalid API key")
        return False

    # ------------------------------------------------------------ faults

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
