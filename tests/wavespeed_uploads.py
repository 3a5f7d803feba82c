"""The stand-in WaveSpeed's image uploads: the SDK's ticket with its signed PUT, and the older binary route."""

from __future__ import annotations

import json
import secrets
import uuid
from email.parser import BytesParser
from email.policy import default as email_policy
from urllib.parse import parse_qs, urlsplit

from wavespeed_faults import Replies
from wavespeed_tasks import int_in

TICKET_PATH = "/api/v3/media/uploads"
BINARY_PATH = "/api/v3/media/upload/binary"
SIGNED_PREFIX = "/signed-uploads/"


class UploadRoutes(Replies):
    """Handlers for the upload endpoints; the routing is in wavespeed_routes."""

    def _ticket(self, body: bytes) -> None:
        api = self.api
        api.count("ticket_requests")
        if self._apply(api.next_fault("ticket")) or not self._authorized():
            return
        try:
            request = json.loads(body)
            name, size, kind = request["filename"], request["size"], request["content_type"]
            assert isinstance(name, str) and name and int_in(size, 1, 200 << 20) and kind.startswith("image/")
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
