"""Subtomogram extraction: geometry, binning, edges, normalisation, mask, formats, bad input, CLI."""

from __future__ import annotations

import logging
import mmap
import os
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
import tifffile

from affinitomo.cli import main
from affinitomo.density.masks import spherical_mask
from affinitomo.errors import InputError
from affinitomo.extract import extract_subtomograms
from affinitomo.io.pages import PageBudget, file_backed_rss
from affinitomo.io.particles import read_particles, write_particles
from affinitomo.io.tomograms import find_tomograms
from affinitomo.io.volumes import write_volume

SHAPE = (40, 50, 60)  # z, y, x


@pytest.fixture
def tomo(tmp_path) -> tuple[Path, np.ndarray]:
    vol = (np.random.default_rng(0).normal(size=SHAPE) * 3 + 10).astype(np.float32)
    path = tmp_path / "tomo" / "t1.mrc"
    path.parent.mkdir()
    write_volume(path, vol, 5.0)
    return path, vol


def _table(xyz, tomo="t1", px=5.0) -> pd.DataFrame:
    xyz = np.asarray(xyz, dtype=float)
    return pd.DataFrame(
        {
            "rlnTomoName": tomo,
            "rlnCoordinateX": xyz[:, 0],
            "rlnCoordinateY": xyz[:, 1],
            "rlnCoordinateZ": xyz[:, 2],
            "afmPixelSize": px,
            "afmParticleId": np.arange(len(xyz)) + 100,
        }
    )


def _crop(vol, x, y, z, box):
    c = np.floor(np.array([z, y, x]) + 0.5).astype(int) - box // 2
    return vol[c[0] : c[0] + box, c[1] : c[1] + box, c[2] : c[2] + box]


def _norm(a):
    a = a.astype(np.float64)
    return (a - a.mean()) / a.std()


@pytest.mark.parametrize("box", [16, 15])
def test_boxes_are_normalised_crops_centred_at_rounded_coordinate(tmp_path, tomo, box):
    path, vol = tomo
    xyz = [[30.4, 25.0, 20.0], [20.6, 30.2, 15.5], [40.0, 20.0, 25.0]]
    out = extract_subtomograms(_table(xyz), {"t1": path}, box, tmp_path / "out", progress=False)
    stack = np.load(tmp_path / "out" / "subtomos.npy", mmap_mode="r")
    assert stack.shape == (3, box, box, box) and stack.dtype == np.float32
    for k, (x, y, z) in enumerate(xyz):
        np.testing.assert_allclose(stack[k], _norm(_crop(vol, x, y, z, box)), atol=1e-4)
    assert out["afmParticleId"].tolist() == [100, 101, 102]
    assert (out["afmEdge"] == 0).all()
    back = read_particles(tmp_path / "out" / "particles.star")
    pd.testing.assert_frame_equal(back, out, check_exact=False, atol=1e-6)


def test_point_lands_on_centre_voxel(tmp_path):
    vol = np.zeros((30, 30, 30), np.float32)
    vol[12, 17, 9] = 1.0  # z, y, x
    path = tmp_path / "p.mrc"
    write_volume(path, vol, 1.0)
    extract_subtomograms(_table([[9.2, 16.8, 12.0]], "p", 1.0), {"p": path}, 8, tmp_path / "o", normalise=False, progress=False)
    stack = np.load(tmp_path / "o" / "subtomos.npy")
    assert np.unravel_index(np.argmax(stack[0]), stack[0].shape) == (4, 4, 4)


def test_output_keeps_input_order_across_tomograms(tmp_path, tomo):
    path, vol = tomo
    vol2 = -vol
    path2 = tmp_path / "tomo" / "t2.mrc"
    write_volume(path2, vol2, 5.0)
    table = pd.concat([_table([[30, 25, 20]], "t2"), _table([[20, 20, 20], [40, 30, 10]], "t1"), _table([[25, 30, 15]], "t2")])
    table["afmParticleId"] = [7, 3, 9, 1]
    out = extract_subtomograms(table, find_tomograms([path.parent]), 8, tmp_path / "o", normalise=False, progress=False)
    stack = np.load(tmp_path / "o" / "subtomos.npy")
    assert out["afmParticleId"].tolist() == [7, 3, 9, 1]
    assert out["rlnTomoName"].tolist() == ["t2", "t1", "t1", "t2"]
    for k, (name, x, y, z) in enumerate(out[["rlnTomoName", "rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].itertuples(index=False)):
        np.testing.assert_array_equal(stack[k], _crop(vol2 if name == "t2" else vol, x, y, z, 8))


def test_binning_block_means_and_scaled_table(tmp_path, tomo):
    path, vol = tomo
    x, y, z = 30.0, 25.0, 20.0
    out = extract_subtomograms(_table([[x, y, z]]), {"t1": path}, 8, tmp_path / "o", binning=2, normalise=False, progress=False)
    stack = np.load(tmp_path / "o" / "subtomos.npy")
    # region of 16 unbinned voxels placed so that binned voxel 4 covers voxels round(x - 0.5) .. +1
    s = np.floor(np.array([z, y, x]) - 0.5 + 0.5).astype(int) - 2 * 4
    region = vol[s[0] : s[0] + 16, s[1] : s[1] + 16, s[2] : s[2] + 16]
    expected = region.reshape(8, 2, 8, 2, 8, 2).mean(axis=(1, 3, 5))
    np.testing.assert_allclose(stack[0], expected, rtol=1e-6)
    assert out["rlnCoordinateX"].iloc[0] == 15.0 and out["afmPixelSize"].iloc[0] == 10.0


def test_edge_pad_uses_in_bounds_statistics(tmp_path, tomo):
    path, vol = tomo
    out = extract_subtomograms(_table([[2.0, 25.0, 20.0], [30.0, 25.0, 20.0]]), {"t1": path}, 16, tmp_path / "o", progress=False)
    stack = np.load(tmp_path / "o" / "subtomos.npy")
    assert out["afmEdge"].tolist() == [1, 0]
    # x from -6 .. 9: six voxels outside on the x axis
    padded, inside = stack[0][:, :, :6], stack[0][:, :, 6:]
    assert (padded == 0).all()
    np.testing.assert_allclose(inside, _norm(vol[12:28, 17:33, 0:10]), atol=1e-4)


def test_edge_skip_counts_in_log(tmp_path, tomo, caplog):
    path, _ = tomo
    caplog.set_level(logging.INFO, logger="affinitomo.extract")
    out = extract_subtomograms(_table([[2.0, 25.0, 20.0], [30.0, 25.0, 20.0], [30, 48, 20]]), {"t1": path}, 16, tmp_path / "o", edge="skip", progress=False)
    assert out["afmParticleId"].tolist() == [101]
    assert np.load(tmp_path / "o" / "subtomos.npy").shape[0] == 1
    assert "skipped 2 of 3" in caplog.text


def test_all_skipped_is_an_error_and_leaves_nothing(tmp_path, tomo):
    path, _ = tomo
    with pytest.raises(InputError, match="all 1 were skipped"):
        extract_subtomograms(_table([[1.0, 1.0, 1.0]]), {"t1": path}, 16, tmp_path / "o", edge="skip", progress=False)
    assert not (tmp_path / "o").exists()


def test_invert_without_normalisation_and_mask(tmp_path, tomo):
    path, vol = tomo
    xyz = [[30.0, 25.0, 20.0]]
    extract_subtomograms(_table(xyz), {"t1": path}, 12, tmp_path / "a", normalise=False, invert=True, progress=False)
    np.testing.assert_allclose(np.load(tmp_path / "a" / "subtomos.npy")[0], -_crop(vol, 30, 25, 20, 12), rtol=1e-6)
    extract_subtomograms(_table(xyz), {"t1": path}, 12, tmp_path / "b", mask_radius=4.5, progress=False)
    sub = np.load(tmp_path / "b" / "subtomos.npy")[0]
    mask = spherical_mask(12, 4.5)
    assert (sub[~mask] == 0).all()
    assert abs(sub[mask].mean()) < 1e-5 and abs(sub[mask].std() - 1) < 1e-4
    np.testing.assert_allclose(sub[mask], (_crop(vol, 30, 25, 20, 12)[mask] - _crop(vol, 30, 25, 20, 12)[mask].mean()) / _crop(vol, 30, 25, 20, 12)[mask].std(), atol=1e-4)


def test_uint8_tiff_takes_pixel_size_from_argument(tmp_path):
    vol = np.random.default_rng(1).integers(0, 255, size=(20, 30, 30), dtype=np.uint8)
    path = tmp_path / "tt.tif"
    tifffile.imwrite(path, vol)
    table = _table([[15, 15, 10]], "tt", np.nan)
    with pytest.raises(InputError, match="pixel size"):
        extract_subtomograms(table, {"tt": path}, 8, tmp_path / "o", progress=False)
    out = extract_subtomograms(table, {"tt": path}, 8, tmp_path / "o", pixel_size=10.52, normalise=False, progress=False)
    assert out["afmPixelSize"].iloc[0] == 10.52
    np.testing.assert_array_equal(np.load(tmp_path / "o" / "subtomos.npy")[0], _crop(vol, 15, 15, 10, 8).astype(np.float32))


def test_pixel_size_mismatch_names_both_values(tmp_path, tomo):
    path, _ = tomo
    with pytest.raises(InputError, match="tomogram 5 Å, table 6 Å"):
        extract_subtomograms(_table([[30, 25, 20]], px=6.0), {"t1": path}, 8, tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- bad input


def test_missing_tomogram_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        extract_subtomograms(_table([[1, 1, 1]]), {"t1": tmp_path / "t1.mrc"}, 8, tmp_path / "o", progress=False)
    with pytest.raises(InputError, match="tomogram.*not found"):
        find_tomograms([tmp_path / "nothing.mrc"])
    assert not (tmp_path / "o").exists()


def test_truncated_and_unsupported_mrc(tmp_path, tomo):
    path, _ = tomo
    os.truncate(path, path.stat().st_size - 4000)
    with pytest.raises(InputError, match="t1.mrc.*header"):
        extract_subtomograms(_table([[30, 25, 20]]), {"t1": path}, 8, tmp_path / "o", progress=False)
    complex_path = tmp_path / "c.mrc"
    with mrcfile.new(complex_path) as mrc:
        mrc.set_data(np.zeros((8, 8, 8), np.complex64))
    with pytest.raises(InputError, match="mode"):
        extract_subtomograms(_table([[4, 4, 4]], "c"), {"c": complex_path}, 4, tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists()


def test_name_without_file_lists_available(tmp_path, tomo):
    path, _ = tomo
    with pytest.raises(InputError, match=r"no file for \['TS_9'\]; available: \['t1'\]"):
        extract_subtomograms(_table([[30, 25, 20]], "TS_9"), {"t1": path}, 8, tmp_path / "o", progress=False)


def test_coordinate_outside_volume_names_row_and_shape(tmp_path, tomo):
    path, _ = tomo
    with pytest.raises(InputError, match=r"\(40, 50, 60\); row 1 \(afmParticleId 101\)"):
        extract_subtomograms(_table([[30, 25, 20], [30, 25, 45]]), {"t1": path}, 8, tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists()


def test_nan_and_empty_tables(tmp_path, tomo):
    path, _ = tomo
    with pytest.raises(InputError, match=r"NaN or missing in 1 rows"):
        extract_subtomograms(_table([[np.nan, 25, 20]]), {"t1": path}, 8, tmp_path / "o", progress=False)
    with pytest.raises(InputError, match="empty"):
        extract_subtomograms(_table(np.zeros((0, 3))), {"t1": path}, 8, tmp_path / "o", progress=False)
    with pytest.raises(InputError, match="box"):
        extract_subtomograms(_table([[30, 25, 20]]), {"t1": path}, 1, tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists()


def test_failure_keeps_existing_outputs_and_adds_nothing(tmp_path, tomo):
    path, _ = tomo
    out = tmp_path / "o"
    extract_subtomograms(_table([[30, 25, 20]]), {"t1": path}, 8, out, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(InputError):
        extract_subtomograms(_table([[30, 25, 99]]), {"t1": path}, 8, out, progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# --------------------------------------------------------------------------- memory, CLI, real data


@pytest.mark.skipif(file_backed_rss() is None or not hasattr(mmap.mmap, "madvise"), reason="needs Linux /proc and madvise")
def test_page_budget_drops_mapped_pages_and_keeps_content(tmp_path):
    path = tmp_path / "big.npy"
    big = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(16, 1024, 1024))
    big[:] = 1.5
    del big
    data = np.load(path, mmap_mode="r")
    budget = PageBudget(budget_bytes=0)
    budget.watch(data)
    assert float(data.sum(dtype=np.float64)) == 1.5 * data.size  # touches 64 MiB
    before = file_backed_rss()
    assert budget.check()
    assert before - file_backed_rss() > 32 * 2**20
    assert float(data[7].mean()) == 1.5


def test_cli_extract_and_error_exit(tmp_path, tomo, capsys):
    path, vol = tomo
    star = write_particles(tmp_path / "in.star", _table([[30, 25, 20], [20, 20, 20]]))
    rc = main(["extract", "--particles", str(star), "--tomograms", str(path.parent), "--box", "8", "--out", str(tmp_path / "o"), "--invert", "--edge", "skip"])
    assert rc == 0
    stack = np.load(tmp_path / "o" / "subtomos.npy")
    np.testing.assert_allclose(stack[1], -_norm(_crop(vol, 20, 20, 20, 8)), atol=1e-4)
    csv = tmp_path / "in.csv"
    csv.write_text("x,y,z\n30,25,99\n")
    rc = main(["extract", "--particles", str(csv), "--tomograms", str(path), "--out", str(tmp_path / "bad")])
    assert rc == 2
    assert "row 0" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_real_microtubule_tiff(tmp_path, shared_data):
    tif = shared_data / "real" / "13pf_MT.tif"
    if not tif.exists():
        pytest.skip(f"{tif} not found")
    tomos = find_tomograms([tif])
    csv = tmp_path / "mt.csv"
    csv.write_text("x,y,z\n47,50,18\n47,103,18\n47,160,18\n2,5,1\n")
    rc = main(["extract", "--particles", str(csv), "--tomograms", str(tif), "--box", "16", "--out", str(tmp_path / "o"), "--pixel-size", "10.52", "--invert"])
    assert rc == 0 and list(tomos) == ["13pf_MT"]
    stack = np.load(tmp_path / "o" / "subtomos.npy", mmap_mode="r")
    table = read_particles(tmp_path / "o" / "particles.star")
    assert stack.shape == (4, 16, 16, 16) and np.isfinite(stack).all()
    assert (table["afmPixelSize"] == 10.52).all() and table["afmEdge"].tolist() == [0, 0, 0, 1]
    np.testing.assert_allclose(stack[:3].mean(axis=(1, 2, 3)), 0, atol=1e-5)
