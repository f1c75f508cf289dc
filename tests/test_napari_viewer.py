"""The napari plugin in a real viewer (pytest-qt + make_napari_viewer, under Xvfb with Mesa)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytestmark = pytest.mark.napari

from qtpy.QtCore import QEvent, QPoint, QPointF, Qt  # noqa: E402
from qtpy.QtGui import QMouseEvent, QWheelEvent  # noqa: E402
from qtpy.QtWidgets import QApplication, QFileDialog, QMessageBox  # noqa: E402

from affinitomo.io.particles import read_particles  # noqa: E402
from affinitomo.napari._reader import get_reader  # noqa: E402
from affinitomo.napari.demo import write_demo_results  # noqa: E402
from affinitomo.napari.layers import SELECTED_BORDER  # noqa: E402
from affinitomo.napari.session import load_session  # noqa: E402
from affinitomo.napari.viewer import show_session  # noqa: E402

SCREENS = Path(os.environ.get("AFFINITOMO_SCREENS", "/tmp/affinitomo_napari_screens"))


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    return write_demo_results(tmp_path_factory.mktemp("demo"), shape=(64, 192, 192), per_class=5)


@pytest.fixture
def review(make_napari_viewer, results_dir):
    viewer = make_napari_viewer()
    widget = show_session(viewer, load_session(results_dir))
    return viewer, widget


@pytest.fixture(scope="module")
def two_tomograms(tmp_path_factory):
    return write_demo_results(tmp_path_factory.mktemp("demo2"), shape=(48, 128, 128), per_class=2, n_tomograms=2)


def _answer_save_dialog(monkeypatch, path) -> list:
    """Make "Save as..." get ``path`` from its file dialog; returns the dialog's calls."""
    calls = []

    def dialog(*args, **kwargs):
        calls.append(args)
        return str(path), "STAR files (*.star)"

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(dialog))
    return calls


def _answer_question(monkeypatch, answer) -> None:
    monkeypatch.setattr(QMessageBox, "question", staticmethod(lambda *args, **kwargs: answer))


def test_reader_accepts_results_folder_and_star(results_dir, tmp_path):
    assert get_reader(str(results_dir)) is not None
    assert get_reader(str(results_dir / "particles.star")) is not None
    assert get_reader(str(tmp_path)) is None  # a folder without particles.star
    assert get_reader(str(results_dir / "classes.csv")) is None
    optics = tmp_path / "optics.star"  # a STAR file that is no particle table: left to other readers
    optics.write_text("data_optics\n\nloop_\n_rlnOpticsGroup #1\n_rlnVoltage #2\n1 300.0\n")
    assert get_reader(str(optics)) is None and get_reader(str(tmp_path / "absent.star")) is None
    layers = get_reader(str(results_dir))(str(results_dir))
    kinds = [kind for _, _, kind in layers]
    assert kinds == ["image", "points"]
    (image, ikw, _), (points, pkw, _) = layers
    assert ikw["scale"] == pkw["scale"] == (10.0, 10.0, 10.0)  # Å: points and image agree
    assert ikw["units"] == pkw["units"] == ("angstrom",) * 3
    low, high = ikw["contrast_limits"]
    assert np.mean(np.asarray(image) < low) == pytest.approx(0.01, abs=0.005)
    assert points.shape == (50, 3)
    assert {"UMAP0", "UMAP1", "MANUAL_CLUSTER_ID", "class", "cluster", "confidence", "rot", "tilt", "psi"} <= set(
        pkw["features"].columns)
    # points at the bright particles: the density around the centres stands out from the background
    from scipy.ndimage import uniform_filter

    smooth = uniform_filter(np.asarray(image), 5)
    centres = np.rint(points).astype(int)
    elsewhere = np.random.default_rng(0).integers(0, smooth.shape, size=(500, 3))
    assert smooth[tuple(centres.T)].mean() - smooth[tuple(elsewhere.T)].mean() > 2 * smooth.std()


def test_scatter_lasso_selects_points_in_viewer(review):
    viewer, widget = review
    layer = widget.points_layers[0]
    xy = widget.scatter._view_xy
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    mid = (lo + hi) / 2
    polygon = np.array([[lo[0] - 1, lo[1] - 1], [mid[0], lo[1] - 1], [mid[0], hi[1] + 1], [lo[0] - 1, hi[1] + 1]])
    rows = widget.scatter.select_polygon(polygon)
    expected = np.flatnonzero(xy[:, 0] <= mid[0])
    np.testing.assert_array_equal(np.sort(rows), expected)
    assert layer.selected_data == set(expected.tolist())
    np.testing.assert_allclose(layer.border_color[expected], np.tile(SELECTED_BORDER, (len(expected), 1)))
    assert len(widget.scatter._ring_artist.get_offsets()) == len(expected)


def test_large_tables_draw_as_images(review, monkeypatch):
    from affinitomo.napari import _widget, scatter

    viewer, widget = review
    monkeypatch.setattr(scatter, "MARKERS_MAX", 10)
    monkeypatch.setattr(scatter, "RINGS_MAX", 5)
    monkeypatch.setattr(_widget, "VIEWER_SELECTION_MAX", 5)
    panel = widget.scatter
    panel.show_full_embedding()
    assert type(panel._data_artists[0]).__name__ == "AxesImage"
    rows = panel.select_box(panel._view_xy.min(axis=0) - 1, panel._view_xy.max(axis=0) + 1)
    assert len(rows) == 50 and panel._mask_artist.get_visible()
    layer = widget.points_layers[0]
    assert layer.selected_data == set()  # border colour only above the limit
    np.testing.assert_allclose(layer.border_color, np.tile(SELECTED_BORDER, (50, 1)))
    widget.assign_selected("ring_c6")
    assert panel._data_artists[0].get_array().shape[:2] == panel._bins()  # bins of 2x2 screen pixels
    assert panel._bins()[0] >= scatter.MIN_SIZE // 2 - 40


def test_viewer_selection_rings_in_scatter(review):
    viewer, widget = review
    layer = widget.points_layers[0]
    layer.selected_data = {2, 7, 9}
    np.testing.assert_array_equal(widget.selection, [2, 7, 9])
    np.testing.assert_allclose(widget.scatter._ring_artist.get_offsets(), widget.scatter._view_xy[[2, 7, 9]])
    layer.selected_data = {4}  # one particle: shown up close
    assert widget._current_row == 4
    assert len(widget.particle_figure.axes) == 9  # particle, reconstruction (absent: said), average


def test_particle_panel_shows_reconstruction(make_napari_viewer, results_dir, tmp_path):
    import shutil

    from test_napari_core import _write_model

    results = Path(shutil.copytree(results_dir, tmp_path / "results"))
    _write_model(results / "train" / "model.pt")
    viewer = make_napari_viewer()
    widget = show_session(viewer, load_session(results))
    widget.points_layers[0].selected_data = {6}
    rows = np.reshape(widget.particle_figure.axes, (3, 3))
    assert all(len(ax.images) == 1 for ax in rows.ravel())  # particle, model, average: 3 slices each
    assert rows[1, 0].get_title().startswith("model (tomogram)")
    assert rows[1, 0].images[0].get_array().shape == (16, 16)


def test_relabel_and_save_round_trip(review, results_dir, tmp_path):
    viewer, widget = review
    layer = widget.points_layers[0]
    widget.select_rows(np.array([0, 1, 2]))
    widget.assign_selected("new_class")
    assert layer.features["class"].iloc[:3].tolist() == ["new_class"] * 3
    assert len(set(layer.features["MANUAL_CLUSTER_ID"].iloc[:3])) == 1
    colour = widget.session.palette.color("new_class")
    np.testing.assert_allclose(layer.face_color[0, :3], colour[:3])  # selected: filled in the class colour
    np.testing.assert_allclose(layer.border_color[3], widget.session.colors(np.array([3]))[0])  # others: outline
    widget.select_rows(np.array([5]))
    widget.reject_selected()
    assert layer.features["MANUAL_CLUSTER_ID"].iloc[5] == -1
    out = widget.save(tmp_path / "edited.star")
    back = read_particles(out)
    assert back["afmClassName"].iloc[:3].tolist() == ["new_class"] * 3
    assert back["afmRejected"].iloc[5] == 1 and back["afmClassName"].iloc[5] == ""
    with pytest.raises(FileExistsError):
        widget.save(tmp_path / "edited.star")
    with pytest.raises(FileExistsError):
        widget.save(results_dir / "particles.star")
    assert read_particles(results_dir / "particles.star")["afmClassName"].iloc[0] != "new_class"


def test_medoid_density_and_poses(review):
    viewer, widget = review
    key = widget.clusters.itemData(0)
    row = widget.jump_to_medoid(key)
    assert row in widget.session.cluster_rows()[key]
    np.testing.assert_array_equal(widget.selection, [row])
    z = widget.session.table["rlnCoordinateZ"].iloc[row] * 10.0
    assert viewer.dims.point[0] == pytest.approx(z, abs=10.0)
    widget.scatter.density.setChecked(True)
    assert type(widget.scatter._data_artists[0]).__name__ == "PolyCollection"  # hexbin
    widget.scatter.density.setChecked(False)
    widget.poses.setChecked(True)
    vectors = [ly for ly in viewer.layers if ly._type_string == "vectors"]
    assert len(vectors) == 1 and vectors[0].data.shape == (50, 2, 3)
    widget.poses.setChecked(False)
    assert not [ly for ly in viewer.layers if ly._type_string == "vectors"]


def test_sample_data_opens(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("affinitomo", "demo")
    assert [ly._type_string for ly in viewer.layers] == ["image", "points"]


def test_screenshots(review, tmp_path, qtbot):
    viewer, widget = review
    widget.select_rows(np.flatnonzero(widget.session.table["afmClassName"] == "ring_c6"))
    widget.show_particle(int(widget.selection[0]))
    viewer.window._qt_window.resize(1800, 1000)
    viewer.window._qt_window.show()
    qtbot.waitUntil(widget.scatter.isVisible)  # the UMAP panel docks when the review widget first shows
    qtbot.wait(50)
    viewer.reset_view()
    canvas = viewer.screenshot(canvas_only=True, flash=False)
    assert canvas.ndim == 3 and canvas[..., :3].std() > 5  # not blank
    from imageio.v3 import imwrite

    imwrite(tmp_path / "canvas.png", canvas)
    assert widget.grab().save(str(tmp_path / "widget.png"))
    umap = widget.scatter.grab()
    assert umap.width() >= 450 and umap.height() >= 450
    SCREENS.mkdir(parents=True, exist_ok=True)
    imwrite(SCREENS / "review_demo.png", viewer.screenshot(canvas_only=False, flash=False))


def test_cli_view_arguments():
    import argparse

    from affinitomo.cli import view

    parser = argparse.ArgumentParser()
    view.add_arguments(parser)
    args = parser.parse_args(["results", "--tomograms", "tomos", "--lowpass", "20"])
    assert args.results == Path("results") and args.lowpass == 20.0


@pytest.mark.slow
def test_reembed_selection(review):
    viewer, widget = review
    widget.select_rows(np.arange(30))
    xy = widget.scatter.reembed_selection()
    assert xy.shape == (30, 2) and np.isfinite(xy).all()
    np.testing.assert_array_equal(widget.scatter._view_rows, np.arange(30))
    rows = widget.scatter.select_box(xy.min(axis=0) - 1, xy.max(axis=0) + 1)
    np.testing.assert_array_equal(np.sort(rows), np.arange(30))
    widget.scatter.show_full_embedding()
    assert len(widget.scatter._view_rows) == 50


def test_buttons_assign_reject_save_row_by_row(review, qtbot, monkeypatch, tmp_path):
    """The real buttons (pytest-qt fails the test on any exception raised inside a Qt slot)."""
    viewer, widget = review
    before = widget.session.table.copy()
    widget.select_rows(np.array([0, 1, 2]))
    widget.class_box.setCurrentText("new_class")
    qtbot.mouseClick(widget.assign_button, Qt.LeftButton)
    widget.select_rows(np.array([5, 6]))
    qtbot.mouseClick(widget.reject_button, Qt.LeftButton)
    calls = _answer_save_dialog(monkeypatch, tmp_path / "edited")  # no suffix: .star is added
    qtbot.mouseClick(widget.save_button, Qt.LeftButton)
    assert calls and calls[0][2] == str(widget.session.default_save_path())
    assert widget.status.text().startswith("saved") and not widget.session.unsaved
    back = read_particles(tmp_path / "edited.star")
    number = widget.session.class_numbers["new_class"]
    assert len(back) == len(before) and number > before["rlnClassNumber"].max()
    for i in range(len(back)):
        got, was = back.iloc[i], before.iloc[i]
        assert got["afmParticleId"] == was["afmParticleId"]
        assert [got[c] for c in ("rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ")] == pytest.approx(
            [was[c] for c in ("rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ")])
        if i in (0, 1, 2):
            expected = ("new_class", number, 0, 1)
        elif i in (5, 6):
            expected = ("", 0, 1, 1)
        else:
            expected = (was["afmClassName"], was["rlnClassNumber"], 0, 0)
        assert (got["afmClassName"], got["rlnClassNumber"], got["afmRejected"], got["afmEdited"]) == expected, i

    # The file exists: asked first; No keeps it, Yes overwrites it.
    widget.select_rows(np.array([7]))
    qtbot.mouseClick(widget.assign_button, Qt.LeftButton)
    _answer_question(monkeypatch, QMessageBox.No)
    qtbot.mouseClick(widget.save_button, Qt.LeftButton)
    assert widget.status.text() == "not saved" and widget.session.unsaved
    assert read_particles(tmp_path / "edited.star")["afmClassName"].iloc[7] == before["afmClassName"].iloc[7]
    _answer_question(monkeypatch, QMessageBox.Yes)
    qtbot.mouseClick(widget.save_button, Qt.LeftButton)
    assert read_particles(tmp_path / "edited.star")["afmClassName"].iloc[7] == "new_class"

    # Failures are messages in the widget: nothing selected, an unwritable path, a cancelled dialog.
    widget.select_rows(np.zeros(0, dtype=np.int64))
    qtbot.mouseClick(widget.assign_button, Qt.LeftButton)
    assert widget.status.text() == "select particles first"
    (tmp_path / "a_file").write_text("")
    _answer_save_dialog(monkeypatch, tmp_path / "a_file" / "edited.star")
    qtbot.mouseClick(widget.save_button, Qt.LeftButton)
    assert "a_file" in widget.status.text()
    _answer_save_dialog(monkeypatch, "")
    qtbot.mouseClick(widget.save_button, Qt.LeftButton)
    assert widget.status.text() == "not saved"


def test_delete_rejects_and_moves_are_saved(review, qtbot, tmp_path):
    """Delete (the key, napari's action) rejects, raising nothing; a moved point keeps its new centre."""
    from napari.layers.points._points_key_bindings import delete_selected_points

    viewer, widget = review
    layer = widget.points_layers[0]
    viewer.window._qt_window.show()
    viewer.layers.selection.active = layer
    layer.mode = "select"
    layer.selected_data = {2, 3}
    qtbot.keyClick(viewer.window._qt_viewer.canvas.native, Qt.Key_Delete)
    layer.selected_data = {8}
    delete_selected_points(layer)
    assert len(layer.data) == len(layer.metadata["rows"]) == 50
    assert widget.session.table["afmRejected"].iloc[[2, 3, 8]].tolist() == [1, 1, 1]
    assert widget.session.table["afmRejected"].sum() == 3 and "rejected" in widget.status.text()
    layer.add(np.array([[1.0, 2.0, 3.0]]))  # adding is refused, said
    assert len(layer.data) == 50 and "cannot be added" in widget.status.text()

    start = layer.data[4].copy()
    layer._set_drag_start({4}, start)  # what a mouse drag of point 4 does
    layer._move({4}, start + np.array([0.0, 3.0, -2.0]))
    assert "moved 1 particle" in widget.status.text()
    back = read_particles(widget.save(tmp_path / "moved.star"))
    assert back[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].iloc[4].tolist() == pytest.approx(
        [start[2] - 2.0, start[1] + 3.0, start[0]])
    assert back["afmEdited"].iloc[4] == 1 and back["afmRejected"].iloc[[2, 3, 8]].tolist() == [1, 1, 1]


def test_unsaved_edits_autosaved_when_viewer_closes(make_napari_viewer, results_dir, tmp_path, qtbot):
    import shutil

    results = Path(shutil.copytree(results_dir, tmp_path / "results"))
    viewer = make_napari_viewer(show=True)
    widget = show_session(viewer, load_session(results))
    qtbot.waitUntil(widget.isVisible)  # the dock shows once events run
    widget.select_rows(np.array([1]))
    widget.reject_selected()
    autosave = results / "particles_autosave.star"
    assert not autosave.exists()
    viewer.close()
    assert read_particles(autosave)["afmRejected"].iloc[1] == 1
    viewer = make_napari_viewer()
    widget = show_session(viewer, load_session(results))
    assert "particles_autosave.star" in widget.info.text()  # said on opening again
    widget.select_rows(np.array([2]))
    widget.reject_selected()
    widget.save()
    assert not autosave.exists()  # the save holds every edit


def test_units_outlines_and_scale_bar(review):
    viewer, widget = review
    layer = widget.points_layers[0]
    image = [ly for ly in viewer.layers if ly._type_string == "image"][0]
    assert [str(u) for u in layer.units] == [str(u) for u in image.units] == ["angstrom"] * 3
    assert viewer.scale_bar.visible
    assert (layer.face_color[:, 3] == 0).all()  # outlines: the density shows inside
    np.testing.assert_allclose(layer.border_color, widget.session.colors(layer.metadata["rows"]))
    group = widget.session.unknown_groups()[0]
    assert set(layer.symbol[widget.session.groups(layer.metadata["rows"]) == group]) == {"diamond"}


def test_legend_colours_counts_show_hide_and_average(review, qtbot):
    viewer, widget = review
    entries = widget.legend_entries()
    session = widget.session
    group = session.unknown_groups()[0]
    assert list(entries) == session.class_names + [group]
    colours = {tuple(np.round(session.palette.color(g), 4)) for g in entries}
    assert len(colours) == len(entries)  # distinct
    assert entries["ring_c6"].text(2) == "5" and entries[group].text(2) == "5"
    assert not entries[group].icon(3).isNull() and not entries["ring_c6"].icon(3).isNull()  # the averages
    layer = widget.points_layers[0]
    members = np.flatnonzero(session.groups() == group)
    entries[group].setCheckState(0, Qt.Unchecked)  # as a click on its box
    assert not layer.shown[members].any() and layer.shown.sum() == 45
    panel = widget.scatter
    assert len(panel._shown_rows) == 45 and not np.isin(panel._shown_rows, members).any()
    assert len(panel.select_box(panel._view_xy.min(axis=0) - 1, panel._view_xy.max(axis=0) + 1)) == 45
    entries[group].setCheckState(0, Qt.Checked)
    assert layer.shown.all() and len(widget.scatter._shown_rows) == 50
    rect = widget.legend.visualItemRect(entries[group])
    qtbot.mouseClick(widget.legend.viewport(), Qt.LeftButton, pos=rect.center())  # the name: jump to its medoid
    assert len(widget.selection) == 1 and widget.selection[0] in members
    assert widget.particle_figure.axes[6].get_title().startswith(f"average {group}")


def test_clusters_sorted_numerically(make_napari_viewer, results_dir, tmp_path):
    import shutil

    from affinitomo.io.particles import write_particles

    results = Path(shutil.copytree(results_dir, tmp_path / "results"))
    table = read_particles(results / "particles.star")
    table["afmClusterId"] = np.arange(len(table)) % 12
    write_particles(results / "particles.star", table)
    viewer = make_napari_viewer()
    widget = show_session(viewer, load_session(results))
    keys = [widget.clusters.itemData(i) for i in range(widget.clusters.count())]
    assert keys == [str(k) for k in range(12)]


def test_selection_moves_to_its_tomogram(make_napari_viewer, two_tomograms, qtbot):
    viewer = make_napari_viewer()
    widget = show_session(viewer, load_session(two_tomograms))
    session = widget.session
    first, second = session.tomogram_names()
    widget.poses.setChecked(True)

    def shown():
        return {(ly._type_string, ly.metadata["tomogram"]) for ly in viewer.layers if ly.visible}

    assert shown() == {("image", first), ("points", first), ("vectors", first)}
    row = int(session.rows_of(second)[3])
    widget.select_rows(np.array([row]))  # as a click in the UMAP
    assert widget.shown_tomogram == second and widget.tomo_box.currentData() == second
    n = int((widget.session.table["rlnTomoName"].astype(str) == second).sum())
    assert widget.tomo_box.currentText() == f"{second} ({n})"  # per-tomogram counts
    assert shown() == {("image", second), ("points", second), ("vectors", second)}
    z = session.table["rlnCoordinateZ"].iloc[row] * session.pixel_size(second)
    assert viewer.dims.point[0] == pytest.approx(z, abs=session.pixel_size(second))
    assert viewer.layers.selection.active.metadata["tomogram"] == second
    cluster = str(session.table["afmClusterId"].iloc[session.rows_of(first)[0]])
    widget.clusters.setCurrentIndex(widget.clusters.findData(cluster))
    qtbot.mouseClick(widget.medoid_button, Qt.LeftButton)
    medoid = int(widget.selection[0])
    assert widget.shown_tomogram == session.table["rlnTomoName"].iloc[medoid]
    assert str(session.table["afmClusterId"].iloc[medoid]) == cluster
    widget.select_rows(session.rows_of(first))  # several in the hidden tomogram: it is shown
    assert widget.shown_tomogram == first


# ------------------------------------------------------------------ the UMAP panel
def _drawn_colours(panel) -> np.ndarray:
    """(N, 4) face colours of the scatter's markers, in the order of the panel's shown rows."""
    symbols = panel.review.session.symbols(panel._shown_rows)
    colours = np.zeros((len(symbols), 4))
    for artist, symbol in zip(panel._data_artists, dict.fromkeys(symbols.tolist())):
        colours[symbols == symbol] = artist.get_facecolors()
    return colours


def _one_colour_per(keys: np.ndarray, colours: np.ndarray) -> bool:
    """Whether rows with equal ``keys`` share a colour and different keys have different colours."""
    pairs = {(k, tuple(np.round(c, 5))) for k, c in zip(keys.tolist(), colours)}
    return len(pairs) == len(set(keys.tolist())) == len({c for _, c in pairs})


def test_colour_by_changes_scatter_colours(review, qtbot):
    from affinitomo.napari.features import confidence_colormap

    viewer, widget = review
    panel, session = widget.scatter, widget.session
    rows = panel._shown_rows
    assert panel.color_by.currentText() == "class"
    np.testing.assert_allclose(_drawn_colours(panel), session.colors(rows))  # the legend's colours
    panel.color_by.setCurrentText("cluster")
    clusters = session.table["afmClusterId"].to_numpy()[rows]
    assert _one_colour_per(clusters, _drawn_colours(panel))
    assert [t.get_text() for t in panel._key.get_texts()] == [str(k) for k in sorted(set(clusters.tolist()))]
    panel.color_by.setCurrentText("confidence")
    confidence = session.table["afmConfidence"].to_numpy()[rows]
    np.testing.assert_allclose(_drawn_colours(panel), confidence_colormap()(confidence), atol=1e-6)
    assert panel._key.cmap.name == "confidence" and panel._key.norm.vmin == 0 and panel._key.norm.vmax == 1
    panel.color_by.setCurrentText("class")
    np.testing.assert_allclose(_drawn_colours(panel), session.colors(rows))
    assert panel._key is None and len(panel.figure.axes) == 1  # the colour bar is gone


def test_colour_by_tomogram(make_napari_viewer, two_tomograms):
    viewer = make_napari_viewer()
    widget = show_session(viewer, load_session(two_tomograms))
    panel = widget.scatter
    panel.color_by.setCurrentText("tomogram")
    tomograms = widget.session.table["rlnTomoName"].to_numpy()[panel._shown_rows]
    assert _one_colour_per(tomograms, _drawn_colours(panel))
    assert [t.get_text() for t in panel._key.get_texts()] == widget.session.tomogram_names()


def test_confidence_threshold_hides_rows(review):
    viewer, widget = review
    panel, session, layer = widget.scatter, widget.session, widget.points_layers[0]
    session.table.loc[0, "afmConfidence"] = np.nan  # no confidence: never hidden
    confidence = session.table["afmConfidence"].to_numpy()
    widget.select_rows(np.arange(50))
    panel.threshold.setValue(0.8)  # as typed in the spin box
    kept = np.flatnonzero(~(confidence < 0.8))
    assert 0 < len(kept) < 50 and 0 in kept
    np.testing.assert_array_equal(panel._shown_rows, kept)
    np.testing.assert_array_equal(np.flatnonzero(layer.shown), kept)  # the viewer hides them too
    np.testing.assert_array_equal(widget.selection, kept)  # hidden particles leave the selection
    assert panel.ax.get_title() == f"{len(kept)} particles ({50 - len(kept)} hidden)"
    assert widget.status.text() == f"{50 - len(kept)} particle(s) with confidence below 0.80 hidden"
    everything = panel.select_box(panel._view_xy.min(axis=0) - 1, panel._view_xy.max(axis=0) + 1)
    np.testing.assert_array_equal(np.sort(everything), kept)
    panel.threshold.setValue(0.0)
    assert layer.shown.all() and len(panel._shown_rows) == 50


def test_no_confidence_column(make_napari_viewer, results_dir):
    from affinitomo.napari.session import ReviewSession

    viewer = make_napari_viewer()
    table = load_session(results_dir).table.drop(columns="afmConfidence")
    widget = show_session(viewer, ReviewSession(table))
    panel = widget.scatter
    assert not panel.threshold.isEnabled()
    assert not panel.color_by.model().item(panel.color_by.findText("confidence")).isEnabled()
    widget.set_min_confidence(0.9)  # nothing has a confidence: nothing is hidden
    assert len(panel._shown_rows) == 50 and widget.points_layers[0].shown.all()


def test_selection_makeup_table(review):
    viewer, widget = review
    panel, session = widget.scatter, widget.session
    assert panel.makeup_rows() == [] and panel.makeup_label.text() == "nothing selected"
    groups = session.groups()
    rows = np.r_[np.flatnonzero(groups == "ring_c6")[:3], np.flatnonzero(groups == session.unknown_groups()[0])]
    widget.select_rows(rows)
    assert panel.makeup_rows() == [(session.unknown_groups()[0], 5, "62.5 %"), ("ring_c6", 3, "37.5 %")]
    assert panel.makeup_label.text() == "8 particle(s) selected"
    widget.points_layers[0].selected_data = {int(np.flatnonzero(groups == "barrel")[0])}  # from the viewer
    assert panel.makeup_rows() == [("barrel", 1, "100.0 %")]
    xy = panel._view_xy
    lasso = panel.select_polygon(np.array([[-1e3, -1e3], [1e3, -1e3], [1e3, 1e3], [-1e3, 1e3]]))
    names, counts = np.unique(groups[lasso].astype(str), return_counts=True)
    assert len(lasso) == len(xy) and dict((g, n) for g, n, _ in panel.makeup_rows()) == dict(zip(names, counts))


def _qt_pos(panel, xy) -> QPointF:
    """The canvas widget position of the data point ``xy``."""
    x, y = panel.ax.transData.transform(xy)
    ratio = panel.canvas.device_pixel_ratio
    return QPointF(x / ratio, (panel.figure.bbox.height - y) / ratio)


def _mouse(panel, kind: str, pos: QPointF, button=Qt.LeftButton) -> None:
    """A real Qt mouse press, move or release on the scatter's canvas."""
    kinds = {"press": QEvent.MouseButtonPress, "move": QEvent.MouseMove, "release": QEvent.MouseButtonRelease}
    pressed = button if kind != "release" else Qt.NoButton
    event = QMouseEvent(kinds[kind], pos, button if kind != "move" else Qt.NoButton, pressed, Qt.NoModifier)
    QApplication.sendEvent(panel.canvas, event)


def _wheel(panel, pos: QPointF, steps: int) -> None:
    event = QWheelEvent(pos, panel.canvas.mapToGlobal(pos.toPoint()), QPoint(0, 0), QPoint(0, 120 * steps),
                        Qt.NoButton, Qt.NoModifier, Qt.NoScrollPhase, False)
    QApplication.sendEvent(panel.canvas, event)


def test_zoom_pan_reset_and_click_in_docked_panel(make_napari_viewer, results_dir, qtbot):
    viewer = make_napari_viewer(show=True)
    widget = show_session(viewer, load_session(results_dir))
    panel = widget.scatter
    qtbot.waitUntil(panel.isVisible)  # docked beside the review widget once it shows
    assert viewer.window.dock_widgets["affinitomo UMAP"] is panel
    assert min(panel.canvas.width(), panel.canvas.height()) >= 450
    panel.canvas.draw()
    home = (panel.ax.get_xlim(), panel.ax.get_ylim())
    xy = panel._view_xy
    centre = xy[np.argmin(np.linalg.norm(xy - xy.mean(axis=0), axis=1))]
    before = panel.ax.transData.transform(centre)
    _wheel(panel, _qt_pos(panel, centre), 3)  # zoom in about the cursor
    assert np.ptp(panel.ax.get_xlim()) == pytest.approx(np.ptp(home[0]) / 1.25 ** 3)
    assert np.ptp(panel.ax.get_ylim()) == pytest.approx(np.ptp(home[1]) / 1.25 ** 3)
    np.testing.assert_allclose(panel.ax.transData.transform(centre), before, atol=1.5)  # it stays under the cursor
    zoomed = (panel.ax.get_xlim(), panel.ax.get_ylim())

    start = _qt_pos(panel, centre)  # drag with the right button: the point follows the cursor
    end = start + QPointF(60, -40)
    _mouse(panel, "press", start, Qt.RightButton)
    _mouse(panel, "move", start + QPointF(30, -20), Qt.RightButton)
    _mouse(panel, "release", end, Qt.RightButton)
    np.testing.assert_allclose(_qt_pos(panel, centre).x(), end.x(), atol=1.5)
    np.testing.assert_allclose(_qt_pos(panel, centre).y(), end.y(), atol=1.5)
    assert np.ptp(panel.ax.get_xlim()) == pytest.approx(np.ptp(zoomed[0]))  # panned, not zoomed
    assert len(widget.selection) == 0  # the right drag selected nothing
    panned = (panel.ax.get_xlim(), panel.ax.get_ylim())
    widget.select_rows(np.array([1, 2]))
    widget.assign_selected("new_class")  # redraws keep the view
    panel.color_by.setCurrentText("confidence")
    np.testing.assert_allclose((panel.ax.get_xlim(), panel.ax.get_ylim()), panned)

    qtbot.mouseClick(panel.reset_button, Qt.LeftButton)
    np.testing.assert_allclose((panel.ax.get_xlim(), panel.ax.get_ylim()), home)

    _wheel(panel, _qt_pos(panel, centre), 4)
    panel.canvas.draw()
    others = np.flatnonzero(np.isfinite(xy).all(axis=1))
    target = int(others[np.argsort(np.linalg.norm(xy[others] - centre, axis=1))[1]])  # a neighbour of the centre
    pos = _qt_pos(panel, xy[target])
    _mouse(panel, "press", pos)  # a click (lasso tool): the particle under the cursor
    _mouse(panel, "release", pos)
    np.testing.assert_array_equal(widget.selection, [target])
    assert widget._current_row == target and panel.makeup_rows()[0][1] == 1
    panel.tool.setCurrentText("pan")  # the pan tool: a left drag pans
    xlim = panel.ax.get_xlim()
    _mouse(panel, "press", pos)
    _mouse(panel, "release", pos + QPointF(-50, 0))
    assert panel.ax.get_xlim()[0] > xlim[0] and list(widget.selection) == [target]
