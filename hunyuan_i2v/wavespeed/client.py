"""WaveSpeed's hosted HunyuanVideo-I2V endpoint: upload, submit, poll, download.

A paid remote job must never be paid twice and never be lost, so the rules are:

- polls, downloads and uploads retry (urllib3 ``Retry``: 429 with Retry-After,
  5xx, connection errors, with backoff) under an overall deadline;
- a submit is never repeated once it may have reached the server: only a
  connection that never opened, or an explicit 429 refusal, is tried again;
- the task id goes into the journal (:mod:`.wavespeed_journal`) before the
  first poll, so a rerun with the same inputs resumes it;
- the API key is sent only to the API base, never to output hosts, and is
  scrubbed from every message this module produces.

No ComfyUI types here: the node passes plain values and callables in. Jobs,
batches and resuming live in :mod:`.wavespeed_jobs`; the API key and the log
filter that hides it in :mod:`.wavespeed_keys`; the exceptions in
:mod:`.wavespeed_errors`.
"""

from __future__ import annotations

import io
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.retry import Retry

from ..errors import UserInputError
from ..shared.video import read_mp4
from .errors import (
    FAILURE_CODES, WaveSpeedAccountError, WaveSpeedAuthError, WaveSpeedDownloadError, WaveSpeedError,
    WaveSpeedInterrupted, WaveSpeedRequestError, WaveSpeedSubmitUncertain, WaveSpeedTaskFailed, WaveSpeedTimeout,
    WaveSpeedUnavailable,
)
from .keys import HIDDEN_KEY, hide_in_logs, key_help

log = logging.getLogger(__name__)

BASE_URL_ENV = "WAVESPEED_BASE_URL"
DEFAULT_BASE_URL = "https://api.wavespeed.ai"
MODEL_ID = "wavespeed-ai/hunyuan-video/i2v"
SUBMIT_PATH = f"/api/v3/{MODEL_ID}"
RESULT_PATH = "/api/v3/predictions/{task_id}/result"
UPLOAD_PATH = "/api/v3/media/upload/binary"
PREDICTIONS_PAGE = "https://wavespeed.ai/predictions"

# Published price on the model page; WaveSpeed bills, this only estimates.
PRICE_PER_RUN_USD = 0.40
SIZES = ("1280*720", "720*1280")
STEPS_RANGE = (2, 30)
DURATION_RANGE = (5, 10)
SEED_RANGE = (-1, 9_999_999_999)

# Any other status (created, pending, queued, processing, ...) means "still working".
FAILED_STATUSES = {"failed", "cancelled", "canceled", "timeout", "error"}
RETRYABLE_HTTP = (429, 500, 502, 503, 504)


# ---------------------------------------------------------------- settings

@dataclass(frozen=True)
class ClientSettings:
    """Network timing. Defaults suit the real service; tests shrink them."""

    base_url: str = DEFAULT_BASE_URL
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0          # polls, uploads, each chunk of a download
    submit_read_timeout_s: float = 120.0  # a late answer beats an unanswered (uncertain) submit
    poll_start_s: float = 1.0         # first poll interval ...
    poll_max_s: float = 5.0           # ... growing to this
    poll_growth: float = 1.25
    http_retries: int = 4             # per poll/download/upload request
    backoff_s: float = 0.5            # urllib3 backoff_factor
    backoff_max_s: float = 10.0
    retry_after_max_s: float = 60.0   # a longer Retry-After is cut to this
    submit_connect_retries: int = 3   # connection never opened: nothing was sent
    submit_rate_limit_retries: int = 3
    download_attempts: int = 3
    ui_tick_s: float = 0.25           # how often the caller's thread reports and checks for interrupt

    @classmethod
    def from_env(cls, **overrides: Any) -> "ClientSettings":
        base = os.environ.get(BASE_URL_ENV, "").strip() or DEFAULT_BASE_URL
        return cls(base_url=base.rstrip("/"), **overrides)


def _retry_class(cap_s: float) -> type[Retry]:
    class CappedRetry(Retry):
        # urllib3 sleeps whatever Retry-After says; a deadline needs a ceiling.
        def get_retry_after(self, response):  # noqa: ANN001
            value = super().get_retry_after(response)
            return None if value is None else min(value, cap_s)

    return CappedRetry


def _session(retry: Retry) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry, pool_maxsize=16)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the connection never opened, so the server saw nothing."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0] if exc.args else None, "reason", None)
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError, NameResolutionError))


# ---------------------------------------------------------------- response reading

def _json(response: requests.Response) -> dict[str, Any]:
    body = response.json()
    if not isinstance(body, dict):
        raise ValueError("answer is not a JSON object")
    return body


def extract_status(data: dict[str, Any]) -> str:
    return str(data.get("status") or "unknown").lower()


def extract_inference_s(data: dict[str, Any]) -> float | None:
    timings = data.get("timings") or {}
    value = timings.get("inference") if isinstance(timings, dict) else None
    return float(value) / 1000.0 if isinstance(value, (int, float)) and value > 0 else None


def extract_output_url(data: dict[str, Any]) -> str | None:
    outputs = data.get("outputs") or []
    return next((o for o in outputs if isinstance(o, str) and o), None)


def extract_nsfw(data: dict[str, Any]) -> bool:
    return any(bool(flag) for flag in (data.get("has_nsfw_contents") or []))


def extract_failure(data: dict[str, Any], envelope: dict[str, Any]) -> tuple[int | None, str]:
    """WaveSpeed's failure code and message, wherever this answer put them."""
    error = data.get("error")
    message = error.get("message", "") if isinstance(error, dict) else str(error or "")
    candidates = [error.get("code") if isinstance(error, dict) else None, data.get("code"), envelope.get("code")]
    numbers = [int(c) for c in candidates if isinstance(c, int) or (isinstance(c, str) and c.isdigit())]
    code = next((c for c in numbers if c != 200), None)
    if code is None:
        found = re.search(r"\b(1[2-4]\d\d|5\d{3})\b", message)
        code = int(found.group(1)) if found else None
    return code, message or str(envelope.get("message") or "no reason given")


def estimate_price(new_runs: int) -> float:
    return round(PRICE_PER_RUN_USD * new_runs, 2)


# ---------------------------------------------------------------- HTTP client

class _Transient(Exception):
    """A failure worth another try (network, 429, 5xx, unreadable answer)."""


class WaveSpeedClient:
    """One WaveSpeed account's HTTP calls; thread-safe for a batch's workers."""

    def __init__(self, api_key: str, settings: ClientSettings | None = None,
                 should_stop: Callable[[], bool] = lambda: False, state_dir: str | os.PathLike | None = None):
        self.settings = s = settings or ClientSettings.from_env()
        self._key = api_key
        hide_in_logs(api_key)
        self._should_stop = should_stop
        self._state_dir = state_dir
        capped = _retry_class(s.retry_after_max_s)
        self._retrying = _session(capped(
            total=s.http_retries, connect=s.http_retries, read=s.http_retries, status=s.http_retries,
            other=s.http_retries, allowed_methods=None, status_forcelist=RETRYABLE_HTTP,
            backoff_factor=s.backoff_s, backoff_max=s.backoff_max_s, raise_on_status=False))
        # Only a connection that never opened may be retried: after the request
        # is out, a retry could create (and bill) a second task.
        self._submitting = _session(Retry(
            total=s.submit_connect_retries, connect=s.submit_connect_retries, read=0, status=0, other=0,
            redirect=0, status_forcelist=(), backoff_factor=s.backoff_s, backoff_max=s.backoff_max_s,
            raise_on_status=False))

    def close(self) -> None:
        self._retrying.close()
        self._submitting.close()

    # ------------------------------------------------------------ helpers

    def scrub(self, text: str) -> str:
        return text.replace(self._key, HIDDEN_KEY) if self._key else text

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}"}

    def _url(self, path: str) -> str:
        return self.settings.base_url.rstrip("/") + path

    def _timeout(self) -> tuple[float, float]:
        return (self.settings.connect_timeout_s, self.settings.read_timeout_s)

    def check_stop(self) -> None:
        if self._should_stop():
            raise WaveSpeedInterrupted("Stopped on request; recorded WaveSpeed tasks resume on the next run.")

    def pause(self, seconds: float) -> None:
        """Sleep in short slices so a stop request is seen at once."""
        end = time.monotonic() + max(0.0, seconds)
        while True:
            self.check_stop()
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.05))

    def _get(self, url: str, *, auth: bool, stream: bool = False) -> requests.Response:
        try:
            return self._retrying.get(url, headers=self._auth() if auth else None, timeout=self._timeout(),
                                      stream=stream)
        except requests.RequestException as exc:
            raise _Transient(self.scrub(f"{type(exc).__name__}: {exc}")) from None

    def _answer_error(self, response: requests.Response, what: str) -> WaveSpeedError:
        try:
            body = _json(response)
            message, code = str(body.get("message") or ""), body.get("code")
        except ValueError:
            message, code = response.text[:300], None
        message = self.scrub(message.strip() or response.reason or "no message")
        status = response.status_code
        coded = f", code {code}" if isinstance(code, int) and code != status else ""
        if status == 401:
            return WaveSpeedAuthError(f"WaveSpeed rejected the API key (HTTP 401: {message}). {key_help(self._state_dir)}")
        if status == 402:
            return WaveSpeedAccountError(f"WaveSpeed asks for payment (HTTP 402: {message}). "
                                         "Add credit to your WaveSpeed account, then run again.")
        if status == 403:
            return WaveSpeedAccountError(f"WaveSpeed refused this account (HTTP 403{coded}: {message}). Check that "
                                         f"the account is active, has credit and may use {MODEL_ID}.")
        if status == 400:
            return WaveSpeedRequestError(f"WaveSpeed rejected the {what} (HTTP 400{coded}: {message}). "
                                         "Check the prompt, image and settings.")
        if status == 429:
            return WaveSpeedUnavailable(f"WaveSpeed's rate limit refused the {what} (HTTP 429: {message}). A default "
                                        "account runs 2 videos at once and 2 a minute: lower concurrency or wait.")
        if status >= 500:
            return WaveSpeedUnavailable(f"WaveSpeed kept failing the {what} (HTTP {status}: {message}). Try later.")
        return WaveSpeedError(f"WaveSpeed answered HTTP {status}{coded} to the {what}: {message}")

    # ------------------------------------------------------------ calls

    def upload_image(self, png: bytes, filename: str = "image.png") -> str:
        """Upload through the media endpoint; returns the URL to submit. Repeats are harmless."""
        self.check_stop()
        try:
            response = self._retrying.post(self._url(UPLOAD_PATH), headers=self._auth(), timeout=self._timeout(),
                                           files={"file": (filename, png, "image/png")})
        except requests.RequestException as exc:
            raise WaveSpeedUnavailable(self.scrub(f"Could not upload the image to WaveSpeed ({exc}). "
                                                  "Check the network and run again.")) from None
        if not response.ok:
            raise self._answer_error(response, "image upload")
        try:
            url = _json(response)["data"]["download_url"]
        except (ValueError, KeyError, TypeError):
            raise WaveSpeedUnavailable("WaveSpeed's answer to the image upload was unreadable; run again.") from None
        return str(url)

    def submit(self, payload: dict[str, Any], deadline: float) -> str:
        """Create the task; returns its id. Never sent twice once it may have arrived."""
        refusals = 0
        while True:
            self.check_stop()
            try:
                response = self._submitting.post(self._url(SUBMIT_PATH), json=payload,
                                                 timeout=(self.settings.connect_timeout_s,
                                                          self.settings.submit_read_timeout_s),
                                                 headers={**self._auth(), "Connection": "close"})
            except requests.RequestException as exc:
                if _never_sent(exc):
                    raise WaveSpeedUnavailable(self.scrub(
                        f"Could not connect to WaveSpeed at {self.settings.base_url} ({type(exc).__name__}). Nothing "
                        f"was sent, so nothing was charged. Check the network or {BASE_URL_ENV}.")) from None
                raise self._uncertain(f"the connection failed after the request was sent: {type(exc).__name__}") from None
            if response.status_code == 429 and refusals < self.settings.submit_rate_limit_retries:
                # A 429 is WaveSpeed refusing the request: no task exists, so
                # asking again cannot create a second one.
                refusals += 1
                wait_s = _retry_after_s(response) or self.settings.backoff_s * 2 ** refusals
                wait_s = min(wait_s, self.settings.retry_after_max_s)
                if time.monotonic() + wait_s < deadline:
                    log.info("WaveSpeed rate limit; submitting again in %.1f s", wait_s)
                    self.pause(wait_s)
                    continue
            if response.status_code >= 500:
                raise self._uncertain(f"WaveSpeed answered HTTP {response.status_code}")
            if not response.ok:
                raise self._answer_error(response, "submit")
            try:
                body = _json(response)
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

    def poll(self, task_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """One status request: (data, envelope)."""
        response = self._get(self._url(RESULT_PATH.format(task_id=task_id)), auth=True)
        if response.status_code == 404:
            raise WaveSpeedTaskFailed(f"WaveSpeed does not know task {task_id} (HTTP 404); tasks are kept 7 days. "
                                      "Run again to submit a new one.", task_id=task_id)
        if response.status_code in RETRYABLE_HTTP:
            raise _Transient(f"HTTP {response.status_code}")
        if not response.ok:
            raise self._answer_error(response, "status request")
        try:
            envelope = _json(response)
            data = envelope["data"]
            if not isinstance(data, dict):
                raise TypeError("data is not an object")
        except (ValueError, KeyError, TypeError):
            raise _Transient("an unreadable status answer") from None
        return data, envelope

    def wait_for(self, task_id: str, deadline: float, timeout_s: float,
                 on_poll: Callable[[str, float | None, str], None]) -> dict[str, Any]:
        """Poll until the task completes (returns its data), fails, or the deadline passes."""
        interval, status, note = self.settings.poll_start_s, "submitted", ""
        while True:
            self.check_stop()
            try:
                data, envelope = self.poll(task_id)
            except _Transient as exc:
                note = f"retrying after {exc}"
                log.info("WaveSpeed task %s: %s", task_id, note)
                on_poll(status, None, note)
            else:
                status, note = extract_status(data), ""
                if status == "completed":
                    if not extract_output_url(data):
                        raise WaveSpeedTaskFailed(f"WaveSpeed task {task_id} completed without a video URL. "
                                                  f"See {PREDICTIONS_PAGE}.", task_id=task_id)
                    return data
                if status in FAILED_STATUSES:
                    code, message = extract_failure(data, envelope)
                    raise WaveSpeedTaskFailed(self._failure_text(task_id, status, code, message), code, task_id)
                on_poll(status, extract_inference_s(data), note)
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaveSpeedTimeout(
                    f"WaveSpeed task {task_id} is still '{status}' after the {timeout_s:.0f} s timeout. It is paid "
                    "and recorded in the journal: run the same inputs again to keep waiting for it without paying "
                    f"again, or raise the timeout. It also shows at {PREDICTIONS_PAGE}.", task_id=task_id)
            self.pause(min(interval, left))
            interval = min(interval * self.settings.poll_growth, self.settings.poll_max_s)

    def _failure_text(self, task_id: str, status: str, code: int | None, message: str) -> str:
        meaning = FAILURE_CODES.get(code or -1, "")
        if code == 1200 or "moderat" in message.lower():
            meaning = FAILURE_CODES[1200]
        detail = f"code {code}: " if code is not None else ""
        text = f"WaveSpeed task {task_id} {status} ({detail}{message})."
        return self.scrub(f"{text} Meaning: {meaning}." if meaning else text)

    def fetch_video(self, url: str, dest: Path, task_id: str) -> tuple[Any, float]:
        """Download the MP4 to ``dest`` (the output folder), then decode it."""
        last = ""
        for attempt in range(1, self.settings.download_attempts + 1):
            self.check_stop()
            try:
                self._download(url, dest, task_id)
                return read_mp4(dest)
            except WaveSpeedError:
                raise
            except _Transient as exc:
                last = str(exc)
            except UserInputError as exc:  # read_mp4: the bytes arrived but are not a whole video
                last = str(exc)
            log.info("WaveSpeed download of task %s, attempt %d: %s", task_id, attempt, last)
            if attempt < self.settings.download_attempts:
                self.pause(min(self.settings.backoff_s * 2 ** attempt, self.settings.backoff_max_s))
        raise WaveSpeedDownloadError(self.scrub(
            f"The finished video of WaveSpeed task {task_id} could not be fetched from {url} after "
            f"{self.settings.download_attempts} tries (last problem: {last}). The task is paid and recorded: run the "
            "same inputs again to retry the download without paying again, within 7 days."))

    def _download(self, url: str, dest: Path, task_id: str) -> None:
        part = dest.with_name(dest.name + ".part")
        try:
            # Output files live on storage hosts: the API key is not sent there.
            with self._get(url, auth=False, stream=True) as response:
                if response.status_code in RETRYABLE_HTTP:
                    raise _Transient(f"HTTP {response.status_code}")
                if not response.ok:
                    raise WaveSpeedDownloadError(
                        f"The video of WaveSpeed task {task_id} is not at {url} (HTTP {response.status_code}). The "
                        "task is recorded: run the same inputs again later to retry, or open the URL within 7 days.")
                expected = int(response.headers.get("Content-Length") or 0)
                written = 0
                with open(part, "wb") as out:
                    for chunk in response.iter_content(1 << 20):
                        self.check_stop()
                        out.write(chunk)
                        written += len(chunk)
            if expected and written != expected:
                raise _Transient(f"the transfer stopped at {written} of {expected} bytes")
            os.replace(part, dest)
        except requests.RequestException as exc:
            raise _Transient(self.scrub(f"{type(exc).__name__}: {exc}")) from None
        finally:
            part.unlink(missing_ok=True)


def probe_image_size(url: str, settings: ClientSettings | None = None) -> tuple[int, int]:
    """(width, height) of the image at ``url``, for the 'auto' size choice. No key is sent."""
    from PIL import Image

    client = WaveSpeedClient("", settings)
    try:
        response = client._get(url, auth=False)
        response.raise_for_status()
        with Image.open(io.BytesIO(response.content)) as image:
            return image.size
    except Exception as exc:  # noqa: BLE001 - every failure here has the same fix
        raise UserInputError(f"Could not read the image at image_url to pick the size ({exc}). Make the URL "
                             "public, or choose a size instead of auto.") from None
    finally:
        client.close()


def _retry_after_s(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None
