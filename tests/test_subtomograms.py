"""Subtomograms extracted elsewhere: RELION subtomogram STAR files, folders of MRC files, the workflow."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile

from affinitomo.cli import main
from affinitomo.density.masks import spherical_mask
from affinitomo.errors import InputError
from affinitomo.extract import extract_subtomograms
from affinitomo.io.particles import read_particles
from affinitomo.io.volumes import write_volume
from affinitomo.subtomogram_import import import_subtomograms, pseudo_tomograms
from test_workflow import job_counts, snakemake, write_config

RNG = np.random.default_rng(0)


def _volumes(n: int, box: int = 8) -> np.ndarray:
    return (RNG.normal(size=(n, box, box, box)) * 3 + 10).astype(np.float32)


def _norm(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    return (a - a.mean()) / a.std()


def _per_particle_star(tmp_path: Path, vols: np.ndarray, px: float | None = 5.0, **columns) -> Path:
    """parts/p<i>.mrc, one per volume, and subtomos.star naming them relative to its folder."""
    (tmp_path / "parts").mkdir(exist_ok=True)
    names = []
    for i, v in enumerate(vols):
        write_volume(tmp_path / "parts" / f"p{i}.mrc", v, px)
        names.append(f"parts/p{i}.mrc")
    star = tmp_path / "subtomos.star"
    starfile.write({"particles": pd.DataFrame({"rlnImageName": names, **columns})}, star)
    return star


def _stack_file(path: Path, vols: np.ndarray, px: float | None = 5.0) -> Path:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(vols)
        if px is not None:
            mrc.voxel_size = px
    return path


def _folder(tmp_path: Path, vols: np.ndarray, names: list[str], px: float | None = None) -> Path:
    folder = tmp_path / "subtomos"
    folder.mkdir()
    for v, name in zip(vols, names):
        _stack_file(folder / f"{name}.mrcs", v, px)
    return folder


def test_star_of_per_particle_files_is_the_normalised_data(tmp_path):
    vols = _volumes(5)
    star = _per_particle_star(tmp_path, vols, afmClassName=["a", "b", "a", "", "b"])
    out = import_subtomograms(star, tmp_path / "out", box=8, progress=False)
    stack = np.load(tmp_path / "out" / "subtomos.npy", mmap_mode="r")
    assert stack.dtype == np.float32 and stack.shape == (5, 8, 8, 8)
    for i, v in enumerate(vols):
        np.testing.assert_allclose(stack[i], _norm(v), atol=1e-5)
    table = read_particles(tmp_path / "out" / "particles.star")
    assert list(table["rlnTomoName"].unique()) == ["subtomos"]  # the STAR's stem: one pseudo-tomogram
    assert (table[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].to_numpy() == 4.0).all()  # box centre
    assert table["afmClassName"].tolist() == ["a", "b", "a", "", "b"]
    assert table["rlnClassNumber"].tolist() == [1, 2, 1, 0, 2]
    assert table["afmParticleId"].tolist() == [0, 1, 2, 3, 4]
    assert (table["afmPixelSize"] == 5.0).all() and (table["afmEdge"] == 0).all()
    assert len(out) == 5 and pseudo_tomograms(star) == ["subtomos"]


def test_star_of_stack_indices_keeps_its_tomograms_coordinates_and_ids(tmp_path):
    vols = _volumes(4)
    _stack_file(tmp_path / "stack.mrcs", vols, px=None)
    particles = pd.DataFrame({
        "rlnImageName": ["4@stack.mrcs", "2@stack.mrcs", "1@stack.mrcs", "3@stack.mrcs"],
        "rlnTomoName": ["ta", "tb", "ta", "tb"],
        "rlnCoordinateX": [10.0, 20.0, 30.0, 40.0], "rlnCoordinateY": 5.0, "rlnCoordinateZ": 6.0,
        "rlnAngleTilt": [0.0, 10.0, 20.0, 30.0], "rlnOpticsGroup": 1,
    })
    optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnOpticsGroupName": ["g"], "rlnImagePixelSize": [7.0]})
    star = tmp_path / "sub.star"
    starfile.write({"optics": optics, "particles": particles}, star)
    assert pseudo_tomograms(star) == ["ta", "tb"]
    table = import_subtomograms(star, tmp_path / "tb", box=8, tomo="tb", progress=False)
    stack = np.load(tmp_path / "tb" / "subtomos.npy")
    np.testing.assert_allclose(stack[0], _norm(vols[1]), atol=1e-5)
    np.testing.assert_allclose(stack[1], _norm(vols[2]), atol=1e-5)
    assert table["afmParticleId"].tolist() == [1, 3]  # numbered over the whole table
    assert table["rlnCoordinateX"].tolist() == [20.0, 40.0] and table["rlnAngleTilt"].tolist() == [10.0, 30.0]
    assert (table["afmPixelSize"] == 7.0).all()  # no header voxel size: the STAR's rlnImagePixelSize


def test_folder_of_mrc_files_labels_from_names_only_when_asked(tmp_path):
    vols = _volumes(3)
    folder = _folder(tmp_path, vols, ["1abc_1-2-3", "2xyz_4-5-6", "1abc_7-8-9"])
    plain = import_subtomograms(folder, tmp_path / "plain", pixel_size=10.0, progress=False)
    assert (plain["afmClassName"] == "").all() and (plain["rlnClassNumber"] == 0).all()
    assert (plain["rlnTomoName"] == "subtomos").all() and (plain["afmPixelSize"] == 10.0).all()
    labelled = import_subtomograms(folder, tmp_path / "labelled", pixel_size=10.0, labels_from_names=True, progress=False)
    assert labelled["afmClassName"].tolist() == ["1abc", "1abc", "2xyz"]  # files in name order
    assert labelled["rlnClassNumber"].tolist() == [1, 1, 2]
    stack = np.load(tmp_path / "labelled" / "subtomos.npy")
    np.testing.assert_allclose(stack[1], _norm(vols[2]), atol=1e-5)


@pytest.mark.parametrize("options", [dict(mask_radius=3.0, invert=True), dict(normalise=False, invert=True),
                                     dict(normalise=False, mask_radius=2.5)])
def test_same_normalisation_mask_and_inversion_as_extraction(tmp_path, options):
    """A subtomogram imported as a file equals the box that extract cuts at the centre of that same volume."""
    vol = _volumes(1, 9)[0]
    write_volume(tmp_path / "t.mrc", vol, 5.0)
    centre = pd.DataFrame({"rlnTomoName": ["t"], "rlnCoordinateX": [4.0], "rlnCoordinateY": [4.0], "rlnCoordinateZ": [4.0]})
    extract_subtomograms(centre, {"t": tmp_path / "t.mrc"}, 9, tmp_path / "e", progress=False, **options)
    star = _per_particle_star(tmp_path, vol[None])
    import_subtomograms(star, tmp_path / "i", progress=False, **options)  # box taken from the file
    np.testing.assert_array_equal(np.load(tmp_path / "i" / "subtomos.npy"), np.load(tmp_path / "e" / "subtomos.npy"))


def test_crop_cuts_or_pads_about_the_centre(tmp_path):
    vols = _volumes(2, 12)
    star = _per_particle_star(tmp_path, vols)
    cut = import_subtomograms(star, tmp_path / "cut", box=8, resize="crop", progress=False)
    stack = np.load(tmp_path / "cut" / "subtomos.npy")
    np.testing.assert_allclose(stack[0], _norm(vols[0][2:10, 2:10, 2:10]), atol=1e-5)
    assert (cut["afmPixelSize"] == 5.0).all() and (cut["afmEdge"] == 0).all()
    padded = import_subtomograms(star, tmp_path / "pad", box=16, resize="crop", progress=False)
    stack = np.load(tmp_path / "pad" / "subtomos.npy")
    np.testing.assert_allclose(stack[1][2:14, 2:14, 2:14], _norm(vols[1]), atol=1e-5)  # centre 6 -> 8
    inside = np.zeros((16,) * 3, bool)
    inside[2:14, 2:14, 2:14] = True
    assert (stack[1][~inside] == 0).all() and (padded["afmEdge"] == 1).all()
    assert (padded["rlnCoordinateX"] == 8.0).all()


def test_scale_resamples_to_the_box_and_the_pixel_size_grows(tmp_path):
    smooth = np.zeros((1, 16, 16, 16), np.float32)
    smooth[0, 4:12, 6:10, 5:11] = 1.0
    star = _per_particle_star(tmp_path, smooth)
    table = import_subtomograms(star, tmp_path / "s", box=8, mask_radius=3.0, progress=False)
    stack = np.load(tmp_path / "s" / "subtomos.npy")
    assert stack.shape == (1, 8, 8, 8) and (table["afmPixelSize"] == 10.0).all()
    assert (table["rlnCoordinateX"] == 4.0).all()
    mask = spherical_mask(8, 3.0)
    assert abs(stack[0][mask].mean()) < 1e-5 and abs(stack[0][mask].std() - 1) < 1e-4 and (stack[0][~mask] == 0).all()
    assert stack[0][4, 4, 4] > stack[0][4, 0, 4]  # the block stays in the middle


def test_a_subtomogram_with_nan_is_left_out(tmp_path, caplog):
    vols = _volumes(3)
    vols[1, 0, 0, 0] = np.nan
    star = _per_particle_star(tmp_path, vols)
    table = import_subtomograms(star, tmp_path / "o", progress=False)
    assert table["afmParticleId"].tolist() == [0, 2] and np.load(tmp_path / "o" / "subtomos.npy").shape[0] == 2
    assert "non-finite" in caplog.text


def _error(call) -> InputError:
    with pytest.raises(InputError) as info:
        call()
    return info.value


def test_bad_input_names_the_file_and_the_field(tmp_path):
    vols = _volumes(2)
    star = _per_particle_star(tmp_path, vols)
    (tmp_path / "parts" / "p1.mrc").unlink()
    err = _error(lambda: import_subtomograms(star, tmp_path / "o", progress=False))
    assert err.path == str(star) and err.field == "rlnImageName" and "p1.mrc" in err.expected
    assert not (tmp_path / "o").exists()  # nothing written

    _stack_file(tmp_path / "stack.mrcs", _volumes(2))
    beyond = tmp_path / "beyond.star"
    starfile.write({"particles": pd.DataFrame({"rlnImageName": ["1@stack.mrcs", "3@stack.mrcs"]})}, beyond)
    err = _error(lambda: import_subtomograms(beyond, tmp_path / "o", progress=False))
    assert err.path == str(beyond) and err.field == "rlnImageName" and "holds 2" in err.expected

    write_volume(tmp_path / "parts" / "p1.mrc", _volumes(1, 10)[0], 5.0)
    err = _error(lambda: import_subtomograms(star, tmp_path / "o", progress=False))
    assert err.path == str(tmp_path / "parts" / "p1.mrc") and err.field == "nx/ny/nz" and "8^3" in err.expected

    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no volumes here")
    err = _error(lambda: import_subtomograms(tmp_path / "empty", tmp_path / "o", progress=False))
    assert err.path == str(tmp_path / "empty") and err.field == "files"

    no_px = _folder(tmp_path, _volumes(1), ["a_1"])
    err = _error(lambda: import_subtomograms(no_px, tmp_path / "o", progress=False))
    assert err.path == str(no_px) and err.field == "voxel_size"

    no_names = tmp_path / "no_names.star"
    starfile.write({"particles": pd.DataFrame({"rlnCoordinateX": [1.0]})}, no_names)
    assert _error(lambda: import_subtomograms(no_names, tmp_path / "o", progress=False)).field == "rlnImageName"


def test_cli_imports_and_reports_bad_input_in_one_line(tmp_path, capsys):
    folder = _folder(tmp_path, _volumes(2), ["a_1", "b_2"])
    assert main(["import-subtomograms", "--subtomograms", str(folder), "--out", str(tmp_path / "o"), "--box", "6",
                 "--resize", "crop", "--pixel-size", "4", "--labels-from-names", "--invert"]) == 0
    table = read_particles(tmp_path / "o" / "particles.star")
    assert table["afmClassName"].tolist() == ["a", "b"] and np.load(tmp_path / "o" / "subtomos.npy").shape == (2, 6, 6, 6)
    capsys.readouterr()
    assert main(["import-subtomograms", "--subtomograms", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("affinitomo import-subtomograms: error: ") and "missing" in err[0]


def test_reference_affinity_vae_folder(shared_data, tmp_path):
    """The reference Affinity-VAE's per-particle files (64^3, no voxel size in the headers), in place."""
    folder = shared_data / "affinity-vae"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    files = sorted(folder.glob("*.mrc*"))
    names = sorted({f.name.split("_", 1)[0] for f in files})
    table = import_subtomograms(folder, tmp_path / "a", box=32, pixel_size=10.0, labels_from_names=True, progress=False)
    assert len(table) == len(files) and sorted(set(table["afmClassName"])) == names
    assert names == sorted(pd.read_csv(folder / "classes.csv", header=None).iloc[0].tolist())
    assert np.load(tmp_path / "a" / "subtomos.npy").shape == (len(files), 32, 32, 32)
    assert (table["afmPixelSize"] == 20.0).all()  # 64^3 at 10 Å resampled to 32^3
    native = import_subtomograms(folder, tmp_path / "b", pixel_size=10.0, progress=False)  # the files' box
    assert np.load(tmp_path / "b" / "subtomos.npy").shape == (len(files), 64, 64, 64)
    assert (native["afmClassName"] == "").all()


def test_workflow_plans_a_run_on_imported_subtomograms(tmp_path):
    """data.subtomograms: one import job per pseudo-tomogram in place of extraction, template-free."""
    folder = _folder(tmp_path, _volumes(2), ["a_1", "b_2"])
    (tmp_path / "matrix.csv").write_text("a,b\n1,0.5\n0.5,1\n")
    config = write_config(tmp_path, data={"subtomograms": str(folder), "subtomogram_labels": True, "pixel_size": 10.0},
                          similarity={"matrix": "matrix.csv"})
    proc = snakemake(tmp_path, config, "-n", "--cores", "1", "-p")
    counts = job_counts(proc.stdout)
    assert counts["import_subtomograms"] == 1 and "extract" not in counts and "simulate_demo" not in counts
    assert "pick" not in counts and "simulate_training" not in counts
    for rule in ("gather_particles", "similarity", "references", "match", "train", "encode", "embed", "cluster"):
        assert counts[rule] == 1, rule
    assert (f"affinitomo import-subtomograms --subtomograms {folder} --tomo subtomos --out results/extract/subtomos "
            "--box 32 --resize scale --labels-from-names --pixel-size 10.0") in proc.stdout

    vols = _volumes(2)
    _stack_file(tmp_path / "stack.mrcs", vols)
    star = tmp_path / "two.star"
    starfile.write({"particles": pd.DataFrame({"rlnImageName": ["1@stack.mrcs", "2@stack.mrcs"],
                                               "rlnTomoName": ["t1", "t2"], "afmClassName": ["a", "b"]})}, star)
    config = write_config(tmp_path, data={"subtomograms": str(star)}, similarity={"matrix": "matrix.csv"})
    proc = snakemake(tmp_path, config, "-n", "--cores", "1", "-p")
    assert job_counts(proc.stdout)["import_subtomograms"] == job_counts(proc.stdout)["encode"] == 2
    assert "--stack results/extract/t1/subtomos.npy results/extract/t2/subtomos.npy" in proc.stdout

    clash = write_config(tmp_path, data={"subtomograms": str(star), "tomograms": [str(folder)]},
                         similarity={"matrix": "matrix.csv"})
    proc = snakemake(tmp_path, clash, "-n", "--cores", "1", check=False)
    assert proc.returncode != 0 and "data.subtomograms: in place of data.tomograms" in proc.stdout + proc.stderr
