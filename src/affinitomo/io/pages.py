"""Keep memory-mapped files from filling the resident set.

Pages of a memory-mapped file count in a process's RSS once touched, so
streaming through a 4 GB tomogram (or writing a 10 GB stack) through ``np.memmap``
would show a 4 GB RSS although none of it is anonymous memory. :class:`PageBudget`
watches the file-backed part of RSS and, above a budget, tells the kernel to drop
the mappings' pages (``madvise(MADV_DONTNEED)``): for shared file mappings this
only unmaps them; their contents, dirty ones included, stay in the page cache and
are read back on the next access.
"""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np

_STATM = Path("/proc/self/statm")
_PAGE = mmap.PAGESIZE


def file_backed_rss() -> int | None:
    """Bytes of this process's RSS backed by files (``/proc/self/statm`` shared), None off Linux."""
    try:
        fields = _STATM.read_text().split()
    except OSError:
        return None
    return int(fields[2]) * _PAGE


def find_mmap(array: np.ndarray) -> mmap.mmap | None:
    """The ``mmap.mmap`` object behind a memory-mapped array (``np.memmap`` or a view of one)."""
    obj = array
    for _ in range(16):
        if obj is None:
            return None
        if isinstance(obj, mmap.mmap):
            return obj
        mm = getattr(obj, "_mmap", None)
        if isinstance(mm, mmap.mmap):
            return mm
        obj = getattr(obj, "base", None)
    return None


class PageBudget:
    """Drop the pages of some memory-mapped arrays when file-backed RSS grows past a budget."""

    def __init__(self, budget_bytes: int = 192 * 2**20):
        self.budget = int(budget_bytes)
        self.baseline = file_backed_rss() or 0
        self._maps: list[mmap.mmap] = []
        self.releases = 0

    def watch(self, array: np.ndarray) -> None:
        """Release ``array``'s pages too (ignored when it is not file-backed)."""
        mm = find_mmap(array)
        if mm is not None and hasattr(mm, "madvise") and all(m is not mm for m in self._maps):
            self._maps.append(mm)

    def forget(self, array: np.ndarray) -> None:
        """Stop watching ``array`` (e.g. before its file is closed)."""
        mm = find_mmap(array)
        self._maps = [m for m in self._maps if m is not mm]

    def check(self) -> bool:
        """Release all watched mappings if file-backed RSS is over budget; True if released."""
        rss = file_backed_rss()
        if rss is None or rss - self.baseline <= self.budget:
            return False
        self.release()
        return True

    def release(self) -> None:
        """Drop the resident pages of every watched mapping now."""
        for mm in self._maps:
            try:
                mm.madvise(mmap.MADV_DONTNEED)
            except (OSError, ValueError):  # closed, or not supported here
                pass
        self.releases += 1
