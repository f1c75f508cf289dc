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
unlabelled, never as a class. A particle moved in the viewer gets its new
``rlnCoordinateX/Y/Z`` and ``afmEdited`` = 1 (its latents and UMAP coordinates
stay those of the old position).

Edits not yet saved are written to ``particles_autosave.star`` beside the
original (:meth:`ReviewSession.autosave`; the widget does so when the viewer
closes and a while after the last edit), never over a file the user chose.
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
from affinitomo.io.latents import latent_means
from affinitomo.io.volumes import read_volume
from affinitomo.napari import results as res
from affinitomo.napari.features import (
    REJECTED, UNLABELLED, ClassPalette, category_colors, is_class_name, is_unknown_group, particle_features, particle_groups, value_colors,
)
from affinitomo.labels import UNKNOWN
from affinitomo.napari.particle_view import align_to_reference, box_size_for, crop_box
from affinitomo.napari.reconstruction import Reconstructor
from affinitomo.napari.selection import medoid

if TYPE_CHECKING:
    from affinitomo.io.stacks import StackRows

log = logging.getLogger(__name__)

EDITED_NAME = "particles_edited.star"
AUTOSAVE_NAME = "particles_autosave.star"
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
        classes: dict[str, int | None] | list[str] | None = None,
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
        classes = dict.fromkeys(classes) if isinstance(classes, list) else dict(classes or {})
        self._top_number = max([int(table["rlnClassNumber"].fillna(0).max()) if len(table) else 0]
                               + [n for n in classes.values() if n is not None])
        self.class_numbers = self._class_numbers(classes)
        self._groups = particle_groups(table)
        self.palette = ClassPalette(self.class_names + self.unknown_groups())
        self.edits = 0  # edits so far; saved_edits / autosaved_edits: how many the last (auto)save held
        self.saved_edits = self.autosaved_edits = 0
        self.diameter = float(diameter) if diameter else self._estimate_diameter()
        self._latents: np.ndarray | None = None
        self.latent_source = ""
        self._reconstructor: Reconstructor | None = None
        self._stack_index: np.ndarray | None = None  # stack row of each table row, -1 if none
        self._categories: dict[str, tuple[np.ndarray, list[str]]] = {}  # colour-by mode -> categories()

    # ----------------------------------------------------------------- classes
    def _class_numbers(self, classes: dict[str, int | None]) -> dict[str, int]:
        """Assignable class -> number: the table's pairs, then classes.csv's, then new numbers.

        Unknown groups, 'unknown' and unlabelled are not assignable classes; a new number
        is above every number in the table and classes.csv, so it never takes an unknown
        group's.
        """
        numbers: dict[str, int] = {}
        pairs = self.table[["afmClassName", "rlnClassNumber"]].drop_duplicates()
        for name, number in zip(pairs["afmClassName"], pairs["rlnClassNumber"]):
            if is_class_name(str(name)) and int(number) > 0:
                numbers.setdefault(str(name), int(number))
        for name, number in classes.items():
            if is_class_name(name) and name not in numbers:
                taken = number is None or number <= 0 or number in numbers.values()
                numbers[name] = self._next_number(numbers) if taken else int(number)
        for name in self.table["afmClassName"].unique():
            if is_class_name(str(name)) and str(name) not in numbers:
                numbers[str(name)] = self._next_number(numbers)
        return dict(sorted(numbers.items(), key=lambda kv: kv[1]))

    def _next_number(self, numbers: dict[str, int]) -> int:
        self._top_number = max(self._top_number, *numbers.values(), 0) + 1
        return self._top_number

    @property
    def class_names(self) -> list[str]:
        """Assignable classes, by class number."""
        return list(self.class_numbers)

    def add_class(self, name: str) -> int:
        """Register a new class name (no-op if known); returns its number."""
        name = name.strip()
        if not is_class_name(name):
            raise ValueError(f"'{name}' cannot be a class name (not empty, 'unknown', 'rejected' or unknown_c<k>)")
        if name not in self.class_numbers:
            self.class_numbers[name] = self._next_number(self.class_numbers)
            self.palette.add(name)
        return self.class_numbers[name]

    # ------------------------------------------------------------------- edits
    def assign(self, rows: np.ndarray, name: str) -> None:
        """Assign the particles at table positions ``rows`` to class ``name`` (new names are added)."""
        rows = np.asarray(rows, dtype=np.int64)
        name = name.strip()
        number = self.add_class(name)
        self._edit(rows, {"afmClassName": name, "rlnClassNumber": number, "afmRejected": 0}, name)

    def reject(self, rows: np.ndarray) -> None:
        """Flag the particles at ``rows`` as rejected (kept in the table, label removed)."""
        rows = np.asarray(rows, dtype=np.int64)
        self._edit(rows, {"afmClassName": UNLABELLED, "rlnClassNumber": 0, "afmRejected": 1}, REJECTED)

    def move(self, rows: np.ndarray, xyz: np.ndarray) -> None:
        """Give the particles at ``rows`` new centres ``xyz`` ((N, 3) x, y, z in tomogram pixels)."""
        rows = np.asarray(rows, dtype=np.int64)
        xyz = np.asarray(xyz, dtype=np.float64).reshape(len(rows), 3)
        self._edit(rows, dict(zip(REQUIRED_COLUMNS, xyz.T)), None)

    def _edit(self, rows: np.ndarray, values: dict, group: str | None) -> None:
        if not len(rows):
            return
        for column, value in values.items():
            self.table.loc[rows, column] = value
        self.table.loc[rows, "afmEdited"] = 1
        if group is not None:
            self._groups[rows] = group
        self._categories.clear()  # without afmClusterId, a row's cluster is its class
        self.edits += 1

    @property
    def unsaved(self) -> bool:
        """Whether there are edits that no explicit save holds."""
        return self.edits != self.saved_edits

    def _folder(self) -> Path:
        return self.results_dir if self.results_dir is not None else Path.cwd()

    def default_save_path(self) -> Path:
        return self._folder() / EDITED_NAME

    def autosave_path(self) -> Path:
        return self._folder() / AUTOSAVE_NAME

    def save(self, path: str | Path | None = None, *, overwrite: bool = False) -> Path:
        """Write the edited table as a new STAR file (atomically); refuses to overwrite unless asked.

        A save holds every edit so far, so the autosave file (if any, and not the table
        under review) is removed.
        """
        path = Path(path) if path is not None else self.default_save_path()
        if path.suffix.lower() != ".star":
            raise InputError(path, "suffix", "a .star file name")
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True (or confirm) to replace it")
        if self.source is not None and path.resolve() == Path(self.source).resolve() and not overwrite:
            raise FileExistsError(f"{path} is the original table")
        if path.resolve() == self.autosave_path().resolve():
            raise FileExistsError(f"{path} is the autosave file; choose another name")
        self._write(path)
        self.saved_edits = self.edits
        autosave = self.autosave_path()
        if autosave.is_file() and (self.source is None or autosave.resolve() != Path(self.source).resolve()):
            autosave.unlink()  # its edits are in the file just written
        return path

    def autosave(self) -> Path | None:
        """Write the table to :meth:`autosave_path` if it has edits that neither a save nor the last
        autosave holds; returns the path written, or None."""
        if not self.unsaved or self.edits == self.autosaved_edits:
            return None
        path = self.autosave_path()
        if self.source is not None and path.resolve() == Path(self.source).resolve():
            raise FileExistsError(f"{path} is the table under review; save it under another name")
        self._write(path)
        self.autosaved_edits = self.edits
        return path

    def _write(self, path: Path) -> None:
        from affinitomo.io.particles import write_particles

        write_particles(path, self.table)  # atomic
        log.info("wrote %d particles (%d edited, %d rejected) to %s", len(self.table),
                 int(self.table["afmEdited"].sum()), int(self.table["afmRejected"].sum()), path)

    # ---------------------------------------------------------------- per view
    def tomogram_names(self) -> list[str]:
        return list(dict.fromkeys(self.table["rlnTomoName"]))

    def rows_of(self, tomo: str) -> np.ndarray:
        return np.flatnonzero(self.table["rlnTomoName"].to_numpy() == tomo)

    def features(self, rows: np.ndarray) -> pd.DataFrame:
        sub = self.table.iloc[rows].copy()
        sub["row"] = rows
        return particle_features(sub, self.class_numbers)

    def groups(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Each particle's group (``affinitomo.napari.features``), for ``rows`` (default all)."""
        return self._groups if rows is None else self._groups[np.asarray(rows, dtype=np.int64)]

    def colors(self, rows: np.ndarray) -> np.ndarray:
        return self.palette.colors(self.groups(rows))

    def symbols(self, rows: np.ndarray) -> np.ndarray:
        return self.palette.symbols(self.groups(rows))

    def unknown_groups(self) -> list[str]:
        """The unknown groups, by class number (the cluster stage's: largest first), then cluster id."""
        found = pd.DataFrame({"name": self._groups, "number": self.table["rlnClassNumber"].to_numpy()})
        found = found.drop_duplicates("name")
        found = found[[is_unknown_group(n) for n in found["name"]]].copy()
        found["cluster"] = [int(n.rsplit("_c", 1)[1]) for n in found["name"]]
        found["number"] = found["number"].where(found["number"] > 0, np.iinfo(np.int64).max)
        first = found.sort_values(["number", "cluster"], kind="stable")
        return first["name"].tolist()

    def legend(self) -> list[tuple[str, int]]:
        """(group, particle count) for the legend: every assignable class (also when empty), the unknown
        groups in palette order, then 'unknown', unlabelled and rejected where they have particles."""
        names, counts = np.unique(self._groups.astype(str), return_counts=True)
        count = dict(zip(names.tolist(), counts.tolist()))
        known = [g for g in self.palette.names if g in self.class_numbers]
        unknown = [g for g in self.palette.names if is_unknown_group(g) and count.get(g)]
        rest = [g for g in (UNKNOWN, UNLABELLED, REJECTED) if count.get(g)]
        return [(g, int(count.get(g, 0))) for g in known + unknown + rest]

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
                self._latents = latent_means(path, self.table["afmParticleId"].to_numpy())
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

    def _cluster_keys(self) -> np.ndarray:
        """Each row's cluster: ``afmClusterId`` (-1 = noise), or its class name when there are no clusters."""
        t = self.table
        if "afmClusterId" in t.columns:
            return t["afmClusterId"].fillna(-1).astype(int).to_numpy()
        return t["afmClassName"].astype(str).to_numpy()

    def cluster_rows(self) -> dict[str, np.ndarray]:
        """Rows by cluster (``afmClusterId``, in numeric order; by class name when there are no clusters)."""
        key = self._cluster_keys()
        return {str(k): np.flatnonzero(key == k) for k in sorted(pd.unique(key))}

    # ------------------------------------------------------------ colour by
    def confidence(self, rows: np.ndarray | None = None) -> np.ndarray:
        """``afmConfidence`` (0 to 1) of ``rows`` (default all); NaN where the table has none."""
        if "afmConfidence" not in self.table.columns:
            return np.full(len(self.table) if rows is None else len(rows), np.nan)
        values = self.table["afmConfidence"].to_numpy(dtype=np.float64, na_value=np.nan)
        return values if rows is None else values[np.asarray(rows, dtype=np.int64)]

    def categories(self, mode: str) -> tuple[np.ndarray, list[str]]:
        """(each row's category position, the categories' names in order) for colouring by ``mode``:
        'cluster' (clusters in numeric order; noise, -1, has position -1) or 'tomogram' (table order)."""
        if mode not in self._categories:
            if mode == "tomogram":
                names = self.tomogram_names()
                keys = self.table["rlnTomoName"].to_numpy()
            elif mode == "cluster":
                keys = self._cluster_keys()
                names = [k for k in sorted(pd.unique(keys)) if not (isinstance(k, (int, np.integer)) and k < 0)]
            else:
                raise ValueError(f"no categories for colour by '{mode}'")
            codes = pd.Categorical(keys, categories=names).codes.astype(np.int64)
            self._categories[mode] = (codes, [str(n) for n in names])
        return self._categories[mode]

    def colors_by(self, mode: str, rows: np.ndarray) -> np.ndarray:
        """(N, 4) RGBA of ``rows`` coloured by ``mode``: 'class' (the group palette), 'cluster' or 'tomogram'
        (one colour per category, noise grey), 'confidence' (the confidence colour map from 0 to 1, none: grey)."""
        rows = np.asarray(rows, dtype=np.int64)
        if mode == "class":
            return self.colors(rows)
        if mode == "confidence":
            return value_colors(self.confidence(rows))
        return category_colors(self.categories(mode)[0][rows])

    def color_key(self, mode: str) -> list[tuple[str, np.ndarray]]:
        """(name, RGBA) of every category of ``mode`` ('cluster' or 'tomogram') in order; noise last."""
        codes, names = self.categories(mode)
        colours = category_colors(np.arange(len(names)))
        key = list(zip(names, colours))
        if (codes < 0).any():
            key.append(("noise (-1)", category_colors(np.array([-1]))[0]))
        return key

    def makeup(self, rows: np.ndarray) -> list[tuple[str, int, float]]:
        """(group, count, share) of the particles at ``rows``, largest count first (ties by name)."""
        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows):
            return []
        names, counts = np.unique(self.groups(rows).astype(str), return_counts=True)
        order = np.argsort(-counts, kind="stable")
        return [(str(names[i]), int(counts[i]), float(counts[i] / len(rows))) for i in order]

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
        """``RESULTS/averages/<name>.mrc`` (the cluster stage's file name) if present (cached).

        ``name`` is a class or an unknown group (``unknown_c<cluster id>``).
        """
        from affinitomo.labels import safe_name

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
    classes = res.read_classes(results_dir / "classes.csv")
    session = ReviewSession(table, source=star, results_dir=results_dir, run_info=run_info,
                            classes=classes, diameter=diameter)
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
