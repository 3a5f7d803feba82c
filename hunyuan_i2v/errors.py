"""Errors a user can act on.

Every problem caused by input (a file, a widget value, an image) is raised as
``UserInputError`` with a message naming the problem and the fix. The nodes let
these propagate so ComfyUI shows the message on the node instead of a trace.
"""


class UserInputError(ValueError):
    """Bad input from the user: the message says what is wrong and what to do."""


class ModelFileError(UserInputError):
    """A model file or folder that cannot be used for the role it was given."""


class MissingModelError(ModelFileError, FileNotFoundError):
    """A model file or folder that is not where the user said."""
