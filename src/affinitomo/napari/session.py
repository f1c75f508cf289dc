"""A review session: the particle table being edited and everything needed to show it.

No napari here: the reader builds a :class:`ReviewSession`, the layers show it and
the dock widget edits it; tests drive it directly.

Relabelling writes a new STAR file (default ``particles_edited.star`` beside the
original) with the same rows in the same order (the order of the subtomogram
stack), ``afmClassName``/``rlnClassNumber`` edited, and two flag columns:
``afmEdited`` = 1 for rows a person assigned or rejected, ``afmRejected`` = 1 for
rejected rows. Rejected rows are kept (dropping them would break the row ->
stack correspondence) but lose their label (``afmClassName`` = "",
``rlnClassNumber`` = 0), so a reader that ignores ``afmRejected`` treats them as
unlabelled, never as a class.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from affinitomo.errors import InputError
from affinitomo.geometry import euler_to_matrix
from affinitomo.io.volumes import read_volume
from affinitomo.napari import results as res
from affinitomo.napari.features import UNKNOWN, UNLABELLED, ClassPalette, particle_features
from affinitomo.napari.particle_view import align_to_reference, box_size_for, crop_box
from affinitomo.napari.reconstruction import Reconstructor
from affinitomo.napari.selection import medoid

if TYPE_CHECKING:
    from affinitomo.io.stacks import StackRows

log = logging.getLogger(__name__)

EDITED_NAME = "particles_edited.star"
REQUIRED_COLUMNS = ("rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ")
DEFAULT_TOMO_NAME = "tomogram"


@dataclass
class Tomogram:
    """A tomogram as shown: data ``[z, y, x]`` (memmap or array, None if not found), Å per pixel."""

    name: str
    data: np.ndarray | None = field(repr=False)
    pixel_size: float
    path: Path | None = None


class ReviewSession:
    """The edited particle table and its context (tomograms, averages, latents)."""

    def __init__(
        self,
        table: pd.DataFrame,
        *,
        source: Path | None = None,
        results_dir: Path | None = None,
        run_info: res.RunInfo | None = None,
        class_names: list[str] | None = None,
        tomograms: dict[str, Tomogram] | None = None,
        averages: dict[str, np.ndarray] | None = None,
        diameter: float | None = None,
    ):
        where = source if source is not None else "particle table"
        for column in REQUIRED_COLUMNS:
            if column not in table.columns:
                raise InputError(where, column, "a particle coordinate column (pixels)")
        table = table.reset_index(drop=True).copy()
        if "rlnTomoName" not in table.columns:
            table["rlnTomoName"] = DEFAULT_TOMO_NAME
        table["rlnTomoName"] = table["rlnTomoName"].astype(str)
        if "afmClassName" not in table.columns:
            table["afmClassName"] = UNLABELLED
        table["afmClassName"] = table["afmClassName"].fillna(UNLABELLED).astype(object)
        if "rlnClassNumber" not in table.columns:
            table["rlnClassNumber"] = 0
        if "afmParticleId" not in table.columns:
            table["afmParticleId"] = np.arange(len(table))
        for flag in ("afmRejected", "afmEdited"):
            table[flag] = table[flag].fillna(0).astype(int) if flag in table.columns else 0
        self.table = table
        self.source = source
        self.results_dir = results_dir
        self.run_info = run_info or res.RunInfo()
        self.tomograms = tomograms or {}
        self.averages = dict(averages or {})
        self.class_numbers = self._class_numbers(class_names or [])
        self.palette = ClassPalette([n for n in self.class_numbers if n not in (UNKNOWN, UNLABELLED)])
        self.diameter = float(diameter) if diameter else self._estimate_diameter()
        self._latents: np.ndarray | None = None
        self.latent_source = ""
        self._reconstructor: Reconstructor | None = None
        self._stack_index: np.ndarray | None = None  # stack row of each table row, -1 if none

    # ----------------------------------------------------------------- classes
    def _class_numbers(self, class_names: list[str]) -> dict[str, int]:
        numbers: dict[str, int] = {}
        pairs = self.table[["afmClassName", "rlnClassNumber"]].drop_duplicates()
        for name, number in zip(pairs["afmClassName"], pairs["rlnClassNumber"]):
            if name not in (UNKNOWN, UNLABELLED) and int(number) > 0:
                numbers.setdefault(str(name), int(number))
        for name in class_names:
            if name not in numbers and name not in (UNKNOWN, UNLABELLED):
                numbers[name] = max(numbers.values(), default=0) + 1
        for name in self.table["afmClassName"].unique():
            if name not in numbers and name not in (UNKNOWN, UNLABELLED):
                numbers[str(name)] = max(numbers.values(), default=0) + 1
        return dict(sorted(numbers.items(), key=lambda kv: kv[1]))

    @property
    def class_names(self) -> list[str]:
        """Assignable classes, by class number."""
        return list(self.class_numbers)

    def add_class(self, name: str) -> int:
        """Register a new class name (no-op if known); returns its number."""
        name = name.strip()
        if not name or name in (UNKNOWN, UNLABELLED):
            raise ValueError(f"'{name}' cannot be a class name")
        if name not in self.class_numbers:
            self.class_numbers[name] = max(self.class_numbers.values(), default=0) + 1
            self.palette.add(name)
        return self.class_numbers[name]

    # ------------------------------------------------------------------- edits
    def assign(self, rows: np.ndarray, name: str) -> None:
        """Assign the particles at table positions ``rows`` to class ``name`` (new names are added)."""
        rows = np.asarray(rows, dtype=np.int64)
        number = self.add_class(name)
        t = self.table
        t.loc[rows, "afmClassName"] = name
        t.loc[rows, "rlnClassNumber"] = number
        t.loc[rows, "afmRejected"] = 0
        t.loc[rows, "afmEdited"] = 1

    def reject(self, rows: np.ndarray) -> None:
        """Flag the particles at ``rows`` as rejected (kept in the table, label removed)."""
        rows = np.asarray(rows, dtype=np.int64)
        t = self.table
        t.loc[rows, "afmClassName"] = UNLABELLED
        t.loc[rows, "rlnClassNumber"] = 0
        t.loc[rows, "afmRejected"] = 1
        t.loc[rows, "afmEdited"] = 1

    def default_save_path(self) -> Path:
        folder = self.results_dir if self.results_dir is not None else Path.cwd()
        return folder / EDITED_NAME

    def save(self, path: str | Path | None = None, *, overwrite: bool = False) -> Path:
        """Write the edited table as a new STAR file (atomically); refuses to overwrite unless asked."""
        from affinitomo.io.particles import write_particles

        path = Path(path) if path is not None else self.default_save_path()
        if path.suffix.lower() != ".star":
            raise InputError(path, "suffix", "a .star file name")
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True (or confirm) to replace it")
        if self.source is not None and path.resolve() == Path(self.source).resolve() and not overwrite:
            raise FileExistsError(f"{path} is the original table")
        write_particles(path, self.table)  # atomic
        log.info("wrote %d particles (%d edited, %d rejected) to %s", len(self.table),
                 int(self.table["afmEdited"].sum()), int(self.table["afmRejected"].sum()), path)
        return path

    # ---------------------------------------------------------------- per view
    def tomogram_names(self) -> list[str]:
        return list(dict.fromkeys(self.table["rlnTomoName"]))

    def rows_of(self, tomo: str) -> np.ndarray:
        return np.flatnonzero(self.table["rlnTomoName"].to_numpy() == tomo)

    def features(self, rows: np.ndarray) -> pd.DataFrame:
        sub = self.table.iloc[rows].copy()
        sub["row"] = rows
        return particle_features(sub, self.class_numbers)

    def colors(self, rows: np.ndarray) -> np.ndarray:
        sub = self.table.iloc[rows]
        return self.palette.colors(sub["afmClassName"].to_numpy(), sub["afmRejected"].to_numpy() != 0)

    def table_pixel_size(self, tomo: str) -> float | None:
        """``afmPixelSize`` of the tomogram's particles, None when absent or NaN."""
        rows = self.rows_of(tomo)
        if "afmPixelSize" not in self.table.columns or not len(rows):
            return None
        value = float(self.table["afmPixelSize"].iloc[rows[0]])
        return value if np.isfinite(value) and value > 0 else None

    def pixel_size(self, tomo: str) -> float:
        """Å per pixel: the table's ``afmPixelSize``, else the tomogram header, else 1."""
        value = self.table_pixel_size(tomo)
        if value is not None:
            return value
        if tomo in self.tomograms:
            return self.tomograms[tomo].pixel_size
        return 1.0

    def umap(self) -> np.ndarray:
        cols = ["afmUMAP0", "afmUMAP1"]
        if not all(c in self.table.columns for c in cols):
            return np.full((len(self.table), 2), np.nan)
        return self.table[cols].to_numpy(dtype=np.float64)

    def latents(self) -> np.ndarray:
        """Per-row latent means from run.json's ``latents``, else the UMAP coordinates.

        ``latent_source`` says which, so the widget can tell the user.
        """
        if self._latents is None:
            path = self.run_info.latents
            if path is not None and Path(path).is_file():
                self._latents = res.read_latents(path, self.table["afmParticleId"].to_numpy())
                self.latent_source = f"latents from {path}"
            else:
                self._latents = self.umap()
                self.latent_source = "UMAP coordinates (no latents.npz in run.json)"
        return self._latents

    def medoid_row(self, rows: np.ndarray) -> int:
        """The table row of the medoid (in latent space) of the particles at ``rows``."""
        rows = np.asarray(rows, dtype=np.int64)
        vectors = self.latents()[rows]
        keep = np.isfinite(vectors).all(axis=1)
        if not keep.any():
            return int(rows[0])
        return int(rows[keep][medoid(vectors[keep])])

    def cluster_rows(self) -> dict[str, np.ndarray]:
        """Rows by cluster (``afmClusterId``; by class name when there are no clusters)."""
        t = self.table
        key = t["afmClusterId"].astype(int).astype(str) if "afmClusterId" in t.columns else t["afmClassName"]
        return {str(k): np.flatnonzero(key.to_numpy() == k) for k in sorted(key.unique(), key=str)}

    # -------------------------------------------------------------- one particle
    def subtomogram(self, row: int, *, aligned: bool = False, box: int | None = None) -> np.ndarray | None:
        """The particle's box (default about twice its diameter) from its tomogram, None if not loaded."""
        t = self.table.iloc[int(row)]
        tomo = self.tomograms.get(str(t["rlnTomoName"]))
        if tomo is None or tomo.data is None:
            return None
        box = box or box_size_for(self.diameter / tomo.pixel_size)
        sub = crop_box(tomo.data, (t["rlnCoordinateX"], t["rlnCoordinateY"], t["rlnCoordinateZ"]), box)
        return self._aligned(row, sub) if aligned else sub

    def _aligned(self, row: int, volume: np.ndarray) -> np.ndarray:
        if "rlnAngleRot" not in self.table.columns:
            return volume
        t = self.table.iloc[int(row)]
        return align_to_reference(volume, euler_to_matrix(t["rlnAngleRot"], t["rlnAngleTilt"], t["rlnAnglePsi"]))

    def class_average(self, name: str) -> np.ndarray | None:
        """``RESULTS/averages/<name>.mrc`` (the cluster stage's file name) if present (cached)."""
        from affinitomo.cluster.results import safe_name

        if name not in self.averages and self.results_dir is not None:
            path = self.results_dir / "averages" / f"{safe_name(name)}.mrc"
            if path.is_file():
                self.averages[name] = read_volume(path)[0]
        return self.averages.get(name)

    # ---------------------------------------------------------- reconstruction
    @property
    def reconstructor(self) -> Reconstructor | None:
        """The checkpoint named by run.json (or the workflow layout), loaded on first use."""
        path = self.run_info.checkpoint
        if path is None or not Path(path).is_file():
            return None
        if self._reconstructor is None:
            self._reconstructor = Reconstructor(path)
        return self._reconstructor

    def stack_row(self, row: int) -> int | None:
        """The particle's row in run.json's stack, or None.

        The stack's own table (``particles.star`` beside it, as extract writes) maps
        ``afmParticleId`` to stack rows; without it, table and stack must have the same length.
        """
        stacks = self._stacks()
        if stacks is None:
            return None
        if self._stack_index is None:
            self._stack_index = self._map_stack(stacks)
        index = int(self._stack_index[int(row)])
        return index if index >= 0 else None

    def _stacks(self) -> StackRows | None:
        """run.json's stack(s) as one row set, or None when absent or unreadable."""
        from affinitomo.io.stacks import open_stacks

        paths = self.run_info.stack
        if not paths or not all(Path(p).is_file() for p in paths):
            return None
        try:
            return open_stacks(paths)
        except InputError as exc:
            log.warning("%s", exc)
            return None

    def _map_stack(self, stacks: StackRows) -> np.ndarray:
        from affinitomo.io.particles import read_particles

        n = len(stacks)
        stack = stacks.paths[0] if len(stacks.paths) == 1 else f"{len(stacks.paths)} stacks"
        besides = [Path(p).parent / res.PARTICLES_NAME for p in stacks.paths]
        ids = self.table["afmParticleId"].to_numpy()
        if all(b.is_file() for b in besides):
            beside = besides[0] if len(besides) == 1 else f"the tables beside the {stack}"
            stack_ids = np.concatenate([read_particles(b)["afmParticleId"].to_numpy() for b in besides])
            if len(stack_ids) == n:
                order = np.argsort(stack_ids, kind="stable")
                pos = np.clip(np.searchsorted(stack_ids[order], ids), 0, n - 1)
                return np.where(stack_ids[order][pos] == ids, order[pos], -1)
            log.warning("%s has %d rows but the stack %s has %d; ignoring it", beside, len(stack_ids), stack, n)
        if n == len(self.table):
            return np.arange(n)
        log.warning("cannot match the stack %s (%d rows) to the table (%d rows)", stack, n, len(self.table))
        return np.full(len(self.table), -1)

    def model_input(self, row: int, box: int) -> tuple[np.ndarray | None, str]:
        """(the ``box``^3 volume the model sees for this particle, where it came from).

        The stack row when the stack matches (what the model was trained and encoded on,
        with extract's binning, normalisation and inversion), else a box cut from the
        tomogram (right when extraction used no binning and no inversion).
        """
        index = self.stack_row(row)
        if index is not None:
            stack = self._stacks()
            if stack is not None and stack.shape[-1] == box:
                return np.array(stack[index], dtype=np.float32), "stack"
            if stack is not None:
                log.warning("stack boxes are %d^3 but the model takes %d^3", stack.shape[-1], box)
        return self.subtomogram(row, box=box), "tomogram"

    def reconstruction(self, row: int, *, aligned: bool = False) -> tuple[np.ndarray | None, str]:
        """(the model's reconstruction of the particle, or None, and a label that says which/why not)."""
        rec = self.reconstructor
        if rec is None:
            return None, "reconstruction: no checkpoint (run.json 'checkpoint' or train/model.pt)"
        try:
            volume, source = self.model_input(row, rec.box)
        except InputError as exc:
            return None, f"reconstruction: {exc}"
        if volume is None:
            return None, "reconstruction: neither the stack nor the tomogram is available"
        out = rec.reconstruct(volume)
        return (self._aligned(row, out) if aligned else out), f"model ({source})"

    # --------------------------------------------------------------- diameter
    def _estimate_diameter(self) -> float:
        """Particle diameter in Å: run.json, else from the stack box, else from neighbour spacing.

        Without a recorded value: a subtomogram box is usually ~1.5-2x the particle,
        so 0.6 x box; without a stack, particles cannot overlap, so their diameter
        is at most the typical nearest-neighbour distance: 0.8 x its 10th percentile.
        """
        if self.run_info.particle_diameter:
            return float(self.run_info.particle_diameter)
        tomo = self.tomogram_names()[0] if len(self.table) else None
        pixel = self.pixel_size(tomo) if tomo is not None else 1.0
        stack = self._stacks()
        if stack is not None:
            return 0.6 * float(stack.shape[-1]) * pixel
        rows = self.rows_of(tomo) if tomo is not None else np.zeros(0, int)
        if len(rows) >= 2:
            xyz = self.table.iloc[rows[:20000]][list(REQUIRED_COLUMNS)].to_numpy(dtype=float)
            d, _ = cKDTree(xyz).query(xyz, k=2)
            spacing = float(np.percentile(d[:, 1], 10))
            if spacing > 0:
                return 0.8 * spacing * pixel
        return 10.0 * pixel


def load_session(
    path: str | Path,
    *,
    tomograms_dir: str | Path | None = None,
    diameter: float | None = None,
) -> ReviewSession:
    """Open a results folder (or a particles STAR file) for review.

    Tomograms are memory-mapped, not read; a tomogram that cannot be found is
    logged and its particles are shown without an image.
    """
    from affinitomo.io.particles import read_particles

    star, results_dir = res.particles_path(path)
    table = read_particles(star)
    run_info = res.read_run_info(results_dir)
    class_names = res.read_class_names(results_dir / "classes.csv")
    session = ReviewSession(table, source=star, results_dir=results_dir, run_info=run_info,
                            class_names=class_names, diameter=diameter)
    for name in session.tomogram_names():
        found = res.find_tomogram(name, run_info=run_info, tomograms_dir=tomograms_dir, results_dir=results_dir)
        if found is None:
            log.warning("tomogram %s not found (give --tomograms DIR); showing its particles only", name)
            continue
        data, header_size = res.open_tomogram(found)
        table_size = session.table_pixel_size(name)
        pixel = table_size or header_size or 1.0
        if table_size is None and header_size is None:
            log.warning("no pixel size for %s in the table or the header; showing pixels (scale 1)", name)
        if header_size and abs(header_size - pixel) > 0.01 * pixel:
            log.warning("%s: header voxel size %.3f Å differs from the table's %.3f Å; using the table's",
                        found, header_size, pixel)
        session.tomograms[name] = Tomogram(name, data, pixel, found)
    return session
