"""Dock widget: the review of a session's particles (legend, relabelling, one-particle view), with the UMAP
panel (:mod:`affinitomo.napari.scatter`) docked beside it.

Selection is a set of rows of the session's particle table. A lasso or box in the
scatter selects those rows in every points layer of the session (napari selection,
filled disc and a yellow outline, visible in any mode); selecting points in the
viewer selects them in the scatter (yellow rings). Selecting one particle (a click
in the scatter, a legend entry, "Jump to medoid") shows its tomogram, moves the
slice and camera to it and shows it up close: three orthogonal slices of its
subtomogram, of the model's reconstruction (when the run has a checkpoint) and of
the average of its class or unknown group. Only the shown tomogram's layers
(image, particles, poses) are visible.

The legend lists every class and unknown group with its colour and symbol, its
count, and its average (a slice; ``averages/<name>.mrc``); its check box shows or
hides the group in the viewer and the scatter (hidden particles cannot be
selected). The UMAP panel's confidence threshold hides, in both too, the particles
whose ``afmConfidence`` is below it. Clicking an entry, or picking a cluster, jumps
to its medoid.

Edits in the viewer: Delete (key or button) rejects the selected particles (they
stay in the table, flagged, and can be assigned again), a moved particle gets its
new coordinates, adding particles is refused (the table's rows follow the
subtomogram stack). Every action reports in the status line; errors become
messages there, never exceptions into Qt. Unsaved edits are autosaved beside the
results (``particles_autosave.star``) a while after the last edit and when the
widget closes with the viewer.

Large tables stay fluid: the scatter bins many points into an image (see
:mod:`affinitomo.napari.scatter`), and above ``VIEWER_SELECTION_MAX`` selected
particles the viewer shows the selection by colour only (napari's own selection
costs ~60 us per point). Edits always apply to the widget's selection.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtCore import QSize, Qt, QTimer
from qtpy.QtGui import QIcon
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from affinitomo.errors import InputError
from affinitomo.napari.features import GROUP_LABELS, coordinates_zyx, group_label
from affinitomo.napari.layers import selection_colors, vectors_layer
from affinitomo.napari.orthoviews import draw_particle
from affinitomo.napari.qt_parts import THUMB, average_icon, button, swatch_icon
from affinitomo.napari.scatter import ScatterPanel
from affinitomo.napari.session import ReviewSession

if TYPE_CHECKING:
    import napari

log = logging.getLogger(__name__)

VIEWER_SELECTION_MAX = 10_000  # above: the viewer shows the selection by colour only (see below)
AUTOSAVE_DELAY_MS = 30_000  # unsaved edits are autosaved this long after the last one
SCATTER_DOCK = "affinitomo UMAP"
SCATTER_DOCK_WIDTH, REVIEW_DOCK_WIDTH = 500, 380  # pixels, when the UMAP panel is docked beside the review
COL_SHOW, COL_NAME, COL_COUNT, COL_AVERAGE = range(4)


class ReviewWidget(QWidget):
    """Review particles of the affinitomo session shown in ``napari_viewer``."""

    def __init__(self, napari_viewer: "napari.Viewer", parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.session: ReviewSession | None = None
        self.selection = np.zeros(0, dtype=np.int64)  # table rows
        self.hidden: set[str] = set()  # groups hidden in the viewer and the scatter
        self.min_confidence = 0.0  # particles below it are hidden in the viewer and the scatter
        self.shown_tomogram: str | None = None
        self.points_layers: list = []
        self._syncing = False
        self._scatter_docked = False
        self.scatter = ScatterPanel(self)
        self._thumbnails: dict[str, QIcon | None] = {}
        self._autosave_timer = QTimer(self)
        self._autosave_timer.setSingleShot(True)
        self._autosave_timer.setInterval(AUTOSAVE_DELAY_MS)
        self._autosave_timer.timeout.connect(self.autosave)
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

        row = QHBoxLayout()
        self.tomo_box = QComboBox()
        self.tomo_box.setToolTip("The tomogram shown; only its particles and poses are drawn")
        self.tomo_box.currentIndexChanged.connect(
            lambda i: i >= 0 and self.show_tomogram(str(self.tomo_box.itemData(i))))
        row.addWidget(QLabel("tomogram:"))
        row.addWidget(self.tomo_box, 1)
        layout.addLayout(row)

        row = QHBoxLayout()
        self.poses = QCheckBox("poses")
        self.poses.setToolTip("Show each particle's pose as a vector (its rotated reference z axis)")
        self.poses.toggled.connect(self.set_poses_visible)
        self.scatter_button = button("UMAP panel", lambda: self._guard(self.show_scatter),
                                     "Show the UMAP panel (docked beside this one; float or resize it at will)")
        row.addWidget(self.poses)
        row.addStretch(1)
        row.addWidget(self.scatter_button)
        layout.addLayout(row)

        group = QGroupBox("Classes and unknown groups")
        box = QVBoxLayout(group)
        self.legend = QTreeWidget()
        self.legend.setColumnCount(4)
        self.legend.setHeaderLabels(["show", "class / group", "n", "average"])
        self.legend.setRootIsDecorated(False)
        self.legend.setIconSize(QSize(THUMB, THUMB))
        self.legend.setToolTip("Tick to show or hide a group; click a name to jump to its medoid")
        self.legend.setMinimumHeight(250)
        self.legend.itemChanged.connect(self._on_legend_changed)
        self.legend.itemClicked.connect(self._on_legend_clicked)
        box.addWidget(self.legend)
        layout.addWidget(group)

        row = QHBoxLayout()
        self.clusters = QComboBox()
        self.clusters.setToolTip("Picking a cluster jumps to its medoid")
        self.clusters.activated.connect(lambda _: self._guard(self.jump_to_medoid, self.clusters.currentData()))
        self.medoid_button = button("Jump to medoid",
                                    lambda: self._guard(self.jump_to_medoid, self.clusters.currentData()),
                                    "Select and centre the cluster's most central particle (in latent space)")
        row.addWidget(QLabel("cluster:"))
        row.addWidget(self.clusters, 1)
        row.addWidget(self.medoid_button)
        layout.addLayout(row)

        group = QGroupBox("Relabel selection")
        grid = QGridLayout(group)
        self.class_box = QComboBox()
        self.class_box.setEditable(True)
        self.class_box.setToolTip("Pick a class or type a new class name")
        self.assign_button = button("Assign", lambda: self._guard(self.assign_selected, self.class_box.currentText()),
                                    "Assign the selected particles to this class")
        self.reject_button = button("Reject", lambda: self._guard(self.reject_selected),
                                    "Flag the selected particles as rejected (kept in the table; Assign undoes it)")
        self.save_button = button("Save as...", lambda: self._guard(self._on_save_clicked),
                                  "Write the edited table as a STAR file")
        grid.addWidget(self.class_box, 0, 0, 1, 2)
        grid.addWidget(self.assign_button, 0, 2)
        grid.addWidget(self.reject_button, 1, 0)
        grid.addWidget(self.save_button, 1, 1, 1, 2)
        layout.addWidget(group)

        self.particle_figure = Figure(figsize=(4, 4.0), tight_layout=True)
        self.particle_canvas = FigureCanvasQTAgg(self.particle_figure)
        self.particle_canvas.setMinimumHeight(240)
        self.aligned = QCheckBox("align particle to its pose")
        self.aligned.toggled.connect(lambda _: self._show_current_particle())
        layout.addWidget(self.aligned)
        layout.addWidget(self.particle_canvas)

        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        layout.addWidget(self.status)

    def show_scatter(self) -> None:
        """Show the UMAP panel: docked beside this widget (again, after it was closed), or raised."""
        dock = _dock_of(self.scatter)
        if dock is not None:
            dock.show()
            dock.raise_()
            return
        window = getattr(self.viewer, "window", None)
        if window is None:
            self.scatter.show()
            return
        dock = window.add_dock_widget(self.scatter, name=SCATTER_DOCK, area="right")
        own = _dock_of(self)
        if own is not None and not own.isFloating():
            main = window._qt_window
            main.splitDockWidget(dock, own, Qt.Horizontal)  # UMAP beside the canvas, this outside
            # once the split is laid out (resizing before that has no effect)
            QTimer.singleShot(0, lambda: main.resizeDocks([dock, own], [SCATTER_DOCK_WIDTH, REVIEW_DOCK_WIDTH],
                                                          Qt.Horizontal))

    def showEvent(self, event) -> None:  # noqa: N802 (Qt)
        """The first time the widget shows (napari has docked it), the UMAP panel is docked beside it."""
        super().showEvent(event)
        if not self._scatter_docked:
            self._scatter_docked = True
            self._guard(self.show_scatter)

    def _say(self, text: str) -> None:
        self.status.setText(text)
        log.info("%s", text)

    def _guard(self, func, *args, **kwargs):
        """Run a button's action; report any failure in the status line instead of raising into Qt."""
        try:
            return func(*args, **kwargs)
        except Exception as exc:  # the GUI boundary: every failure becomes a message
            log.warning("%s failed", getattr(func, "__name__", "action"), exc_info=True)
            self._say(f"{exc}" if isinstance(exc, (ValueError, OSError)) else f"{type(exc).__name__}: {exc}")
            return None

    # --------------------------------------------------------------- session
    def _on_layer_inserted(self, event) -> None:
        session = getattr(event.value, "metadata", {}).get("affinitomo")
        if isinstance(session, ReviewSession) and session is not self.session:
            self.attach(session)
        elif session is self.session:
            self._refresh_layers()

    def attach(self, session: ReviewSession) -> None:
        """Review ``session`` (the one reviewed so far is autosaved first): fill the scatter, legend,
        tomogram, class and cluster lists."""
        self.autosave()
        self.session = session
        self.selection = np.zeros(0, dtype=np.int64)
        self.hidden = set()
        self.min_confidence = 0.0
        self._thumbnails = {}
        n = len(session.table)
        self._row_pos = np.zeros(n, dtype=np.int64)
        for tomo in session.tomogram_names():
            rows = session.rows_of(tomo)
            self._row_pos[rows] = np.arange(len(rows))
        source = session.source if session.source is not None else "demo"
        text = f"{source}: {n} particles in {len(session.tomogram_names())} tomogram(s)"
        autosave = session.autosave_path()
        if autosave.is_file() and (session.source is None or autosave.resolve() != Path(session.source).resolve()):
            text += f". Unsaved edits of an earlier review are in {autosave}: open it to go on with them."
        self.info.setText(text)
        self.viewer.scale_bar.visible = True
        self._refresh_layers()
        self._fill_lists()
        self.tomo_box.blockSignals(True)
        self.tomo_box.clear()
        per_tomogram = session.table["rlnTomoName"].astype(str).value_counts()
        for name in session.tomogram_names():  # each tomogram with its particle count
            self.tomo_box.addItem(f"{name} ({int(per_tomogram.get(name, 0))})", name)
        self.tomo_box.blockSignals(False)
        self.tomo_box.setEnabled(len(session.tomogram_names()) > 1)
        self.scatter.attach(session)
        if session.tomogram_names():
            self.show_tomogram(session.tomogram_names()[0])
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
        key = self.clusters.currentData()
        self.clusters.clear()
        for k, rows in self.session.cluster_rows().items():
            self.clusters.addItem(f"{k} ({len(rows)})", k)
        if key is not None and self.clusters.findData(key) >= 0:
            self.clusters.setCurrentIndex(self.clusters.findData(key))
        self._fill_legend()

    def _fill_legend(self) -> None:
        """One entry per class and group: show box and symbol, name, count, average."""
        assert self.session is not None
        palette = self.session.palette
        self.legend.blockSignals(True)
        self.legend.clear()
        for group, count in self.session.legend():
            item = QTreeWidgetItem()
            item.setData(COL_SHOW, Qt.UserRole, group)
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(COL_SHOW, Qt.Unchecked if group in self.hidden else Qt.Checked)
            item.setIcon(COL_SHOW, swatch_icon(palette.color(group), palette.symbol(group)))
            item.setText(COL_NAME, group_label(group))
            item.setText(COL_COUNT, str(count))
            item.setTextAlignment(COL_COUNT, int(Qt.AlignRight | Qt.AlignVCenter))
            icon = self._thumbnail(group)
            if icon is not None:
                item.setIcon(COL_AVERAGE, icon)
                item.setToolTip(COL_AVERAGE, f"average of {group} (central XY slice)")
            self.legend.addTopLevelItem(item)
        for column in range(self.legend.columnCount()):
            self.legend.resizeColumnToContents(column)
        self.legend.blockSignals(False)

    def _thumbnail(self, group: str) -> QIcon | None:
        if group not in self._thumbnails:
            volume = self.session.class_average(group) if group not in GROUP_LABELS else None
            self._thumbnails[group] = average_icon(volume) if volume is not None else None
        return self._thumbnails[group]

    def legend_entries(self) -> dict[str, QTreeWidgetItem]:
        """The legend's items by group."""
        items = (self.legend.topLevelItem(i) for i in range(self.legend.topLevelItemCount()))
        return {item.data(COL_SHOW, Qt.UserRole): item for item in items}

    def _session_layers(self, kind: str) -> list:
        return [ly for ly in self.viewer.layers
                if ly.metadata.get("affinitomo") is self.session and ly._type_string == kind]

    def _refresh_layers(self) -> None:
        """(Re)connect the session's points layers: selection, moves, Delete (= reject), no adding."""
        self.points_layers = self._session_layers("points")
        for layer in self.points_layers:
            if getattr(layer, "_affinitomo_connected", False):
                continue
            events = layer.selected_data.events  # psygnal (napari >= 0.6) or napari's own EmitterGroup
            signal = events.items_changed if hasattr(events, "items_changed") else events.changed
            signal.connect(lambda *_, ly=layer: self._on_layer_selection(ly))
            layer.events.data.connect(lambda event, ly=layer: self._guard(self._on_layer_data, ly, event))
            # Delete (key, layer button, remove_selected) goes through Points.remove: reject instead,
            # so the rows stay in the table and the layer keeps one point per row.
            layer.remove = lambda indices, ly=layer: self._guard(self.reject_points, ly, indices)
            # Adding (add mode) and pasting (Ctrl+V, which bypasses Points.add) are refused.
            layer.add = layer._paste_data = self._refuse_adding
            layer.metadata["colors"] = self.session.colors(layer.metadata["rows"])
            layer._affinitomo_connected = True

    # ------------------------------------------------------------ visibility
    def visible(self, rows: np.ndarray) -> np.ndarray:
        """Which of ``rows`` are shown: their group is ticked in the legend and their confidence is not below
        the threshold (a particle without one is never hidden)."""
        assert self.session is not None
        shown = np.ones(len(rows), dtype=bool)
        if self.hidden:
            shown &= ~np.isin(self.session.groups(rows).astype(str), list(self.hidden))
        if self.min_confidence > 0:
            shown &= ~(self.session.confidence(rows) < self.min_confidence)
        return shown

    def set_group_visible(self, group: str, visible: bool) -> None:
        """Show or hide a class or group in the viewer and the scatter (its legend box follows)."""
        (self.hidden.discard if visible else self.hidden.add)(group)
        item = self.legend_entries().get(group)
        if item is not None and (item.checkState(COL_SHOW) == Qt.Checked) != visible:
            self.legend.blockSignals(True)
            item.setCheckState(COL_SHOW, Qt.Checked if visible else Qt.Unchecked)
            self.legend.blockSignals(False)
        self._apply_visibility()

    def set_min_confidence(self, value: float) -> None:
        """Hide the particles whose ``afmConfidence`` is below ``value`` in the viewer and the scatter (0: hide
        none); the hidden ones leave the selection."""
        self.min_confidence = float(value)
        self.scatter.show_threshold(self.min_confidence)
        self._apply_visibility()
        if self.session is None:
            return
        if self.min_confidence > 0:
            below = int((self.session.confidence() < self.min_confidence).sum())
            self._say(f"{below} particle(s) with confidence below {self.min_confidence:.2f} hidden")
        else:
            self._say("no particle hidden by confidence")

    def _apply_visibility(self) -> None:
        if self.session is None:
            return
        for layer in self.points_layers:
            layer.shown = self.visible(layer.metadata["rows"])
        keep = self.visible(self.selection)
        self.scatter.redraw()
        if not keep.all():
            self.select_rows(self.selection[keep], move=False)

    def _on_legend_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if column == COL_SHOW:
            self.set_group_visible(item.data(COL_SHOW, Qt.UserRole), item.checkState(COL_SHOW) == Qt.Checked)

    def _on_legend_clicked(self, item: QTreeWidgetItem, column: int) -> None:
        if column != COL_SHOW:
            self._guard(self.jump_to_group, item.data(COL_SHOW, Qt.UserRole))

    # ------------------------------------------------------------- selection
    def select_rows(self, rows: np.ndarray, *, move: bool = True) -> None:
        """Select table rows (hidden groups left out): rings in the scatter, selection in the viewer.

        With ``move``, one particle is centred in its tomogram and shown up close; several
        bring up the tomogram holding most of them when the shown one holds none.
        """
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        self.selection = rows[self.visible(rows)] if self.session is not None else rows
        self.scatter.show_selection()
        self._push_selection_to_layers()
        self._say(f"{len(self.selection)} particle(s) selected")
        if len(self.selection) == 1:
            if move:
                self.centre_on(int(self.selection[0]))
            self.show_particle(int(self.selection[0]))
        elif move and len(self.selection):
            self._show_tomogram_of(self.selection)

    def _push_selection_to_layers(self) -> None:
        self._syncing = True
        try:
            for layer in self.points_layers:
                layer_rows = layer.metadata["rows"]
                positions = self._row_pos[self.selection[np.isin(self.selection, layer_rows)]]
                # napari's own selection costs ~60 us per point (Python sets, highlight copies):
                # above VIEWER_SELECTION_MAX the colours alone show the selection.
                layer.selected_data = set(positions.tolist()) if len(positions) <= VIEWER_SELECTION_MAX else set()
                self._paint(layer, positions)
        finally:
            self._syncing = False

    @staticmethod
    def _paint(layer, positions: np.ndarray) -> None:
        """Outlines in the group colours; the selected ``positions`` filled, with a yellow outline."""
        layer.face_color, layer.border_color = selection_colors(layer.metadata["colors"], positions)

    def _on_layer_selection(self, layer) -> None:
        if self._syncing or self.session is None:
            return
        rows = [ly.metadata["rows"][np.fromiter(ly.selected_data, dtype=np.int64)] for ly in self.points_layers]
        self.selection = np.unique(np.concatenate(rows)) if rows else np.zeros(0, dtype=np.int64)
        self._syncing = True
        try:
            self._paint(layer, np.fromiter(layer.selected_data, dtype=np.int64))
        finally:
            self._syncing = False
        self.scatter.show_selection()
        if len(self.selection) == 1:
            self.show_particle(int(self.selection[0]))

    # -------------------------------------------------------------- relabel
    def assign_selected(self, name: str) -> None:
        """Assign the selection to class ``name`` (a new name becomes a new class)."""
        if self.session is None or not len(self.selection):
            raise ValueError("select particles first")
        self.session.assign(self.selection, name)
        self._edited(f"assigned {len(self.selection)} particle(s) to '{name.strip()}'")

    def reject_selected(self) -> None:
        if self.session is None or not len(self.selection):
            raise ValueError("select particles first")
        self.reject_rows(self.selection)

    def reject_rows(self, rows: np.ndarray) -> None:
        assert self.session is not None
        self.session.reject(rows)
        self._edited(f"rejected {len(rows)} particle(s) (kept in the table as afmRejected = 1; Assign undoes it)")

    def reject_points(self, layer, indices) -> None:
        """Delete in a points layer: reject the particles at ``indices`` (positions in the layer)."""
        indices = np.asarray(sorted(indices), dtype=np.int64)
        if len(indices):
            self.reject_rows(layer.metadata["rows"][indices])

    def _refuse_adding(self, *_, **__) -> None:
        self._say("particles cannot be added here: the table's rows follow the subtomogram stack")

    def _on_layer_data(self, layer, event) -> None:
        """A point moved in the viewer: the particle gets the new centre (saved with the table)."""
        if self.session is None or str(getattr(event, "action", "")) != "changed":
            return
        rows = layer.metadata["rows"]
        if len(layer.data) != len(rows):
            self._say(f"{layer.name}: {len(layer.data)} points for {len(rows)} particles; its edits cannot be kept")
            return
        indices = np.asarray(event.data_indices if event.data_indices else range(len(rows)), dtype=np.int64)
        zyx = np.asarray(layer.data, dtype=np.float64)[indices]
        moved = ~np.isclose(zyx, coordinates_zyx(self.session.table.iloc[rows[indices]]), atol=1e-6).all(axis=1)
        if not moved.any():
            return
        self.session.move(rows[indices[moved]], zyx[moved][:, ::-1])
        if self.poses.isChecked():
            self.set_poses_visible(True)
        self._edited(f"moved {int(moved.sum())} particle(s) to new coordinates (latents and UMAP are those of "
                     f"the old position)")

    def _edited(self, what: str) -> None:
        """After an edit: colours, legend and lists follow; autosave a while later."""
        self.recolor()
        self._fill_lists()
        self._autosave_timer.start()
        self._say(f"{what} (not saved yet)")

    def recolor(self) -> None:
        """Push the session's groups to every layer (colours, symbols, features, shown) and the scatter."""
        assert self.session is not None
        for layer in self.points_layers:
            rows = layer.metadata["rows"]
            layer.metadata["colors"] = self.session.colors(rows)
            layer.features = self.session.features(rows)
            layer.symbol = self.session.symbols(rows)
            layer.shown = self.visible(rows)
            self._paint(layer, self._row_pos[self.selection[np.isin(self.selection, rows)]])
        self.scatter.redraw()

    def save(self, path: str | Path | None = None, *, overwrite: bool = False) -> Path:
        """Write the edited table (default ``particles_edited.star`` beside the results)."""
        if self.session is None:
            raise ValueError("nothing to save")
        written = self.session.save(path, overwrite=overwrite)
        self._autosave_timer.stop()
        self._say(f"saved {len(self.session.table)} particles to {written}")
        return written

    def autosave(self) -> Path | None:
        """Write unsaved edits to the session's autosave file (beside the results); says where."""
        if self.session is None:
            return None
        try:
            path = self.session.autosave()
        except (OSError, ValueError) as exc:
            log.warning("autosave failed", exc_info=True)
            self._say(f"autosave failed: {exc}; use Save as...")
            return None
        if path is not None:
            self._say(f"unsaved edits autosaved to {path}")
        return path

    def hideEvent(self, event) -> None:  # noqa: N802 (Qt)
        """The viewer closing (or the dock hidden): autosave unsaved edits."""
        self.autosave()
        super().hideEvent(event)

    def _on_save_clicked(self) -> None:
        if self.session is None:
            self._say("nothing to save: open a results folder first")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save edited particles", str(self.session.default_save_path()),
                                              "STAR files (*.star)", "", QFileDialog.DontConfirmOverwrite)
        if not path:
            self._say("not saved")
            return
        path = Path(path)
        if path.suffix.lower() != ".star":
            path = path.with_name(path.name + ".star")
        overwrite = False
        if path.exists():
            original = self.session.source is not None and path.resolve() == Path(self.session.source).resolve()
            text = f"{path} is the ORIGINAL table. Overwrite it?" if original else f"Overwrite {path}?"
            answer = QMessageBox.question(self, "Overwrite?", text, QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
            if answer != QMessageBox.Yes:
                self._say("not saved")
                return
            overwrite = True
        self.save(path, overwrite=overwrite)

    # ---------------------------------------------------------------- poses
    def set_poses_visible(self, visible: bool) -> None:
        """Add (or remove) a vectors layer per tomogram showing each particle's rotated z axis
        (visible for the shown tomogram only)."""
        if self.session is None:
            return
        for layer in self._session_layers("vectors"):
            self.viewer.layers.remove(layer)
        if visible:
            for tomo in self.session.tomogram_names():
                data, kwargs, _ = vectors_layer(self.session, tomo, visible=tomo == self.shown_tomogram)
                self.viewer.add_vectors(data, **kwargs)

    # ------------------------------------------------------------ tomograms
    def show_tomogram(self, name: str) -> None:
        """Show only the tomogram ``name``'s layers (image, particles, poses); its particles become the
        active layer, so the viewer's keys act on them."""
        if self.session is None or name not in self.session.tomogram_names():
            return
        self.shown_tomogram = name
        active = None
        for layer in self.viewer.layers:
            if layer.metadata.get("affinitomo") is self.session and layer.metadata.get("tomogram"):
                layer.visible = layer.metadata["tomogram"] == name
                if layer.visible and layer._type_string == "points":
                    active = layer
        if active is not None:
            self.viewer.layers.selection.active = active
        if self.tomo_box.currentData() != name:
            self.tomo_box.blockSignals(True)
            self.tomo_box.setCurrentIndex(self.tomo_box.findData(name))
            self.tomo_box.blockSignals(False)

    def _show_tomogram_of(self, rows: np.ndarray) -> None:
        """Show the tomogram holding most of ``rows`` unless the shown one holds some."""
        assert self.session is not None
        tomos = self.session.table["rlnTomoName"].to_numpy()[rows]
        if self.shown_tomogram in set(tomos.tolist()):
            return
        names, counts = np.unique(tomos, return_counts=True)
        self.show_tomogram(str(names[np.argmax(counts)]))

    # --------------------------------------------------------- one particle
    def jump_to_medoid(self, cluster: str | None) -> int | None:
        """Select the cluster's medoid, centre the view on it and show it up close."""
        if self.session is None or cluster is None:
            return None
        rows = self.session.cluster_rows().get(str(cluster))
        return self._jump(rows, f"cluster {cluster}")

    def jump_to_group(self, group: str) -> int | None:
        """Select the medoid of a class or group's particles, centre the view on it and show it up close."""
        if self.session is None:
            return None
        if group in self.hidden:
            self.set_group_visible(group, True)
        rows = np.flatnonzero(self.session.groups().astype(str) == group)
        item = self.legend_entries().get(group)
        if item is not None:
            self.legend.setCurrentItem(item)
            self.legend.scrollToItem(item)
        return self._jump(rows, group_label(group))

    def _jump(self, rows: np.ndarray | None, what: str) -> int | None:
        assert self.session is not None
        if rows is None or not len(rows):
            self._say(f"{what}: no particles")
            return None
        rows = rows[self.visible(rows)]
        if not len(rows):
            self._say(f"{what}: all its particles are hidden (by the legend's boxes or the confidence threshold)")
            return None
        row = self.session.medoid_row(rows)
        self.select_rows(np.array([row]))
        self._say(f"{what} ({len(rows)} particles): medoid is particle "
                  f"{int(self.session.table['afmParticleId'].iloc[row])} (distances in {self.session.latent_source})")
        return row

    def centre_on(self, row: int) -> None:
        """Show the particle's tomogram, move the slice and camera to the particle."""
        assert self.session is not None
        t = self.session.table.iloc[row]
        tomo = str(t["rlnTomoName"])
        self.show_tomogram(tomo)
        zyx = np.array([t["rlnCoordinateZ"], t["rlnCoordinateY"], t["rlnCoordinateX"]], dtype=float)
        zyx *= self.session.pixel_size(tomo)
        self.viewer.dims.set_point(range(3), tuple(zyx))
        getattr(self.viewer, "scene", self.viewer).camera.center = tuple(zyx)

    def show_particle(self, row: int) -> None:
        """Three orthogonal slices of the particle's subtomogram, the model's reconstruction
        (when the run has a checkpoint; CPU, model cached) and the average of its class or group."""
        if self.session is None:
            return
        self._current_row = int(row)
        aligned = self.aligned.isChecked()
        group = str(self.session.groups([row])[0])
        label = group_label(group)
        pid = int(self.session.table["afmParticleId"].iloc[row])
        sub = self.session.subtomogram(row, aligned=aligned)
        try:
            recon = self.session.reconstruction(row, aligned=aligned)
        except (InputError, ValueError) as exc:  # a checkpoint that is not ours, a wrong box
            recon = (None, f"reconstruction failed: {exc}")
        average = self.session.class_average(group) if group not in GROUP_LABELS else None
        draw_particle(self.particle_figure, [
            (sub, f"particle {pid} ({label})" if sub is not None else "particle: tomogram not loaded"),
            recon,
            (average, f"average {group}" if average is not None else f"average: none for '{label}'"),
        ])
        self.particle_canvas.draw_idle()

    def _show_current_particle(self) -> None:
        if getattr(self, "_current_row", None) is not None:
            self.show_particle(self._current_row)


def _dock_of(widget: QWidget) -> QDockWidget | None:
    """The dock widget holding ``widget``, or None."""
    parent = widget.parentWidget()
    while parent is not None and not isinstance(parent, QDockWidget):
        parent = parent.parentWidget()
    return parent
