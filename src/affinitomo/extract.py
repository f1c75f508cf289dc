"""Cut subtomograms out of memory-mapped tomograms into a memory-mappable stack.

Geometry: a particle at x (pixels, voxel i centred at i) gets the box whose
centre voxel, index ``box // 2`` (as :func:`affinitomo.geometry.rotate_volume`),
is ``round(x)``. With binning ``b`` the box is cut from a ``box*b`` region of the
unbinned tomogram, block-averaged ``b x b x b``; the region is placed so that the
centre binned voxel covers the ``b`` unbinned voxels around x (within half an
unbinned voxel). The output table then holds ``x / b`` and the pixel size times
``b`` (RELION's and Warp's convention for rescaled coordinates).

Edges: a box reaching outside the tomogram is either skipped or padded. Padding
uses the mean of the in-bounds voxels, so after normalisation padded voxels are 0;
the statistics themselves come from in-bounds voxels only, so an edge particle is
scaled like an interior one. Normalisation: zero mean, unit standard deviation
over the voxels inside the mask (all voxels without a mask); with a mask the
voxels outside it are set to that mean (0 after normalisation). Inversion negates
the result (dark protein of real data -> bright).

Memory: tomograms are read through ``open_volume`` (memory maps), particles
sorted by position for locality, and the tomogram's pages are dropped from the
resident set above a budget (:class:`affinitomo.io.pages.PageBudget`). The stack
file is laid out by ``np.lib.format.open_memmap`` and filled chunk by chunk with
``os.pwrite`` from a writer thread. RSS depends on neither the tomogram size nor
the number of particles.

Non-finite voxels: a box holding NaN or Inf (a tomogram with masked or corrupt regions) is
skipped: it is absent from the stack and the table, and the log counts the skipped particles
per tomogram, so no later stage is given (or classifies) a particle without data.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from affinitomo.density.masks import spherical_mask
from affinitomo.errors import InputError
from affinitomo.io.pages import PageBudget
from affinitomo.io.particles import COORDS, TOMO_SIZE, canonicalise, with_centred
from affinitomo.io.subtomos import CHUNK_BYTES, ExtractionOptions, normalise_boxes, write_extracted
from affinitomo.io.volumes import open_volume
from affinitomo.progress import progress_bar

log = logging.getLogger(__name__)

PIXEL_TOLERANCE = 0.01


def extract_subtomograms(
    particles: pd.DataFrame,
    tomograms: dict[str, Path],
    box: int,
    out_dir: Path,
    *,
    binning: int = 1,
    normalise: bool = True,
    invert: bool = False,
    mask_radius: float | None = None,
    edge: str = "pad",
    pixel_size: float | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Extract ``box^3`` subtomograms; write ``out_dir/subtomos.npy`` and ``out_dir/particles.star``.

    ``particles`` is a canonical table (:func:`affinitomo.io.particles.read_particles`),
    ``tomograms`` maps ``rlnTomoName`` to a tomogram file (MRC/TIFF). ``pixel_size``
    is the tomograms' pixel size in Å where their header sets none (TIFF); a header
    value wins, and must agree with the table's ``afmPixelSize`` within 1%.
    ``mask_radius`` is in output (binned) voxels. Returns the written table: the
    extracted particles in input order (row i = stack row i), coordinates and pixel
    size in binned units, ``afmEdge`` 1 where the box was padded. Nothing is left in
    ``out_dir`` when it fails.
    """
    opts = ExtractionOptions(int(box), int(binning), normalise, invert, mask_radius, edge)
    opts.check()
    out_dir = Path(out_dir)
    if len(particles) == 0:
        raise InputError(None, "particles", "at least one particle, got an empty table")
    table = canonicalise(particles)
    plans = _plan(table, tomograms, opts, pixel_size)
    keep = np.concatenate([p.keep for p in plans]) if plans else np.zeros(0, bool)
    rows = np.concatenate([p.rows for p in plans])
    kept_rows = np.sort(rows[keep])
    n_edge = int(sum(p.edge.sum() for p in plans))
    if opts.edge == "skip" and n_edge:
        log.info("skipped %d of %d particles whose box reaches past a tomogram edge", n_edge, len(table))
    elif n_edge:
        log.info("padded %d of %d particles whose box reaches past a tomogram edge", n_edge, len(table))
    if len(kept_rows) == 0:
        raise InputError(None, "rlnCoordinateX/Y/Z", f"at least one particle at least box/2 from the tomogram edges; all {len(table)} were skipped (try edge='pad')")
    out_index = np.full(len(table), -1, dtype=np.int64)
    out_index[kept_rows] = np.arange(len(kept_rows))

    result = _output_table(table, plans, kept_rows, opts)
    result = write_extracted(out_dir, result,
                             lambda tmp: _write_stack(tmp, plans, out_index, len(kept_rows), opts, progress),
                             lambda bad: _report_non_finite(plans, out_index, bad))
    log.info("wrote %d subtomograms of %d^3 to %s", len(result), opts.box, out_dir / "subtomos.npy")
    return result


# --------------------------------------------------------------------------- planning


@dataclass
class _TomogramPlan:
    name: str
    path: Path
    pixel_size: float
    rows: np.ndarray  # table rows of this tomogram, in read order
    starts: np.ndarray  # (n, 3) region start (z, y, x) in unbinned voxels
    edge: np.ndarray  # (n,) box reaches past an edge
    keep: np.ndarray  # (n,) extracted
    shape: tuple[int, int, int]  # (z, y, x) voxels of the tomogram


def _plan(table: pd.DataFrame, tomograms: dict[str, Path], opts: ExtractionOptions, pixel_size: float | None) -> list[_TomogramPlan]:
    """Check every tomogram and coordinate before anything is written; order reads for locality."""
    for col in ("rlnTomoName", *COORDS):
        if col not in table.columns:
            raise InputError(None, col, "a canonical particle table (see affinitomo.io.particles.read_particles)")
    names = table["rlnTomoName"].astype(str).to_numpy()
    available = {str(k): Path(v) for k, v in tomograms.items()}
    missing = sorted(set(names) - set(available))
    if missing:
        raise InputError(None, "rlnTomoName", f"names matching a tomogram file stem; no file for {missing[:5]}; available: {sorted(available)[:20]}")
    xyz = table[COORDS].to_numpy(float)
    bad = np.flatnonzero(~np.isfinite(xyz).all(axis=1))
    if len(bad):
        raise InputError(None, "rlnCoordinateX/Y/Z", f"finite coordinates; NaN in rows (0-based) {bad[:10].tolist()}")
    table_px = table["afmPixelSize"].to_numpy(float) if "afmPixelSize" in table.columns else np.full(len(table), np.nan)
    b, region = opts.binning, opts.box * opts.binning
    plans = []
    for name in sorted(set(names)):
        path = available[name]
        data, header_px = open_volume(path)
        rows = np.flatnonzero(names == name)
        px = _pixel_size(path, header_px, pixel_size, table_px[rows])
        zyx = xyz[rows][:, ::-1]
        shape = np.array(data.shape)
        centre = np.floor(zyx + 0.5).astype(np.int64)
        outside = ~((centre >= 0) & (centre < shape)).all(axis=1)
        if outside.any():
            i = int(np.flatnonzero(outside)[0])
            row = int(rows[i])
            pid = table["afmParticleId"].iloc[row] if "afmParticleId" in table.columns else row
            raise InputError(path, "rlnCoordinateX/Y/Z", f"coordinates inside the volume of shape (z, y, x) {tuple(int(s) for s in shape)}; row {row} (afmParticleId {pid}) is at (x, y, z) {tuple(np.round(xyz[row], 2).tolist())}; {int(outside.sum())} rows outside")
        starts = np.floor(zyx - (b - 1) / 2 + 0.5).astype(np.int64) - b * (opts.box // 2)
        edge = ((starts < 0) | (starts + region > shape)).any(axis=1)
        order = np.lexsort((starts[:, 2], starts[:, 1], starts[:, 0]))
        keep = ~edge if opts.edge == "skip" else np.ones(len(rows), bool)
        plans.append(_TomogramPlan(name, path, px, rows[order], starts[order], edge[order], keep[order],
                                   tuple(int(s) for s in shape)))
        del data
    return plans


def _pixel_size(path: Path, header: float | None, given: float | None, table: np.ndarray) -> float:
    known = table[np.isfinite(table)]
    if header is not None and given is not None and abs(header - given) > PIXEL_TOLERANCE * header:
        raise InputError(path, "voxel_size", f"a header voxel size matching the given pixel size {given:g} Å within 1%, header says {header:g} Å")
    px = header if header is not None else given
    if px is None:
        if len(known) == 0:
            raise InputError(path, "voxel_size", "a pixel size: the header sets none and neither the table (afmPixelSize) nor --pixel-size gives one")
        px = float(known[0])
    off = known[np.abs(known - px) > PIXEL_TOLERANCE * px]
    if len(off):
        raise InputError(path, "voxel_size", f"a tomogram pixel size matching the particle table's afmPixelSize within 1%: tomogram {px:g} Å, table {off[0]:g} Å (rescale the coordinates or fix the header)")
    return float(px)


def _output_table(table: pd.DataFrame, plans: list[_TomogramPlan], kept_rows: np.ndarray, opts: ExtractionOptions) -> pd.DataFrame:
    edge = np.zeros(len(table), dtype=np.int64)
    px = np.full(len(table), np.nan)
    sizes = np.full((len(table), 3), np.nan)
    for p in plans:
        edge[p.rows] = p.edge.astype(np.int64)
        px[p.rows] = p.pixel_size
        sizes[p.rows] = np.array(p.shape[::-1], dtype=float) / opts.binning  # x, y, z in output pixels
    out = table.iloc[kept_rows].copy()
    out[COORDS] = out[COORDS].to_numpy(float) / opts.binning
    out["afmPixelSize"] = px[kept_rows] * opts.binning
    out[TOMO_SIZE] = sizes[kept_rows]
    out["afmEdge"] = edge[kept_rows] if opts.edge == "pad" else 0
    groups = out.get("rlnOpticsGroup")
    if groups is not None and out["afmPixelSize"].groupby(groups.to_numpy()).nunique(dropna=False).max() > 1:
        codes, _ = pd.factorize(out["afmPixelSize"], use_na_sentinel=False)  # one pixel size per group
        out["rlnOpticsGroup"] = codes.astype(np.int64) + 1
    out.attrs = {k: v for k, v in table.attrs.items() if k in ("source", "optics", "blocks", "block_order")}
    return with_centred(out.reset_index(drop=True))


# --------------------------------------------------------------------------- extraction


def _write_stack(path: Path, plans: list[_TomogramPlan], out_index: np.ndarray, n_out: int, opts: ExtractionOptions,
                 progress: bool) -> np.ndarray:
    """Cut, normalise and write every kept particle; stack row ``out_index[row]``. Returns the
    (n_out,) mask of the stack rows whose box held non-finite voxels (written as zeros).

    The file is laid out by ``open_memmap`` (header, size); rows are written with
    ``os.pwrite`` from a background thread (the kernel's copy into the page cache
    releases the GIL), so writing overlaps cutting and normalising the next chunk.
    Two buffers alternate between the two.
    """
    box = opts.box
    stack = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n_out, box, box, box))
    data_offset = int(stack.offset)
    del stack
    row_bytes = 4 * box**3
    budget = PageBudget()
    mask = spherical_mask(box, opts.mask_radius).reshape(-1) if opts.mask_radius is not None else None
    chunk = max(1, CHUNK_BYTES // row_bytes)
    buffers = [np.empty((chunk, box, box, box), dtype=np.float32) for _ in range(2)]
    pending: list[Future | None] = [None, None]
    bar = progress_bar(total=n_out, desc="extract", unit="subtomo", disable=not progress, leave=False)
    bad = np.zeros(n_out, dtype=bool)
    fd = os.open(path, os.O_WRONLY)
    try:
        with ThreadPoolExecutor(max_workers=1) as writer:
            turn = 0
            for plan in plans:
                data, _ = open_volume(plan.path)
                budget.watch(data)
                rows, starts, edge = plan.rows[plan.keep], plan.starts[plan.keep], plan.edge[plan.keep]
                for lo in range(0, len(rows), chunk):
                    hi = min(lo + chunk, len(rows))
                    if pending[turn] is not None:
                        pending[turn].result()
                    block = buffers[turn][: hi - lo]
                    valid = _cut(data, starts[lo:hi], edge[lo:hi], block, opts.binning)
                    flat = block.reshape(hi - lo, -1)
                    broken = ~np.isfinite(flat).all(axis=1)
                    if broken.any():
                        flat[broken] = 0.0
                        bad[out_index[rows[lo:hi][broken]]] = True
                    normalise_boxes(flat, valid, mask, opts)
                    pending[turn] = writer.submit(_write_rows, fd, block, out_index[rows[lo:hi]], data_offset, row_bytes)
                    turn = 1 - turn
                    budget.check()
                    bar.update(hi - lo)
                budget.forget(data)
                del data
            for future in pending:
                if future is not None:
                    future.result()
    except OSError as exc:  # a full disk: name the stack (particles.star is being written at the same time)
        if exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise
    finally:
        os.close(fd)
        bar.close()
    return bad


def _report_non_finite(plans: list[_TomogramPlan], out_index: np.ndarray, bad: np.ndarray) -> None:
    """Log the particles skipped for non-finite voxels, per tomogram; InputError when none is left."""
    counts = {p.name: int(bad[out_index[p.rows[p.keep]]].sum()) for p in plans}
    where = ", ".join(f"{name}: {n}" for name, n in counts.items() if n)
    if bad.all():
        paths = [str(p.path) for p in plans]
        raise InputError(paths[0] if len(paths) == 1 else ", ".join(paths), "voxels",
                         f"finite voxels in at least one particle's box; all {bad.size} boxes hold NaN or Inf")
    log.warning("skipped %d of %d particles whose box holds non-finite voxels (NaN or Inf): %s; they are "
                "absent from the stack and the table", int(bad.sum()), bad.size, where)


def _write_rows(fd: int, block: np.ndarray, targets: np.ndarray, offset: int, row_bytes: int) -> None:
    """``pwrite`` rows of ``block`` to stack rows ``targets``, runs of consecutive rows in one call."""
    order = np.argsort(targets, kind="stable")
    t = targets[order]
    breaks = np.flatnonzero(np.diff(t) != 1) + 1
    for run in np.split(np.arange(len(t)), breaks):
        first = int(t[run[0]])
        src = order[run]
        if np.all(np.diff(src) == 1):
            view = memoryview(block[src[0] : src[-1] + 1]).cast("B")
        else:
            view = memoryview(np.ascontiguousarray(block[src])).cast("B")
        pos, done = offset + first * row_bytes, 0
        while done < len(view):
            done += os.pwrite(fd, view[done:], pos + done)


def _cut(data: np.ndarray, starts: np.ndarray, edge: np.ndarray, out: np.ndarray, b: int) -> dict[int, np.ndarray]:
    """Fill ``out[k]`` with the (binned) box at ``starts[k]``; return validity masks of edge boxes."""
    box = out.shape[1]
    size = box * b
    shape = np.array(data.shape)
    valid: dict[int, np.ndarray] = {}
    for k, (s, is_edge) in enumerate(zip(starts, edge)):
        if not is_edge:
            region = data[s[0] : s[0] + size, s[1] : s[1] + size, s[2] : s[2] + size]
            if b == 1:
                out[k] = region
            else:
                out[k] = region.reshape(box, b, box, b, box, b).mean(axis=(1, 3, 5), dtype=np.float32)
            continue
        lo = np.maximum(s, 0)
        hi = np.minimum(s + size, shape)
        full = np.zeros((size, size, size), dtype=np.float32)
        inside = np.zeros((size, size, size), dtype=np.float32)
        sl = tuple(slice(a - o, c - o) for a, c, o in zip(lo, hi, s))
        full[sl] = data[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        inside[sl] = 1.0
        if b > 1:
            weight = inside.reshape(box, b, box, b, box, b).sum(axis=(1, 3, 5))
            total = full.reshape(box, b, box, b, box, b).sum(axis=(1, 3, 5))
            full = np.divide(total, weight, out=np.zeros_like(total), where=weight > 0)
            inside = weight
        out[k] = full
        valid[k] = inside.reshape(-1) > 0
    return valid
