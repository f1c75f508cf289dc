"""The napari plugin's pure building blocks (no napari or display needed)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from affinitomo.errors import InputError
from affinitomo.geometry import euler_to_matrix
from affinitomo.io.particles import read_particles
from affinitomo.napari import results as res
from affinitomo.napari.contrast import contrast_limits, subsample
from affinitomo.napari.demo import write_demo_results
from affinitomo.napari.features import REJECTED_ID, UNKNOWN_RGBA, ClassPalette, pose_vectors
from affinitomo.napari.particle_view import box_size_for, crop_box, orthogonal_slices
from affinitomo.napari.raster import extent_of, mask_image, scatter_image
from affinitomo.napari.selection import medoid, nearest_point, points_in_box, points_in_polygon
from affinitomo.napari.session import EDITED_NAME, ReviewSession, load_session


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    return write_demo_results(tmp_path_factory.mktemp("demo"), n_particles=40, shape=(32, 96, 96))


def test_contrast_limits_ignore_outliers():
    rng = np.random.default_rng(0)
    vol = rng.normal(0, 1, (40, 50, 60)).astype(np.float32)
    vol[0, 0, :10] = 1e6  # a gold bead
    low, high = contrast_limits(vol, max_samples=20_000)
    assert -3 < low < -2 and 2 < high < 3
    assert subsample(vol, 20_000).size <= 40 * 50 * 60 // 8


def test_palette_is_stable_and_greys_unknown():
    palette = ClassPalette(["a", "b"])
    before = palette.colors(np.array(["a", "b"])).copy()
    palette.add("c")
    after = palette.colors(np.array(["a", "b", "c", "unknown"]), rejected=np.array([0, 0, 0, 0]))
    np.testing.assert_array_equal(before, after[:2])
    np.testing.assert_allclose(after[3], UNKNOWN_RGBA)
    assert len({tuple(c) for c in after[:3]}) == 3


def test_pose_vectors_follow_relion_convention():
    table = pd.DataFrame({"rlnCoordinateX": [5.0], "rlnCoordinateY": [6.0], "rlnCoordinateZ": [7.0],
                          "rlnAngleRot": [0.0], "rlnAngleTilt": [90.0], "rlnAnglePsi": [0.0]})
    v = pose_vectors(table, length=2.0)
    np.testing.assert_allclose(v[0, 0], [7, 6, 5])
    expected_xyz = euler_to_matrix(0.0, 90.0, 0.0) @ np.array([0, 0, 2.0])
    np.testing.assert_allclose(v[0, 1], expected_xyz[::-1], atol=1e-9)
    assert abs(v[0, 1, 0]) < 1e-9  # tilt 90 puts the z axis in the xy plane


def test_polygon_box_and_click_selection():
    xy = np.array([[0, 0], [1, 1], [2, 2], [np.nan, 0.5], [0.5, 0.4]])
    square = np.array([[-0.5, -0.5], [1.5, -0.5], [1.5, 1.5], [-0.5, 1.5]])
    assert points_in_polygon(xy, square).tolist() == [0, 1, 4]
    assert points_in_box(xy, (2.5, 2.5), (0.5, 0.5)).tolist() == [1, 2]
    assert nearest_point(xy, (1.9, 2.2)) == 2


def test_raster_scatter_and_mask():
    xy = np.array([[0.0, 0.0], [1.0, 1.0], [np.nan, 0.0]])
    extent = extent_of(xy, pad=0.1)
    colors = np.array([[1, 0, 0, 1], [0, 0, 1, 1], [0, 1, 0, 1]], dtype=np.float32)
    image = scatter_image(xy, colors, extent, shape=(12, 12))
    drawn = np.argwhere(image[..., 3] > 0)
    assert drawn.tolist() == [[1, 1], [drawn[1, 0], drawn[1, 1]]] and drawn[1].min() >= 10  # origin lower
    assert image[1, 1].tolist() == [1, 0, 0, 1] and image[tuple(drawn[1])].tolist() == [0, 0, 1, 1]
    assert (image[..., 3] > 0).sum() == 2  # the NaN point is not drawn
    mask = mask_image(xy[:1], extent, (1, 1, 0, 1), shape=(12, 12))
    assert (mask[..., 3] > 0).sum() == 5  # one pixel dilated to a cross


def test_medoid_exact_and_approximate():
    rng = np.random.default_rng(1)
    small = rng.normal(size=(50, 3))
    d = np.linalg.norm(small[:, None] - small[None], axis=2).sum(1)
    assert medoid(small) == int(np.argmin(d))
    big = rng.normal(size=(5000, 4))
    m = medoid(big)
    assert np.linalg.norm(big[m]) < 0.6  # near the centre of a standard normal cloud


def test_crop_box_pads_outside_and_centres():
    tomo = np.arange(10 * 12 * 14, dtype=np.float32).reshape(10, 12, 14)
    box = crop_box(tomo, (0, 5, 5), 6)  # x at the edge: padded with zeros
    assert box.shape == (6, 6, 6)
    assert box[3, 3, 3] == tomo[5, 5, 0]
    assert (box[:, :, :3] == 0).all()
    xy, xz, yz = orthogonal_slices(box)
    assert xy.shape == xz.shape == yz.shape == (6, 6)
    assert box_size_for(10.3) == 22 and box_size_for(2) == 16


def test_session_loads_results(results_dir):
    s = load_session(results_dir)
    assert len(s.table) == 40 and s.tomograms["demo"].data.shape == (32, 96, 96)
    assert s.pixel_size("demo") == 10.0
    assert s.class_names[:3] == ["dimer", "trimer", "ring"]
    assert 50 < s.diameter < 200  # estimated from the neighbour spacing, Å
    assert s.subtomogram(0).shape == (box_size_for(s.diameter / 10),) * 3
    assert s.class_average("dimer").shape == (16, 16, 16)
    assert s.class_average("unknown") is None
    assert s.latents().shape == (40, 8) and "latents.npz" in s.latent_source
    rows = s.cluster_rows()["0"]
    assert s.medoid_row(rows) in rows
    f = s.features(s.rows_of("demo"))
    assert {"UMAP0", "UMAP1", "MANUAL_CLUSTER_ID", "class", "cluster", "confidence", "rot"} <= set(f.columns)


def test_relabel_save_round_trip(results_dir):
    s = load_session(results_dir)
    s.assign(np.array([0, 1]), "dimer")
    s.assign(np.array([2]), "brand_new")
    s.reject(np.array([3, 4]))
    out = s.save()
    assert out == results_dir / EDITED_NAME
    back = read_particles(out)
    assert len(back) == 40  # rejected rows are kept, flagged
    assert back["afmClassName"].iloc[:3].tolist() == ["dimer", "dimer", "brand_new"]
    assert back["rlnClassNumber"].iloc[2] == max(s.class_numbers.values())
    assert back["afmRejected"].tolist()[:6] == [0, 0, 0, 1, 1, 0]
    assert back["afmClassName"].iloc[3] == "" and back["rlnClassNumber"].iloc[3] == 0
    assert back["afmEdited"].sum() == 5
    np.testing.assert_allclose(back["rlnCoordinateX"], s.table["rlnCoordinateX"])
    assert load_session(out).features(np.arange(40))["MANUAL_CLUSTER_ID"].iloc[3] == REJECTED_ID
    # never overwrite silently: neither the edited file nor the original
    with pytest.raises(FileExistsError):
        s.save(out)
    with pytest.raises(FileExistsError):
        s.save(results_dir / "particles.star")
    s.assign(np.array([5]), "ring")
    s.save(out, overwrite=True)
    assert read_particles(out)["afmClassName"].iloc[5] == "ring"
    out.unlink()


def test_bad_inputs_leave_nothing_behind(results_dir, tmp_path):
    s = load_session(results_dir)
    with pytest.raises(InputError, match="suffix"):
        s.save(tmp_path / "edited.csv")
    with pytest.raises(InputError, match="rlnCoordinateZ"):
        ReviewSession(pd.DataFrame({"rlnCoordinateX": [1.0], "rlnCoordinateY": [1.0]}))
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(InputError, match="run.json"):
        res.read_run_info(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"tomograms": ["a.mrc"]}))
    with pytest.raises(InputError, match="tomograms"):
        res.read_run_info(tmp_path)
    np.savez(tmp_path / "lat.npz", particle_id=np.arange(3), mu=np.zeros((3, 2)))
    with pytest.raises(InputError, match="particle_id"):
        res.read_latents(tmp_path / "lat.npz", np.arange(5))
    with pytest.raises(InputError, match="particles.star"):
        res.particles_path(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lat.npz", "run.json"]


def test_missing_run_json_and_tomogram_folder(results_dir, tmp_path):
    assert res.read_run_info(tmp_path) == res.RunInfo()
    tomo_dir = results_dir.parent / "tomograms"
    assert res.find_tomogram("demo", tomograms_dir=tomo_dir) == tomo_dir / "demo.mrc"
    assert res.find_tomogram("demo", results_dir=results_dir) == tomo_dir / "demo.mrc"  # RESULTS/../tomograms
    assert res.find_tomogram("other", tomograms_dir=tomo_dir) is None
    s = load_session(results_dir, tomograms_dir=tmp_path)  # wrong folder: particles only
    assert s.tomograms == {} and s.subtomogram(0) is None
