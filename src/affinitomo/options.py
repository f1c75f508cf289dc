"""Options from plain dicts (config sections, --options), and the YAML/JSON readers behind them.

Options dataclasses are built by :func:`from_known_keys`, which refuses unknown keys and values
of the wrong type, naming the key. Option texts (an inline JSON object or a YAML/JSON file) are
read by :func:`read_options`; YAML and JSON alike go through :func:`load_yaml` or
:func:`load_json`, which refuse a key given twice in one mapping (a plain loader keeps the last
value silently, so a config with ``epochs`` twice would train for whichever came last).
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

from affinitomo.errors import InputError

T = TypeVar("T")


def _type_ok(value: Any, hint: Any) -> bool:
    """True when ``value`` fits the type hint ``hint`` (ints count as floats, bools as neither)."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin in (list, tuple):
        item = (typing.get_args(hint) or (Any,))[0]
        return isinstance(value, (list, tuple)) and all(_type_ok(v, item) for v in value)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, hint) if isinstance(hint, type) else True


def from_known_keys(cls: type[T], values: dict[str, Any], source: Any, what: str) -> T:
    """``cls(**values)``, refusing keys that are not fields of ``cls`` and values of another type
    than the field's (InputError naming the key)."""
    if not isinstance(values, dict):
        raise InputError(source, None, f"a mapping of options, got {type(values).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known, key=str)
    if unknown:
        raise InputError(source, str(unknown[0]), f"{what}, one of {sorted(known)}")
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        if not _type_ok(value, hints.get(key, Any)):
            expected = str(hints[key]).replace("typing.", "").replace("<class '", "").replace("'>", "")
            raise InputError(source, key, f"a value of type {expected}, got {value!r}")
    return cls(**values)


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe YAML loader, refusing a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                continue  # the base class reports unhashable keys
            if key in seen:
                raise _Duplicate(key, seen[key].start_mark.line + 1, key_node.start_mark.line + 1)
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


class _Duplicate(Exception):
    def __init__(self, key: Any, first: int | None, again: int | None):
        super().__init__(key)
        self.key, self.first, self.again = key, first, again

    def error(self, source: Any) -> InputError:
        lines = f" (lines {self.first} and {self.again})" if self.first else ""
        return InputError(source, str(self.key), f"one value per key; the key is given twice{lines}")


def load_yaml(text: str, source: Any = None) -> Any:
    """The YAML document ``text`` (safe: plain data only); InputError naming ``source`` for invalid
    YAML and naming the key for a key given twice in one mapping."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except _Duplicate as dup:
        raise dup.error(source) from None
    except yaml.YAMLError as exc:
        raise InputError(source, None, f"valid YAML ({exc})") from None


def load_json(text: str, source: Any = None) -> Any:
    """The JSON document ``text``; InputError naming ``source`` for invalid JSON and naming the key
    for a key given twice in one object."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise _Duplicate(key, None, None)
            out[key] = value
        return out

    try:
        return json.loads(text, object_pairs_hook=unique)
    except _Duplicate as dup:
        raise dup.error(source) from None
    except json.JSONDecodeError as exc:
        raise InputError(source, None, f"valid JSON ({exc.msg} at char {exc.pos})") from None


def read_config_file(path: str | Path) -> Any:
    """A YAML or JSON file's content (YAML covers JSON), checked as :func:`load_yaml`."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, None, f"a readable YAML or JSON text file ({exc})") from None
    return load_yaml(text, path)


def read_options(text: str | None, flag: str = "--options") -> tuple[dict[str, Any], Any]:
    """``flag``'s value as ``(options dict, source for messages)``: an inline JSON object (starts
    with ``{``), or the path of a YAML or JSON file holding a mapping; nothing -> ``{}``."""
    if text is None or not text.strip():
        return {}, flag
    if text.lstrip().startswith("{"):
        source: Any = flag
        values = load_json(text, flag)
    else:
        source = Path(text)
        if not source.is_file():
            raise InputError(source, None, "an options file (YAML or JSON), or an inline JSON object "
                                           "starting with '{'")
        values = read_config_file(source)
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise InputError(source, None, f"a JSON object (mapping) of options, got {type(values).__name__}")
    return values, source
