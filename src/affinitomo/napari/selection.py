"""Selection geometry, cluster medoids and re-embedding of a selection (no napari needed)."""

from __future__ import annotations

import numpy as np
from matplotlib.path import Path as PolygonPath

EXACT_MEDOID_MAX = 2000
MEDOID_CANDIDATES = 256
MIN_REEMBED = 5


def points_in_polygon(xy: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Indices of the 2D points ``xy`` (N, 2) inside ``polygon`` (M, 2); NaN points never are."""
    xy = np.asarray(xy, dtype=float)
    polygon = np.asarray(polygon, dtype=float)
    if len(polygon) < 3 or len(xy) == 0:
        return np.zeros(0, dtype=np.int64)
    finite = np.isfinite(xy).all(axis=1)
    lo, hi = polygon.min(axis=0), polygon.max(axis=0)
    candidates = np.flatnonzero(finite & (xy >= lo).all(axis=1) & (xy <= hi).all(axis=1))
    inside = PolygonPath(polygon).contains_points(xy[candidates])
    return candidates[inside]


def points_in_box(xy: np.ndarray, corner0: tuple[float, float], corner1: tuple[float, float]) -> np.ndarray:
    """Indices of the 2D points inside the axis-aligned box spanned by two corners."""
    lo = np.minimum(corner0, corner1)
    hi = np.maximum(corner0, corner1)
    xy = np.asarray(xy, dtype=float)
    return np.flatnonzero((xy >= lo).all(axis=1) & (xy <= hi).all(axis=1))


def nearest_point(xy: np.ndarray, target: tuple[float, float], scale: tuple[float, float] = (1.0, 1.0)) -> int:
    """Index of the finite point nearest to ``target`` (distances divided by ``scale`` per axis)."""
    d = ((np.asarray(xy, dtype=float) - np.asarray(target)) / np.asarray(scale)) ** 2
    d = np.where(np.isfinite(d).all(axis=1), d.sum(axis=1), np.inf)
    return int(np.argmin(d))


def medoid(vectors: np.ndarray, rng: np.random.Generator | int | None = 0) -> int:
    """Index of the member with the smallest summed distance to the others.

    Exact up to ``EXACT_MEDOID_MAX`` members; above, the candidates are the
    ``MEDOID_CANDIDATES`` members nearest the mean, scored against a random
    sample of ``EXACT_MEDOID_MAX`` members (the true medoid of a compact
    cluster lies near its mean, so this finds it or a near-equal member).
    """
    x = np.asarray(vectors, dtype=np.float64)
    if len(x) == 0:
        raise ValueError("medoid of an empty set")
    if len(x) <= EXACT_MEDOID_MAX:
        candidates, reference = np.arange(len(x)), x
    else:
        rng = np.random.default_rng(rng)
        to_mean = np.linalg.norm(x - x.mean(axis=0), axis=1)
        candidates = np.argpartition(to_mean, MEDOID_CANDIDATES)[:MEDOID_CANDIDATES]
        reference = x[rng.choice(len(x), EXACT_MEDOID_MAX, replace=False)]
    best, best_cost = 0, np.inf
    for start in range(0, len(candidates), 256):
        chunk = candidates[start : start + 256]
        cost = np.linalg.norm(x[chunk, None, :] - reference[None, :, :], axis=2).sum(axis=1)
        i = int(np.argmin(cost))
        if cost[i] < best_cost:
            best, best_cost = int(chunk[i]), float(cost[i])
    return best


def reembed(vectors: np.ndarray, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1) -> np.ndarray:
    """2D UMAP (umap-learn, CPU) of the selected particles' vectors only.

    ``n_neighbors`` is clipped to the selection size so a small selection still
    embeds; the seed makes the result reproducible (umap then runs single-threaded).
    """
    import umap

    x = np.asarray(vectors, dtype=np.float32)
    if len(x) < MIN_REEMBED:
        raise ValueError(f"select at least {MIN_REEMBED} particles to re-embed (got {len(x)})")
    model = umap.UMAP(
        n_components=2,
        n_neighbors=max(2, min(n_neighbors, len(x) - 1)),
        min_dist=min_dist,
        random_state=seed,
        init="spectral" if len(x) > n_neighbors + 1 else "random",
    )
    return np.asarray(model.fit_transform(x), dtype=np.float32)
