"""Best pose of a moving map against one or many references: SO(3) grid, FFT translations.

Coarse to fine: a global near-uniform rotation grid scored on maps binned by 2 (at twice
the resolution, where the grid may be twice as coarse), then the best few distinct
rotations per reference refined on the full maps by a compass search of halving step.
Translations come from one FFT cross-correlation per rotation (see :mod:`affinitomo.density.score`).

Reusable for template matching: ``search_pose(subtomograms, template, ...)`` gives per
subtomogram the score and the pose ``A`` (RELION convention, :mod:`affinitomo.geometry`)
such that the template rotated by ``A`` about ``N//2`` and shifted by ``shift`` voxels
(z, y, x) matches the subtomogram.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from affinitomo.density.filters import mass_radius
from affinitomo.density.resample import bin2
from affinitomo.density.score import FourierScorer, default_device, rotate_volumes
from affinitomo.density.so3 import auto_angular_step, distinct, local_axis_steps, so3_grid
from affinitomo.progress import progress_bar

log = logging.getLogger(__name__)

#: Elements (references x rotations x voxels) of one batched cross-correlation.
BATCH_ELEMENTS = 2**24


@dataclass
class PoseSearchResult:
    """Per reference: best score, rotation A (3x3, acting on x,y,z), shift (z,y,x voxels)."""

    scores: np.ndarray
    matrices: np.ndarray
    shifts: np.ndarray
    angular_step: float
    n_rotations: int


def _as_stack(volumes: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(volumes, dtype=np.float32) if not torch.is_tensor(volumes) else volumes)
    t = t.to(device, torch.float32)
    if t.ndim == 3:
        t = t[None]
    if t.ndim != 4 or len(set(t.shape[1:])) != 1:
        raise ValueError(f"expected cubic volumes (N, N, N) or a stack (M, N, N, N), got {tuple(t.shape)}")
    return t


def _global_scores(
    scorer: FourierScorer, refs: torch.Tensor, moving: torch.Tensor, rotations: np.ndarray, progress: bool
) -> np.ndarray:
    """Scores (M, R) of every reference against the moving map under every rotation."""
    n = refs.shape[-1]
    ref_spec = scorer.spectra(refs)
    chunk = max(1, BATCH_ELEMENTS // (len(refs) * n**3))
    rot_t = torch.as_tensor(rotations, dtype=torch.float32, device=refs.device)
    out = np.empty((len(refs), len(rotations)), dtype=np.float32)
    starts = range(0, len(rotations), chunk)
    for s in progress_bar(starts, desc="rotations", unit="batch", disable=not progress, leave=False):
        rotated = rotate_volumes(moving, rot_t[s : s + chunk])
        best, _ = scorer.correlate(ref_spec, scorer.spectra(rotated))
        out[:, s : s + chunk] = best.cpu().numpy()
    return out


def _score_rotations(
    scorer: FourierScorer, ref_spec: torch.Tensor, moving: torch.Tensor, rotations: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Scores (R,) and shifts (R, 3) of one reference spectrum (1, ...) against rotated copies."""
    scores, shifts = [], []
    chunk = max(1, BATCH_ELEMENTS // moving.numel())
    for s in range(0, len(rotations), chunk):
        r = torch.as_tensor(rotations[s : s + chunk], dtype=torch.float32, device=moving.device)
        spec = scorer.spectra(rotate_volumes(moving, r))
        sc, sh = scorer.correlate_matched(ref_spec.expand(len(r), *ref_spec.shape[1:]), spec)
        scores.append(sc.cpu().numpy())
        shifts.append(sh.cpu().numpy())
    return np.concatenate(scores), np.concatenate(shifts).astype(float)


def _refine(
    scorer: FourierScorer,
    ref_spec: torch.Tensor,
    moving: torch.Tensor,
    candidates: np.ndarray,
    step: float,
    levels: int,
    keep: int = 1,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Compass search around candidate rotations (K, 3, 3) for one reference spectrum (1, ...).

    At each level (offsets step/2, step/4, ...) every centre moves to the best of itself
    and its 6 neighbours ``exp(+-h e_i) @ centre``; after the first level only the best
    ``keep`` centres go on. Returns (score, rotation, shift).
    """
    centres = np.asarray(candidates, dtype=float)
    best_sc, best_sh = _score_rotations(scorer, ref_spec, moving, centres)
    h = step / 2
    for level in range(max(1, levels)):
        neigh = np.concatenate([local_axis_steps(c, h) for c in centres])
        sc, sh = _score_rotations(scorer, ref_spec, moving, neigh)
        sc, sh, neigh = sc.reshape(len(centres), 6), sh.reshape(len(centres), 6, 3), neigh.reshape(len(centres), 6, 3, 3)
        pick = sc.argmax(axis=1)
        rows = np.arange(len(centres))
        better = sc[rows, pick] > best_sc
        centres = np.where(better[:, None, None], neigh[rows, pick], centres)
        best_sh = np.where(better[:, None], sh[rows, pick], best_sh)
        best_sc = np.where(better, sc[rows, pick], best_sc)
        if level == 0 and len(centres) > keep:
            top = np.argsort(-best_sc)[:keep]
            centres, best_sc, best_sh = centres[top], best_sc[top], best_sh[top]
        h /= 2
    k = int(np.argmax(best_sc))
    return float(best_sc[k]), centres[k], best_sh[k]


def search_pose(
    references: np.ndarray | torch.Tensor,
    moving: np.ndarray | torch.Tensor,
    *,
    voxel_size: float,
    resolution: float,
    score: str = "ncc",
    angular_step: float | None = None,
    radius: float | None = None,
    max_shift: float | None = None,
    n_candidates: int = 3,
    refine_levels: int = 4,
    coarse: bool = True,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> PoseSearchResult:
    """Best score, rotation and shift of ``moving`` (N, N, N) against each of ``references``.

    ``references``: (N, N, N) or (M, N, N, N), same box. ``voxel_size``, ``resolution``,
    ``radius`` (particle radius, default from the moving map's density) and ``max_shift``
    (default: a quarter of the box) in Å. ``angular_step`` (degrees) of the global grid,
    default ``auto_angular_step`` at the search resolution (twice ``resolution`` when
    ``coarse`` and the box is at least 32). The best ``n_candidates`` distinct grid rotations
    per reference are refined on the full maps by compass search with ``refine_levels``
    offsets step/2, step/4, ... (final precision about step / 2**refine_levels).
    """
    dev = torch.device(device) if device is not None else default_device()
    refs = _as_stack(references, dev)
    mov = _as_stack(moving, dev)[0]
    n = refs.shape[-1]
    if mov.shape[-1] != n:
        raise ValueError(f"references and moving map must share one box, got {n} and {mov.shape[-1]}")
    if radius is None:
        radius = mass_radius(mov.cpu().numpy(), voxel_size)
    shift_vox = (n / 4) if max_shift is None else max_shift / voxel_size

    use_coarse = coarse and n >= 32
    if use_coarse:
        even = n - n % 2
        c_refs, c_mov = bin2(refs[..., :even, :even, :even]), bin2(mov[None, :even, :even, :even])[0]
        c_vox, c_res = 2 * voxel_size, max(resolution, 4 * voxel_size)
    else:
        c_refs, c_mov, c_vox, c_res = refs, mov, voxel_size, resolution
    step = angular_step if angular_step is not None else auto_angular_step(c_res, radius)
    grid = so3_grid(step)
    log.debug("global search: %d rotations (step %.1f deg), box %d", len(grid), step, c_refs.shape[-1])
    c_scorer = FourierScorer(c_refs.shape[-1], c_vox, c_res, score, shift_vox * voxel_size / c_vox, dev)
    coarse_scores = _global_scores(c_scorer, c_refs, c_mov, grid, progress)

    scorer = FourierScorer(n, voxel_size, resolution, score, shift_vox, dev)
    ref_spec = scorer.spectra(refs)
    scores = np.empty(len(refs))
    mats = np.empty((len(refs), 3, 3))
    shifts = np.empty((len(refs), 3))
    for m in range(len(refs)):
        picks = distinct(grid, coarse_scores[m][None], np.arange(len(grid))[None], n_candidates, step)[0]
        picks = picks[picks >= 0]
        s, a, t = _refine(scorer, ref_spec[m : m + 1], mov, grid[picks], step, refine_levels)
        scores[m], mats[m], shifts[m] = s, a, t
    return PoseSearchResult(np.clip(scores, -1.0, 1.0), mats, shifts, float(step), len(grid))
