"""The one exception type for bad user input."""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Bad input: names the file, the field, and what was expected.

    >>> raise InputError("particles.star", "rlnCoordinateX", "a numeric column")
    """

    def __init__(self, path: str | Path | None, field: str | None, expected: str):
        self.path = None if path is None else str(path)
        self.field = field
        self.expected = expected
        parts = []
        if self.path is not None:
            parts.append(self.path)
        if field:
            parts.append(f"field '{field}'")
        where = ": ".join(parts)
        super().__init__(f"{where}: {expected}" if where else expected)
