"""WaveSpeed's hosted image-to-video endpoints: upload, submit, poll, download.

A paid remote job must never be paid twice and never be lost, so:

- uploads, polls and downloads retry (429 with Retry-After, 5xx, network
  errors) under one ``Retry`` policy each (see :mod:`.transport`);
- a submit is sent again only when its connection never opened or WaveSpeed
  refused it with 429: once it may have arrived, another one could create
  (and bill) a second task;
- the submit's task id reaches the caller's ``on_task`` (the journal) from the
  thread that received the answer, even when the user cancelled meanwhile;
- every wait gives way to a stop request within a fraction of a second;
- the API key is sent only to the API base, never to upload or output hosts,
  and is scrubbed from every message this module produces.

No ComfyUI types here: the node passes plain values in. Endpoints are data in
:mod:`.endpoints`; settings, sessions, retry policies and key scrubbing in
:mod:`.connection`; image uploads live in :mod:`.uploads`, the retry layer in
:mod:`.transport`, jobs and batches in :mod:`.jobs` and :mod:`.runner`.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any, Callable

import requests
from urllib3.util.retry import Retry

from ..errors import UserInputError
from ..shared.video import read_mp4
from . import transport, uploads
from .answers import (
    FAILED_STATUSES, PREDICTIONS_PAGE, extract_failure, extract_inference_s, extract_output_url, extract_status,
    failure_text, json_object,
)
from .connection import BASE_URL_ENV, ClientSettings, Connection
from .errors import (
    WaveSpeedDownloadError, WaveSpeedError, WaveSpeedRequestError, WaveSpeedSubmitUncertain, WaveSpeedTaskFailed,
    WaveSpeedTimeout, WaveSpeedUnavailable,
)
from .transport import GaveUp, Retryable

log = logging.getLogger(__name__)

RESULT_PATH = "/api/v3/predictions/{task_id}/result"
# Decoding is CPU- and memory-bound (a 720p, 5 s video peaks near 3 GB while it
# becomes float frames): more decodes at once than cores only adds memory.
_DECODE_SLOTS = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))


class WaveSpeedClient(Connection):
    """One WaveSpeed account's calls; thread-safe for a batch's workers. The shared HTTP pieces (settings,
    sessions, retry policies, ``scrub``) are :class:`.connection.Connection`'s."""

    # ------------------------------------------------------------ upload

    def upload_image(self, png: bytes, filename: str = "image.png") -> str:
        """Upload an image; returns the URL to submit (see :mod:`.uploads`)."""
        return uploads.upload_image(self, png, filename)

    # ------------------------------------------------------------ submit

    def submit(self, path: str, payload: dict[str, Any], deadline: float,
               on_task: Callable[[str], None] = lambda task_id: None) -> str:
        """Create the task at ``path``; returns its id after ``on_task(id)`` ran. Never sent twice once it may
        have arrived. On a stop request while the answer is on its way, the answer is still read and handed to
        ``on_task`` in the background (see :func:`.transport.call`)."""
        s, url = self.settings, self.url(path)
        model_id = path.removeprefix("/api/v3/")
        # A 5xx is not retried here either: the task may exist behind it.
        policy = Retry(total=None, connect=s.submit_connect_retries, read=0, other=0,
                       status=s.submit_rate_limit_retries, allowed_methods=None, status_forcelist=(429,),
                       backoff_factor=s.backoff_s, backoff_max=s.backoff_max_s, raise_on_status=False)

        def attempt() -> str:
            answer = self.request(self._submit_http, "POST", url, policy, json=payload,
                                   headers={**self.auth(), "Connection": "close"},
                                   timeout=(s.connect_timeout_s, s.submit_read_timeout_s))
            task_id = self._task_id(answer, model_id)
            try:
                on_task(task_id)
            except Exception as exc:  # noqa: BLE001 - the task exists: say which one
                raise WaveSpeedError(self.scrub(
                    f"WaveSpeed task {task_id} was created but could not be recorded in the journal ({exc}). It is "
                    f"paid: find it at {PREDICTIONS_PAGE} before running again.")) from None
            return task_id

        try:
            return self.retrier.run(attempt, policy, "POST", url, deadline)
        except GaveUp as gave:
            last = gave.last
            if last.response is not None:  # refused with 429 until out of patience
                raise self.refused(last.response, "submit", model_id) from None
            if transport.never_sent(last.error):
                raise WaveSpeedUnavailable(self.scrub(
                    f"Could not connect to WaveSpeed at {s.base_url} ({last}). Nothing was sent, so nothing was "
                    f"charged. Check the network or {BASE_URL_ENV}.")) from None
            raise self._uncertain(f"the connection failed after the request was sent: {last}") from None

    def _task_id(self, answer: requests.Response, model_id: str) -> str:
        if answer.status_code >= 500:
            raise self._uncertain(f"WaveSpeed answered HTTP {answer.status_code}")
        if not answer.ok:
            raise self.refused(answer, "submit", model_id)
        try:
            body = json_object(answer)
            data = body.get("data") or {}
            task_id = data.get("id") if isinstance(data, dict) else None
        except ValueError:
            raise self._uncertain("its answer was not readable JSON") from None
        if not task_id:
            code = body.get("code")
            if isinstance(code, int) and code != 200:
                raise WaveSpeedRequestError(self.scrub(
                    f"WaveSpeed refused the submit (code {code}: {body.get('message') or 'no message'})."))
            raise self._uncertain("its answer held no task id")
        return str(task_id)

    def _uncertain(self, reason: str) -> WaveSpeedSubmitUncertain:
        return WaveSpeedSubmitUncertain(self.scrub(
            f"The submit may have created a WaveSpeed task, but no task id came back ({reason}). It was not sent "
            f"again, so you are not charged twice. Look for a task made just now at {PREDICTIONS_PAGE} before "
            "running again: running again submits and pays for a new task."))

    # ------------------------------------------------------------ poll

    def poll(self, task_id: str, policy: Retry | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """One status request: (data, envelope); :class:`Retryable` when worth asking again."""
        policy = policy or self.policy()
        answer = self.request(self.http, "GET", self.url(RESULT_PATH.format(task_id=task_id)), policy,
                               headers=self.auth(), timeout=self.timeout())
        if answer.status_code == 404:
            raise WaveSpeedTaskFailed(f"WaveSpeed does not know task {task_id} (HTTP 404); tasks are kept 7 days. "
                                      "Run again to submit a new one.", task_id=task_id)
        if not answer.ok:
            raise self.refused(answer, "status request")
        try:
            envelope = json_object(answer)
            data = envelope["data"]
            if not isinstance(data, dict):
                raise TypeError("data is not an object")
        except (ValueError, KeyError, TypeError):
            raise Retryable("an unreadable status answer", error=ValueError("unreadable status answer")) from None
        return data, envelope

    def wait_for(self, task_id: str, deadline: float, timeout_s: float,
                 on_poll: Callable[[str, float | None, str], None]) -> dict[str, Any]:
        """Poll until the task completes (returns its data), fails, or the deadline passes.

        Polling is itself the retry loop here: a failed poll waits as the
        policy says (Retry-After, else backoff) and polls again, for as long
        as the deadline allows; a good answer starts the backoff afresh.
        """
        s = self.settings
        url = self.url(RESULT_PATH.format(task_id=task_id))

        def unbounded() -> Retry:
            return self.policy(connect=None, read=None, status=None, other=None)

        retry, interval, status = unbounded(), s.poll_start_s, "submitted"
        while True:
            self.check_stop()
            try:
                data, envelope = self.retrier.call(lambda policy=retry: self.poll(task_id, policy))
            except Retryable as failure:
                retry, wait = self.retrier.after_failure(retry, failure, "GET", url)
                log.info("WaveSpeed task %s: retrying after %s", task_id, failure)
                on_poll(status, None, f"retrying after {failure}")
            else:
                retry, status = unbounded(), extract_status(data)
                if status == "completed":
                    if not extract_output_url(data):
                        raise WaveSpeedTaskFailed(f"WaveSpeed task {task_id} completed without a video URL. "
                                                  f"See {PREDICTIONS_PAGE}.", task_id=task_id)
                    return data
                if status in FAILED_STATUSES:
                    code, message = extract_failure(data, envelope)
                    raise WaveSpeedTaskFailed(self.scrub(failure_text(task_id, status, code, message)), code, task_id)
                on_poll(status, extract_inference_s(data), "")
                wait, interval = interval, min(interval * s.poll_growth, s.poll_max_s)
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaveSpeedTimeout(
                    f"WaveSpeed task {task_id} is still '{status}' after the {timeout_s:.0f} s timeout. It is paid "
                    "and recorded in the journal: run the same inputs again to keep waiting for it without paying "
                    f"again, or raise the timeout. It also shows at {PREDICTIONS_PAGE}.", task_id=task_id)
            self.stop.sleep(min(wait, left))

    # ------------------------------------------------------------ download

    def fetch_video(self, url: str, dest: Path, task_id: str) -> tuple[Any, float]:
        """Download the MP4 to ``dest`` (the output folder), then decode it; one policy covers both."""
        policy = self.policy(other=self.settings.download_attempts - 1)

        def attempt() -> tuple[Any, float]:
            self._download(url, dest, task_id, policy)
            try:
                with _DECODE_SLOTS:
                    self.check_stop()
                    return read_mp4(dest)
            except UserInputError as exc:  # the bytes arrived but are not a whole video
                raise Retryable(str(exc), error=exc) from None

        try:
            return self.retrier.run(attempt, policy, "GET", url)
        except GaveUp as gave:
            raise WaveSpeedDownloadError(self.scrub(
                f"The finished video of WaveSpeed task {task_id} could not be fetched from {url} (last problem: "
                f"{gave.last}). The task is paid and recorded: run the same inputs again to retry the download "
                "without paying again, within 7 days.")) from None

    def _download(self, url: str, dest: Path, task_id: str, policy: Retry) -> None:
        # A part file of its own: a download left on Cancel may still be writing when a rerun fetches the same video.
        part = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
        try:
            # Output files live on storage hosts: the API key is not sent there.
            with self.request(self.http, "GET", url, policy, stream=True, timeout=self.timeout()) as answer:
                if not answer.ok:
                    raise WaveSpeedDownloadError(self.scrub(
                        f"The video of WaveSpeed task {task_id} is not at {url} (HTTP {answer.status_code}). The "
                        "task is recorded: run the same inputs again later to retry, or open the URL within 7 days."))
                with open(part, "wb") as out:
                    # urllib3 checks the length against Content-Length: a short transfer raises here.
                    for chunk in answer.iter_content(1 << 20):
                        self.check_stop()
                        out.write(chunk)
            self.check_stop()
            os.replace(part, dest)
        except requests.RequestException as exc:
            raise Retryable(self.scrub(f"{type(exc).__name__}: {exc}"), error=transport.cause(exc)) from None
        finally:
            part.unlink(missing_ok=True)

    # ------------------------------------------------------------ images at URLs

    def image_size(self, url: str) -> tuple[int, int]:
        """(width, height) of a public image; no key is sent."""
        from PIL import Image

        policy = self.policy()
        answer = self.retrier.run(lambda: self.request(self.http, "GET", url, policy, timeout=self.timeout()),
                                   policy, "GET", url)
        answer.raise_for_status()
        with Image.open(io.BytesIO(answer.content)) as image:
            return image.size


def probe_image_size(url: str, settings: ClientSettings | None = None) -> tuple[int, int]:
    """(width, height) of the image at ``url``, for the 'auto' size choice."""
    client = WaveSpeedClient("", settings)
    try:
        return client.image_size(url)
    except Exception as exc:  # noqa: BLE001 - every failure here has the same fix
        raise UserInputError(f"Could not read the image at image_url to pick the size ({exc}). Make the URL "
                             "public, or choose a size instead of auto.") from None
    finally:
        client.close()
