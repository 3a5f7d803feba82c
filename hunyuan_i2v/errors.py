"""Errors a user can act on.

Every problem caused by input (a file, a widget value, an image) is raised as
``UserInputError`` with a message naming the problem and the fix. The nodes let
these propagate so ComfyUI shows the message on the node instead of a trace.
"""

import torch


class UserInputError(ValueError):
    """Bad input from the user: the message says what is wrong and what to do."""


class ModelFileError(UserInputError):
    """A model file or folder that cannot be used for the role it was given."""


class MissingModelError(ModelFileError, FileNotFoundError):
    """A model file or folder that is not where the user said."""


class OutOfMemoryAdvice(UserInputError, torch.OutOfMemoryError):
    """Out of GPU memory, with the settings that would fit in the message.

    Still torch's out-of-memory error, so a host that recovers from one (ComfyUI unloads every model on it)
    recognises it; and still a user's error, so the message reaches the node and the command line as a sentence.
    """


class WorkerError(RuntimeError):
    """Another process of a parallel run failed with an error that is not the user's to fix."""


def rebuild(kind: str, message: str, where: str) -> Exception:
    """The exception another process raised, from its class name and message.

    The user's errors keep their class and sentence; anything else becomes a WorkerError naming ``where``.
    """
    known = {cls.__name__: cls for cls in (UserInputError, ModelFileError, MissingModelError, OutOfMemoryAdvice)}
    if kind in known:
        return known[kind](message)
    return WorkerError(f"{where} failed: {kind}: {message}")
