"""Greedy non-maximum suppression of scored points with a KD-tree."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def greedy_nms(points: np.ndarray, scores: np.ndarray, min_distance: float, max_count: int | None = None) -> np.ndarray:
    """Indices of the points kept, best first.

    Points are taken in decreasing score (ties: lower index first); each one kept removes
    every remaining point closer than ``min_distance``. Stops after ``max_count`` kept.
    The result depends only on the points and scores, not on how they were gathered.
    """
    points = np.asarray(points, dtype=np.float64)
    n = len(points)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((np.arange(n), -np.asarray(scores, dtype=np.float64)))
    if min_distance <= 0:
        return order[: max_count] if max_count is not None else order
    tree = cKDTree(points)
    suppressed = np.zeros(n, dtype=bool)
    kept: list[int] = []
    limit = n if max_count is None else int(max_count)
    for i in order:
        if suppressed[i]:
            continue
        kept.append(int(i))
        if len(kept) >= limit:
            break
        suppressed[tree.query_ball_point(points[i], r=min_distance * (1 - 1e-9))] = True
    return np.asarray(kept, dtype=np.int64)
