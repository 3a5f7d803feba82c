"""HTTP for the WaveSpeed client: one retry layer, and every wait gives way to Cancel.

A Cancel must stop a remote run within a fraction of a second at any phase,
without losing a task that is already paid for. Two things make that so:

- the waits between attempts (backoff, Retry-After, the poll interval) are waits
  on the stop event, never plain sleeps;
- each attempt (one HTTP exchange, or a download with its decode) runs on a
  short-lived helper thread while the caller waits for it *or* the stop event.
  On Cancel the caller leaves at once; the helper finishes its exchange on its
  own (bounded by the read timeout) and completes whatever must not be lost: a
  submit's answer still reaches the journal (see :func:`call`).

Retrying uses urllib3's ``Retry`` as the policy, not as the loop: the adapters
make no retries of their own (a hidden second layer whose sleeps Cancel could
not cut), while ``Retry.increment`` counts and classifies each failure
(connect / read / status / other) and says when the budget is spent,
``Retry.get_retry_after`` parses the header (seconds or an HTTP date) and
``Retry.get_backoff_time`` spaces the attempts.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, TypeVar

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, HTTPError, InvalidHeader, MaxRetryError
from urllib3.util.retry import Retry

from .errors import WaveSpeedInterrupted

log = logging.getLogger(__name__)

T = TypeVar("T")
STOPPED = "Stopped on request; recorded WaveSpeed tasks resume when the same inputs run again."


class Stop:
    """The stop request shared by a batch: set once, seen by every wait."""

    def __init__(self, event: threading.Event | None = None):
        self.event = event or threading.Event()

    def is_set(self) -> bool:
        return self.event.is_set()

    def check(self) -> None:
        if self.event.is_set():
            raise WaveSpeedInterrupted(STOPPED)

    def sleep(self, seconds: float) -> None:
        if self.event.wait(max(0.0, seconds)):
            raise WaveSpeedInterrupted(STOPPED)


def call(fn: Callable[[], T], stop: Stop, tick_s: float = 0.05) -> T:
    """``fn()`` on a helper thread; returns its result, or raises on a stop request.

    When the caller leaves early, the helper still runs ``fn`` to its end, so
    work inside ``fn`` that must happen (journaling a submitted task) happens.
    The raised :class:`WaveSpeedInterrupted` carries the helper's ``finishing``
    event, set once ``fn`` has ended, for whoever must wait for that work.
    """
    done = threading.Event()
    outcome: dict[str, Any] = {}
    lock = threading.Lock()
    left_early = [False]

    def work() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, or logged when it left
            outcome["error"] = exc
        with lock:
            done.set()
            orphaned = left_early[0]
        if orphaned:
            _dispose(outcome)

    threading.Thread(target=work, name="wavespeed-attempt", daemon=True).start()
    while not done.wait(tick_s):
        if stop.is_set():
            with lock:
                if not done.is_set():
                    left_early[0] = True
                    raise WaveSpeedInterrupted(STOPPED, finishing=done)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _dispose(outcome: dict[str, Any]) -> None:
    value, error = outcome.get("value"), outcome.get("error")
    if isinstance(value, requests.Response):
        value.close()
    if error is not None and not isinstance(error, (Retryable, WaveSpeedInterrupted)):
        log.info("A WaveSpeed request that was left on Cancel ended with: %s", error)


# ---------------------------------------------------------------- retrying

class Retryable(Exception):
    """An attempt failed in a way the policy may retry: a network error, or an answer it lists."""

    def __init__(self, text: str, *, error: Exception | None = None, response: requests.Response | None = None):
        super().__init__(text)
        self.error, self.response = error, response


class GaveUp(Exception):
    """The policy's budget (or the deadline) is spent; ``last`` is the final failure."""

    def __init__(self, last: Retryable):
        super().__init__(str(last))
        self.last = last


def cause(exc: requests.RequestException) -> Exception:
    """The urllib3 error inside a requests exception, which ``Retry`` knows how to classify."""
    inner = exc.args[0] if exc.args else None
    if isinstance(inner, MaxRetryError) and inner.reason is not None:
        inner = inner.reason
    return inner if isinstance(inner, HTTPError) else exc


def never_sent(error: Exception | None) -> bool:
    """True when the request never left: the connection never opened (urllib3's ``connect`` errors,
    NewConnectionError and NameResolutionError included) or the URL could not be used at all."""
    return isinstance(error, (ConnectTimeoutError, requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                              requests.exceptions.InvalidSchema))


def session(pool_size: int = 16) -> requests.Session:
    """A session whose adapters never retry: all retrying happens in :class:`Retrier`."""
    http = requests.Session()
    adapter = HTTPAdapter(max_retries=0, pool_maxsize=pool_size)
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    return http


def request(http: requests.Session, method: str, url: str, policy: Retry, scrub: Callable[[str], str],
            **kwargs: Any) -> requests.Response:
    """One exchange; a failure ``policy`` would retry becomes :class:`Retryable`."""
    try:
        response = http.request(method, url, **kwargs)
    except requests.RequestException as exc:
        raise Retryable(scrub(f"{type(exc).__name__}: {exc}"), error=cause(exc)) from None
    if policy.is_retry(method, response.status_code, "Retry-After" in response.headers):
        response.close()  # frees a streamed connection; a read body stays readable for the message
        raise Retryable(f"HTTP {response.status_code}", response=response)
    return response


class Retrier:
    """Runs attempts under a ``Retry`` policy, waiting between them on the stop event."""

    def __init__(self, stop: Stop, retry_after_max_s: float, tick_s: float = 0.05):
        self.stop, self.retry_after_max_s, self.tick_s = stop, retry_after_max_s, tick_s

    def call(self, fn: Callable[[], T]) -> T:
        return call(fn, self.stop, self.tick_s)

    def run(self, attempt: Callable[[], T], policy: Retry, method: str, url: str,
            deadline: float | None = None) -> T:
        """``attempt()`` until it returns, the policy gives up (:class:`GaveUp`) or the caller stops."""
        retry = policy
        while True:
            self.stop.check()
            try:
                return self.call(attempt)
            except Retryable as failure:
                retry, wait = self.after_failure(retry, failure, method, url)
                if deadline is not None and time.monotonic() + wait >= deadline:
                    raise GaveUp(failure) from None
                log.info("WaveSpeed %s %s: %s; trying again in %.1f s", method, url.split("?")[0], failure, wait)
                self.stop.sleep(wait)

    def after_failure(self, retry: Retry, failure: Retryable, method: str, url: str) -> tuple[Retry, float]:
        """The policy after ``failure`` and the wait before the next attempt; :class:`GaveUp` when spent."""
        raw = failure.response.raw if failure.response is not None else None
        try:
            retry = retry.increment(method, url, response=raw, error=failure.error)
        except Exception:  # noqa: BLE001 - MaxRetryError, or urllib3 re-raising an error the policy never retries
            raise GaveUp(failure) from None
        wait = None
        if raw is not None and retry.respect_retry_after_header:
            try:
                wait = retry.get_retry_after(raw)
            except InvalidHeader:
                wait = None
        if wait is None:
            return retry, retry.get_backoff_time()
        # urllib3 caps Retry-After only from 2.6 on; the cap keeps a stuck
        # server from parking the job for hours on every version.
        return retry, min(wait, self.retry_after_max_s)
