"""The WaveSpeed API key: where it comes from, and keeping it out of logs.

The key is read from the environment or from a key file, never from a widget,
so it is not saved in workflows. Once a client holds a key, a filter on the
loggers of requests, urllib3 and this pack's WaveSpeed modules replaces it with
``HIDDEN_KEY`` in every record before a handler formats it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

# Imported before the filter is attached below, so that the loggers of
# requests and urllib3 (one per module) exist and each gets it.
import requests  # noqa: F401

from .errors import WaveSpeedAuthError

API_KEY_ENV = "WAVESPEED_API_KEY"
API_KEY_FILE_ENV = "WAVESPEED_API_KEY_FILE"
KEY_FILE_NAME = "wavespeed_api_key.txt"
HIDDEN_KEY = "[hidden API key]"


def key_help(state_dir: Path | None = None) -> str:
    where = f" or put it alone in the file {Path(state_dir) / KEY_FILE_NAME}" if state_dir else ""
    return (f"Set the environment variable {API_KEY_ENV} before starting ComfyUI{where} "
            f"(or name another key file in {API_KEY_FILE_ENV}). Keys are made on your WaveSpeed account page.")


def resolve_api_key(state_dir: str | os.PathLike | None = None) -> str:
    """The key from the environment, else from the key file; never from a widget."""
    key = os.environ.get(API_KEY_ENV, "").strip()
    source = API_KEY_ENV
    if not key:
        named = os.environ.get(API_KEY_FILE_ENV, "").strip()
        path = Path(named).expanduser() if named else (Path(state_dir) / KEY_FILE_NAME if state_dir else None)
        if named and not path.is_file():
            raise WaveSpeedAuthError(f"{API_KEY_FILE_ENV} names {path}, which is not a file. "
                                     f"Fix the path or unset it. {key_help(state_dir)}")
        if path is not None and path.is_file():
            lines = [ln.strip() for ln in path.read_text(encoding="utf-8-sig").splitlines()]
            key = next((ln for ln in lines if ln and not ln.startswith("#")), "")
            source = str(path)
    if not key:
        raise WaveSpeedAuthError(f"No WaveSpeed API key found. {key_help(state_dir)}")
    if any(ch.isspace() for ch in key) or not key.isprintable():
        raise WaveSpeedAuthError(f"The WaveSpeed API key from {source} contains spaces or control characters; "
                                 f"it must be the key alone. {key_help(state_dir)}")
    return key


class _KeyScrubber(logging.Filter):
    """Hides registered keys in log records of the HTTP libraries and this pack.

    urllib3 logs request URLs (a proxy URL in WAVESPEED_BASE_URL may hold a
    token) and exception texts; a filter on each of their loggers rewrites
    the record before any handler formats it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.keys: set[str] = set()

    def scrub(self, text: str) -> str:
        for key in self.keys:
            text = text.replace(key, HIDDEN_KEY)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.keys:
            text = record.getMessage()
            if any(key in text for key in self.keys):
                record.msg, record.args = self.scrub(text), ()
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = self.scrub(record.exc_text)
        return True


_LOG_SCRUBBER = _KeyScrubber()
# A logger's filters see only records logged to it, not those of its children:
# each module's logger gets the filter.
_PACK_MODULES = ("client", "transport", "uploads", "answers", "jobs", "runner", "journal", "keys", "endpoints")
for _name in [n for n in list(logging.root.manager.loggerDict) if n.split(".")[0] in ("urllib3", "requests")] + [
        "urllib3", "requests", __package__, *(f"{__package__}.{module}" for module in _PACK_MODULES)]:
    logging.getLogger(_name).addFilter(_LOG_SCRUBBER)


def hide_in_logs(key: str) -> None:
    """From now on, log records of the filtered loggers show ``key`` as ``HIDDEN_KEY``."""
    if key:
        _LOG_SCRUBBER.keys.add(key)
