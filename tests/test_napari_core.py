"""The napari plugin's pure building blocks (no napari or display needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from affinitomo.errors import InputError
from affinitomo.geometry import euler_to_matrix
from affinitomo.io.latents import latent_means
from affinitomo.io.particles import read_particles
from affinitomo.napari import results as res
from affinitomo.napari.contrast import contrast_limits, subsample
from affinitomo.napari.demo import write_demo_results
from affinitomo.napari.features import (CATEGORY_COLORS, KNOWN_COLORS, REJECTED_ID, UNKNOWN_GROUP_COLORS,
                                        UNKNOWN_RGBA, UNLABELLED_RGBA, ClassPalette, category_colors,
                                        confidence_colormap, pose_vectors, value_colors)
from affinitomo.napari.particle_view import box_size_for, crop_box, orthogonal_slices
from affinitomo.napari.raster import extent_of, mask_image, scatter_image
from affinitomo.napari.selection import medoid, nearest_point, points_in_box, points_in_polygon
from affinitomo.napari.session import AUTOSAVE_NAME, EDITED_NAME, ReviewSession, load_session


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    return write_demo_results(tmp_path_factory.mktemp("demo"), shape=(64, 160, 160), per_class=3)


def test_contrast_limits_ignore_outliers():
    rng = np.random.default_rng(0)
    vol = rng.normal(0, 1, (40, 50, 60)).astype(np.float32)
    vol[0, 0, :10] = 1e6  # a gold bead
    low, high = contrast_limits(vol, max_samples=20_000)
    assert -3 < low < -2 and 2 < high < 3
    assert subsample(vol, 20_000).size <= 40 * 50 * 60 // 8


def test_palette_is_stable_colour_blind_safe_and_greys_unknown():
    palette = ClassPalette(["a", "b"])
    before = palette.colors(np.array(["a", "b"])).copy()
    palette.add("unknown_c4")
    palette.add("c")
    after = palette.colors(np.array(["a", "b", "c", "unknown_c4", "unknown", "", "rejected"]))
    np.testing.assert_array_equal(before, after[:2])
    np.testing.assert_allclose(after[4], UNKNOWN_RGBA)
    np.testing.assert_allclose(after[:3, :3], np.array(KNOWN_COLORS)[:3, :3], atol=1e-6)  # Tol muted, in order
    np.testing.assert_allclose(after[3, :3], UNKNOWN_GROUP_COLORS[0][:3], atol=1e-6)  # Okabe-Ito
    assert palette.symbols(np.array(["a", "unknown_c4", "rejected"])).tolist() == ["disc", "diamond", "x"]
    # 30 classes and 20 unknown groups: all distinct, none grey like the greys of unknown/unlabelled/rejected
    many = ClassPalette([f"k{i}" for i in range(30)] + [f"unknown_c{i}" for i in range(20)])
    colours = many.colors(np.array(many.names))
    assert len({tuple(np.round(c, 4)) for c in colours}) == 50
    assert (np.ptp(colours[:, :3], axis=1) > 0.1).all()  # no grey among them


def test_groups_legend_and_numbers():
    table = pd.DataFrame({
        "rlnCoordinateX": np.arange(8.0), "rlnCoordinateY": 0.0, "rlnCoordinateZ": 0.0,
        "afmClassName": ["a", "a", "unknown", "unknown", "unknown", "b", "unknown", ""],
        "rlnClassNumber": [1, 1, 4, 4, 3, 2, 0, 0],
        "afmClusterId": [10, 10, 12, 12, 2, 1, -1, 3],
    })
    s = ReviewSession(table, classes={"a": 1, "b": 2, "unknown_c2": 3, "unknown_c12": 4, "unknown": 0})
    assert s.class_names == ["a", "b"]  # unknown groups are not assignable classes
    assert s.groups().tolist() == ["a", "a", "unknown_c12", "unknown_c12", "unknown_c2", "b", "unknown", ""]
    assert s.unknown_groups() == ["unknown_c2", "unknown_c12"]  # by class number
    assert list(s.cluster_rows()) == ["-1", "1", "2", "3", "10", "12"]  # numeric, not text, order
    s.reject(np.array([7]))
    assert s.legend() == [("a", 2), ("b", 1), ("unknown_c2", 1), ("unknown_c12", 2), ("unknown", 1),
                          ("rejected", 1)]
    assert s.add_class("c") == 5  # above the unknown groups' numbers
    for bad in ("unknown", "unknown_c2", "rejected", " "):
        with pytest.raises(ValueError):
            s.add_class(bad)


def test_colour_by_cluster_confidence_tomogram_and_makeup():
    table = pd.DataFrame({
        "rlnCoordinateX": np.arange(6.0), "rlnCoordinateY": 0.0, "rlnCoordinateZ": 0.0,
        "rlnTomoName": ["t2", "t2", "t1", "t1", "t2", "t1"],
        "afmClassName": ["a", "a", "b", "unknown", "unknown", "a"],
        "afmClusterId": [10, 2, 2, -1, 10, 0], "afmConfidence": [0.0, 0.5, 1.0, np.nan, 0.25, 0.75],
    })
    s = ReviewSession(table)
    codes, names = s.categories("cluster")
    assert names == ["0", "2", "10"] and codes.tolist() == [2, 1, 1, -1, 2, 0]  # numeric order; noise -1
    clusters = s.colors_by("cluster", np.arange(6))
    np.testing.assert_allclose(clusters[[0, 1, 5]], np.array(CATEGORY_COLORS)[[2, 1, 0]], atol=1e-6)
    np.testing.assert_allclose(clusters[3], UNKNOWN_RGBA)
    assert [name for name, _ in s.color_key("cluster")] == ["0", "2", "10", "noise (-1)"]
    tomograms = s.colors_by("tomogram", np.array([0, 2]))
    np.testing.assert_allclose(tomograms, np.array(CATEGORY_COLORS)[:2], atol=1e-6)  # t2, t1: table order
    confidence = s.colors_by("confidence", np.arange(6))
    np.testing.assert_allclose(confidence[[0, 1, 2]], confidence_colormap()([0.0, 0.5, 1.0]), atol=1e-6)
    from matplotlib import colormaps  # viridis from dark blue to green: its yellow is the selection's

    np.testing.assert_allclose(confidence[[0, 2]], colormaps["viridis"]([0.0, 0.85]), atol=0.01)
    np.testing.assert_allclose(confidence[3], UNLABELLED_RGBA)  # no confidence
    np.testing.assert_allclose(s.colors_by("class", np.arange(6)), s.colors(np.arange(6)))
    assert s.makeup(np.array([0, 1, 3, 4, 5])) == [("a", 3, 0.6), ("unknown", 1, 0.2), ("unknown_c10", 1, 0.2)]
    assert s.makeup(np.zeros(0, dtype=int)) == []
    many = category_colors(np.arange(40))
    assert len({tuple(np.round(c, 4)) for c in many}) == 40  # past the 16 colours: lighter, then darker
    assert np.isnan(ReviewSession(table.drop(columns="afmConfidence")).confidence()).all()
    np.testing.assert_allclose(value_colors(np.array([2.0, -1.0])), confidence_colormap()([1.0, 0.0]), atol=1e-6)


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
    assert len(s.table) == 30 and s.tomograms["tomo01"].data.shape == (64, 160, 160)
    assert s.pixel_size("tomo01") == 10.0
    assert s.class_names[:3] == ["ring_c6", "ring_c7", "d4_stack"]
    assert "tripod" not in s.class_names  # the held-out class is 'unknown', in its own unknown group
    group = s.unknown_groups()[0]
    assert s.class_names == list(s.class_numbers) and group not in s.class_names
    assert s.class_average(group).shape == (32, 32, 32)  # averages/unknown_c<k>.mrc
    assert s.diameter == json.loads((results_dir / "run.json").read_text())["particle_diameter"]
    assert s.subtomogram(0).shape == (box_size_for(s.diameter / 10),) * 3
    assert s.class_average("ring_c6").shape == (32, 32, 32)
    assert s.class_average("unknown") is None
    assert s.latents().shape == (30, 8) and "latents.npz" in s.latent_source
    rows = s.cluster_rows()["0"]
    assert s.medoid_row(rows) in rows
    f = s.features(s.rows_of("tomo01"))
    assert {"UMAP0", "UMAP1", "MANUAL_CLUSTER_ID", "class", "cluster", "confidence", "rot"} <= set(f.columns)


def test_relabel_save_round_trip(results_dir):
    s = load_session(results_dir)
    s.assign(np.array([0, 1]), "ring_c6")
    s.assign(np.array([2]), "brand_new")
    s.reject(np.array([3, 4]))
    out = s.save()
    assert out == results_dir / EDITED_NAME
    back = read_particles(out)
    assert len(back) == 30  # rejected rows are kept, flagged
    assert back["afmClassName"].iloc[:3].tolist() == ["ring_c6", "ring_c6", "brand_new"]
    assert back["rlnClassNumber"].iloc[2] == max(s.class_numbers.values())
    assert back["afmRejected"].tolist()[:6] == [0, 0, 0, 1, 1, 0]
    assert back["afmClassName"].iloc[3] == "" and back["rlnClassNumber"].iloc[3] == 0
    assert back["afmEdited"].sum() == 5
    np.testing.assert_allclose(back["rlnCoordinateX"], s.table["rlnCoordinateX"])
    assert load_session(out).features(np.arange(30))["MANUAL_CLUSTER_ID"].iloc[3] == REJECTED_ID
    # never overwrite silently: neither the edited file nor the original
    with pytest.raises(FileExistsError):
        s.save(out)
    with pytest.raises(FileExistsError):
        s.save(results_dir / "particles.star")
    s.assign(np.array([5]), "barrel")
    s.save(out, overwrite=True)
    assert read_particles(out)["afmClassName"].iloc[5] == "barrel"
    out.unlink()


def test_autosave_and_moves(results_dir, tmp_path):
    results = _copy_results(results_dir, tmp_path)
    s = load_session(results)
    assert s.autosave() is None and not s.unsaved  # nothing to keep
    s.move(np.array([4]), np.array([[1.5, 2.5, 3.5]]))
    path = s.autosave()
    assert path == results / AUTOSAVE_NAME and s.autosave() is None  # written once per state
    back = read_particles(path)
    assert back[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].iloc[4].tolist() == [1.5, 2.5, 3.5]
    assert back["afmEdited"].tolist() == [int(i == 4) for i in range(30)]
    with pytest.raises(FileExistsError, match="autosave"):
        s.save(path, overwrite=True)
    s.save()
    assert not path.exists() and not s.unsaved  # the save holds the edits


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
        latent_means(tmp_path / "lat.npz", np.arange(5))
    with pytest.raises(InputError, match="particles.star"):
        res.particles_path(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lat.npz", "run.json"]


def test_missing_run_json_and_tomogram_folder(results_dir, tmp_path):
    assert res.read_run_info(tmp_path) == res.RunInfo()
    tomo_dir = results_dir.parent / "tomograms"
    assert res.find_tomogram("tomo01", tomograms_dir=tomo_dir) == tomo_dir / "tomo01.mrc"
    assert res.find_tomogram("tomo01", results_dir=results_dir) == tomo_dir / "tomo01.mrc"  # RESULTS/../tomograms
    assert res.find_tomogram("other", tomograms_dir=tomo_dir) is None
    s = load_session(results_dir, tomograms_dir=tmp_path)  # wrong folder: particles only
    assert s.tomograms == {} and s.subtomogram(0) is None


def _copy_results(results_dir, dest):
    """A copy of the results folder (without the tomogram: run.json still points at it)."""
    import shutil

    return Path(shutil.copytree(results_dir, dest / "results"))


def _write_model(path, box=16):
    import torch

    from affinitomo.model.checkpoint import save_checkpoint
    from affinitomo.model.train_config import config_from_dict
    from affinitomo.model.vae import AffinityVAE

    cfg = config_from_dict({"model": {"depth": 2, "channels": 4, "latent_dims": 3}})
    torch.manual_seed(0)
    net = AffinityVAE(cfg.model, box)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, {"config": cfg.to_dict(), "classes": ["a"], "model": net.state_dict(), "box": box})
    return path


def test_reconstruction_from_tomogram_then_stack(results_dir, tmp_path):
    import torch

    from affinitomo.io.particles import write_particles
    from affinitomo.io.stacks import normalise_inplace
    from affinitomo.model.loading import load_model

    results = _copy_results(results_dir, tmp_path)
    s = load_session(results)
    volume, label = s.reconstruction(0)
    assert volume is None and "no checkpoint" in label
    ckpt = _write_model(results / "train" / "model.pt")  # the workflow's layout, no run.json entry
    s = load_session(results)
    assert s.run_info.checkpoint == ckpt
    volume, label = s.reconstruction(3)
    assert volume.shape == (16, 16, 16) and label == "model (tomogram)"
    model, _ = load_model(ckpt)
    x = s.subtomogram(3, box=16)[None].copy()
    normalise_inplace(x, "zscore")
    with torch.no_grad():
        expected = model(torch.from_numpy(x[:, None])).recon[0, 0].numpy()
    np.testing.assert_allclose(volume, expected, atol=1e-5)
    assert s.reconstructor is s.reconstructor  # loaded once
    # With the extract stage's stack (rows in another order): the stack row of the same particle.
    table = read_particles(results / "particles.star").iloc[::-1]
    rng = np.random.default_rng(0)
    stack = rng.normal(size=(len(table), 16, 16, 16)).astype(np.float32)
    (results / "extract").mkdir()
    np.save(results / "extract" / "subtomos.npy", stack)
    write_particles(results / "extract" / "particles.star", table)
    s = load_session(results)
    inp, source = s.model_input(3, 16)
    assert source == "stack"
    np.testing.assert_array_equal(inp, stack[len(table) - 1 - 3])
    assert s.reconstruction(3)[1] == "model (stack)"
    # One stack per tomogram (the workflow's layout), listed in run.json: split the table in two.
    info = json.loads((results / "run.json").read_text())
    halves = []
    for k, rows in enumerate((slice(0, 10), slice(10, None))):
        folder = results / "extract" / f"t{k}"
        folder.mkdir()
        np.save(folder / "subtomos.npy", stack[rows])
        write_particles(folder / "particles.star", table.iloc[rows])
        halves.append(str(folder / "subtomos.npy"))
    info["stack"] = halves
    (results / "run.json").write_text(json.dumps(info))
    s = load_session(results)
    assert s.run_info.stack == [Path(h) for h in halves]
    for row in (3, len(table) - 2):
        inp, source = s.model_input(row, 16)
        assert source == "stack"
        np.testing.assert_array_equal(inp, stack[len(table) - 1 - row])


def test_foreign_checkpoint_is_reported(results_dir, tmp_path):
    results = _copy_results(results_dir, tmp_path)
    (results / "train").mkdir()
    (results / "train" / "model.pt").write_bytes(b"not a checkpoint")
    volume, label = load_session(results).reconstruction(0)
    assert volume is None and "model.pt" in label and "checkpoint" in label  # said in the panel, no crash
