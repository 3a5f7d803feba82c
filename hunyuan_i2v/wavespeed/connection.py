"""One WaveSpeed account's connection: settings, HTTP sessions, retry policies, and the key kept out of messages.

The client (submit, poll, download) and the image uploads both send requests
through it; neither imports the other's module for these pieces. The API key
goes only into the ``Authorization`` header that :meth:`Connection.auth`
makes, which callers add for the API base alone, and :meth:`Connection.scrub`
hides it in every message built from an answer or an exception.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import requests
from urllib3.util.retry import Retry

from . import transport
from .answers import answer_error
from .errors import WaveSpeedError
from .keys import HIDDEN_KEY, hide_in_logs, key_help
from .transport import Stop

BASE_URL_ENV = "WAVESPEED_BASE_URL"
DEFAULT_BASE_URL = "https://api.wavespeed.ai"
RETRYABLE_HTTP = (429, 500, 502, 503, 504)


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
    http_retries: int = 4             # per upload or download, for each kind of failure
    backoff_s: float = 0.5            # urllib3 backoff_factor
    backoff_max_s: float = 10.0
    retry_after_max_s: float = 60.0   # a longer Retry-After is cut to this
    submit_connect_retries: int = 3   # connection never opened: nothing was sent
    submit_rate_limit_retries: int = 3
    download_attempts: int = 3        # tries when the file arrives but is not a whole video
    ui_tick_s: float = 0.1            # how often the caller's thread reports and checks for a stop
    stop_check_s: float = 0.05        # how often a thread waiting for an answer checks for a stop

    @classmethod
    def from_env(cls, **overrides: Any) -> "ClientSettings":
        base = os.environ.get(BASE_URL_ENV, "").strip() or DEFAULT_BASE_URL
        return cls(base_url=base.rstrip("/"), **overrides)


class Connection:
    """The HTTP pieces every WaveSpeed request shares; thread-safe for a batch's workers."""

    def __init__(self, api_key: str, settings: ClientSettings | None = None, stop: Stop | None = None,
                 state_dir: str | os.PathLike | None = None):
        self.settings = settings or ClientSettings.from_env()
        self._key = api_key
        hide_in_logs(api_key)
        self.stop = stop or Stop()
        self._state_dir = state_dir
        self.retrier = transport.Retrier(self.stop, self.settings.retry_after_max_s, self.settings.stop_check_s)
        self.http = transport.session()
        # Submits get their own session and close their connection: a stale pooled
        # connection failing mid-send would leave the submit's fate unknown.
        self._submit_http = transport.session()
        self.ticket_route: bool | None = None  # None: not tried yet; False: only the older upload route exists

    def close(self) -> None:
        self.http.close()
        self._submit_http.close()

    def scrub(self, text: str) -> str:
        return text.replace(self._key, HIDDEN_KEY) if self._key else text

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}"}

    def url(self, path: str) -> str:
        return self.settings.base_url.rstrip("/") + path

    def timeout(self) -> tuple[float, float]:
        return (self.settings.connect_timeout_s, self.settings.read_timeout_s)

    def policy(self, **counts: Any) -> Retry:
        s = self.settings
        options = dict(total=None, connect=s.http_retries, read=s.http_retries, status=s.http_retries,
                       other=s.http_retries, allowed_methods=None, status_forcelist=RETRYABLE_HTTP,
                       backoff_factor=s.backoff_s, backoff_max=s.backoff_max_s, raise_on_status=False)
        return Retry(**{**options, **counts})

    def request(self, http: requests.Session, method: str, url: str, policy: Retry, **kwargs: Any):
        return transport.request(http, method, url, policy, self.scrub, **kwargs)

    def refused(self, response: requests.Response, what: str, model_id: str = "WaveSpeed's API") -> WaveSpeedError:
        error = answer_error(response, what, model_id=model_id, key_help=key_help(self._state_dir))
        return type(error)(self.scrub(str(error)))

    def check_stop(self) -> None:
        self.stop.check()
