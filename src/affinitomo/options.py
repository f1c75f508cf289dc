"""Options dataclasses built from plain dicts (config sections, --options JSON)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

from affinitomo.errors import InputError

T = TypeVar("T")


def from_known_keys(cls: type[T], values: dict[str, Any], source: Any, what: str) -> T:
    """``cls(**values)``, refusing keys that are not fields of ``cls`` with an InputError."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(source, unknown[0], f"{what}, one of {sorted(known)}")
    return cls(**values)
