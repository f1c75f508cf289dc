"""The review's UMAP panel: the particles' embedding as a scatter that zooms and pans, coloured by class,
cluster, confidence or tomogram, with lasso, box and click selection and the class makeup of the selection.

The panel is a dock widget of its own, beside the review widget (:class:`affinitomo.napari._widget.ReviewWidget`),
so it can be widened, floated or closed like any napari panel; its plot is at least ``MIN_SIZE`` pixels
square. It keeps only the view (the embedding shown, its colouring and limits): the selection, the hidden
groups and the confidence threshold belong to the review widget, which calls :meth:`ScatterPanel.redraw` and
:meth:`ScatterPanel.show_selection` when they change, and hides particles below the threshold in the viewer
too.

Navigation: the mouse wheel zooms about the cursor, a drag with the right or middle button (or the left
button with the "pan" tool) pans, "Reset view" shows every point again. Selection: a lasso or box with the
left button; a click selects the nearest shown particle, at any zoom.

Large views stay fluid: above ``MARKERS_MAX`` shown points the scatter is a binned RGBA image of the current
view, binned again (milliseconds) at every zoom or pan step; above ``RINGS_MAX`` selected points the selection
is an overlay image of the same bins.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backend_bases import MouseButton
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.widgets import LassoSelector, RectangleSelector
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from affinitomo.napari.features import confidence_colormap, group_label
from affinitomo.napari.qt_parts import button, swatch_icon
from affinitomo.napari.raster import extent_of, mask_image, scatter_image
from affinitomo.napari.selection import nearest_point, points_in_box, points_in_polygon, reembed

if TYPE_CHECKING:
    from affinitomo.napari._widget import ReviewWidget
    from affinitomo.napari.session import ReviewSession

SELECTED_RING = "#ffd500"
SELECTED_RGBA = (1.0, 0.84, 0.0, 0.9)
DENSITY_GRID = 80
MARKERS_MAX = 20_000  # above: the scatter is drawn as a binned image (100k markers take ~1.5 s per draw)
RINGS_MAX = 2_000  # above: the selection is drawn as an overlay image
RASTER_BIN = 2  # screen pixels per bin of the binned image (a point shows as a 2x2 square)
MARKERS = {"disc": "o", "diamond": "D", "x": "x"}  # napari symbol -> matplotlib marker
COLOR_MODES = ("class", "cluster", "confidence", "tomogram")
KEY_MAX = 12  # entries of the cluster or tomogram key; the rest are counted in one line
ZOOM_STEP = 1.25  # zoom factor per wheel step
MIN_SIZE = 450  # pixels: the plot's smallest width and height
PAN_BUTTONS = (MouseButton.MIDDLE, MouseButton.RIGHT)
COL_GROUP, COL_COUNT, COL_SHARE = range(3)


def _marker_size(n: int) -> float:
    """Scatter marker area (pt^2): large for a few points, ~1 for 100k so the plot stays readable."""
    return float(np.clip(400.0 / np.sqrt(max(n, 1)), 0.5, 25.0))


class ScatterPanel(QWidget):
    """The UMAP scatter of ``review``'s session, its colouring, navigation and selection makeup."""

    def __init__(self, review: "ReviewWidget", parent: QWidget | None = None):
        super().__init__(parent)
        self.review = review
        self._view_rows = np.zeros(0, dtype=np.int64)  # rows of the view (embedding)
        self._view_xy = np.zeros((0, 2))
        self._view_label = "UMAP"
        self._shown_rows = np.zeros(0, dtype=np.int64)  # the view's rows that are shown
        self._shown_xy = np.zeros((0, 2))
        self._shown_colors = np.zeros((0, 4), dtype=np.float32)
        self._data_artists: list = []
        self._raster_artist = None  # the binned image, when the data are drawn as one
        self._ring_artist = None
        self._mask_artist = None
        self._key = None  # the colour bar or legend of the colouring
        self._extent = (0.0, 1.0, 0.0, 1.0)  # the view limits the images are binned over
        self._home = (0.0, 1.0, 0.0, 1.0)  # the limits that show every point of the view
        self._pan_start = None
        self._build_ui()

    # ------------------------------------------------------------------- UI
    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        self.color_by = QComboBox()
        self.color_by.addItems(COLOR_MODES)
        self.color_by.setToolTip("Colour the scatter by class or group (the legend's colours), cluster "
                                 "(afmClusterId), confidence (afmConfidence) or tomogram (rlnTomoName)")
        self.color_by.currentTextChanged.connect(lambda _: self.review._guard(self.redraw))
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.0, 1.0)
        self.threshold.setSingleStep(0.05)
        self.threshold.setDecimals(2)
        self.threshold.setKeyboardTracking(False)
        self.threshold.setToolTip("Hide particles whose afmConfidence is below this, in the scatter and the "
                                  "viewer (0: none hidden; particles without a confidence are never hidden)")
        self.threshold.valueChanged.connect(lambda value: self.review._guard(self.review.set_min_confidence, value))
        for w in (QLabel("colour by:"), self.color_by, QLabel("hide confidence <"), self.threshold):
            row.addWidget(w)
        row.addStretch(1)
        layout.addLayout(row)

        self.figure = Figure(figsize=(5, 5))  # laid out by _layout, not at every zoom or pan step
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumSize(MIN_SIZE, MIN_SIZE)
        self.canvas.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.canvas.setToolTip("Wheel: zoom; right or middle drag: pan; left: lasso or box, a click selects one")
        self.ax = self.figure.add_subplot(111)
        layout.addWidget(self.canvas, 1)
        self.lasso = LassoSelector(self.ax, onselect=self._on_lasso, useblit=True, button=MouseButton.LEFT,
                                   props={"color": SELECTED_RING, "linewidth": 1.2})
        self.box = RectangleSelector(self.ax, self._on_box, useblit=True, interactive=False, button=MouseButton.LEFT,
                                     props={"facecolor": SELECTED_RING, "alpha": 0.2})
        self.box.set_active(False)
        self.canvas.mpl_connect("scroll_event", self._on_scroll)
        self.canvas.mpl_connect("button_press_event", self._on_press)
        self.canvas.mpl_connect("motion_notify_event", self._on_motion)
        self.canvas.mpl_connect("button_release_event", self._on_release)
        self.canvas.mpl_connect("resize_event", lambda _: (self._layout(), self._rebin()))

        row = QHBoxLayout()
        self.tool = QComboBox()
        self.tool.addItems(["lasso", "box", "pan"])
        self.tool.setToolTip("What a left drag does in the scatter")
        self.tool.currentTextChanged.connect(self._on_tool)
        self.density = QCheckBox("density (log)")
        self.density.toggled.connect(lambda _: self.review._guard(self.redraw))
        self.reset_button = button("Reset view", self.reset_view, "Zoom out to every point of the embedding")
        for w in (QLabel("select:"), self.tool, self.density):
            row.addWidget(w)
        row.addStretch(1)
        row.addWidget(self.reset_button)
        layout.addLayout(row)

        row = QHBoxLayout()
        self.reembed_button = button("Re-embed selection", self._on_reembed_clicked,
                                     "UMAP of the selected particles' latents only (CPU)")
        self.full_button = button("Full embedding", self.show_full_embedding, "Every particle at its stored UMAP")
        row.addWidget(self.reembed_button)
        row.addWidget(self.full_button)
        layout.addLayout(row)

        group = QGroupBox("Selection")
        box = QVBoxLayout(group)
        self.makeup_label = QLabel("nothing selected")
        self.makeup = QTableWidget(0, 3)
        self.makeup.setHorizontalHeaderLabels(["class / group", "n", "share"])
        self.makeup.verticalHeader().setVisible(False)
        self.makeup.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.makeup.setSelectionMode(QAbstractItemView.NoSelection)
        header = self.makeup.horizontalHeader()
        header.setSectionResizeMode(COL_GROUP, QHeaderView.Stretch)
        header.setSectionResizeMode(COL_COUNT, QHeaderView.ResizeToContents)
        header.setSectionResizeMode(COL_SHARE, QHeaderView.ResizeToContents)
        self.makeup.setToolTip("The classes and groups of the selected particles")
        self.makeup.setMinimumHeight(110)
        self.makeup.setMaximumHeight(180)
        box.addWidget(self.makeup_label)
        box.addWidget(self.makeup)
        layout.addWidget(group)

    # ----------------------------------------------------------------- views
    def attach(self, session: "ReviewSession") -> None:
        """A new session: the threshold back to 0, colour by confidence only where the table has
        ``afmConfidence``, every particle shown zoomed out."""
        has_confidence = "afmConfidence" in session.table.columns
        self.show_threshold(0.0)
        self.threshold.setEnabled(has_confidence)
        self.color_by.model().item(COLOR_MODES.index("confidence")).setEnabled(has_confidence)
        if not has_confidence and self.color_by.currentText() == "confidence":
            self.color_by.blockSignals(True)
            self.color_by.setCurrentText("class")
            self.color_by.blockSignals(False)
        self.show_full_embedding()

    def show_threshold(self, value: float) -> None:
        """Show ``value`` in the threshold box without applying it again."""
        if abs(self.threshold.value() - value) > 1e-9:
            self.threshold.blockSignals(True)
            self.threshold.setValue(value)
            self.threshold.blockSignals(False)

    def show_full_embedding(self) -> None:
        """Show every particle at its stored UMAP coordinates, zoomed out."""
        session = self.review.session
        if session is None:
            return
        self._view_rows, self._view_xy, self._view_label = np.arange(len(session.table)), session.umap(), "UMAP"
        self.redraw(reset_view=True)

    def show_embedding(self, rows: np.ndarray, xy: np.ndarray, label: str) -> None:
        """Show the particles at table ``rows`` at coordinates ``xy`` (axes named ``label``), zoomed out."""
        self._view_rows, self._view_xy, self._view_label = rows, xy, label
        self.redraw(reset_view=True)

    def reembed_selection(self) -> np.ndarray:
        """UMAP of the selected particles only; the scatter then shows just them."""
        session, selection = self.review.session, self.review.selection
        if session is None or not len(selection):
            raise ValueError("select particles first")
        rows = selection.copy()
        xy = reembed(session.latents()[rows])
        self._show_reembedding(rows, xy)
        return xy

    def _show_reembedding(self, rows: np.ndarray, xy: np.ndarray) -> None:
        self.show_embedding(rows, xy, "re-UMAP")
        self.review._say(f"re-embedded {len(rows)} particles from {self.review.session.latent_source}")

    def _on_reembed_clicked(self) -> None:
        session, selection = self.review.session, self.review.selection
        if session is None or not len(selection):
            self.review._say("select particles first")
            return
        from napari.qt.threading import create_worker

        rows = selection.copy()
        self.review._say(f"re-embedding {len(rows)} particles ({session.latent_source})...")
        self.reembed_button.setEnabled(False)
        worker = create_worker(reembed, session.latents()[rows])
        worker.returned.connect(lambda xy: self._show_reembedding(rows, xy))
        worker.errored.connect(lambda exc: self.review._say(f"re-embedding failed: {exc}"))
        worker.finished.connect(lambda: self.reembed_button.setEnabled(True))
        worker.start()

    # --------------------------------------------------------------- drawing
    def redraw(self, *, reset_view: bool = False) -> None:
        """Draw the view's shown rows in the colour-by mode's colours: markers (by group symbol) up to
        ``MARKERS_MAX`` points, a binned image of the current view above, or a log hexbin. The limits stay
        (zoom and pan survive edits and recolouring) unless ``reset_view``."""
        session = self.review.session
        if session is None:
            return
        limits = (self.ax.get_xlim(), self.ax.get_ylim())
        for artist in (*self._data_artists, self._ring_artist, self._mask_artist, self._key):
            if artist is not None:
                artist.remove()
        self._data_artists, self._raster_artist, self._ring_artist, self._mask_artist = [], None, None, None
        self._key = None
        mode = self.color_by.currentText()
        shown = self.review.visible(self._view_rows)
        self._shown_rows, self._shown_xy = self._view_rows[shown], self._view_xy[shown]
        self._shown_colors = session.colors_by(mode, self._shown_rows)
        self._home = extent_of(self._view_xy)
        if reset_view:
            limits = (self._home[:2], self._home[2:])
        self.ax.set_xlim(*limits[0])
        self.ax.set_ylim(*limits[1])
        self._extent = self._view_extent()
        xy = self._shown_xy
        finite = np.isfinite(xy).all(axis=1)
        size = _marker_size(len(xy))
        if self.density.isChecked() and finite.any():
            self._data_artists = [self.ax.hexbin(xy[finite, 0], xy[finite, 1], gridsize=DENSITY_GRID, bins="log",
                                                 cmap="magma", mincnt=1, linewidths=0)]
        elif len(xy) > MARKERS_MAX:
            self._raster_artist = self.ax.imshow(self._binned(), extent=self._extent, origin="lower", aspect="auto",
                                                 interpolation="nearest")
            self._data_artists = [self._raster_artist]
        else:
            symbols = session.symbols(self._shown_rows)
            for symbol in dict.fromkeys(symbols.tolist()):
                m = symbols == symbol
                marker = MARKERS.get(symbol, "o")
                self._data_artists.append(self.ax.scatter(xy[m, 0], xy[m, 1], s=size, c=self._shown_colors[m],
                                                          marker=marker, linewidths=0.8 if marker == "x" else 0))
        self._ring_artist = self.ax.scatter([], [], s=size * 3, facecolors="none", edgecolors=SELECTED_RING,
                                            linewidths=0.8)
        self._mask_artist = self.ax.imshow(np.zeros((2, 2, 4)), extent=self._extent, origin="lower", aspect="auto",
                                           interpolation="nearest", visible=False)
        self.ax.set_xlim(*limits[0])  # the artists above must not rescale the view
        self.ax.set_ylim(*limits[1])
        if not self.density.isChecked():
            self._draw_key(mode)
        if not np.isfinite(self._view_xy).all(axis=1).any():
            self.review._say("this table has no afmUMAP0/afmUMAP1 coordinates to plot")
        self.ax.set_xlabel(f"{self._view_label} 0")
        self.ax.set_ylabel(f"{self._view_label} 1")
        hidden = len(self._view_rows) - len(xy)
        self.ax.set_title(f"{len(xy)} particles" + (f" ({hidden} hidden)" if hidden else "")
                          + (" (re-embedded selection)" if self._view_label != "UMAP" else ""), fontsize=9)
        self._layout()
        self.show_selection()

    def _layout(self) -> None:
        """Fit the plot, its labels and its key to the figure (after a redraw or a resize; a zoom or pan
        keeps the layout, which halves the cost of its draw)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # a canvas too small for the labels: keep the last layout
            self.figure.tight_layout()

    def _draw_key(self, mode: str) -> None:
        """The colouring's key beside the plot: a colour bar for confidence, a legend for clusters and
        tomograms (the review's legend is the key of the classes)."""
        session = self.review.session
        if mode == "confidence":
            self._key = self.figure.colorbar(ScalarMappable(Normalize(0.0, 1.0), confidence_colormap()), ax=self.ax,
                                             fraction=0.05, pad=0.02)
            self._key.set_label("afmConfidence (none: grey)", fontsize=8)
            self._key.ax.tick_params(labelsize=7)
        elif mode in ("cluster", "tomogram"):
            key = session.color_key(mode)
            handles = [Line2D([], [], marker="o", linestyle="", color=rgba, markersize=5, label=name)
                       for name, rgba in key[:KEY_MAX]]
            if len(key) > KEY_MAX:
                handles.append(Line2D([], [], linestyle="", label=f"+{len(key) - KEY_MAX} more"))
            self._key = self.ax.legend(handles=handles, title=mode, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                                       borderaxespad=0.0, fontsize=7, title_fontsize=7, frameon=False,
                                       handletextpad=0.2)

    def _view_extent(self) -> tuple[float, float, float, float]:
        (x0, x1), (y0, y1) = sorted(self.ax.get_xlim()), sorted(self.ax.get_ylim())
        return float(x0), float(x1), float(y0), float(y1)

    def _bins(self) -> tuple[int, int]:
        """(rows, columns) of the binned images: ``RASTER_BIN`` screen pixels a bin over the plot."""
        box = self.ax.get_window_extent()
        return (int(np.clip(box.height / RASTER_BIN, 32, 1024)), int(np.clip(box.width / RASTER_BIN, 32, 1024)))

    def _binned(self) -> np.ndarray:
        return scatter_image(self._shown_xy, self._shown_colors, self._extent, self._bins())

    def _rebin(self) -> None:
        """Bin the images again over the current limits (after a zoom, pan or resize)."""
        self._extent = self._view_extent()
        if self._raster_artist is not None:
            self._raster_artist.set_data(self._binned())
            self._raster_artist.set_extent(self._extent)
        if self._mask_artist is not None and self._mask_artist.get_visible():
            self._draw_mask()

    def show_selection(self) -> None:
        """Mark the review's selection in the scatter (rings for a few points, a yellow overlay image for many)
        and list its makeup."""
        if self._ring_artist is None or self._mask_artist is None:
            return
        selection = self.review.selection
        shown = np.isin(self._shown_rows, selection) if len(selection) else np.zeros(len(self._shown_rows), bool)
        n = int(shown.sum())
        if n <= RINGS_MAX:
            self._ring_artist.set_offsets(self._shown_xy[shown] if n else np.zeros((0, 2)))
            self._mask_artist.set_visible(False)
        else:
            self._ring_artist.set_offsets(np.zeros((0, 2)))
            self._mask_artist.set_visible(True)
            self._draw_mask(shown)
        self._fill_makeup()
        self.canvas.draw_idle()

    def _draw_mask(self, shown: np.ndarray | None = None) -> None:
        if shown is None:
            shown = np.isin(self._shown_rows, self.review.selection)
        self._mask_artist.set_data(mask_image(self._shown_xy[shown], self._extent, SELECTED_RGBA, self._bins()))
        self._mask_artist.set_extent(self._extent)

    def _fill_makeup(self) -> None:
        """The selection's classes and groups: name (with its symbol), count, share."""
        session, selection = self.review.session, self.review.selection
        entries = session.makeup(selection) if session is not None else []
        self.makeup_label.setText(f"{len(selection)} particle(s) selected" if len(selection) else "nothing selected")
        self.makeup.setRowCount(len(entries))
        for i, (group, count, share) in enumerate(entries):
            name = QTableWidgetItem(swatch_icon(session.palette.color(group), session.palette.symbol(group)),
                                    group_label(group))
            name.setData(Qt.UserRole, group)
            self.makeup.setItem(i, COL_GROUP, name)
            for column, text in ((COL_COUNT, str(count)), (COL_SHARE, f"{100 * share:.1f} %")):
                item = QTableWidgetItem(text)
                item.setTextAlignment(int(Qt.AlignRight | Qt.AlignVCenter))
                self.makeup.setItem(i, column, item)

    def makeup_rows(self) -> list[tuple[str, int, str]]:
        """The makeup table as shown: (group, count, share text) per line."""
        return [(self.makeup.item(i, COL_GROUP).data(Qt.UserRole), int(self.makeup.item(i, COL_COUNT).text()),
                 self.makeup.item(i, COL_SHARE).text()) for i in range(self.makeup.rowCount())]

    # ------------------------------------------------------------ navigation
    def set_view(self, xlim: tuple[float, float], ylim: tuple[float, float]) -> None:
        """Show the data between ``xlim`` and ``ylim`` (the binned images follow)."""
        self.ax.set_xlim(*map(float, xlim))
        self.ax.set_ylim(*map(float, ylim))
        self._rebin()
        self.canvas.draw_idle()

    def zoom(self, factor: float, centre: tuple[float, float] | None = None) -> None:
        """Zoom in by ``factor`` (below 1: out) about ``centre`` (data coordinates; default the view's centre),
        which stays where it is on the screen."""
        (x0, x1), (y0, y1) = self.ax.get_xlim(), self.ax.get_ylim()
        cx, cy = centre if centre is not None else ((x0 + x1) / 2, (y0 + y1) / 2)
        self.set_view((cx + (x0 - cx) / factor, cx + (x1 - cx) / factor),
                      (cy + (y0 - cy) / factor, cy + (y1 - cy) / factor))

    def reset_view(self) -> None:
        """Zoom out to every point of the view."""
        self.set_view(self._home[:2], self._home[2:])

    def _on_scroll(self, event) -> None:
        if event.inaxes is self.ax and event.xdata is not None:
            self.zoom(ZOOM_STEP ** float(event.step), (event.xdata, event.ydata))

    def _on_press(self, event) -> None:
        pan_tool = event.button == MouseButton.LEFT and self.tool.currentText() == "pan"
        if event.inaxes is self.ax and (event.button in PAN_BUTTONS or pan_tool):
            self._pan_start = (event.x, event.y, self.ax.get_xlim(), self.ax.get_ylim(),
                               self.ax.transData.inverted().frozen())

    def _on_motion(self, event) -> None:
        """A pan drag: the point under the cursor at the press follows the cursor."""
        if self._pan_start is None:
            return
        x, y, xlim, ylim, to_data = self._pan_start
        dx, dy = to_data.transform((x, y)) - to_data.transform((event.x, event.y))
        self.set_view(np.add(xlim, dx), np.add(ylim, dy))

    def _on_release(self, event) -> None:
        if self._pan_start is not None:
            self._on_motion(event)
            self._pan_start = None

    def _on_tool(self, name: str) -> None:
        self.lasso.set_active(name == "lasso")
        self.box.set_active(name == "box")

    # ------------------------------------------------------------- selection
    def _is_click(self, corner0: np.ndarray, corner1: np.ndarray) -> bool:
        span = np.ptp(self.ax.get_xlim()), np.ptp(self.ax.get_ylim())
        size = np.abs(np.asarray(corner1) - np.asarray(corner0)) / np.asarray(span)
        return bool((size < 0.01).all())

    def _click(self, point: np.ndarray) -> None:
        """Select the shown particle nearest to ``point`` (distances in fractions of the view)."""
        if not len(self._shown_rows):
            return
        span = (np.ptp(self.ax.get_xlim()), np.ptp(self.ax.get_ylim()))
        self.review.select_rows(self._shown_rows[[nearest_point(self._shown_xy, tuple(point), span)]])

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

    def select_polygon(self, polygon: np.ndarray) -> np.ndarray:
        """Select the shown particles inside a polygon drawn in the scatter's coordinates."""
        rows = self._shown_rows[points_in_polygon(self._shown_xy, polygon)]
        self.review.select_rows(rows)
        return rows

    def select_box(self, corner0: np.ndarray, corner1: np.ndarray) -> np.ndarray:
        """Select the shown particles inside the box spanned by two corners (scatter coordinates)."""
        rows = self._shown_rows[points_in_box(self._shown_xy, tuple(corner0), tuple(corner1))]
        self.review.select_rows(rows)
        return rows
