"""The napari plugin in a real viewer (pytest-qt + make_napari_viewer, under Xvfb with Mesa)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytestmark = pytest.mark.napari

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


def test_reader_accepts_results_folder_and_star(results_dir, tmp_path):
    assert get_reader(str(results_dir)) is not None
    assert get_reader(str(results_dir / "particles.star")) is not None
    assert get_reader(str(tmp_path)) is None  # a folder without particles.star
    assert get_reader(str(results_dir / "classes.csv")) is None
    layers = get_reader(str(results_dir))(str(results_dir))
    kinds = [kind for _, _, kind in layers]
    assert kinds == ["image", "points"]
    (image, ikw, _), (points, pkw, _) = layers
    assert ikw["scale"] == pkw["scale"] == (10.0, 10.0, 10.0)  # Å: points and image agree
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
    xy = widget._view_xy
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    mid = (lo + hi) / 2
    polygon = np.array([[lo[0] - 1, lo[1] - 1], [mid[0], lo[1] - 1], [mid[0], hi[1] + 1], [lo[0] - 1, hi[1] + 1]])
    rows = widget.select_polygon(polygon)
    expected = np.flatnonzero(xy[:, 0] <= mid[0])
    np.testing.assert_array_equal(np.sort(rows), expected)
    assert layer.selected_data == set(expected.tolist())
    np.testing.assert_allclose(layer.border_color[expected], np.tile(SELECTED_BORDER, (len(expected), 1)))
    assert len(widget._ring_artist.get_offsets()) == len(expected)


def test_large_tables_draw_as_images(review, monkeypatch):
    from affinitomo.napari import _widget

    viewer, widget = review
    monkeypatch.setattr(_widget, "MARKERS_MAX", 10)
    monkeypatch.setattr(_widget, "RINGS_MAX", 5)
    monkeypatch.setattr(_widget, "VIEWER_SELECTION_MAX", 5)
    widget.show_full_embedding()
    assert type(widget._data_artist).__name__ == "AxesImage"
    rows = widget.select_box(widget._view_xy.min(axis=0) - 1, widget._view_xy.max(axis=0) + 1)
    assert len(rows) == 50 and widget._mask_artist.get_visible()
    layer = widget.points_layers[0]
    assert layer.selected_data == set()  # border colour only above the limit
    np.testing.assert_allclose(layer.border_color, np.tile(SELECTED_BORDER, (50, 1)))
    widget.assign_selected("ring_c6")
    assert widget._data_artist.get_array().shape[:2] == (360, 360)


def test_viewer_selection_rings_in_scatter(review):
    viewer, widget = review
    layer = widget.points_layers[0]
    layer.selected_data = {2, 7, 9}
    np.testing.assert_array_equal(widget.selection, [2, 7, 9])
    np.testing.assert_allclose(widget._ring_artist.get_offsets(), widget._view_xy[[2, 7, 9]])
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
    np.testing.assert_allclose(layer.face_color[0], widget.session.palette.color("new_class"))
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
    widget.density.setChecked(True)
    assert type(widget._data_artist).__name__ == "PolyCollection"  # hexbin
    widget.density.setChecked(False)
    widget.poses.setChecked(True)
    vectors = [ly for ly in viewer.layers if ly._type_string == "vectors"]
    assert len(vectors) == 1 and vectors[0].data.shape == (50, 2, 3)
    widget.poses.setChecked(False)
    assert not [ly for ly in viewer.layers if ly._type_string == "vectors"]


def test_sample_data_opens(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("affinitomo", "demo")
    assert [ly._type_string for ly in viewer.layers] == ["image", "points"]


def test_screenshots(review, tmp_path):
    viewer, widget = review
    widget.select_rows(np.flatnonzero(widget.session.table["afmClassName"] == "ring_c6"))
    widget.show_particle(int(widget.selection[0]))
    viewer.window._qt_window.resize(1400, 900)
    viewer.window._qt_window.show()
    viewer.reset_view()
    canvas = viewer.screenshot(canvas_only=True, flash=False)
    assert canvas.ndim == 3 and canvas[..., :3].std() > 5  # not blank
    from imageio.v3 import imwrite

    imwrite(tmp_path / "canvas.png", canvas)
    assert widget.grab().save(str(tmp_path / "widget.png"))
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
    xy = widget.reembed_selection()
    assert xy.shape == (30, 2) and np.isfinite(xy).all()
    np.testing.assert_array_equal(widget._view_rows, np.arange(30))
    rows = widget.select_box(xy.min(axis=0) - 1, xy.max(axis=0) + 1)
    np.testing.assert_array_equal(np.sort(rows), np.arange(30))
    widget.show_full_embedding()
    assert len(widget._view_rows) == 50
