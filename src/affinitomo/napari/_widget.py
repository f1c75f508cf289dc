"""Dock widget: UMAP scatter linked to the particles in the tomogram, legend, relabelling, one-particle view.

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
selected). Clicking an entry, or picking a cluster, jumps to its medoid.

Edits in the viewer: Delete (key or button) rejects the selected particles (they
stay in the table, flagged, and can be assigned again), a moved particle gets its
new coordinates, adding particles is refused (the table's rows follow the
subtomogram stack). Every action reports in the status line; errors become
messages there, never exceptions into Qt. Unsaved edits are autosaved beside the
results (``particles_autosave.star``) a while after the last edit and when the
widget closes with the viewer.

Large tables stay fluid: above ``MARKERS_MAX`` points the scatter is a binned RGBA
image, above ``RINGS_MAX`` selected points the selection is an overlay image, and
above ``VIEWER_SELECTION_MAX`` the viewer shows the selection by colour only
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
from qtpy.QtCore import QPointF, QSize, Qt, QTimer
from qtpy.QtGui import QColor, QIcon, QImage, QPainter, QPen, QPixmap, QPolygonF
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
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from affinitomo.errors import InputError
from affinitomo.napari.contrast import contrast_limits
from affinitomo.napari.features import REJECTED, UNKNOWN, UNLABELLED, coordinates_zyx
from affinitomo.napari.layers import selection_colors, vectors_layer
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
VIEWER_SELECTION_MAX = 10_000  # above: the viewer shows the selection by colour only (see below)
AUTOSAVE_DELAY_MS = 30_000  # unsaved edits are autosaved this long after the last one
MARKERS = {"disc": "o", "diamond": "D", "x": "x"}  # napari symbol -> matplotlib marker
LEGEND_LABELS = {UNKNOWN: "unknown (no group)", UNLABELLED: "unlabelled", REJECTED: "rejected"}
SWATCH = 16
THUMB = 36
COL_SHOW, COL_NAME, COL_COUNT, COL_AVERAGE = range(4)


def _marker_size(n: int) -> float:
    """Scatter marker area (pt^2): large for a few points, ~1 for 100k so the plot stays readable."""
    return float(np.clip(400.0 / np.sqrt(max(n, 1)), 0.5, 25.0))


def swatch_icon(rgba: np.ndarray, symbol: str, size: int = SWATCH) -> QIcon:
    """The group's symbol as the points layer draws it: an outline in its colour."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.Antialiasing)
    painter.setPen(QPen(QColor.fromRgbF(*map(float, rgba)), 2.5))
    m, c = 2.5, size / 2
    if symbol == "diamond":
        painter.drawPolygon(QPolygonF([QPointF(c, m), QPointF(size - m, c), QPointF(c, size - m), QPointF(m, c)]))
    elif symbol == "x":
        painter.drawLine(QPointF(m, m), QPointF(size - m, size - m))
        painter.drawLine(QPointF(m, size - m), QPointF(size - m, m))
    else:
        painter.drawEllipse(QPointF(c, c), c - m, c - m)
    painter.end()
    return QIcon(pixmap)


def average_icon(volume: np.ndarray, size: int = THUMB) -> QIcon:
    """The central XY slice of an average, 1-99 percentile contrast, as a grey icon."""
    image = np.asarray(volume[volume.shape[0] // 2], dtype=np.float32)
    low, high = contrast_limits(image)
    grey = np.ascontiguousarray(np.clip((image - low) / max(high - low, 1e-12), 0, 1)[::-1] * 255, dtype=np.uint8)
    qimage = QImage(grey.data, grey.shape[1], grey.shape[0], grey.shape[1], QImage.Format_Grayscale8).copy()
    return QIcon(QPixmap.fromImage(qimage).scaled(size, size, Qt.KeepAspectRatio, Qt.SmoothTransformation))


class ReviewWidget(QWidget):
    """Review particles of the affinitomo session shown in ``napari_viewer``."""

    def __init__(self, napari_viewer: "napari.Viewer", parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.session: ReviewSession | None = None
        self.selection = np.zeros(0, dtype=np.int64)  # table rows
        self.hidden: set[str] = set()  # groups hidden in the viewer and the scatter
        self.shown_tomogram: str | None = None
        self.points_layers: list = []
        self._view_rows = np.zeros(0, dtype=np.int64)  # rows of the scatter's view (embedding)
        self._view_xy = np.zeros((0, 2))
        self._shown_rows = np.zeros(0, dtype=np.int64)  # the view's rows whose group is shown
        self._shown_xy = np.zeros((0, 2))
        self._view_label = "UMAP"
        self._syncing = False
        self._data_artists: list = []
        self._ring_artist = None
        self._mask_artist = None
        self._extent = (0.0, 1.0, 0.0, 1.0)
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
        self.tomo_box.currentTextChanged.connect(lambda name: name and self.show_tomogram(name))
        row.addWidget(QLabel("tomogram:"))
        row.addWidget(self.tomo_box, 1)
        layout.addLayout(row)

        self.figure = Figure(figsize=(4, 3.6), tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(230)
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

        group = QGroupBox("Classes and unknown groups")
        box = QVBoxLayout(group)
        self.legend = QTreeWidget()
        self.legend.setColumnCount(4)
        self.legend.setHeaderLabels(["show", "class / group", "n", "average"])
        self.legend.setRootIsDecorated(False)
        self.legend.setIconSize(QSize(THUMB, THUMB))
        self.legend.setToolTip("Tick to show or hide a group; click a name to jump to its medoid")
        self.legend.setMinimumHeight(170)
        self.legend.itemChanged.connect(self._on_legend_changed)
        self.legend.itemClicked.connect(self._on_legend_clicked)
        box.addWidget(self.legend)
        layout.addWidget(group)

        row = QHBoxLayout()
        self.clusters = QComboBox()
        self.clusters.setToolTip("Picking a cluster jumps to its medoid")
        self.clusters.activated.connect(lambda _: self._guard(self.jump_to_medoid, self.clusters.currentData()))
        self.medoid_button = QPushButton("Jump to medoid")
        self.medoid_button.setToolTip("Select and centre the cluster's most central particle (in latent space)")
        self.medoid_button.clicked.connect(lambda: self._guard(self.jump_to_medoid, self.clusters.currentData()))
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
        self.save_button.clicked.connect(lambda: self._guard(self._on_save_clicked))
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
        self.tomo_box.addItems(session.tomogram_names())
        self.tomo_box.blockSignals(False)
        self.tomo_box.setEnabled(len(session.tomogram_names()) > 1)
        self.show_full_embedding()
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
            item.setText(COL_NAME, LEGEND_LABELS.get(group, group))
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
            volume = self.session.class_average(group) if group not in LEGEND_LABELS else None
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
    def _visible(self, rows: np.ndarray) -> np.ndarray:
        assert self.session is not None
        if not self.hidden:
            return np.ones(len(rows), dtype=bool)
        return ~np.isin(self.session.groups(rows).astype(str), list(self.hidden))

    def set_group_visible(self, group: str, visible: bool) -> None:
        """Show or hide a class or group in the viewer and the scatter (its legend box follows)."""
        (self.hidden.discard if visible else self.hidden.add)(group)
        item = self.legend_entries().get(group)
        if item is not None and (item.checkState(COL_SHOW) == Qt.Checked) != visible:
            self.legend.blockSignals(True)
            item.setCheckState(COL_SHOW, Qt.Checked if visible else Qt.Unchecked)
            self.legend.blockSignals(False)
        self._apply_visibility()

    def _apply_visibility(self) -> None:
        if self.session is None:
            return
        for layer in self.points_layers:
            layer.shown = self._visible(layer.metadata["rows"])
        keep = self._visible(self.selection)
        self._draw_scatter()
        if not keep.all():
            self.select_rows(self.selection[keep], move=False)

    def _on_legend_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if column == COL_SHOW:
            self.set_group_visible(item.data(COL_SHOW, Qt.UserRole), item.checkState(COL_SHOW) == Qt.Checked)

    def _on_legend_clicked(self, item: QTreeWidgetItem, column: int) -> None:
        if column != COL_SHOW:
            self._guard(self.jump_to_group, item.data(COL_SHOW, Qt.UserRole))

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
        """Draw the view's shown rows: markers (by group symbol) up to ``MARKERS_MAX`` points, a binned image
        above, or a log hexbin."""
        if self.session is None:
            return
        for artist in (*self._data_artists, self._ring_artist, self._mask_artist):
            if artist is not None:
                artist.remove()
        self._data_artists, self._ring_artist, self._mask_artist = [], None, None
        shown = self._visible(self._view_rows)
        self._shown_rows, self._shown_xy = self._view_rows[shown], self._view_xy[shown]
        xy = self._shown_xy
        finite = np.isfinite(xy).all(axis=1)
        self._extent = extent_of(self._view_xy)
        size = _marker_size(len(xy))
        if self.density.isChecked() and finite.any():
            self._data_artists = [self.ax.hexbin(xy[finite, 0], xy[finite, 1], gridsize=DENSITY_GRID, bins="log",
                                                 cmap="magma", mincnt=1, linewidths=0)]
        elif len(xy) > MARKERS_MAX:
            self._data_artists = [self.ax.imshow(self._raster_colors(), extent=self._extent, origin="lower",
                                                 aspect="auto", interpolation="nearest")]
        else:
            colors = self.session.colors(self._shown_rows)
            symbols = self.session.symbols(self._shown_rows)
            for symbol in dict.fromkeys(symbols.tolist()):
                m = symbols == symbol
                marker = MARKERS.get(symbol, "o")
                self._data_artists.append(self.ax.scatter(xy[m, 0], xy[m, 1], s=size, c=colors[m], marker=marker,
                                                          linewidths=0.8 if marker == "x" else 0))
        self._ring_artist = self.ax.scatter([], [], s=size * 3, facecolors="none", edgecolors=SELECTED_RING,
                                            linewidths=0.8)
        self._mask_artist = self.ax.imshow(np.zeros((2, 2, 4)), extent=self._extent, origin="lower", aspect="auto",
                                           interpolation="nearest", visible=False)
        self.ax.set_xlim(*self._extent[:2])
        self.ax.set_ylim(*self._extent[2:])
        if not np.isfinite(self._view_xy).all(axis=1).any():
            self._say("this table has no afmUMAP0/afmUMAP1 coordinates to plot")
        self.ax.set_xlabel(f"{self._view_label} 0")
        self.ax.set_ylabel(f"{self._view_label} 1")
        hidden = len(self._view_rows) - len(xy)
        self.ax.set_title(f"{len(xy)} particles" + (f" ({hidden} hidden)" if hidden else "")
                          + (" (re-embedded selection)" if self._view_label != "UMAP" else ""), fontsize=9)
        self._update_rings()

    def _raster_colors(self) -> np.ndarray:
        assert self.session is not None
        return scatter_image(self._shown_xy, self.session.colors(self._shown_rows), self._extent)

    def _update_rings(self) -> None:
        """Mark the selection in the scatter: rings for a few points, a yellow overlay image for many."""
        if self._ring_artist is None or self._mask_artist is None:
            return
        n_shown = len(self._shown_rows)
        shown = np.isin(self._shown_rows, self.selection) if len(self.selection) else np.zeros(n_shown, bool)
        n = int(shown.sum())
        if n <= RINGS_MAX:
            self._ring_artist.set_offsets(self._shown_xy[shown] if n else np.zeros((0, 2)))
            self._mask_artist.set_visible(False)
        else:
            self._ring_artist.set_offsets(np.zeros((0, 2)))
            self._mask_artist.set_data(mask_image(self._shown_xy[shown], self._extent, SELECTED_RGBA))
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
        if not len(self._shown_rows):
            return
        span = (np.ptp(self.ax.get_xlim()), np.ptp(self.ax.get_ylim()))
        self.select_rows(self._shown_rows[[nearest_point(self._shown_xy, tuple(point), span)]])

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
        """Select the shown particles inside a polygon drawn in the scatter's coordinates."""
        rows = self._shown_rows[points_in_polygon(self._shown_xy, polygon)]
        self.select_rows(rows)
        return rows

    def select_box(self, corner0: np.ndarray, corner1: np.ndarray) -> np.ndarray:
        rows = self._shown_rows[points_in_box(self._shown_xy, tuple(corner0), tuple(corner1))]
        self.select_rows(rows)
        return rows

    def select_rows(self, rows: np.ndarray, *, move: bool = True) -> None:
        """Select table rows (hidden groups left out): rings in the scatter, selection in the viewer.

        With ``move``, one particle is centred in its tomogram and shown up close; several
        bring up the tomogram holding most of them when the shown one holds none.
        """
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        self.selection = rows[self._visible(rows)] if self.session is not None else rows
        self._update_rings()
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
        self._update_rings()
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
            layer.shown = self._visible(rows)
            self._paint(layer, self._row_pos[self.selection[np.isin(self.selection, rows)]])
        self._draw_scatter()

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
        if self.tomo_box.currentText() != name:
            self.tomo_box.blockSignals(True)
            self.tomo_box.setCurrentText(name)
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
        return self._jump(rows, LEGEND_LABELS.get(group, group))

    def _jump(self, rows: np.ndarray | None, what: str) -> int | None:
        assert self.session is not None
        if rows is None or not len(rows):
            self._say(f"{what}: no particles")
            return None
        rows = rows[self._visible(rows)]
        if not len(rows):
            self._say(f"{what}: all its particles are hidden (tick their groups in the legend)")
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
        label = LEGEND_LABELS.get(group, group)
        pid = int(self.session.table["afmParticleId"].iloc[row])
        sub = self.session.subtomogram(row, aligned=aligned)
        try:
            recon = self.session.reconstruction(row, aligned=aligned)
        except (InputError, ValueError) as exc:  # a checkpoint that is not ours, a wrong box
            recon = (None, f"reconstruction failed: {exc}")
        average = self.session.class_average(group) if group not in LEGEND_LABELS else None
        draw_particle(self.particle_figure, [
            (sub, f"particle {pid} ({label})" if sub is not None else "particle: tomogram not loaded"),
            recon,
            (average, f"average {group}" if average is not None else f"average: none for '{label}'"),
        ])
        self.particle_canvas.draw_idle()

    def _show_current_particle(self) -> None:
        if getattr(self, "_current_row", None) is not None:
            self.show_particle(self._current_row)
