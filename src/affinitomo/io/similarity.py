"""Reading, validating and writing protein-similarity matrices (the reference CSV format).

The format of the reference implementation (alan-turing-institute/affinity-vae): a header
row of class names, then one row of numbers per class, in the header's order, no index
column. A second form, as ``pandas.DataFrame.to_csv`` writes with its index, is accepted
too: an empty (or ``Unnamed: 0``) first header cell and the class name in front of each row;
those row names must equal the header names.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from affinitomo.errors import InputError
from affinitomo.io.atomic import atomic_path

log = logging.getLogger(__name__)

#: Largest |A - A^T| accepted silently (CSV rounding); larger asymmetry is averaged with a warning.
SYMMETRY_TOLERANCE = 1e-6
#: Largest |diag - 1| accepted (CSV rounding).
DIAGONAL_TOLERANCE = 1e-4
#: Values may exceed [-1, 1] by this much (CSV rounding) and are then clipped.
RANGE_TOLERANCE = 1e-6


def _parse_float(text: str, path: Path, row: int, col: int) -> float:
    try:
        return float(text)
    except ValueError:
        raise InputError(path, f"row {row}, column {col}", f"a number, got {text!r}") from None


def _read_rows(path: Path) -> list[list[str]]:
    if not path.is_file():
        raise InputError(path, None, "file not found")
    try:
        with open(path, newline="") as handle:
            rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(path, None, f"a CSV text file ({exc})") from exc
    if not rows:
        raise InputError(path, "header", "a header row of class names, got an empty file")
    return [[cell.strip() for cell in row] for row in rows]


def _parse_matrix(path: Path) -> tuple[list[str], np.ndarray]:
    rows = _read_rows(path)
    header, body = rows[0], rows[1:]
    indexed = header[0] in ("", "Unnamed: 0") or (
        bool(body) and all(len(r) == len(header) + 1 for r in body) and [r[0] for r in body] == header
    )
    names = header[1:] if header[0] in ("", "Unnamed: 0") else header  # row names alone: header = names
    n = len(names)
    if n == 0:
        raise InputError(path, "header", "a header row of class names")
    if len(body) != n:
        raise InputError(path, "rows", f"a square matrix: {n} class names in the header but {len(body)} rows")
    values = np.empty((n, n), dtype=float)
    for i, row in enumerate(body):
        cells = row
        if indexed:
            if len(row) != n + 1:
                raise InputError(path, f"row {i + 2}", f"a row name and {n} values, got {len(row)} cells")
            if row[0] != names[i]:
                raise InputError(path, f"row {i + 2}", f"row name {names[i]!r} (the header's order), got {row[0]!r}")
            cells = row[1:]
        if len(cells) != n:
            raise InputError(path, f"row {i + 2}", f"a square matrix: {n} values, got {len(cells)}")
        values[i] = [_parse_float(c, path, i + 2, j + 1) for j, c in enumerate(cells)]
    return names, values


def validate_similarity(names: list[str], matrix: np.ndarray, path: str | Path | None = None) -> np.ndarray:
    """Check a similarity matrix and return it symmetrised, as float64.

    Raises :class:`InputError` when it is not square, a name is empty or duplicated, a
    value is not finite or outside [-1, 1], or the diagonal is not 1. An asymmetric
    matrix is replaced by ``(A + A.T) / 2`` with a warning giving ``max |A - A.T|``.
    """
    matrix = np.asarray(matrix, dtype=float)
    names = [str(n) for n in names]
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise InputError(path, "matrix", f"a square matrix, got shape {matrix.shape}")
    if len(names) != matrix.shape[0]:
        raise InputError(path, "header", f"{matrix.shape[0]} class names for a {matrix.shape[0]}-square matrix, got {len(names)}")
    empty = [i for i, n in enumerate(names) if not n]
    if empty:
        raise InputError(path, "header", f"non-empty class names, column {empty[0] + 1} is empty")
    seen: dict[str, int] = {}
    for name in names:
        seen[name] = seen.get(name, 0) + 1
    dupes = sorted(n for n, c in seen.items() if c > 1)
    if dupes:
        raise InputError(path, "header", f"unique class names, duplicated: {', '.join(dupes)}")
    bad = ~np.isfinite(matrix)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise InputError(path, f"{names[i]},{names[j]}", f"finite values, got {matrix[i, j]}")
    outside = np.abs(matrix) > 1 + RANGE_TOLERANCE
    if outside.any():
        i, j = np.argwhere(outside)[0]
        raise InputError(path, f"{names[i]},{names[j]}", f"values in [-1, 1], got {matrix[i, j]:g}")
    diag = np.abs(np.diag(matrix) - 1) > DIAGONAL_TOLERANCE
    if diag.any():
        i = int(np.argmax(diag))
        raise InputError(path, f"{names[i]},{names[i]}", f"diagonal values of 1, got {matrix[i, i]:g}")
    asym = float(np.max(np.abs(matrix - matrix.T))) if matrix.size else 0.0
    if asym > SYMMETRY_TOLERANCE:
        i, j = np.unravel_index(np.argmax(np.abs(matrix - matrix.T)), matrix.shape)
        log.warning(
            "%s: similarity matrix is not symmetric (max |A - A^T| = %.4g, at %s,%s); using (A + A^T)/2",
            path if path is not None else "matrix", asym, names[i], names[j],
        )
    out = (matrix + matrix.T) / 2
    np.fill_diagonal(out, 1.0)
    return np.clip(out, -1.0, 1.0)


def select_classes(
    names: list[str], matrix: np.ndarray, classes: list[str], path: str | Path | None = None
) -> tuple[list[str], np.ndarray]:
    """Rows and columns for ``classes``, in that order; a class not in ``names`` is an error."""
    classes = [str(c) for c in classes]
    index = {n: i for i, n in enumerate(names)}
    missing = [c for c in classes if c not in index]
    if missing:
        raise InputError(path, "header", f"a row and column for every training class, missing: {', '.join(missing)}")
    dupes = sorted({c for c in classes if classes.count(c) > 1})
    if dupes:
        raise InputError(None, "classes", f"unique class names, duplicated: {', '.join(dupes)}")
    order = [index[c] for c in classes]
    return classes, matrix[np.ix_(order, order)].copy()


def read_similarity(path: str | Path, classes: list[str] | None = None) -> tuple[list[str], np.ndarray]:
    """Read, validate and symmetrise a similarity CSV; optionally select and reorder ``classes``."""
    path = Path(path)
    names, values = _parse_matrix(path)
    matrix = validate_similarity(names, values, path)
    if classes is not None:
        names, matrix = select_classes(names, matrix, classes, path)
    return names, matrix


def write_similarity(path: str | Path, names: list[str], matrix: np.ndarray) -> Path:
    """Validate and write a matrix in the reference format (header of names, no index), atomically."""
    path = Path(path)
    matrix = validate_similarity(list(names), matrix)
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(list(names))
            for row in matrix:
                writer.writerow([f"{float(v):.6f}" for v in row])
    return path
