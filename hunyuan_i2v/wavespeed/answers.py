"""Reading WaveSpeed's answers: the envelope's fields, and HTTP errors as sentences.

Every answer is an envelope ``{code, message, data}``; a task's ``data`` holds
``status``, ``outputs``, ``has_nsfw_contents``, ``timings`` and ``error``. The
extractors here read those fields wherever WaveSpeed put them, and
:func:`answer_error` turns a refused request into an exception that says what
to do (log in, add credit, slow down, fix the settings).
"""

from __future__ import annotations

import re
from typing import Any

import requests

from .errors import (
    FAILURE_CODES, WaveSpeedAccountError, WaveSpeedAuthError, WaveSpeedError, WaveSpeedRequestError,
    WaveSpeedUnavailable,
)

PREDICTIONS_PAGE = "https://wavespeed.ai/predictions"
# Any other status (created, pending, queued, processing, ...) means "still working".
FAILED_STATUSES = {"failed", "cancelled", "canceled", "timeout", "error", "deleted"}


def json_object(response: requests.Response) -> dict[str, Any]:
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


def failure_text(task_id: str, status: str, code: int | None, message: str) -> str:
    meaning = FAILURE_CODES.get(code or -1, "")
    if code == 1200 or "moderat" in message.lower():
        meaning = FAILURE_CODES[1200]
    detail = f"code {code}: " if code is not None else ""
    text = f"WaveSpeed task {task_id} {status} ({detail}{message})."
    return f"{text} Meaning: {meaning}." if meaning else text


def answer_error(response: requests.Response, what: str, *, model_id: str, key_help: str) -> WaveSpeedError:
    """The exception for a request WaveSpeed refused (unscrubbed: the client scrubs it)."""
    try:
        body = json_object(response)
        message, code = str(body.get("message") or ""), body.get("code")
    except ValueError:
        message, code = response.text[:300], None
    message = message.strip() or response.reason or "no message"
    status = response.status_code
    coded = f", code {code}" if isinstance(code, int) and code != status else ""
    if status == 401:
        return WaveSpeedAuthError(f"WaveSpeed rejected the API key (HTTP 401: {message}). {key_help}")
    if status == 402:
        return WaveSpeedAccountError(f"WaveSpeed asks for payment (HTTP 402: {message}). "
                                     "Add credit to your WaveSpeed account, then run again.")
    if status == 403:
        return WaveSpeedAccountError(f"WaveSpeed refused this account (HTTP 403{coded}: {message}). Check that "
                                     f"the account is active, has credit and may use {model_id}.")
    if status == 400:
        return WaveSpeedRequestError(f"WaveSpeed rejected the {what} (HTTP 400{coded}: {message}). "
                                     "Check the prompt, image and settings.")
    if status == 429:
        return WaveSpeedUnavailable(f"WaveSpeed's rate limit refused the {what} (HTTP 429: {message}). A default "
                                    "account runs 2 videos at once and 2 a minute: lower concurrency or wait.")
    if status >= 500:
        return WaveSpeedUnavailable(f"WaveSpeed kept failing the {what} (HTTP {status}: {message}). Try later.")
    return WaveSpeedError(f"WaveSpeed answered HTTP {status}{coded} to the {what}: {message}")
