"""The protein-similarity (affinity) matrix: read/validate/write it, or compute it from structures.

- :mod:`affinitomo.io.similarity`: the reference CSV format (header of class names, square matrix).
- :mod:`.maps`: MRC maps and atomic models to one normalised grid.
- :mod:`.compute`: the matrix of a set of structures, by the pose search of
  :mod:`affinitomo.search.pose` (SO(3) grids and FFT scores of :mod:`affinitomo.density`);
  :mod:`.plot`: its heatmap.
"""

from __future__ import annotations

import importlib

# Heavier parts (torch, matplotlib) load on first use.
_LAZY = {
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
    "SimilarityResult",
    "compute_similarity",
    "plot_similarity",
    "scale_scores",
]
