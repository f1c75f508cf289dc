"""The protein-similarity (affinity) matrix: read/validate/write it, or compute it from structures.

- :mod:`.matrix_io`: the reference CSV format (header of class names, square matrix).
- :mod:`.maps`: MRC maps and atomic models to one normalised grid.
- :mod:`.rotations`, :mod:`.score`, :mod:`.search`: SO(3) grids, FFT translation scores
  (NCC, mean FSC) and the coarse-to-fine pose search (reusable for template matching).
- :mod:`.compute`: the matrix of a set of structures; :mod:`.plot`: its heatmap.
"""

from __future__ import annotations

import importlib

from affinitomo.similarity.matrix_io import read_similarity, select_classes, validate_similarity, write_similarity

# Heavier parts (torch, matplotlib) load on first use, so reading a matrix stays light.
_LAZY = {
    "PoseSearchResult": "search",
    "search_pose": "search",
    "SimilarityResult": "compute",
    "compute_similarity": "compute",
    "scale_scores": "compute",
    "plot_similarity": "plot",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"affinitomo.similarity.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'affinitomo.similarity' has no attribute {name!r}")


__all__ = [
    "PoseSearchResult",
    "SimilarityResult",
    "compute_similarity",
    "plot_similarity",
    "read_similarity",
    "scale_scores",
    "search_pose",
    "select_classes",
    "validate_similarity",
    "write_similarity",
]
