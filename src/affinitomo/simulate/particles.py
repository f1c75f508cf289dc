"""Labelled training subtomograms simulated from template maps, imaged like the tomograms at hand.

For each class, ``per_class`` particles at uniformly random SO(3) poses: the
template is rotated by the pose A (:func:`affinitomo.geometry.rotate_volume`, the
RELION convention: angles written are those of A), placed at the centre of a
padded box (index ``N//2``, as extraction), imaged with the Fourier filters of
:mod:`affinitomo.simulate.transfer` (missing wedge about Y in the tomogram frame,
not rotated with the particle; CTF and the WBP transfer for the tilt-series
path), cropped to ``box`` and given noise of the tomograms' colour.

SNR: as in the tomograms, var(signal) / var(noise), pooled over every voxel of
every simulated box (signal: the imaged noise-free particle). One noise level for
all classes, as one tomogram has one noise level. Contrast ``dark`` negates the
result, as the tomogram path does. Then each box is normalised exactly as
:mod:`affinitomo.extract` does (same function, same ``invert``/``mask_radius``).

A particle larger than the box is cropped by the box, as extraction would crop
it (a warning names the class). Poses come from one random stream and noise from
another, so the same seed with another SNR gives the same poses.

Memory: batches of ``BATCH`` particles; the stack is a memory-mapped ``.npy``
filled in two passes (noise-free signal, then noise and normalisation), so the
pooled signal variance is known before the noise level is set.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
from scipy import fft as sfft

from affinitomo import __version__
from affinitomo.density.masks import spherical_mask
from affinitomo.errors import InputError
from affinitomo.geometry import matrix_to_euler, random_matrices, rotate_volume
from affinitomo.io.atomic import atomic_path
from affinitomo.io.pages import PageBudget
from affinitomo.io.particles import write_particles
from affinitomo.io.subtomos import ExtractionOptions, normalise_boxes
from affinitomo.progress import progress_bar
from affinitomo.simulate.imaging import Imaging
from affinitomo.simulate.phantoms import bounding_radius
from affinitomo.simulate.templates import load_templates, to_cube
from affinitomo.simulate.tomogram import cut
from affinitomo.simulate.transfer import ImagingTransfer, imaging_transfer

log = logging.getLogger(__name__)

BATCH = 64  # particles per FFT batch (fixed: the noise stream, hence the output, depends on it)
TOMO_NAME = "simulated"
FFT_WORKERS = -1


def simulate_particles(
    templates: Mapping[str, np.ndarray] | str | Path,
    out_dir: str | Path,
    *,
    per_class: int,
    box: int,
    voxel_size: float,
    imaging: Imaging,
    seed: int = 0,
    normalise: bool = True,
    invert: bool = False,
    mask_radius: float | None = None,
    template_voxel_size: float | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Simulate ``per_class`` subtomograms of every template; write ``out_dir/subtomos.npy`` and tables.

    ``templates``: a folder of MRC maps (resampled to ``voxel_size``; their voxel
    size from the headers or ``template_voxel_size``) or a dict name -> ``[z, y, x]``
    map already at ``voxel_size``, centre at index ``N//2``, protein positive.
    ``normalise``, ``invert`` and ``mask_radius`` mean what they mean to
    :func:`affinitomo.extract.extract_subtomograms`; use the values the real
    subtomograms were extracted with. Writes ``subtomos.npy`` (float32
    ``N x B x B x B``), ``particles.star`` and ``truth.star`` (the same canonical
    table: tomogram ``simulated``, coordinates = box centre, true angles, class,
    ``afmSimulated`` = 1) and ``simulation.json``. Returns the table.
    """
    t0 = time.perf_counter()
    _check_settings(per_class, box, voxel_size, imaging, mask_radius)
    maps = _templates(templates, voxel_size, template_voxel_size)
    out_dir = Path(out_dir)
    names = list(maps)
    radii = {n: bounding_radius(v) for n, v in maps.items()}
    cropped = [n for n in names if radii[n] > box / 2]
    if cropped:
        log.warning("particles larger than the %d-voxel box are cropped by it, as extraction would: %s", box, ", ".join(f"{n} (radius {radii[n]:.1f} voxels)" for n in cropped))
    pose_ss, noise_ss, transfer_ss = np.random.SeedSequence(seed).spawn(3)
    pose_rng = np.random.default_rng(pose_ss)
    matrices = np.concatenate([random_matrices(per_class, pose_rng) for _ in names])
    class_index = np.repeat(np.arange(len(names)), per_class)
    transfer = imaging_transfer(imaging, voxel_size, box, np.random.default_rng(transfer_ss))
    table = _table(names, class_index, matrices, box, voxel_size)
    opts = ExtractionOptions(box=box, normalise=normalise, invert=invert, mask_radius=mask_radius)
    created = not out_dir.exists()
    try:
        with atomic_path(out_dir / "subtomos.npy") as tmp_stack, atomic_path(out_dir / "truth.star") as tmp_truth, atomic_path(out_dir / "particles.star") as tmp_star:
            stack = np.lib.format.open_memmap(tmp_stack, mode="w+", dtype=np.float32, shape=(len(table), box, box, box))
            budget = PageBudget()  # the stack's pages leave the resident set above a budget
            budget.watch(stack)
            try:
                var_signal = _write_signal(stack, [maps[n] for n in names], class_index, matrices, transfer, budget, progress)
                snr = imaging.snr or 0.0
                sigma = float(np.sqrt(var_signal / snr)) if snr > 0 else 0.0
                var_noise = _add_noise(stack, sigma, transfer, imaging.contrast == "dark", opts, np.random.default_rng(noise_ss), budget, progress)
                stack.flush()
            finally:
                budget.forget(stack)
                del stack
            write_particles(tmp_truth, table)
            write_particles(tmp_star, table)
    except BaseException:
        if created and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise
    seconds = time.perf_counter() - t0
    summary = {
        "affinitomo_version": __version__,
        "seed": seed,
        "per_class": per_class,
        "box": box,
        "pad_box": transfer.pad_box,
        "voxel_size": voxel_size,
        "classes": [{"name": n, "number": i + 1, "radius_voxels": round(radii[n], 2), "cropped": n in cropped} for i, n in enumerate(names)],
        "imaging": imaging.as_dict(),
        "normalise": normalise,
        "invert": invert,
        "mask_radius": mask_radius,
        "var_signal": var_signal,
        "noise_sigma": sigma,
        "var_noise": var_noise,
        "snr_achieved": var_signal / var_noise if var_noise > 0 else float("inf"),
        "seconds": round(seconds, 2),
    }
    with atomic_path(out_dir / "simulation.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2, default=float) + "\n")
    log.info("simulated %d particles (%d classes x %d) of %d^3 at SNR %.3g in %.1f s -> %s", len(table), len(names), per_class, box, summary["snr_achieved"], seconds, out_dir)
    return table


# --------------------------------------------------------------------------- inputs


def _check_settings(per_class: int, box: int, voxel_size: float, imaging: Imaging, mask_radius: float | None) -> None:
    if int(per_class) != per_class or per_class < 1:
        raise InputError(None, "per-class", f"at least one particle per class, got {per_class}")
    if int(box) != box or box < 8:
        raise InputError(None, "box", f"an integer box of at least 8 voxels, got {box}")
    if not (voxel_size is not None and np.isfinite(voxel_size) and voxel_size > 0):
        raise InputError(None, "voxel-size", f"a positive voxel size in Å, got {voxel_size}")
    if mask_radius is not None and not mask_radius > 0:
        raise InputError(None, "mask-radius", f"a positive radius in voxels, got {mask_radius}")
    imaging.validate()


def _templates(templates: Mapping[str, np.ndarray] | str | Path, voxel_size: float, template_voxel_size: float | None) -> dict[str, np.ndarray]:
    """Template maps as float32 cubes (name -> map), checked like :func:`load_templates`."""
    if isinstance(templates, (str, Path)):
        return load_templates(templates, voxel_size, template_voxel_size=template_voxel_size)
    if not templates:
        raise InputError(None, "templates", "at least one template map")
    out = {}
    for name, vol in templates.items():
        vol = np.asarray(vol, dtype=np.float32)
        if vol.ndim != 3 or min(vol.shape) < 2:
            raise InputError(None, f"templates[{name!r}]", f"a 3D map, got shape {vol.shape}")
        if not np.all(np.isfinite(vol)):
            raise InputError(None, f"templates[{name!r}]", "finite density values (found NaN or inf)")
        if float(vol.max()) <= 0 or abs(float(vol.min())) > float(vol.max()):
            raise InputError(None, f"templates[{name!r}]", "protein density positive (bright); invert the map")
        out[str(name)] = to_cube(vol)
    return out


def _table(names: list[str], class_index: np.ndarray, matrices: np.ndarray, box: int, voxel_size: float) -> pd.DataFrame:
    angles = matrix_to_euler(matrices)
    centre = float(box // 2)
    n = len(class_index)
    return pd.DataFrame(
        {
            "rlnTomoName": TOMO_NAME,
            "rlnCoordinateX": np.full(n, centre),
            "rlnCoordinateY": np.full(n, centre),
            "rlnCoordinateZ": np.full(n, centre),
            "rlnAngleRot": angles[:, 0],
            "rlnAngleTilt": angles[:, 1],
            "rlnAnglePsi": angles[:, 2],
            "rlnClassNumber": class_index.astype(np.int64) + 1,
            "afmClassName": [names[c] for c in class_index],
            "afmPixelSize": float(voxel_size),
            "afmParticleId": np.arange(n, dtype=np.int64),
            "afmSimulated": np.ones(n, dtype=np.int64),
        }
    )


# --------------------------------------------------------------------------- imaging


def _crop_start(pad: int, box: int) -> int:
    """First index of the ``box`` crop whose index ``box//2`` is the padded box's ``pad//2``."""
    return pad // 2 - box // 2


def image_signal(particles: np.ndarray, transfer: ImagingTransfer) -> np.ndarray:
    """Noise-free imaged boxes ``(n, B, B, B)`` from padded particles ``(n, P, P, P)``."""
    pad, box = transfer.pad_box, transfer.box
    spec = sfft.rfftn(particles, axes=(1, 2, 3), workers=FFT_WORKERS)
    spec *= transfer.signal
    full = sfft.irfftn(spec, s=(pad,) * 3, axes=(1, 2, 3), workers=FFT_WORKERS)
    s = _crop_start(pad, box)
    return full[:, s : s + box, s : s + box, s : s + box].astype(np.float32)


def coloured_noise(n: int, transfer: ImagingTransfer, rng: np.random.Generator) -> np.ndarray:
    """``n`` boxes of unit-variance noise with the tomograms' noise colour."""
    box = transfer.box
    white = rng.standard_normal((n, box, box, box), dtype=np.float32)
    spec = sfft.rfftn(white, axes=(1, 2, 3), workers=FFT_WORKERS)
    spec *= transfer.noise
    return sfft.irfftn(spec, s=(box,) * 3, axes=(1, 2, 3), workers=FFT_WORKERS).astype(np.float32)


def _write_signal(stack: np.ndarray, templates: list[np.ndarray], class_index: np.ndarray, matrices: np.ndarray, transfer: ImagingTransfer, budget: PageBudget, progress: bool) -> float:
    """Pass 1: rotate, pad, image, crop each particle into ``stack``; return the pooled signal variance."""
    pad = transfer.pad_box
    total, total_sq, count = 0.0, 0.0, 0
    buf = np.empty((BATCH, pad, pad, pad), dtype=np.float32)
    n = len(class_index)
    with progress_bar(total=n, desc="simulate signal", unit="particle", disable=not progress, leave=False) as bar:
        for lo in range(0, n, BATCH):
            hi = min(n, lo + BATCH)
            for k, i in enumerate(range(lo, hi)):
                template = templates[class_index[i]]
                buf[k] = cut(rotate_volume(template, matrices[i]), (template.shape[0] // 2,) * 3, pad)
            block = image_signal(buf[: hi - lo], transfer)
            stack[lo:hi] = block
            total += float(block.sum(dtype=np.float64))
            total_sq += float(np.einsum("i,i->", block.ravel(), block.ravel(), dtype=np.float64))
            count += block.size
            budget.check()
            bar.update(hi - lo)
    mean = total / count
    return max(total_sq / count - mean * mean, 0.0)


def _add_noise(stack: np.ndarray, sigma: float, transfer: ImagingTransfer, dark: bool, opts: ExtractionOptions, rng: np.random.Generator, budget: PageBudget, progress: bool) -> float:
    """Pass 2: add noise, apply the contrast, normalise as extraction; return the pooled noise variance."""
    n, box = len(stack), transfer.box
    mask = spherical_mask(box, opts.mask_radius).reshape(-1) if opts.mask_radius is not None else None
    total, total_sq, count = 0.0, 0.0, 0
    with progress_bar(total=n, desc="simulate noise", unit="particle", disable=not progress, leave=False) as bar:
        for lo in range(0, n, BATCH):
            hi = min(n, lo + BATCH)
            block = np.array(stack[lo:hi])
            if sigma > 0:
                noise = coloured_noise(hi - lo, transfer, rng)
                noise *= np.float32(sigma)
                total += float(noise.sum(dtype=np.float64))
                total_sq += float(np.einsum("i,i->", noise.ravel(), noise.ravel(), dtype=np.float64))
                count += noise.size
                block += noise
            if dark:
                np.negative(block, out=block)
            normalise_boxes(block.reshape(hi - lo, -1), {}, mask, opts)
            stack[lo:hi] = block
            budget.check()
            bar.update(hi - lo)
    if count == 0:
        return 0.0
    mean = total / count
    return total_sq / count - mean * mean
