"""Template-matching picker: rotation search with FFT cross-correlation (FLCF), streamed in Z slabs.

The optional alternative to the blob picker (:mod:`.blobs`), with the same template maps the
``match`` and ``similarity`` stages use (:func:`affinitomo.density.templates.load_templates`:
resampled to the tomogram's pixel size, zero background), optionally through the tomograms' CTF
(``ctf``; :func:`affinitomo.density.templates.ctf_weighted`, as the match stage weights them: a
tomogram reconstructed without CTF correction shows each molecule with the CTF's sign flips).
Per tomogram:

1. Block-average by ``bin`` (default: the largest bin that keeps the working resolution above
   Nyquist and the particle at least ``MIN_BINNED_DIAMETER`` pixels wide).
2. Per Z slab (``slab`` planes plus a halo of template radius + low-pass reach + peak
   half-width, re-read from the memory map), padded by reflection at the tomogram's faces:
   the slab's spectrum low-passed at ``resolution`` (the cosine edge of
   :class:`affinitomo.density.score.FourierScorer`), and the local sum and sum of squares
   of the low-passed slab under a spherical mask of the template radius (two FFT
   convolutions; the mask is a sphere, so they serve every rotation).
3. For every template and every rotation of :func:`affinitomo.density.so3.so3_grid`
   (step ``angular_step``, default :func:`~affinitomo.density.so3.auto_angular_step`
   at the resolution and the largest template radius), in batches: the template rotated
   (:func:`~affinitomo.density.score.rotate_volumes`), low-passed, optionally multiplied
   by the missing wedge of the tomogram frame (:func:`affinitomo.density.wedge.wedge_filter`,
   default off), masked, made zero-mean and unit-norm under the mask; its cross-correlation
   with the slab by FFT (``torch.fft.rfftn``) divided by the slab's local standard deviation
   under the mask is the local normalised cross-correlation (fast local correlation function,
   Roseman 2003), in [-1, 1]. Per voxel the best NCC is kept, with its template and rotation.
4. As in the blob picker: local maxima of the best-NCC map (sub-pixel parabolas), the robust
   z-score of their NCC against a regular sample of the map (``afmPickScore``; the threshold
   is on it), edge margin, threshold and greedy NMS at ``min_distance`` up to ``max_count``.

The z-score makes ``threshold`` mean "background standard deviations" as for the blob picker
and for any contrast; the raw NCC is kept too (``afmMatchScore``). The default threshold is
higher than the blob picker's (``DEFAULT_THRESHOLD``): the map is a maximum over many
rotations, whose upper tail is longer than a Gaussian's.

Memory: one padded slab, its spectrum, the three maps of the core (best NCC, template,
rotation) and ``batch`` padded template transforms; it does not grow with the number of
planes. Time: two FFTs of the padded slab per (template, rotation), so it scales with the
number of rotations (about ``8 pi^2 / step^3``, step in radians) times templates.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.fft as sfft
import torch

from affinitomo.density.filters import apply_filter
from affinitomo.density.templates import ctf_weighted, load_templates
from affinitomo.density.wedge import Wedge, wedge_filter
from affinitomo.errors import InputError
from affinitomo.geometry import matrix_to_euler
from affinitomo.io.particles import ANGLES
from affinitomo.io.volumes import open_volume
from affinitomo.search.stack import SearchOptions
from affinitomo.pick.blobs import (
    MIN_BINNED_DIAMETER,
    STAT_SAMPLES,
    PickSettings,
    Polarity,
    picks_table,
    resolve_settings,
    robust_scores,
    select_picks,
)
from affinitomo.density.ctf import CtfParameters
from affinitomo.density.score import default_device, radial_frequency, rotate_volumes, soft_lowpass
from affinitomo.density.so3 import auto_angular_step, so3_grid
from affinitomo.pick.peaks import local_maxima, refine
from affinitomo.pick.slabs import binned_shape, iter_slabs
from affinitomo.progress import progress_bar

log = logging.getLogger(__name__)

#: Default threshold: robust z-score of the best-NCC map (higher than the blob picker's 4,
#: because the map is a maximum over rotations and templates). On Gaussian noise (64 x 128 x 128,
#: two 10-pixel templates, 168 or 1 005 rotations; ~2 000 particle volumes) no local maximum
#: reached 6, up to 7 reached 5 and 31-50 reached 4.
DEFAULT_TEMPLATE_THRESHOLD = 6.0
#: Default working resolution (Å), as the match stage's.
DEFAULT_RESOLUTION = SearchOptions().resolution
#: Low-pass reach in units of the resolution (pixels): the halo the low-pass needs.
LOWPASS_REACH = 2.0
#: Working memory per batch of rotations (sets the automatic batch size): small on CPU, where
#: larger batches only add memory traffic (measured: 43 ms per rotation in batches of 4, 84 ms
#: in batches of 64, 80 x 128 x 128 padded slab, 2 cores), large on a GPU.
BATCH_BYTES = {"cpu": 1 << 27, "cuda": 1 << 31}
#: Rotated, filtered templates are kept across slabs up to this many bytes (else recomputed per slab).
CACHE_BYTES = 1 << 28


@dataclass(frozen=True)
class TemplateBank:
    """Templates on a cubic grid of the binned pixel size, and the search settings."""

    names: list[str]
    stack: np.ndarray  # (C, box, box, box), zero background
    mask_radius: float  # binned pixels
    resolution: float  # Å
    angular_step: float  # degrees
    rotations: np.ndarray  # (R, 3, 3)
    wedge: Wedge

    @property
    def box(self) -> int:
        return int(self.stack.shape[-1])


def _even_at_least(x: float) -> int:
    n = int(math.ceil(x))
    return n + (n % 2)


def load_bank(folder: str | Path, pixel_size: float, diameter: float, resolution: float,
              angular_step: float | None, wedge: Wedge, ctf: CtfParameters | None = None) -> TemplateBank:
    """Templates of ``folder`` at ``pixel_size`` Å (binned), through the tomograms' ``ctf`` if given
    (:func:`affinitomo.density.templates.ctf_weighted`), cropped to a box around the larger of the
    particle (``diameter`` pixels) and the templates' mass radius; the rotation grid."""
    box0 = _even_at_least(1.5 * diameter + 6)
    names, stack, radii = load_templates(folder, pixel_size, box0, resolution)
    if ctf is not None:
        stack = ctf_weighted(stack, pixel_size, ctf)
    radius = min(max(diameter / 2, float(np.max(radii)) / pixel_size) + 1.0, box0 / 2 - 1)
    box = _even_at_least(2 * radius + 2)
    lo = box0 // 2 - box // 2
    stack = np.ascontiguousarray(stack[:, lo : lo + box, lo : lo + box, lo : lo + box])
    if angular_step is None:
        angular_step = auto_angular_step(resolution, radius * pixel_size)
    elif not 0 < angular_step <= 180:
        raise InputError(Path(folder), "angular_step", f"an angular step in (0, 180] degrees, got {angular_step}")
    return TemplateBank(names, stack, radius, resolution, float(angular_step), so3_grid(angular_step), wedge)


def sphere(box: int, radius: float) -> np.ndarray:
    """Binary sphere of ``radius`` around the box centre ``box // 2``."""
    g = np.arange(box) - box // 2
    return ((g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2) <= radius**2).astype(np.float32)


class _Scatter:
    """Places box-sized volumes into a larger periodic grid with their centre ``box // 2`` at index 0."""

    def __init__(self, box: int, shape: tuple[int, int, int], device: torch.device):
        idx = [torch.as_tensor((np.arange(box) - box // 2) % n, device=device) for n in shape]
        self.index = (idx[0][:, None, None], idx[1][None, :, None], idx[2][None, None, :])
        self.shape = shape

    def __call__(self, volumes: torch.Tensor) -> torch.Tensor:
        out = torch.zeros((volumes.shape[0], *self.shape), dtype=volumes.dtype, device=volumes.device)
        out[(slice(None), *self.index)] = volumes
        return out


def prepared_templates(template: torch.Tensor, matrices: torch.Tensor, filt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The template rotated by each matrix, filtered (low-pass, wedge), then zero-mean and unit-norm under ``mask``."""
    t = apply_filter(rotate_volumes(template, matrices), filt) * mask
    n = mask.sum()
    t = (t - t.sum(dim=(-3, -2, -1), keepdim=True) / n) * mask
    return t / t.square().sum(dim=(-3, -2, -1), keepdim=True).sqrt().clamp_min(1e-12)


@dataclass
class MatchMaps:
    """Local maxima of the best-NCC map over all slabs: positions (unbinned pixels), NCC, template and rotation."""

    positions: np.ndarray
    ncc: np.ndarray
    template: np.ndarray
    rotation: np.ndarray
    samples: np.ndarray


def match_slabs(volume: np.ndarray, settings: PickSettings, bank: TemplateBank, *, batch: int | None = None,
                device: torch.device | str | None = None, progress: bool = False, name: str = "") -> MatchMaps:
    """Best NCC over templates and rotations per voxel, slab by slab; its local maxima and a sample of it."""
    dev = torch.device(device) if device is not None else default_device()
    b = settings.bin
    shape_b = binned_shape(volume.shape, b)
    px = settings.pixel_size * b
    box, radius = bank.box, bank.mask_radius
    hw = settings.peak_half_width
    reach = int(math.ceil(LOWPASS_REACH * bank.resolution / px))
    pad = int(math.ceil(radius)) + reach
    halo = pad + hw + 1
    core = max(1, settings.slab // b)
    stride = max(1, math.ceil((np.prod(shape_b, dtype=float) / STAT_SAMPLES) ** (1 / 3)))
    sign = 1.0 if settings.polarity == "bright" else -1.0
    cutoff = min(px / bank.resolution, 0.5)

    mask_np = sphere(box, radius)
    mask = torch.as_tensor(mask_np, device=dev)
    n_mask = float(mask_np.sum())
    box_filter = soft_lowpass(radial_frequency((box, box, box), dev), cutoff) * wedge_filter(box, bank.wedge, dev)
    templates = torch.as_tensor(bank.stack, device=dev)
    rotations = torch.as_tensor(bank.rotations, dtype=torch.float32, device=dev)
    n_rot, n_tpl = len(rotations), len(templates)

    n_slabs = math.ceil(shape_b[0] / core)
    # padded slab: at most core + 2 halo planes plus the face padding
    full_shape = [sfft.next_fast_len(min(shape_b[0], core + 2 * halo) + 2 * pad, real=True)] + [
        sfft.next_fast_len(n + 2 * pad, real=True) for n in shape_b[1:]]
    if batch is None:
        per_rotation = 4 * int(np.prod(full_shape)) * 4  # template grid, its spectrum (2x), the correlation
        batch = int(np.clip(BATCH_BYTES.get(dev.type, BATCH_BYTES["cpu"]) // per_rotation, 1, 64))
    n_batches = math.ceil(n_rot / batch)
    cache: dict[tuple[int, int], torch.Tensor] | None = {} if n_tpl * n_rot * box**3 * 4 <= CACHE_BYTES else None
    bar = progress_bar(total=n_slabs * n_tpl * n_batches, desc=f"pick {name}".strip(), unit="batch", disable=not progress, leave=False)

    positions, nccs, tpls, rots, samples = [], [], [], [], []
    low, high = math.inf, -math.inf
    for slab in iter_slabs(volume, b, core, halo):
        core_data = slab.data[slab.core]
        low, high = min(low, float(core_data.min())), max(high, float(core_data.max()))
        nz = slab.stop - slab.start
        z_lo = pad if slab.start == 0 else 0
        z_hi = pad if slab.stop == shape_b[0] else 0
        shape = tuple(sfft.next_fast_len(n + lo + hi, real=True)
                      for n, lo, hi in ((nz, z_lo, z_hi), (shape_b[1], pad, pad), (shape_b[2], pad, pad)))
        pads = [(z_lo, shape[0] - nz - z_lo), (pad, shape[1] - shape_b[1] - pad), (pad, shape[2] - shape_b[2] - pad)]
        padded = np.pad(slab.data, pads, mode="symmetric") * np.float32(sign)
        # region whose scores are needed: the core and hw planes either side (inside the slab)
        r0, r1 = max(slab.start, slab.core_start - hw), min(slab.stop, slab.core_stop + hw)
        roi = (slice(r0 - slab.start + z_lo, r1 - slab.start + z_lo), slice(pad, pad + shape_b[1]), slice(pad, pad + shape_b[2]))

        spec = torch.fft.rfftn(torch.as_tensor(padded, device=dev), dim=(-3, -2, -1))
        del padded
        spec *= soft_lowpass(radial_frequency(shape, dev), cutoff)  # DC removed too: NCC ignores offsets
        scatter = _Scatter(box, shape, dev)
        mask_spec = torch.fft.rfftn(scatter(mask[None])[0], dim=(-3, -2, -1)).conj()
        low_passed = torch.fft.irfftn(spec, s=shape, dim=(-3, -2, -1))
        s1 = torch.fft.irfftn(spec * mask_spec, s=shape, dim=(-3, -2, -1))[roi]
        s2 = torch.fft.irfftn(torch.fft.rfftn(low_passed.square(), dim=(-3, -2, -1)) * mask_spec, s=shape, dim=(-3, -2, -1))[roi]
        del low_passed
        var = s2 - s1.square() / n_mask  # sum over the mask of (f - local mean)^2
        ok = var > 1e-5 * s2.clamp_min(0)
        inv_std = torch.where(ok, var.clamp_min(1e-30).rsqrt(), torch.zeros_like(var))
        del s1, s2, var, ok

        best = torch.full(inv_std.shape, -2.0, device=dev)
        best_t = torch.zeros(inv_std.shape, dtype=torch.int16, device=dev)
        best_r = torch.zeros(inv_std.shape, dtype=torch.int32, device=dev)
        for c in range(n_tpl):
            for s in range(0, n_rot, batch):
                t = cache.get((c, s)) if cache is not None else None
                if t is None:
                    t = prepared_templates(templates[c], rotations[s : s + batch], box_filter, mask)
                    if cache is not None:
                        cache[c, s] = t
                t_spec = torch.fft.rfftn(scatter(t), dim=(-3, -2, -1))
                corr = torch.fft.irfftn(spec[None] * t_spec.conj(), s=shape, dim=(-3, -2, -1))
                del t_spec
                score, arg = corr[(slice(None), *roi)].max(dim=0)
                del corr
                score *= inv_std  # the same factor >= 0 for every rotation at a voxel
                better = score > best
                best = torch.where(better, score, best)
                best_t = torch.where(better, torch.full_like(best_t, c), best_t)
                best_r = torch.where(better, (arg + s).to(torch.int32), best_r)
                bar.update(1)
        del spec, inv_std
        ncc_map = best.cpu().numpy()
        planes = slice(slab.core_start - r0, slab.core_stop - r0)
        idx = local_maxima(ncc_map, planes, hw, floor=0.0)
        offsets = refine(ncc_map, idx)
        nccs.append(ncc_map[tuple(idx.T)])
        tpls.append(best_t.cpu().numpy()[tuple(idx.T)].astype(np.int64))
        rots.append(best_r.cpu().numpy()[tuple(idx.T)].astype(np.int64))
        idx = idx.astype(np.float64) + offsets
        idx[:, 0] += r0
        positions.append(idx * b + (b - 1) / 2)
        zs = np.arange(slab.core_start + (-slab.core_start) % stride, slab.core_stop, stride) - r0
        samples.append(ncc_map[zs][:, ::stride, ::stride].ravel().copy())
    bar.close()
    sample = np.concatenate(samples)
    if not high - low > 1e-5 * max(abs(low), abs(high)):
        sample = sample[:0]
    return MatchMaps(np.concatenate(positions), np.concatenate(nccs), np.concatenate(tpls), np.concatenate(rots), sample)


def pick_tomogram_templates(
    path: str | Path,
    templates: str | Path,
    *,
    diameter_A: float,
    pixel_size: float | None = None,
    threshold: float | None = None,
    min_distance: float | None = None,
    max_count: int | None = None,
    edge_margin: int | None = None,
    slab: int = 64,
    polarity: Polarity = "bright",
    bin: int | None = None,
    resolution: float | None = None,
    angular_step: float | None = None,
    wedge: Wedge = None,
    ctf: CtfParameters | None = None,
    batch: int | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Pick particles in one tomogram by template matching against the maps in ``templates``.

    Arguments as :func:`affinitomo.pick.blobs.pick_tomogram` (``threshold``: robust z-score of
    the best NCC, default ``DEFAULT_TEMPLATE_THRESHOLD``; ``diameter_A`` sets the NMS distance,
    the edge margin and the smallest mask radius), plus ``resolution`` (Å, working low-pass;
    default ``DEFAULT_RESOLUTION`` or 2 binned pixels if coarser), ``angular_step`` (degrees;
    default :func:`~affinitomo.density.so3.auto_angular_step`), ``wedge`` (tilt range
    in degrees of the missing wedge applied to the templates; default none), ``ctf`` (the
    tomograms' CTF, applied to the templates as in the match stage; default none), ``batch``
    (rotations per FFT batch; default from the slab size) and ``device`` (default CUDA when
    present).

    Columns: those of the blob picker, plus ``afmMatchClass`` (best template's file stem; not a
    label: ``afmClassName`` stays empty), ``afmMatchScore`` (its NCC) and ``rlnAngleRot/Tilt/Psi``
    (RELION ZYZ pose of that template, to the grid step).
    """
    path, templates = Path(path), Path(templates)
    volume, voxel_size = open_volume(path)
    settings = resolve_settings(
        path, voxel_size, diameter_A=diameter_A, pixel_size=pixel_size, threshold=threshold, min_distance=min_distance,
        max_count=max_count, edge_margin=edge_margin, slab=slab, polarity=polarity, bin=bin,
    )
    if threshold is None:
        settings = replace(settings, threshold=DEFAULT_TEMPLATE_THRESHOLD)
    px = settings.pixel_size
    res = DEFAULT_RESOLUTION if resolution is None else float(resolution)
    if not (res > 0 and math.isfinite(res)):
        raise InputError(path, "resolution", f"a positive resolution in Å, got {resolution}")
    if bin is None:  # coarsest sampling that keeps the resolution and a 6-pixel particle
        settings = replace(settings, bin=max(1, min(int(res // (2 * px)), int(settings.diameter // MIN_BINNED_DIAMETER))))
    px_b = px * settings.bin
    res = max(res, 2 * px_b)
    if wedge is not None and not (-90 <= wedge[0] < wedge[1] <= 90):
        raise InputError(path, "wedge", f"tilt angles -90 <= min < max <= 90 degrees, got {wedge}")
    if ctf is not None:
        ctf.validate()
    bank = load_bank(templates, px_b, settings.diameter / settings.bin, res, angular_step, wedge, ctf)
    if min(binned_shape(volume.shape, settings.bin)) < 2 * settings.peak_half_width + 1:
        raise InputError(path, "shape", f"a tomogram larger than the particle; got {volume.shape} for a {settings.diameter:.1f}-pixel particle")
    log.info(
        "%s: %s voxels, bin %d, %d templates in a %d^3 box (mask radius %.1f px), %d rotations (step %.1f°), "
        "resolution %.1f Å, wedge %s, CTF %s, threshold z=%.2f",
        path.name, "x".join(map(str, volume.shape[::-1])), settings.bin, len(bank.names), bank.box, bank.mask_radius,
        len(bank.rotations), bank.angular_step, res, bank.wedge, ctf or "none", settings.threshold,
    )
    maps = match_slabs(volume, settings, bank, batch=batch, device=device, progress=progress, name=path.stem)
    scores = robust_scores(maps.ncc, maps.samples, path)
    keep = select_picks(path, volume.shape, maps.positions, scores, settings, "template-matching NCC")
    table = picks_table(path, maps.positions[keep], scores[keep], settings)
    table["afmMatchClass"] = np.asarray(bank.names, dtype=object)[maps.template[keep]].astype(str)
    table["afmMatchScore"] = maps.ncc[keep].astype(float)
    table[ANGLES] = matrix_to_euler(bank.rotations[maps.rotation[keep]])
    return table
