"""Template matching of a particle stack: coarse global search on half-size maps, then local refinement.

1. Coarse (:mod:`.coarse`): every particle against every template under every rotation of
   a near-uniform SO(3) grid (``so3_grid``; step from the resolution and particle radius,
   ``auto_angular_step``), at a few integer shifts, on maps of half the box: the central
   crop at full resolution for templates that fit in it with the search shifts, otherwise
   the box binned by 2. Per particle and template the best few distinct rotations are kept.
   Why the crop: binning halves the resolution, and a small molecule (radius ~ 40 Å at 10 Å
   voxels) keeps no orientation at 40 Å: on the SHREC-like set 1s3x, whose map is nearly
   two-fold symmetric at low resolution, got its pose flipped in most particles (median
   error 165° at SNR 0.03) although the true pose outscored the flipped one in 98 % of
   them; searched on the crop its median error was 12°. The crop costs as much per
   rotation as the binned box, apart from the finer grid and the full-voxel shifts.
2. Refinement (:mod:`.refine`) at full size for each particle's best ``refine_classes``
   templates (and its labelled class): compass search in rotation and sub-voxel shift.
   Other templates are scored once at full size at their best grid pose, so every entry
   of the score matrix is the same NCC (a lower bound for the unrefined ones).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from affinitomo.density.filters import apply_filter
from affinitomo.density.resample import bin2, crop_centre
from affinitomo.density.resample import upsample2
from affinitomo.density.score import FourierScorer
from affinitomo.density.so3 import auto_angular_step, distinct, so3_grid
from affinitomo.density.wedge import filtered_scorer, wedge_filter
from affinitomo.progress import progress_bar
from affinitomo.search.coarse import CoarseSearch
from affinitomo.search.refine import TemplateSupport, evaluate, posterior_mean_poses, refine_poses

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
    pose_mean: bool = False  # the best template's pose: the likelihood-weighted mean around it (refine.posterior_mean_poses)


@dataclass
class SearchResult:
    """Scores (N, C), poses A (N, C, 3, 3) and shifts (N, C, 3) (x, y, z voxels) per particle and template."""

    scores: np.ndarray
    matrices: np.ndarray
    shifts: np.ndarray
    refined: np.ndarray
    angular_step: float  # the finest coarse step, degrees
    n_rotations: int  # coarse rotations, over all coarse levels


def _fine(q: torch.Tensor) -> torch.Tensor:
    """Particles upsampled by 2 for accurate interpolation (odd boxes stay as they are)."""
    return upsample2(q) if q.shape[-1] % 2 == 0 else q


def choose_step(options: SearchOptions, voxel_size: float, radii: np.ndarray, coarse: bool) -> tuple[float, float]:
    """(coarse resolution Å, angular step degrees): ``auto_angular_step`` at the coarse resolution, largest radius."""
    c_res = max(options.resolution, 4 * voxel_size) if coarse else options.resolution
    step = options.angular_step if options.angular_step is not None else auto_angular_step(c_res, float(np.max(radii)))
    return c_res, float(step)


@dataclass
class CoarseLevel:
    """Templates searched on one kind of reduced map: 'bin' (binned by 2), 'crop' (central half) or 'full'."""

    kind: str
    members: np.ndarray  # template indices
    reduce: Callable[[torch.Tensor], torch.Tensor]
    search: CoarseSearch
    step: float
    voxel: float  # voxel size of the reduced maps, Å


def crop_radius(n: int, max_shift: float) -> float:
    """The largest template radius (voxels) searched on the central crop of a box of n: half the
    crop less ``max_shift``."""
    return ((n - n % 2) // 2) / 2 - max_shift


def coarse_kinds(n: int, voxel_size: float, radii: np.ndarray, max_shift: float) -> np.ndarray:
    """Per template, the maps of its coarse search: 'full' for boxes under 32, else 'crop' when the
    template's radius (Å) is at most :func:`crop_radius`, else 'bin'."""
    if n < 32:
        return np.full(len(radii), "full")
    return np.where(np.asarray(radii) / voxel_size <= crop_radius(n, max_shift) + 1e-6, "crop", "bin")


def coarse_levels(templates: torch.Tensor, voxel_size: float, radii: np.ndarray, opts: SearchOptions,
                  device: torch.device) -> list[CoarseLevel]:
    """One :class:`CoarseLevel` per kind of map in use, each with its own grid (its members' largest radius)."""
    n = templates.shape[-1]
    kinds = coarse_kinds(n, voxel_size, radii, opts.max_shift)
    m = (n - n % 2) // 2
    reducers = {"bin": (bin2, m, 2 * voxel_size), "crop": (lambda v: crop_centre(v, m), m, voxel_size),
                "full": (lambda v: v, n, voxel_size)}
    levels = []
    for kind in ("crop", "bin", "full"):
        members = np.flatnonzero(kinds == kind)
        if not len(members):
            continue
        reduce, size, vox = reducers[kind]
        c_res, step = choose_step(opts, voxel_size, radii[members], kind == "bin")
        scorer = filtered_scorer(size, vox, c_res, opts.wedge, device)
        search = CoarseSearch(scorer, reduce(templates[members]), so3_grid(step), opts.max_shift * voxel_size / vox)
        levels.append(CoarseLevel(kind, members, reduce, search, step, vox))
        log.info("coarse search (%s, %d^3 at %.3g Å): %d template(s), %d rotations (step %.1f deg)",
                 kind, size, vox, len(members), len(search.grid), step)
    return levels


def search_filters(templates: torch.Tensor, voxel_size: float,
                   opts: SearchOptions) -> tuple[torch.Tensor, list[TemplateSupport]]:
    """(the particles' filter: low-pass to ``opts.resolution`` times the missing wedge; each template's
    :class:`TemplateSupport` for the full-size scores of :func:`.refine.evaluate`)."""
    n, dev = templates.shape[-1], templates.device
    lowpass = FourierScorer(n, voxel_size, opts.resolution, "ncc", device=dev).filter
    lowpass_dc = lowpass.clone()
    lowpass_dc[0, 0, 0] = 1.0  # keep the template's mean for the support (see TemplateSupport)
    return lowpass * wedge_filter(n, opts.wedge, dev), [TemplateSupport(u, opts.wedge)
                                                         for u in apply_filter(templates, lowpass_dc)]


def filtered_particles(block: torch.Tensor, particle_filter: torch.Tensor) -> torch.Tensor:
    """Particles (B, n, n, n) filtered by :func:`search_filters`' filter, each of unit norm."""
    q = apply_filter(block, particle_filter)
    return q / q.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None, None]


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

    ``radii`` (C,) in Å set the automatic angular step and the coarse maps (:func:`coarse_kinds`).
    ``must_refine`` (N,) gives, per particle, a template index that is always refined (its label), or -1.
    """
    opts = options or SearchOptions()
    dev = torch.device(device)
    n_part = stack.shape[0]
    n_cls = len(templates)
    radii = np.asarray(radii, dtype=float)
    tmpl = torch.as_tensor(np.asarray(templates, dtype=np.float32), device=dev)
    levels = coarse_levels(tmpl, voxel_size, radii, opts, dev)
    log.info("refining the best %d templates per particle", opts.refine_classes)
    full_filter, supports = search_filters(tmpl, voxel_size, opts)
    step_of = np.zeros(n_cls)
    for level in levels:
        step_of[level.members] = level.step

    scores = np.zeros((n_part, n_cls))
    mats = np.tile(np.eye(3), (n_part, n_cls, 1, 1))
    shifts = np.zeros((n_part, n_cls, 3))
    refined = np.zeros((n_part, n_cls), dtype=bool)
    k_real = max(2 * int(level.search.sel.sum()) * len(level.search.offsets) for level in levels)
    chunk = max(1, min(opts.batch * 8, CHUNK_BYTES // (4 * k_real)))
    bar = progress_bar(total=n_part * n_cls, desc="match", unit="pair", disable=not progress)
    for p0 in range(0, n_part, chunk):
        block = torch.as_tensor(np.array(stack[p0 : p0 + chunk], dtype=np.float32), device=dev)
        q = filtered_particles(block, full_filter)
        b = len(block)
        best = np.zeros((b, n_cls))
        cand = np.tile(np.eye(3), (b, n_cls, opts.n_candidates, 1, 1))  # candidate rotations
        cand_ok = np.zeros((b, n_cls, opts.n_candidates), dtype=bool)
        cand_shift = np.zeros((b, n_cls, opts.n_candidates, 3))
        rows = np.arange(b)[:, None]
        for level in levels:
            coarse = level.search
            x = coarse.particle_spectra(level.reduce(block))
            for j, c in enumerate(level.members):
                vals, rots, shs = coarse.top(x, coarse.template_spectra(j), min(KEEP, len(coarse.grid)))
                vals, rots, shs = vals.cpu().numpy(), rots.cpu().numpy(), shs.cpu().numpy()
                best[:, c] = vals.max(1)
                pick = distinct(coarse.grid, vals, rots, opts.n_candidates, level.step)
                cand_ok[:, c] = pick >= 0
                cand[:, c] = coarse.grid[rots[rows, np.maximum(pick, 0)]]
                # coarse shift (z, y, x coarse voxels) -> full-size voxels, (x, y, z)
                cand_shift[:, c] = coarse.offsets[shs[rows, np.maximum(pick, 0)]][..., ::-1] * (level.voxel / voxel_size)
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
                ok = cand_ok[idx, c]
                pair = np.repeat(idx, opts.n_candidates)[ok.ravel()]
                a0 = cand[idx, c][ok]
                t0 = cand_shift[idx, c][ok]
                for s in range(0, len(idx), opts.batch):
                    part = idx[s : s + opts.batch]
                    in_batch = np.isin(pair, part)
                    q_up = _fine(q[part])
                    sc, a, t = refine_poses(q_up[np.searchsorted(part, pair[in_batch])], sup, a0[in_batch], t0[in_batch],
                                            step_of[c], opts.refine_levels, opts.max_shift + 0.5, group=pair[in_batch])
                    scores[p0 + part, c], mats[p0 + part, c], shifts[p0 + part, c] = sc, a, t
                    refined[p0 + part, c] = True
            rest = np.flatnonzero(~do_refine[:, c])
            for s in range(0, len(rest), opts.batch):
                r = rest[s : s + opts.batch]
                a = torch.as_tensor(cand[r, c, 0], dtype=torch.float32, device=dev)[:, None]
                t = torch.as_tensor(cand_shift[r, c, 0], dtype=torch.float32, device=dev)[:, None]
                scores[p0 + r, c] = evaluate(_fine(q[r]), sup, a, t)[:, 0].cpu().numpy()
                mats[p0 + r, c], shifts[p0 + r, c] = cand[r, c, 0], cand_shift[r, c, 0]
            bar.update(b)
        if opts.pose_mean:  # only the pose given out, the best template's, is worth its cost
            top = scores[p0 : p0 + b].argmax(axis=1)
            for c in np.unique(top):
                idx = np.flatnonzero((top == c) & refined[p0 : p0 + b, c])
                for s in range(0, len(idx), opts.batch):
                    r = p0 + idx[s : s + opts.batch]
                    mats[r, c] = posterior_mean_poses(_fine(q[r - p0]), supports[c], mats[r, c], shifts[r, c],
                                                      step_of[c])
    bar.close()
    return SearchResult(np.clip(scores, -1.0, 1.0), mats, shifts, refined, float(step_of.min()),
                        sum(len(level.search.grid) for level in levels))
