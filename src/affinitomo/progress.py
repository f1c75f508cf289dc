"""Progress bars that also read well in a log file.

Every long loop of the stages goes through :func:`progress_bar`, a :class:`tqdm.tqdm` with one
difference: when standard error is not a terminal (a Snakemake job writes it to
``results/logs/<rule>.log``), the bar is written as one plain line at most every
:data:`LOG_INTERVAL_S` seconds, plus its final state, instead of carriage-return redraws. So
``tail -f results/logs/train.log`` shows how far a job is and how long it has left.
"""

from __future__ import annotations

import io
import sys
from typing import Any, Iterable

from tqdm import tqdm

LOG_INTERVAL_S = 10.0  # seconds between two progress lines in a log file


class _LineStream(io.TextIOBase):
    """Turns tqdm's carriage-return redraws into whole lines on standard error (no line twice)."""

    def __init__(self) -> None:
        super().__init__()
        self._last = ""

    def write(self, text: str) -> int:
        out = ""
        for line in (part.strip() for part in text.replace("\r", "\n").split("\n")):
            if line and line != self._last:
                out += f"{line}\n"
                self._last = line
        if out:
            sys.stderr.write(out)
            sys.stderr.flush()
        return len(text)

    def flush(self) -> None:
        sys.stderr.flush()


def progress_bar(iterable: Iterable | None = None, **kwargs: Any) -> tqdm:
    """A :class:`tqdm.tqdm` (same arguments); in a log file, a plain line every few seconds."""
    if kwargs.get("disable"):
        return tqdm(iterable, **kwargs)
    if not sys.stderr.isatty():
        kwargs.update(file=_LineStream(), mininterval=LOG_INTERVAL_S, ascii=True, ncols=100,
                      dynamic_ncols=False, leave=True, position=None)
    return tqdm(iterable, **kwargs)
