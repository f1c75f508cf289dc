"""The similarity matrix of a set of structures: best pose score for every pair, mapped to [-1, 1].

Each pair is scored once (so the matrix is exactly symmetric) by :func:`search_pose`
with the larger particle as the moving map, in a box cut to fit that pair. Raw scores
(NCC or mean FSC, both in [-1, 1]) are then mapped to the matrix by ``scale``:

- ``"stretch"`` (default): ``s' = -1 + 2 (s - s_min) / (1 - s_min)`` where ``s_min`` is
  the lowest off-diagonal raw score: the least similar pair gets -1, identical maps 1,
  order and ratios of differences kept. Raw NCCs of compact proteins all lie near
  0.2 - 0.95 at 20 Å; the Affinity-VAE prior compares them with latent cosine
  similarities in [-1, 1], so the range is used in full (as the reference matrix does).
  It depends on the set: adding a class may change every value.
- ``"none"``: the raw score itself (already in [-1, 1]).

The diagonal is 1 by definition.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from affinitomo.density.resample import fft_size
from affinitomo.errors import InputError
from affinitomo.io.structures import load_structure, structure_files
from affinitomo.progress import progress_bar
from affinitomo.search.pose import search_pose
from affinitomo.similarity.maps import to_common_grid

log = logging.getLogger(__name__)

SCALES = ("stretch", "none")
#: Largest translation searched, as a fraction of the pair's larger particle radius.
SHIFT_PER_RADIUS = 0.25


@dataclass
class SimilarityResult:
    """Names, the [-1, 1] matrix, raw pair scores, best poses (A rotates j onto i) and settings."""

    names: list[str]
    matrix: np.ndarray
    raw: np.ndarray
    rotations: np.ndarray
    voxel_size: float
    radii: np.ndarray
    seconds: float
    settings: dict = field(default_factory=dict)


def scale_scores(raw: np.ndarray, scale: str = "stretch") -> np.ndarray:
    """Map a symmetric raw score matrix to the similarity matrix (see module docstring)."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    out = np.clip(np.asarray(raw, dtype=float), -1.0, 1.0)
    n = len(out)
    if scale == "stretch" and n > 1:
        off = out[~np.eye(n, dtype=bool)]
        s_min = float(off.min())
        if s_min < 1.0:
            out = -1.0 + 2.0 * (out - s_min) / (1.0 - s_min)
    out = np.clip((out + out.T) / 2, -1.0, 1.0)
    np.fill_diagonal(out, 1.0)
    return out


def _crop(stack: np.ndarray, box: int) -> np.ndarray:
    n = stack.shape[-1]
    if box >= n:
        return stack
    s = n // 2 - box // 2
    return stack[..., s : s + box, s : s + box, s : s + box]


def compute_similarity(
    inputs: list[str | Path],
    *,
    score: str = "ncc",
    resolution: float = 20.0,
    angular_step: float | None = None,
    voxel_size: float | None = None,
    input_voxel_size: float | None = None,
    scale: str = "stretch",
    classes: list[str] | None = None,
    device: str | None = None,
    progress: bool = True,
) -> SimilarityResult:
    """Similarity matrix of the structures in ``inputs`` (map/model files or folders).

    ``resolution`` (Å) is the working resolution; ``voxel_size`` (Å) of the common grid,
    default ``resolution / 2`` (Nyquist); ``input_voxel_size`` for MRC files whose header
    has none. ``angular_step`` (degrees) of the global grid, default per pair
    ``degrees(search_resolution / radius)``. ``classes`` selects and orders structures by name.
    """
    if resolution <= 0:
        raise ValueError("resolution must be positive")
    files = structure_files(inputs)
    by_name = {f.stem: f for f in files}
    if classes is not None:
        missing = [c for c in classes if c not in by_name]
        if missing:
            raise InputError(None, "classes", f"a structure file for every class, missing: {', '.join(missing)}")
        files = [by_name[c] for c in classes]
    vs = float(voxel_size) if voxel_size else resolution / 2.0
    t0 = time.perf_counter()
    maps = [load_structure(f, resolution, input_voxel_size) for f in files]
    names = [m.name for m in maps]
    stack, radii = to_common_grid(maps, resolution, vs, margin=SHIFT_PER_RADIUS)
    n = len(maps)
    raw = np.eye(n)
    rotations = np.tile(np.eye(3), (n, n, 1, 1))
    order = np.argsort(radii, kind="stable")  # each moving map is the larger of its pairs
    n_pairs = n * (n - 1) // 2
    bar = progress_bar(total=n_pairs, desc="similarity pairs", unit="pair", disable=not progress)
    for pos in range(1, n):
        j = int(order[pos])
        refs = order[:pos]
        shift = SHIFT_PER_RADIUS * radii[j]
        box = fft_size(int(math.ceil(2 * (radii[j] + shift) / vs)) + 2)
        result = search_pose(
            _crop(stack[refs], box), _crop(stack[j], box),
            voxel_size=vs, resolution=resolution, score=score, angular_step=angular_step,
            radius=float(radii[j]), max_shift=shift, device=device,
        )
        for k, i in enumerate(refs):
            raw[i, j] = raw[j, i] = result.scores[k]
            rotations[i, j] = result.matrices[k]  # j rotated by A matches i
            rotations[j, i] = result.matrices[k].T
        log.debug("%s vs %d smaller: %d rotations, step %.1f", names[j], pos, result.n_rotations, result.angular_step)
        bar.update(pos)
    bar.close()
    matrix = scale_scores(raw, scale)
    seconds = time.perf_counter() - t0
    settings = {"score": score, "resolution": resolution, "voxel_size": vs, "scale": scale, "angular_step": angular_step}
    return SimilarityResult(names, matrix, raw, rotations, vs, radii, seconds, settings)
