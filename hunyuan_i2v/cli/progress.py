"""What the command line shows while it works: one progress bar per stage, and the libraries kept quiet."""

from __future__ import annotations

import sys
from contextlib import contextmanager


class Progress:
    """Progress bars per stage (tqdm, on stderr) and messages between them."""

    def __init__(self, bars: bool = True, speak: bool = True):
        self.bars, self.speak = bars and speak, speak  # several processes: only the first one speaks

    @contextmanager
    def stage(self, name: str, total: int = 1, unit: str = "step"):
        """A bar for one stage; steps advance it with ``bar.update()``, and its rate is shown per ``unit``."""
        from tqdm import tqdm

        # A one-step stage has no rate worth showing, only the time it took.
        fmt = "{desc}: {elapsed}" if total == 1 else None
        with tqdm(total=total, desc=name, unit=unit, file=sys.stderr, disable=not self.bars, dynamic_ncols=True,
                  bar_format=fmt, leave=True) as bar:
            yield bar
            if total == 1 and bar.n == 0:
                bar.update()

    def say(self, text: str) -> None:
        if self.speak:
            print(text, file=sys.stderr, flush=True)


@contextmanager
def quiet_libraries(verbose: bool):
    """Keep diffusers' and transformers' loading bars and notices off the terminal (errors still show).

    Their own bars ("Loading weights", "Writing model shards") would interleave
    with ours, and their notices (experimental APIs) are not for this tool's user.
    """
    if verbose:
        yield
        return
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    saved = [(lib, lib.get_verbosity(), lib.is_progress_bar_enabled())
             for lib in (diffusers_logging, transformers_logging)]
    for lib, _, _ in saved:
        lib.set_verbosity_error()
        lib.disable_progress_bar()
    try:
        yield
    finally:
        for lib, verbosity, bars in saved:
            lib.set_verbosity(verbosity)
            if bars:
                lib.enable_progress_bar()
