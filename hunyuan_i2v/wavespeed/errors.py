"""What can go wrong with a WaveSpeed job, as exceptions the node can show.

Every :class:`WaveSpeedError` is a :class:`~.errors.UserInputError`: its
message says what happened and what to do about it (fix the key, add credit,
run again to resume, ...). :class:`WaveSpeedInterrupted` is not one: a stop
the user asked for is not a failure.

``FAILURE_CODES`` explains the codes WaveSpeed puts on a failed task, for the
message of :class:`WaveSpeedTaskFailed`.
"""

from __future__ import annotations

from ..errors import UserInputError

FAILURE_CODES = {
    1200: "content moderation: WaveSpeed's checker refused the prompt or the image; change them and run again",
    1400: "a required parameter is missing",
    1401: "a parameter is invalid; check the node's settings against the endpoint's ranges",
    1402: "WaveSpeed could not fetch the image URL; make sure it is public",
    1403: "the task failed on WaveSpeed's side",
    1405: "the task failed on WaveSpeed's side",
    5000: "internal error at WaveSpeed; running again is worth a try",
    5003: "WaveSpeed was unavailable; running again is worth a try",
    5004: "WaveSpeed timed out; running again is worth a try",
}


class WaveSpeedError(UserInputError):
    """A remote-job problem with a message that says what to do."""


class WaveSpeedAuthError(WaveSpeedError):
    """The API key is missing or WaveSpeed rejected it."""


class WaveSpeedRequestError(WaveSpeedError):
    """WaveSpeed refused the parameters (HTTP 400)."""


class WaveSpeedAccountError(WaveSpeedError):
    """The account cannot run the job (HTTP 402/403: balance, permissions)."""


class WaveSpeedUnavailable(WaveSpeedError):
    """WaveSpeed could not be reached or kept failing until the deadline."""


class WaveSpeedSubmitUncertain(WaveSpeedError):
    """The submit may have created a task, but no task id came back."""


class WaveSpeedTaskFailed(WaveSpeedError):
    def __init__(self, message: str, code: int | None = None, task_id: str | None = None):
        super().__init__(message)
        self.code, self.task_id = code, task_id


class WaveSpeedTimeout(WaveSpeedError):
    def __init__(self, message: str, task_id: str | None = None):
        super().__init__(message)
        self.task_id = task_id


class WaveSpeedDownloadError(WaveSpeedError):
    """The task finished but its video could not be fetched or decoded."""


class WaveSpeedInterrupted(Exception):
    """The caller asked to stop; journaled tasks resume on the next run.

    ``finishing`` is given when the stop left an exchange running in the
    background (a submit whose answer is still on its way): an event that is
    set once that exchange has ended and its task, if any, is in the journal.
    """

    def __init__(self, message: str, finishing=None):  # noqa: ANN001 - a threading.Event
        super().__init__(message)
        self.finishing = finishing
