"""Dock widget: UMAP scatter linked to the particles in the tomogram, relabelling, one-particle view.

Selection is a set of rows of the session's particle table. A lasso or box in the
scatter selects those rows in every points layer of the session (napari selection
plus a yellow border, visible in any mode); selecting points in the viewer
selects them in the scatter (yellow rings). A single selected particle is shown
up close: three orthogonal slices of its subtomogram, of the model's reconstruction
(when the run has a checkpoint) and of its class average.

Large tables stay fluid: above ``MARKERS_MAX`` points the scatter is a binned RGBA
image, above ``RINGS_MAX`` selected points the selection is an overlay image, and
above ``VIEWER_SELECTION_MAX`` the viewer shows the selection by border colour only
(napari's own selection costs ~60 us per point). Edits always apply to the widget's
selection.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.widgets import LassoSelector, RectangleSelector
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from affinitomo.errors import InputError
from affinitomo.napari.layers import PLAIN_BORDER, SELECTED_BORDER, vectors_layer
from affinitomo.napari.orthoviews import draw_particle
from affinitomo.napari.raster import extent_of, mask_image, scatter_image
from affinitomo.napari.selection import nearest_point, points_in_box, points_in_polygon, reembed
from affinitomo.napari.session import ReviewSession

if TYPE_CHECKING:
    import napari

log = logging.getLogger(__name__)

SELECTED_RING = "#ffd500"
SELECTED_RGBA = (1.0, 0.84, 0.0, 0.9)
DENSITY_GRID = 80
MARKERS_MAX = 20_000  # above: the scatter is drawn as a binned image (100k markers take ~1.5 s per draw)
RINGS_MAX = 2_000  # above: the selection is drawn as an overlay image
VIEWER_SELECTION_MAX = 10_000  # above: the viewer shows the selection by border colour only (see below)


def _marker_size(n: int) -> float:
    """Scatter marker area (pt^2): large for a few points, ~1 for 100k so the plot stays readable."""
    return float(np.clip(400.0 / np.sqrt(max(n, 1)), 0.5, 25.0))


class ReviewWidget(QWidget):
    """Review particles of the affinitomo session shown in ``napari_viewer``."""

    def __init__(self, napari_viewer: "napari.Viewer", parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.session: ReviewSession | None = None
        self.selection = np.zeros(0, dtype=np.int64)  # table rows
        self._view_rows = np.zeros(0, dtype=np.int64)  # rows shown in the scatter
        self._view_xy = np.zeros((0, 2))
        self._view_label = "UMAP"
        self._syncing = False
        self._data_artist = None
        self._ring_artist = None
        self._mask_artist = None
        self._extent = (0.0, 1.0, 0.0, 1.0)
        self._build_ui()
        self.viewer.layers.events.inserted.connect(self._on_layer_inserted)
        self.viewer.layers.events.removed.connect(lambda event: self._refresh_layers())
        for layer in list(self.viewer.layers):
            self._on_layer_inserted(type("E", (), {"value": layer})())

    # ------------------------------------------------------------------- UI
    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)
        self.info = QLabel("Open an affinitomo results folder (File > Open Folder) or the demo sample.")
        self.info.setWordWrap(True)
        layout.addWidget(self.info)

        self.figure = Figure(figsize=(4, 3.6), tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(280)
        self.ax = self.figure.add_subplot(111)
        layout.addWidget(self.canvas)
        self.lasso = LassoSelector(self.ax, onselect=self._on_lasso, useblit=True,
                                   props={"color": SELECTED_RING, "linewidth": 1.2})
        self.box = RectangleSelector(self.ax, self._on_box, useblit=True, interactive=False,
                                     props={"facecolor": SELECTED_RING, "alpha": 0.2})
        self.box.set_active(False)

        row = QHBoxLayout()
        self.tool = QComboBox()
        self.tool.addItems(["lasso", "box"])
        self.tool.currentTextChanged.connect(self._on_tool)
        self.density = QCheckBox("density (log)")
        self.density.toggled.connect(lambda _: self._draw_scatter())
        self.poses = QCheckBox("poses")
        self.poses.toggled.connect(self.set_poses_visible)
        for w in (QLabel("select:"), self.tool, self.density, self.poses):
            row.addWidget(w)
        layout.addLayout(row)

        row = QHBoxLayout()
        self.reembed_button = QPushButton("Re-embed selection")
        self.reembed_button.setToolTip("UMAP of the selected particles' latents only (CPU)")
        self.reembed_button.clicked.connect(self._on_reembed_clicked)
        self.full_button = QPushButton("Full embedding")
        self.full_button.clicked.connect(self.show_full_embedding)
        row.addWidget(self.reembed_button)
        row.addWidget(self.full_button)
        layout.addLayout(row)

        row = QHBoxLayout()
        self.clusters = QComboBox()
        self.medoid_button = QPushButton("Jump to medoid")
        self.medoid_button.setToolTip("Select and centre the cluster's most central particle (in latent space)")
        self.medoid_button.clicked.connect(lambda: self.jump_to_medoid(self.clusters.currentData()))
        row.addWidget(QLabel("cluster:"))
        row.addWidget(self.clusters, 1)
        row.addWidget(self.medoid_button)
        layout.addLayout(row)

        group = QGroupBox("Relabel selection")
        grid = QGridLayout(group)
        self.class_box = QComboBox()
        self.class_box.setEditable(True)
        self.class_box.setToolTip("Pick a class or type a new class name")
        self.assign_button = QPushButton("Assign")
        self.assign_button.clicked.connect(lambda: self._guard(self.assign_selected, self.class_box.currentText()))
        self.reject_button = QPushButton("Reject")
        self.reject_button.clicked.connect(lambda: self._guard(self.reject_selected))
        self.save_button = QPushButton("Save as...")
        self.save_button.clicked.connect(self._on_save_clicked)
        grid.addWidget(self.class_box, 0, 0, 1, 2)
        grid.addWidget(self.assign_button, 0, 2)
        grid.addWidget(self.reject_button, 1, 0)
        grid.addWidget(self.save_button, 1, 1, 1, 2)
        layout.addWidget(group)

        self.particle_figure = Figure(figsize=(4, 4.0), tight_layout=True)
        self.particle_canvas = FigureCanvasQTAgg(self.particle_figure)
        self.particle_canvas.setMinimumHeight(280)
        self.aligned = QCheckBox("align particle to its pose")
        self.aligned.toggled.connect(lambda _: self._show_current_particle())
        layout.addWidget(self.aligned)
        layout.addWidget(self.particle_canvas)

        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        layout.addWidget(self.status)

    def _say(self, text: str) -> None:
        self.status.setText(text)
        log.info("%s", text)

    def _guard(self, func, *args) -> None:
        """Run a button's action; report a refusal in the status line instead of raising into Qt."""
        try:
            func(*args)
        except (ValueError, FileExistsError) as exc:
            self._say(str(exc))

    # --------------------------------------------------------------- session
    def _on_layer_inserted(self, event) -> None:
        session = getattr(event.value, "metadata", {}).get("affinitomo")
        if isinstance(session, ReviewSession) and session is not self.session:
            self.attach(session)
        elif session is self.session:
            self._refresh_layers()

    def attach(self, session: ReviewSession) -> None:
        """Review ``session``: fill the scatter, class and cluster lists."""
        self.session = session
        self.selection = np.zeros(0, dtype=np.int64)
        n = len(session.table)
        self._row_pos = np.zeros(n, dtype=np.int64)
        for tomo in session.tomogram_names():
            rows = session.rows_of(tomo)
            self._row_pos[rows] = np.arange(len(rows))
        source = session.source if session.source is not None else "demo"
        self.info.setText(f"{source}: {n} particles in {len(session.tomogram_names())} tomogram(s)")
        self._refresh_layers()
        self._fill_lists()
        self.show_full_embedding()
        self.set_slab()

    def set_slab(self) -> None:
        """Thick slice of one particle diameter, so each particle shows as a disc over its whole extent.

        The points layers use projection_mode 'rescale_spherical': a disc shrinks as the
        slice moves off the particle's centre, like the particle itself.
        """
        if self.session is None or self.viewer.dims.ndim != 3:
            return
        radius = self.session.diameter / 2
        self.viewer.dims.margin_left = (radius, 0.0, 0.0)
        self.viewer.dims.margin_right = (radius, 0.0, 0.0)

    def _fill_lists(self) -> None:
        assert self.session is not None
        current = self.class_box.currentText()
        self.class_box.clear()
        self.class_box.addItems(self.session.class_names)
        if current:
            self.class_box.setCurrentText(current)
        self.clusters.clear()
        for key, rows in self.session.cluster_rows().items():
            self.clusters.addItem(f"{key} ({len(rows)})", key)

    def _session_layers(self, kind: str) -> list:
        return [ly for ly in self.viewer.layers
                if ly.metadata.get("affinitomo") is self.session and ly._type_string == kind]

    def _refresh_layers(self) -> None:
        """(Re)connect the selection events of the session's points layers."""
        self.points_layers = self._session_layers("points")
        for layer in self.points_layers:
            if not getattr(layer, "_affinitomo_connected", False):
                events = layer.selected_data.events  # psygnal (napari >= 0.6) or napari's own EmitterGroup
                signal = events.items_changed if hasattr(events, "items_changed") else events.changed
                signal.connect(lambda *_, ly=layer: self._on_layer_selection(ly))
                layer._affinitomo_connected = True

    # --------------------------------------------------------------- scatter
    def show_full_embedding(self) -> None:
        """Show every particle at its stored UMAP coordinates."""
        if self.session is None:
            return
        self._view_rows = np.arange(len(self.session.table))
        self._view_xy = self.session.umap()
        self._view_label = "UMAP"
        self._draw_scatter()

    def _draw_scatter(self) -> None:
        """Draw the view: markers up to ``MARKERS_MAX`` points, a binned image above, or a log hexbin."""
        if self.session is None:
            return
        for artist in (self._data_artist, self._ring_artist, self._mask_artist):
            if artist is not None:
                artist.remove()
        self._data_artist = self._ring_artist = self._mask_artist = None
        xy = self._view_xy
        finite = np.isfinite(xy).all(axis=1)
        self._extent = extent_of(xy)
        if self.density.isChecked() and finite.any():
            self._data_artist = self.ax.hexbin(xy[finite, 0], xy[finite, 1], gridsize=DENSITY_GRID, bins="log",
                                               cmap="magma", mincnt=1, linewidths=0)
        elif len(xy) > MARKERS_MAX:
            self._data_artist = self.ax.imshow(self._raster_colors(), extent=self._extent, origin="lower",
                                               aspect="auto", interpolation="nearest")
        else:
            self._data_artist = self.ax.scatter(xy[:, 0], xy[:, 1], s=_marker_size(len(xy)),
                                                c=self.session.colors(self._view_rows), linewidths=0)
        self._ring_artist = self.ax.scatter([], [], s=_marker_size(len(xy)) * 3, facecolors="none",
                                            edgecolors=SELECTED_RING, linewidths=0.8)
        self._mask_artist = self.ax.imshow(np.zeros((2, 2, 4)), extent=self._extent, origin="lower", aspect="auto",
                                           interpolation="nearest", visible=False)
        self.ax.set_xlim(*self._extent[:2])
        self.ax.set_ylim(*self._extent[2:])
        if not finite.any():
            self._say("this table has no afmUMAP0/afmUMAP1 coordinates to plot")
        self.ax.set_xlabel(f"{self._view_label} 0")
        self.ax.set_ylabel(f"{self._view_label} 1")
        self.ax.set_title(f"{len(xy)} particles" + (" (re-embedded selection)" if self._view_label != "UMAP" else ""),
                          fontsize=9)
        self._update_rings()

    def _raster_colors(self) -> np.ndarray:
        assert self.session is not None
        return scatter_image(self._view_xy, self.session.colors(self._view_rows), self._extent)

    def _update_rings(self) -> None:
        """Mark the selection in the scatter: rings for a few points, a yellow overlay image for many."""
        if self._ring_artist is None or self._mask_artist is None:
            return
        shown = np.isin(self._view_rows, self.selection) if len(self.selection) else np.zeros(len(self._view_rows), bool)
        n = int(shown.sum())
        if n <= RINGS_MAX:
            self._ring_artist.set_offsets(self._view_xy[shown] if n else np.zeros((0, 2)))
            self._mask_artist.set_visible(False)
        else:
            self._ring_artist.set_offsets(np.zeros((0, 2)))
            self._mask_artist.set_data(mask_image(self._view_xy[shown], self._extent, SELECTED_RGBA))
            self._mask_artist.set_visible(True)
        self.canvas.draw_idle()

    def _on_tool(self, name: str) -> None:
        self.lasso.set_active(name == "lasso")
        self.box.set_active(name == "box")

    def _is_click(self, corner0: np.ndarray, corner1: np.ndarray) -> bool:
        span = np.abs(np.subtract(self.ax.get_xlim()[1], self.ax.get_xlim()[0])), np.abs(
            np.subtract(self.ax.get_ylim()[1], self.ax.get_ylim()[0]))
        size = np.abs(np.asarray(corner1) - np.asarray(corner0)) / np.asarray(span)
        return bool((size < 0.01).all())

    def _click(self, point: np.ndarray) -> None:
        span = (np.ptp(self.ax.get_xlim()), np.ptp(self.ax.get_ylim()))
        self.select_rows(self._view_rows[[nearest_point(self._view_xy, tuple(point), span)]])

    def _on_lasso(self, verts) -> None:
        verts = np.asarray(verts, dtype=float)
        if len(verts) < 3 or self._is_click(verts.min(axis=0), verts.max(axis=0)):
            if len(verts):
                self._click(verts[0])
            return
        self.select_polygon(verts)

    def _on_box(self, press, release) -> None:
        c0 = np.array([press.xdata, press.ydata], dtype=float)
        c1 = np.array([release.xdata, release.ydata], dtype=float)
        if self._is_click(c0, c1):
            self._click(c0)
        else:
            self.select_box(c0, c1)

    # ------------------------------------------------------------- selection
    def select_polygon(self, polygon: np.ndarray) -> np.ndarray:
        """Select the particles inside a polygon drawn in the scatter's coordinates."""
        rows = self._view_rows[points_in_polygon(self._view_xy, polygon)]
        self.select_rows(rows)
        return rows

    def select_box(self, corner0: np.ndarray, corner1: np.ndarray) -> np.ndarray:
        rows = self._view_rows[points_in_box(self._view_xy, tuple(corner0), tuple(corner1))]
        self.select_rows(rows)
        return rows

    def select_rows(self, rows: np.ndarray) -> None:
        """Select table rows: rings in the scatter, selection and yellow border in the viewer."""
        self.selection = np.unique(np.asarray(rows, dtype=np.int64))
        self._update_rings()
        self._push_selection_to_layers()
        self._say(f"{len(self.selection)} particle(s) selected")
        if len(self.selection) == 1:
            self.show_particle(int(self.selection[0]))

    def _push_selection_to_layers(self) -> None:
        self._syncing = True
        try:
            for layer in self.points_layers:
                layer_rows = layer.metadata["rows"]
                positions = self._row_pos[self.selection[np.isin(self.selection, layer_rows)]]
                # napari's own selection costs ~60 us per point (Python sets, highlight copies):
                # above VIEWER_SELECTION_MAX the yellow border alone shows the selection.
                layer.selected_data = set(positions.tolist()) if len(positions) <= VIEWER_SELECTION_MAX else set()
                self._paint_borders(layer, positions)
        finally:
            self._syncing = False

    @staticmethod
    def _paint_borders(layer, positions: np.ndarray) -> None:
        border = np.tile(PLAIN_BORDER, (len(layer.data), 1))
        border[positions] = SELECTED_BORDER
        layer.border_color = border

    def _on_layer_selection(self, layer) -> None:
        if self._syncing or self.session is None:
            return
        rows = [ly.metadata["rows"][np.fromiter(ly.selected_data, dtype=np.int64)] for ly in self.points_layers]
        self.selection = np.unique(np.concatenate(rows)) if rows else np.zeros(0, dtype=np.int64)
        self._syncing = True
        try:
            positions = np.fromiter(layer.selected_data, dtype=np.int64)
            self._paint_borders(layer, positions)
        finally:
            self._syncing = False
        self._update_rings()
        if len(self.selection) == 1:
            self.show_particle(int(self.selection[0]))

    # -------------------------------------------------------------- relabel
    def assign_selected(self, name: str) -> None:
        """Assign the selection to class ``name`` (a new name becomes a new class)."""
        if self.session is None or not len(self.selection):
            raise ValueError("select particles first")
        self.session.assign(self.selection, name)
        self.recolor()
        self._fill_lists()
        self._say(f"assigned {len(self.selection)} particle(s) to '{name.strip()}' (not saved yet)")

    def reject_selected(self) -> None:
        if self.session is None or not len(self.selection):
            raise ValueError("select particles first")
        self.session.reject(self.selection)
        self.recolor()
        self._say(f"rejected {len(self.selection)} particle(s) (not saved yet)")

    def recolor(self) -> None:
        """Push the session's classes to every layer (colours, features) and the scatter."""
        assert self.session is not None
        for layer in self.points_layers:
            rows = layer.metadata["rows"]
            layer.features = self.session.features(rows)
            layer.face_color = self.session.colors(rows)
        if self._data_artist is not None and not self.density.isChecked():
            if len(self._view_rows) > MARKERS_MAX:
                self._data_artist.set_data(self._raster_colors())
            else:
                self._data_artist.set_facecolor(self.session.colors(self._view_rows))
            self.canvas.draw_idle()

    def save(self, path: str | Path | None = None, *, overwrite: bool = False) -> Path:
        """Write the edited table (default ``particles_edited.star`` beside the results)."""
        if self.session is None:
            raise ValueError("nothing to save")
        written = self.session.save(path, overwrite=overwrite)
        self._say(f"saved {written}")
        return written

    def _on_save_clicked(self) -> None:
        if self.session is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save edited particles", str(self.session.default_save_path()),
                                              "STAR files (*.star)")
        if not path:
            return
        overwrite = False
        if Path(path).exists():
            # Qt's dialog asks already on most platforms; ask again for the original table.
            original = self.session.source is not None and Path(path).resolve() == Path(self.session.source).resolve()
            text = f"{path} is the ORIGINAL table. Overwrite it?" if original else f"Overwrite {path}?"
            answer = QMessageBox.question(self, "Overwrite?", text, QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
            if answer != QMessageBox.Yes:
                return
            overwrite = True
        self._guard(self.save, path, overwrite=overwrite)

    # -------------------------------------------------------------- embedding
    def reembed_selection(self) -> np.ndarray:
        """UMAP of the selected particles only; the scatter then shows just them."""
        if self.session is None or not len(self.selection):
            raise ValueError("select particles first")
        rows = self.selection.copy()
        xy = reembed(self.session.latents()[rows])
        self._show_embedding(rows, xy)
        return xy

    def _show_embedding(self, rows: np.ndarray, xy: np.ndarray) -> None:
        assert self.session is not None
        self._view_rows, self._view_xy, self._view_label = rows, xy, "re-UMAP"
        self._draw_scatter()
        self._say(f"re-embedded {len(rows)} particles from {self.session.latent_source}")

    def _on_reembed_clicked(self) -> None:
        if self.session is None or not len(self.selection):
            self._say("select particles first")
            return
        from napari.qt.threading import create_worker

        rows = self.selection.copy()
        vectors = self.session.latents()[rows]
        self._say(f"re-embedding {len(rows)} particles ({self.session.latent_source})...")
        self.reembed_button.setEnabled(False)
        worker = create_worker(reembed, vectors)
        worker.returned.connect(lambda xy: self._show_embedding(rows, xy))
        worker.errored.connect(lambda exc: self._say(f"re-embedding failed: {exc}"))
        worker.finished.connect(lambda: self.reembed_button.setEnabled(True))
        worker.start()

    # ---------------------------------------------------------------- poses
    def set_poses_visible(self, visible: bool) -> None:
        """Add (or remove) a vectors layer per tomogram showing each particle's rotated z axis."""
        if self.session is None:
            return
        for layer in self._session_layers("vectors"):
            self.viewer.layers.remove(layer)
        if visible:
            for tomo in self.session.tomogram_names():
                data, kwargs, _ = vectors_layer(self.session, tomo)
                self.viewer.add_vectors(data, **kwargs)

    # --------------------------------------------------------- one particle
    def jump_to_medoid(self, cluster: str | None) -> int | None:
        """Select the cluster's medoid, centre the view on it and show it up close."""
        if self.session is None or cluster is None:
            return None
        rows = self.session.cluster_rows().get(str(cluster))
        if rows is None or not len(rows):
            return None
        row = self.session.medoid_row(rows)
        self.select_rows(np.array([row]))
        self.centre_on(row)
        self._say(f"cluster {cluster}: medoid is particle {int(self.session.table['afmParticleId'].iloc[row])} "
                  f"(distances in {self.session.latent_source})")
        return row

    def centre_on(self, row: int) -> None:
        """Show the particle's tomogram, move the slice and camera to the particle."""
        assert self.session is not None
        t = self.session.table.iloc[row]
        tomo = str(t["rlnTomoName"])
        pixel = self.session.pixel_size(tomo)
        for layer in self.viewer.layers:
            if layer.metadata.get("affinitomo") is self.session and layer.metadata.get("tomogram"):
                layer.visible = layer.metadata["tomogram"] == tomo
        zyx = np.array([t["rlnCoordinateZ"], t["rlnCoordinateY"], t["rlnCoordinateX"]], dtype=float) * pixel
        self.viewer.dims.set_point(range(3), tuple(zyx))
        self.viewer.camera.center = tuple(zyx)

    def show_particle(self, row: int) -> None:
        """Three orthogonal slices of the particle's subtomogram, the model's reconstruction
        (when the run has a checkpoint; CPU, model cached) and the class average."""
        if self.session is None:
            return
        self._current_row = int(row)
        aligned = self.aligned.isChecked()
        name = str(self.session.table["afmClassName"].iloc[row])
        pid = int(self.session.table["afmParticleId"].iloc[row])
        sub = self.session.subtomogram(row, aligned=aligned)
        try:
            recon = self.session.reconstruction(row, aligned=aligned)
        except (InputError, ValueError) as exc:  # a checkpoint that is not ours, a wrong box
            recon = (None, f"reconstruction failed: {exc}")
        average = self.session.class_average(name)
        draw_particle(self.particle_figure, [
            (sub, f"particle {pid} ({name or 'unlabelled'})" if sub is not None else "particle: tomogram not loaded"),
            recon,
            (average, f"average {name}" if average is not None else f"average: none for '{name or 'unlabelled'}'"),
        ])
        self.particle_canvas.draw_idle()

    def _show_current_particle(self) -> None:
        if getattr(self, "_current_row", None) is not None:
            self.show_particle(self._current_row)
