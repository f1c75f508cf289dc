"""Model files that load without running code: arrays plus a JSON header in one ``.npz``.

An archive holds named arrays (numbers or fixed-width strings, never Python objects) and the
JSON text ``meta`` (format name, affinitomo version, settings). It is read with
``numpy.load(allow_pickle=False)``, so a crafted file can give wrong numbers but cannot run
code. Files of the older pickle format are recognised and refused; :func:`read_trusted_pickle`
reads one only when the user says it is their own (``--trust-pickle``).
"""

from __future__ import annotations

import json
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from affinitomo import __version__
from affinitomo.errors import InputError
from affinitomo.io.atomic import atomic_path
from affinitomo.versions import check_version

log = logging.getLogger(__name__)

META = "meta"
TRUST_FLAG = "--trust-pickle"


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON: {type(value).__name__}")


def write_archive(path: str | Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` and ``meta`` (plus this affinitomo version) to ``path``, atomically."""
    text = json.dumps({**meta, "version": __version__}, default=_jsonable)
    arrays = {key: np.asarray(value) for key, value in arrays.items()}
    for key, value in arrays.items():
        if value.dtype.hasobject:
            raise TypeError(f"array {key!r} holds Python objects, which an archive does not store")
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{META: np.array(text)}, **arrays)
    return path


@dataclass(frozen=True)
class ModelFile:
    """What a model file holds: ``meta`` and ``arrays`` of an archive, or (``from_pickle``) ``pickled``,
    the contents of a trusted pickle."""

    meta: dict[str, Any] | None = None
    arrays: dict[str, np.ndarray] | None = None
    pickled: Any = None
    from_pickle: bool = False


@dataclass(frozen=True)
class Kind:
    """A kind of model file: its format name, file name, the stage that writes it, and the flags
    that read it (named in the message that refuses an old pickle)."""

    fmt: str  # "affinitomo-classifier"
    what: str  # "an affinitomo classifier"
    name: str  # "classifier.npz"
    writer: str  # "affinitomo cluster"
    readers: str  # "affinitomo cluster --classifier, affinitomo apply --run"
    remedy: str  # what to do with a file of another version

    @property
    def expected(self) -> str:
        return f"a {self.name} written by '{self.writer}'"


def is_pickle(path: Path) -> bool:
    """True for a file that is not an archive and reads as a pickle would (protocol 2+, or ``.pkl``)."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    return not head.startswith(b"PK") and (head[:1] == b"\x80" or path.suffix == ".pkl")


def read_model_file(path: str | Path, kind: Kind, trust_pickle: bool = False) -> ModelFile:
    """Read the model file ``path`` of ``kind``: an archive, or (only with ``trust_pickle``) an old pickle.

    InputError naming ``path`` when it is missing; when it is a pickle and ``trust_pickle`` is off
    (the message says how to convert it); when it is not a readable archive of ``kind``; or when
    another affinitomo major.minor version wrote it.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, None, f"{kind.what} file not found ({kind.name} from '{kind.writer}')")
    if is_pickle(path):
        if not trust_pickle:
            raise InputError(path, None, f"{kind.what} file in the {kind.name} format (arrays and JSON); this file "
                                         f"is a pickle (the older format), which can run code when it is loaded, "
                                         f"so it is not read. To convert a file you wrote yourself, give it once "
                                         f"with {TRUST_FLAG} ({kind.readers}): that run reads it and writes "
                                         f"{kind.name} in its output folder, to be used from then on")
        return ModelFile(pickled=read_trusted_pickle(path, f"a pickle written by '{kind.writer}'"), from_pickle=True)
    meta, arrays = read_archive(path, kind)
    return ModelFile(meta, arrays)


def read_trusted_pickle(path: Path, expected: str) -> Any:
    """Unpickle ``path``, which the user vouched for with ``--trust-pickle`` (with a warning)."""
    log.warning("%s: reading a pickle (%s): it can run code; only do this with files you wrote yourself",
                path, TRUST_FLAG)
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh)
    except Exception as exc:  # noqa: BLE001 - any unreadable pickle is bad input
        raise InputError(path, None, f"{expected} ({exc.__class__.__name__}: {exc})") from None


def read_archive(path: Path, kind: Kind) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(meta, arrays)`` of the archive ``path`` of ``kind``, every array read now.

    InputError naming ``path`` when it is not a readable archive, is another format, or was
    written by another affinitomo major.minor version.
    """
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("a single array, not an archive")
        with loaded:
            arrays = {key: np.asarray(loaded[key]) for key in loaded.files}
    except Exception as exc:  # noqa: BLE001 - whatever breaks reading a truncated or corrupted file is bad input
        raise InputError(path, None, f"{kind.expected} ({exc.__class__.__name__}: {exc})") from None
    if META not in arrays:
        raise InputError(path, META, f"present ({kind.expected})")
    try:
        meta = json.loads(str(arrays.pop(META)))
    except ValueError as exc:
        raise InputError(path, META, f"JSON text ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != kind.fmt:
        raise InputError(path, "format", f"'{kind.fmt}' ({kind.expected})")
    check_version(path, meta.get("version"), kind.what, kind.remedy)
    return meta, arrays


def array(path: Path, arrays: dict[str, np.ndarray], key: str, shape: tuple[int | None, ...],
          dtype: str = "f", finite: bool = True) -> np.ndarray:
    """``arrays[key]``, checked: ``shape`` (None: any size), kind ``dtype`` ('f' number, 'U' text,
    'b' bool) and, for numbers, ``finite``; InputError naming the file and the array otherwise."""
    if key not in arrays:
        raise InputError(path, key, "present (an array of this file)")
    value = arrays[key]
    kinds = {"f": "fiu", "U": "U", "b": "b"}[dtype]
    if value.dtype.kind not in kinds or value.ndim != len(shape) or any(
            want is not None and got != want for got, want in zip(value.shape, shape)):
        want = ", ".join("n" if s is None else str(s) for s in shape)
        raise InputError(path, key, f"a {dtype}-array of shape ({want}), got {value.dtype} {value.shape}")
    if dtype == "f" and finite and not np.all(np.isfinite(value)):
        raise InputError(path, key, "finite values")
    return value
