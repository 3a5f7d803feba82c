"""Getting a start image to WaveSpeed for endpoints that take only an image URL.

The route is the one WaveSpeed's official Python SDK (2.0.5) uses: ask
``POST /api/v3/media/uploads`` for a ticket (``{filename, size,
content_type}`` -> ``upload {method: PUT, url, headers}`` and
``download_url``), PUT the bytes to the signed URL with the ticket's headers
and without the API key, and submit ``download_url``. Where the ticket route
answers 404, the older ``POST /api/v3/media/upload/binary`` (multipart field
``file``) is used, and the client remembers that for the rest of its batch.

An upload bills nothing, so every step may be retried; a failure says that
nothing was submitted or charged.
"""

from __future__ import annotations

import logging

from .answers import json_object
from .connection import Connection
from .errors import WaveSpeedError, WaveSpeedUnavailable
from .transport import GaveUp, Retryable

log = logging.getLogger(__name__)

TICKET_PATH = "/api/v3/media/uploads"
BINARY_UPLOAD_PATH = "/api/v3/media/upload/binary"


class _NoTicketRoute(Exception):
    """The server answered 404 to the ticket route: it has only the older upload route."""


def upload_image(client: Connection, png: bytes, filename: str = "image.png") -> str:
    """Upload PNG bytes; returns the URL to submit."""
    client.check_stop()
    if client.ticket_route is not False:
        try:
            url = _by_ticket(client, png, filename)
            client.ticket_route = True
            return url
        except _NoTicketRoute:
            client.ticket_route = False
            log.info("WaveSpeed has no %s here; uploading through %s", TICKET_PATH, BINARY_UPLOAD_PATH)
    return _binary(client, png, filename)


def _by_ticket(client: Connection, png: bytes, filename: str) -> str:
    url, policy = client.url(TICKET_PATH), client.policy()
    request = {"filename": filename, "size": len(png), "content_type": "image/png"}
    try:
        answer = client.retrier.run(lambda: client.request(client.http, "POST", url, policy, json=request,
                                                           headers=client.auth(), timeout=client.timeout()),
                                    policy, "POST", url)
    except GaveUp as gave:
        raise _failed(client, gave.last) from None
    if answer.status_code == 404:
        raise _NoTicketRoute()
    if not answer.ok:
        raise client.refused(answer, "image upload")
    try:
        body = json_object(answer)
        if body.get("code", 200) != 200:
            raise _unusable(client, f"code {body.get('code')}: {body.get('message') or 'no message'}")
        ticket = body["data"]
        upload, download_url = ticket["upload"], str(ticket["download_url"])
        method, put_url = str(upload.get("method") or "").upper(), str(upload["url"])
        headers = {str(k): str(v) for k, v in (upload.get("headers") or {}).items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise _unusable(client, "the upload ticket was unreadable") from None
    if method != "PUT" or not put_url.startswith(("http://", "https://")) or not download_url:
        raise _unusable(client, f"the upload ticket asks for {method or 'no method'} to {put_url[:80]!r}")
    # The signed URL carries its own authorisation; the API key stays with the API.
    put_policy = client.policy()
    try:
        stored = client.retrier.run(lambda: client.request(client.http, "PUT", put_url, put_policy, data=png,
                                                           headers=headers, timeout=client.timeout()),
                                    put_policy, "PUT", put_url)
    except GaveUp as gave:
        raise _failed(client, gave.last) from None
    if not 200 <= stored.status_code < 300:
        raise WaveSpeedUnavailable(client.scrub(
            f"WaveSpeed's storage refused the image (HTTP {stored.status_code}: {stored.text[:200].strip()}). "
            "Nothing was submitted or charged; run again."))
    return download_url


def _binary(client: Connection, png: bytes, filename: str) -> str:
    url, policy = client.url(BINARY_UPLOAD_PATH), client.policy()
    try:
        answer = client.retrier.run(lambda: client.request(client.http, "POST", url, policy,
                                                           files={"file": (filename, png, "image/png")},
                                                           headers=client.auth(), timeout=client.timeout()),
                                    policy, "POST", url)
    except GaveUp as gave:
        raise _failed(client, gave.last) from None
    if not answer.ok:
        raise client.refused(answer, "image upload")
    try:
        return str(json_object(answer)["data"]["download_url"])
    except (ValueError, KeyError, TypeError):
        raise _unusable(client, "the answer held no download_url") from None


def _failed(client: Connection, last: Retryable) -> WaveSpeedError:
    if last.response is not None:
        return client.refused(last.response, "image upload")
    return WaveSpeedUnavailable(client.scrub(f"Could not upload the image to WaveSpeed ({last}). Nothing was "
                                             "submitted or charged; check the network and run again."))


def _unusable(client: Connection, detail: str) -> WaveSpeedUnavailable:
    return WaveSpeedUnavailable(client.scrub(f"WaveSpeed's answer to the image upload was unusable ({detail}). "
                                             "Nothing was submitted or charged; run again."))
