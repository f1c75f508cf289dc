"""Template matching of a particle stack: coarse global search at bin 2, then local refinement.

1. Coarse (:mod:`.coarse`): every particle against every template under every rotation of
   a near-uniform SO(3) grid (``so3_grid``; step from the resolution and particle radius,
   ``auto_angular_step``), at a few integer shifts, on maps binned by 2. Per particle and
   template the best few distinct rotations are kept.
2. Refinement (:mod:`.refine`) at full size for each particle's best ``refine_classes``
   templates (and its labelled class): compass search in rotation and sub-voxel shift.
   Other templates are scored once at full size at their best grid pose, so every entry
   of the score matrix is the same NCC (a lower bound for the unrefined ones).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from affinitomo.match.coarse import CoarseSearch, bin2, distinct
from affinitomo.match.filters import apply_filter, filtered_scorer, upsample2, wedge_filter
from affinitomo.match.refine import TemplateSupport, evaluate, refine_poses
from affinitomo.similarity.rotations import auto_angular_step, so3_grid
from affinitomo.similarity.score import FourierScorer

log = logging.getLogger(__name__)

#: Bytes of particle spectra (times shifts) per chunk of the coarse product.
CHUNK_BYTES = 2**27
#: Best coarse entries kept per (particle, template) before picking distinct candidates.
KEEP = 8


@dataclass
class SearchOptions:
    """Settings of :func:`match_stack`. Lengths in Å except ``max_shift`` (voxels of the stack)."""

    resolution: float = 20.0
    angular_step: float | None = None
    wedge: tuple[float, float] | None = (-60.0, 60.0)
    max_shift: float = 2.0
    refine_classes: int = 3
    n_candidates: int = 2
    refine_levels: int = 3
    batch: int = 128


@dataclass
class SearchResult:
    """Scores (N, C), poses A (N, C, 3, 3) and shifts (N, C, 3) (x, y, z voxels) per particle and template."""

    scores: np.ndarray
    matrices: np.ndarray
    shifts: np.ndarray
    refined: np.ndarray
    angular_step: float
    n_rotations: int


def _fine(q: torch.Tensor) -> torch.Tensor:
    """Particles upsampled by 2 for accurate interpolation (odd boxes stay as they are)."""
    return upsample2(q) if q.shape[-1] % 2 == 0 else q


def choose_step(options: SearchOptions, voxel_size: float, radii: np.ndarray, coarse: bool) -> tuple[float, float]:
    """(coarse resolution Å, angular step degrees): ``auto_angular_step`` at the coarse resolution, largest radius."""
    c_res = max(options.resolution, 4 * voxel_size) if coarse else options.resolution
    step = options.angular_step if options.angular_step is not None else auto_angular_step(c_res, float(np.max(radii)))
    return c_res, float(step)


def match_stack(
    stack: np.ndarray,
    templates: np.ndarray,
    voxel_size: float,
    radii: np.ndarray,
    options: SearchOptions | None = None,
    must_refine: np.ndarray | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> SearchResult:
    """Match every particle of ``stack`` (N, n, n, n) against ``templates`` (C, n, n, n).

    ``radii`` (C,) in Å set the automatic angular step. ``must_refine`` (N,) gives, per
    particle, a template index that is always refined (its label), or -1.
    """
    opts = options or SearchOptions()
    dev = torch.device(device)
    n_part, n = stack.shape[0], stack.shape[-1]
    n_cls = len(templates)
    use_coarse = n >= 32
    nb = (n - n % 2) // 2 if use_coarse else n
    c_vox = 2 * voxel_size if use_coarse else voxel_size
    c_res, step = choose_step(opts, voxel_size, radii, use_coarse)
    grid = so3_grid(step)
    log.info("coarse search: %d rotations (step %.1f deg) x %d templates, box %d; refining the best %d",
             len(grid), step, n_cls, nb, opts.refine_classes)

    tmpl = torch.as_tensor(np.asarray(templates, dtype=np.float32), device=dev)
    c_scorer = filtered_scorer(nb, c_vox, c_res, opts.wedge, dev)
    coarse = CoarseSearch(c_scorer, bin2(tmpl) if use_coarse else tmpl, grid, opts.max_shift * voxel_size / c_vox)
    lowpass = FourierScorer(n, voxel_size, opts.resolution, "ncc", device=dev).filter
    full_filter = lowpass * wedge_filter(n, opts.wedge, dev)
    lowpass_dc = lowpass.clone()
    lowpass_dc[0, 0, 0] = 1.0  # keep the template's mean for the support (see TemplateSupport)
    supports = [TemplateSupport(u, opts.wedge) for u in apply_filter(tmpl, lowpass_dc)]

    scores = np.zeros((n_part, n_cls))
    mats = np.tile(np.eye(3), (n_part, n_cls, 1, 1))
    shifts = np.zeros((n_part, n_cls, 3))
    refined = np.zeros((n_part, n_cls), dtype=bool)
    k_real = 2 * int(coarse.sel.sum())
    chunk = max(1, min(opts.batch * 8, CHUNK_BYTES // (4 * len(coarse.offsets) * k_real)))
    bar = tqdm(total=n_part * n_cls, desc="match", unit="pair", disable=not progress)
    for p0 in range(0, n_part, chunk):
        block = torch.as_tensor(np.array(stack[p0 : p0 + chunk], dtype=np.float32), device=dev)
        x = coarse.particle_spectra(bin2(block) if use_coarse else block)
        q = apply_filter(block, full_filter)
        q = q / q.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None, None]
        b = len(block)
        best = np.zeros((b, n_cls))
        cand = np.full((b, n_cls, opts.n_candidates), -1)
        cand_shift = np.zeros((b, n_cls, opts.n_candidates, 3))
        for c in range(n_cls):
            vals, rots, shs = coarse.top(x, coarse.template_spectra(c), min(KEEP, len(grid)))
            vals, rots, shs = vals.cpu().numpy(), rots.cpu().numpy(), shs.cpu().numpy()
            best[:, c] = vals.max(1)
            pick = distinct(grid, vals, rots, opts.n_candidates, step)
            rows = np.arange(b)[:, None]
            cand[:, c] = np.where(pick >= 0, rots[rows, np.maximum(pick, 0)], -1)
            # coarse shift (z, y, x binned voxels) -> full-size voxels, (x, y, z)
            cand_shift[:, c] = coarse.offsets[shs[rows, np.maximum(pick, 0)]][..., ::-1] * (c_vox / voxel_size)
        order = np.argsort(-best, axis=1)
        do_refine = np.zeros((b, n_cls), dtype=bool)
        do_refine[np.arange(b)[:, None], order[:, : opts.refine_classes]] = True
        if must_refine is not None:
            lab = np.asarray(must_refine[p0 : p0 + b])
            do_refine[np.flatnonzero(lab >= 0), lab[lab >= 0]] = True
        for c in range(n_cls):
            sup = supports[c]
            idx = np.flatnonzero(do_refine[:, c])
            if len(idx):
                ok = cand[idx, c] >= 0
                pair = np.repeat(idx, opts.n_candidates)[ok.ravel()]
                a0 = grid[cand[idx, c][ok]]
                t0 = cand_shift[idx, c][ok]
                for s in range(0, len(idx), opts.batch):
                    part = idx[s : s + opts.batch]
                    in_batch = np.isin(pair, part)
                    q_up = _fine(q[part])
                    sc, a, t = refine_poses(q_up[np.searchsorted(part, pair[in_batch])], sup, a0[in_batch], t0[in_batch],
                                            step, opts.refine_levels, opts.max_shift + 0.5, group=pair[in_batch])
                    scores[p0 + part, c], mats[p0 + part, c], shifts[p0 + part, c] = sc, a, t
                    refined[p0 + part, c] = True
            rest = np.flatnonzero(~do_refine[:, c])
            for s in range(0, len(rest), opts.batch):
                r = rest[s : s + opts.batch]
                a = torch.as_tensor(grid[cand[r, c, 0]], dtype=torch.float32, device=dev)[:, None]
                t = torch.as_tensor(cand_shift[r, c, 0], dtype=torch.float32, device=dev)[:, None]
                scores[p0 + r, c] = evaluate(_fine(q[r]), sup, a, t)[:, 0].cpu().numpy()
                mats[p0 + r, c], shifts[p0 + r, c] = grid[cand[r, c, 0]], cand_shift[r, c, 0]
            bar.update(b)
    bar.close()
    return SearchResult(np.clip(scores, -1.0, 1.0), mats, shifts, refined, step, len(grid))
