"""Which files of another affinitomo version can be read: the same major.minor version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from affinitomo import __version__
from affinitomo.errors import InputError


def minor(version: Any) -> tuple[str, ...]:
    """``"0.1.3"`` -> ``("0", "1")``."""
    return tuple(str(version).split(".")[:2])


def check_version(path: str | Path, found: Any, what: str, remedy: str) -> None:
    """InputError unless ``found`` has this package's major.minor version."""
    if minor(found) != minor(__version__):
        raise InputError(path, "version", f"{what} from affinitomo {'.'.join(minor(__version__))}.x "
                                          f"(this file: {found}); {remedy}")
