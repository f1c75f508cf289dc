"""Write-to-temporary-then-rename, so no output is ever left half-written."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)

#: The random part of a :func:`tempfile.mkstemp` name.
_RANDOM = r"[a-z0-9_]{8}"


def _temporary_names(path: Path) -> re.Pattern:
    """The names of :func:`atomic_path`'s temporary files for ``path``, ``.<stem>.<random>.tmp<suffix>``,
    and of a temporary's own temporary (a file rewritten before it is renamed into place)."""
    return re.compile(rf"\.\.?{re.escape(path.stem)}\.{_RANDOM}\.tmp(\.{_RANDOM}\.tmp)?{re.escape(path.suffix)}")


def _remove_stale(path: Path) -> None:
    """Remove temporary files that an interrupted write of ``path`` left beside it.

    Only ``path``'s own temporaries are removed: two writers of the same file at once are an
    error anyway, while other files of the folder may be written by other jobs right now.
    """
    pattern = _temporary_names(path)
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            if pattern.fullmatch(entry.name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    log.info("removed %s, left by an interrupted write of %s", entry.path, path)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched. The temporary
    name keeps the final suffix so that libraries that look at suffixes (numpy, mrcfile,
    starfile) behave the same; temporaries of ``path`` left by a killed process are removed
    first. An OSError of the write itself (a read-only folder, a path under a file, a full
    disk) is raised naming ``path``, not the temporary file; one that names no file is taken
    for this write's (a writer of several outputs at once names the temporary it was writing).
    """
    path = Path(path)
    try:
        if path.parent.exists() and not path.parent.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    except OSError as exc:
        raise _naming(exc, path) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp_path, 0o666 & ~mask)  # mkstemp makes 0600; outputs get the usual mode
        os.replace(tmp_path, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if isinstance(exc, OSError) and exc.filename in (None, str(tmp_path), tmp_path):
            raise _naming(exc, path) from None
        raise


def _naming(exc: OSError, path: Path) -> OSError:
    """``exc`` as an OSError of the same kind (errno) whose file is ``path``."""
    if exc.errno is None:
        return OSError(f"{path}: {exc}")
    return OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path))
