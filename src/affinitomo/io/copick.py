"""copick picks (JSON) <-> particle rows.

A copick picks file holds ``pickable_object_name``, ``run_name`` and a list
``points``, each with ``location`` ``{"x", "y", "z"}`` in Å from the tomogram
origin (voxel i centred at i * voxel_size, so ``x_px = x_Å / pixel_size``) and an
optional 4x4 ``transformation_``. Assumption, stated: the upper-left 3x3 block is
the matrix that rotates the reference into the particle, acting on (x, y, z)
(the same A as :mod:`affinitomo.geometry`), and the last column a shift in Å
added to the location.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from affinitomo.errors import InputError
from affinitomo.geometry import euler_to_matrix, matrix_to_euler


def read_copick_picks(path: str | Path, *, pixel_size: float | None, default_tomo: str | None = None) -> pd.DataFrame:
    """Rows of a copick picks file: pixel coordinates, RELION angles, class name.

    Returns a table with ``rlnCoordinateX/Y/Z`` (pixels), ``rlnAngleRot/Tilt/Psi``,
    ``afmClassName`` (the pickable object), ``rlnTomoName`` (the run name, else
    ``default_tomo``), ``afmPixelSize`` and the source columns
    ``afmCopickX/Y/ZAngst``, ``afmCopickScore``, ``afmCopickInstance``.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, None, f"a readable copick picks JSON file ({exc})") from exc
    return picks_table(doc, path, pixel_size=pixel_size, default_tomo=default_tomo)


def picks_table(doc: object, path: str | Path, *, pixel_size: float | None, default_tomo: str | None = None) -> pd.DataFrame:
    """The rows of a copick picks document (the JSON object), as :func:`read_copick_picks`.

    ``path`` names the document's file in errors.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("points"), list):
        raise InputError(path, "points", "a copick picks JSON object with a 'points' list")
    if pixel_size is None or not np.isfinite(pixel_size) or pixel_size <= 0:
        raise InputError(path, "location", "a pixel size (--pixel-size) to convert copick Å locations to pixels")
    points = doc["points"]
    locations = np.empty((len(points), 3))
    matrices = np.tile(np.eye(4), (len(points), 1, 1))
    scores, instances = [], []
    for i, point in enumerate(points):
        try:
            loc = point["location"]
            locations[i] = [float(loc[k]) if loc[k] is not None else np.nan for k in ("x", "y", "z")]
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(path, f"points[{i}].location", "an object with numeric x, y, z (Å)") from exc
        transform = point.get("transformation_")
        if transform is not None:
            try:
                m = np.asarray(transform, dtype=float)
            except (TypeError, ValueError):
                m = np.full(1, np.nan)
            if m.shape != (4, 4) or not np.all(np.isfinite(m)):
                raise InputError(path, f"points[{i}].transformation_", "a finite 4x4 matrix")
            matrices[i] = m
        score, instance = point.get("score", 1.0), point.get("instance_id", 0)
        if not (score is None or _is_number(score)):
            raise InputError(path, f"points[{i}].score", f"a number, got {score!r}")
        if not (instance is None or (_is_number(instance) and float(instance).is_integer())):
            raise InputError(path, f"points[{i}].instance_id", f"an integer, got {instance!r}")
        scores.append(np.nan if score is None else float(score))
        instances.append(int(instance or 0))
    angstrom = locations + matrices[:, :3, 3]
    with warnings.catch_warnings():  # gimbal lock (e.g. identity) is fine: scipy sets psi to 0
        warnings.simplefilter("ignore", UserWarning)
        angles = matrix_to_euler(matrices[:, :3, :3]) if len(points) else np.empty((0, 3))
    for key in ("run_name", "pickable_object_name"):
        if doc.get(key) is not None and not isinstance(doc[key], str):
            raise InputError(path, key, f"a name (text), got {doc[key]!r}")
    tomo = doc.get("run_name") or default_tomo
    df = pd.DataFrame(
        {
            "rlnCoordinateX": angstrom[:, 0] / pixel_size,
            "rlnCoordinateY": angstrom[:, 1] / pixel_size,
            "rlnCoordinateZ": angstrom[:, 2] / pixel_size,
            "rlnAngleRot": angles[:, 0],
            "rlnAngleTilt": angles[:, 1],
            "rlnAnglePsi": angles[:, 2],
            "afmClassName": str(doc.get("pickable_object_name") or ""),
            "afmPixelSize": float(pixel_size),
            "afmCopickXAngst": locations[:, 0],
            "afmCopickYAngst": locations[:, 1],
            "afmCopickZAngst": locations[:, 2],
            "afmCopickScore": scores,
            "afmCopickInstance": instances,
        }
    )
    if tomo is not None:
        df.insert(0, "rlnTomoName", str(tomo))
    return df


def picks_transforms(angles: np.ndarray) -> np.ndarray:
    """RELION ZYZ angles (n, 3) in degrees -> copick 4x4 ``transformation_`` matrices (n, 4, 4).

    The inverse of the reader's conversion: the rotation block is A of :mod:`affinitomo.geometry`
    and the shift is 0 (the particle centre is the point's location).
    """
    angles = np.asarray(angles, dtype=float).reshape(-1, 3)
    out = np.tile(np.eye(4), (len(angles), 1, 1))
    if len(angles):
        out[:, :3, :3] = euler_to_matrix(angles[:, 0], angles[:, 1], angles[:, 2])
    return out


def _is_number(value: object) -> bool:
    """A JSON number (not a bool) small enough to be exact as a float."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < 2.0**63
