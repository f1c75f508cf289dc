"""Simulation: placement, RELION pose round trip through the files, layout, determinism, SNR,
missing wedge, tilt-series WBP, CTF, template loading, bad inputs, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
from scipy import fft as sfft

from affinitomo.cli import main
from affinitomo.density.ctf import CtfParameters, ctf, ctf_zeros, electron_wavelength
from affinitomo.density.wedge import wedge_angles, wedge_mask
from affinitomo.errors import InputError
from affinitomo.geometry import angular_distance, euler_to_matrix, rotate_volume
from affinitomo.io.particles import read_particles
from affinitomo.io.volumes import read_volume, write_volume
from affinitomo.simulate.dataset import SimClass, simulate_dataset
from affinitomo.simulate.demo import simulate_demo
from affinitomo.simulate.imaging import Imaging
from affinitomo.simulate.phantoms import bounding_radius, demo_phantoms, render_phantom
from affinitomo.simulate.placement import min_clearance, place_particles
from affinitomo.simulate.templates import load_templates, resample
from affinitomo.simulate.tiltseries import backproject, project, tilt_angles
from affinitomo.simulate.tomogram import cut, render_particles

PHANTOM = {p.name: p for p in demo_phantoms()}
SMALL = dict(n_tomograms=1, shape=(64, 128, 128), per_class=2, progress=False)


def cc(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def blob(shape, centre_zyx, sigma=2.0) -> np.ndarray:
    z, y, x = np.mgrid[: shape[0], : shape[1], : shape[2]]
    c = centre_zyx
    return np.exp(-((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) / (2 * sigma**2)).astype(np.float32)


def no_temporaries(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if ".tmp" in p.name]


# ------------------------------------------------------------------ placement


def test_particles_do_not_overlap_and_stay_inside():
    rng = np.random.default_rng(0)
    templates = [render_phantom(PHANTOM[n], 32, 10.0) for n in ("l_short", "shell", "globule")]
    radii = [7.0, 13.0, 7.5]
    shape = (64, 128, 128)
    placement = place_particles(shape, radii, [8, 6, 10], rng)
    assert len(placement) == 24 and min_clearance(placement, radii) >= 1.0
    r = np.asarray(radii)[placement.class_index]
    assert np.all(placement.centres >= np.ceil(r)[:, None]) and np.all(placement.centres <= np.array(shape) - np.ceil(r)[:, None])
    # rendered one by one, no voxel gets density from two particles
    support = np.zeros(shape, np.int32)
    for i in range(len(placement)):
        single = place_particles.__globals__["Placement"](placement.class_index[i : i + 1], placement.centres[i : i + 1], placement.matrices[i : i + 1])
        support += render_particles(shape, templates, single) > 1e-3
    assert support.max() == 1
    # poses look uniform on SO(3): mean of A is near zero
    many = place_particles((64, 256, 256), [3.0], [400], rng)
    assert np.abs(many.matrices.mean(axis=0)).max() < 0.12


def test_too_many_particles_is_an_input_error():
    with pytest.raises(InputError, match="per-class"):
        place_particles((32, 40, 40), [10.0], [50], np.random.default_rng(0))


# ------------------------------------------------------------------ data set, files, RELION round trip


@pytest.fixture(scope="module")
def noise_free(tmp_path_factory) -> Path:
    """Asymmetric shapes, no wedge (tilt -90..90) and no noise: the tomogram is the pasted templates."""
    out = tmp_path_factory.mktemp("noise_free")
    classes = [SimClass(n, render_phantom(PHANTOM[n], 32, 10.0)) for n in ("l_short", "globule", "l_long")]
    classes[2].known = False
    imaging = Imaging(mode="wedge", tilt_min=-90, tilt_max=90, snr=0)
    simulate_dataset(out, classes, shape=(64, 128, 128), per_class=4, imaging=imaging, seed=3, progress=False, whole_box_inside=True)
    return out


def test_truth_angles_are_the_relion_pose_of_the_template(noise_free):
    """Rotating the template file by euler_to_matrix(truth angles) gives what is at the truth coordinate."""
    truth = read_particles(noise_free / "truth.star")
    tomo, vs = read_volume(noise_free / "tomograms" / "tomo01.mrc")
    assert vs == pytest.approx(10.0)
    templates = {n: read_volume(noise_free / "templates" / f"{n}.mrc")[0] for n in ("l_short", "globule")}
    z, y, x = np.mgrid[:32, :32, :32] - 16
    for row in truth[truth.afmClassName.isin(list(templates))].itertuples():
        centre = (int(row.rlnCoordinateZ), int(row.rlnCoordinateY), int(row.rlnCoordinateX))
        template = templates[row.afmClassName]
        sphere = np.sqrt(z**2 + y**2 + x**2) <= bounding_radius(template)  # neighbours never reach in here
        box = cut(tomo, centre, 32) * sphere
        a = euler_to_matrix(row.rlnAngleRot, row.rlnAngleTilt, row.rlnAnglePsi)
        assert cc(rotate_volume(template, a) * sphere, box) > 0.999
        # un-rotating the box recovers the template; the transposed (wrong) convention does not
        assert cc(rotate_volume(box, a.T), template) > 0.95
        if angular_distance(a, a.T) > 60:  # (a 180-degree rotation is its own transpose)
            assert cc(rotate_volume(template, a.T) * sphere, box) < 0.9


def test_layout_labels_and_tables(noise_free):
    classes = pd.read_csv(noise_free / "classes.csv")
    assert list(classes.columns) == ["name", "number", "known"]
    assert classes.to_dict("list") == {"name": ["l_short", "globule", "l_long"], "number": [1, 2, 3], "known": [True, True, False]}
    assert sorted(p.name for p in (noise_free / "templates").iterdir()) == ["globule.mrc", "l_short.mrc"]
    with mrcfile.open(noise_free / "tomograms" / "tomo01.mrc") as m:
        assert m.data.dtype == np.float32 and m.data.shape == (64, 128, 128) and m.voxel_size.x == pytest.approx(10.0)
    truth = read_particles(noise_free / "truth.star")
    picked = read_particles(noise_free / "particles.star")
    assert len(truth) == len(picked) == 12
    assert (truth.afmParticleId == picked.afmParticleId).all()
    assert (truth[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]] == picked[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]]).all().all()
    assert (truth.afmPixelSize == 10.0).all() and set(truth.afmClassName) == {"l_short", "globule", "l_long"}
    assert (truth.rlnClassNumber == truth.afmClassName.map({"l_short": 1, "globule": 2, "l_long": 3})).all()
    # half of each known class labelled, the held-out class never; unlabelled rows have class 0
    labelled = picked[picked.afmClassName != ""]
    assert labelled.afmClassName.value_counts().to_dict() == {"l_short": 2, "globule": 2}
    assert (labelled.afmClassName.to_numpy() == truth.loc[labelled.index, "afmClassName"].to_numpy()).all()
    assert (picked.loc[picked.afmClassName == "", "rlnClassNumber"] == 0).all()
    raw = (noise_free / "particles.star").read_text()
    assert "rlnAngleRot" not in raw and "rlnAngleRot" in (noise_free / "truth.star").read_text()
    summary = json.loads((noise_free / "simulation.json").read_text())
    assert summary["seed"] == 3 and summary["tomograms"][0]["n_particles"] == 12
    assert no_temporaries(noise_free)


def test_demo_is_deterministic_for_a_seed(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed in ((a, 1), (b, 1), (c, 2)):
        simulate_demo(out, seed=seed, **SMALL)
    for name in ("truth.star", "particles.star"):
        pd.testing.assert_frame_equal(read_particles(a / name), read_particles(b / name))
    assert (a / "classes.csv").read_bytes() == (b / "classes.csv").read_bytes()
    ta, tb, tc = (read_volume(d / "tomograms" / "tomo01.mrc")[0] for d in (a, b, c))
    assert np.array_equal(ta, tb) and not np.array_equal(ta, tc)
    assert not read_particles(a / "truth.star")[["rlnCoordinateX"]].equals(read_particles(c / "truth.star")[["rlnCoordinateX"]])


def test_demo_defaults_classes_and_held_out(tmp_path):
    simulate_demo(tmp_path, **SMALL)
    classes = pd.read_csv(tmp_path / "classes.csv")
    assert len(classes) >= 8 and classes.known.sum() == len(classes) - 1
    held = classes.loc[~classes.known, "name"].item()
    assert not (tmp_path / "templates" / f"{held}.mrc").exists()
    truth = read_particles(tmp_path / "truth.star")
    assert (truth.afmClassName == held).sum() == 2
    assert held not in set(read_particles(tmp_path / "particles.star").afmClassName)


def test_snr_and_missing_wedge_of_the_wedge_path(tmp_path):
    summary = simulate_demo(tmp_path, imaging=Imaging(snr=0.2), **SMALL)
    assert summary["tomograms"][0]["snr_achieved"] == pytest.approx(0.2, rel=0.02)
    tomo, _ = read_volume(tmp_path / "tomograms" / "tomo01.mrc")
    power = np.abs(sfft.rfftn(tomo)) ** 2
    mask = wedge_mask(tomo.shape, -60, 60)
    measured = np.broadcast_to(mask, power.shape) > 0
    assert power[~measured].mean() < 1e-6 * power[measured].mean()


def test_dark_contrast_negates(tmp_path):
    bright = simulate_demo(tmp_path / "b", **SMALL)
    dark = simulate_demo(tmp_path / "d", imaging=Imaging(contrast="dark"), **SMALL)
    assert bright["tomograms"][0]["snr_achieved"] == dark["tomograms"][0]["snr_achieved"]
    tb = read_volume(tmp_path / "b" / "tomograms" / "tomo01.mrc")[0]
    td = read_volume(tmp_path / "d" / "tomograms" / "tomo01.mrc")[0]
    np.testing.assert_array_equal(td, -tb)


def test_failed_run_leaves_no_tables_or_temporaries(tmp_path):
    with pytest.raises(InputError):
        simulate_demo(tmp_path, n_tomograms=1, shape=(40, 60, 60), per_class=30, progress=False)
    assert not (tmp_path / "truth.star").exists() and not (tmp_path / "particles.star").exists()
    assert no_temporaries(tmp_path)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(shape=(4, 128, 128)), "shape"),
        (dict(per_class=0), "per-class"),
        (dict(labelled_fraction=1.5), "labelled-fraction"),
        (dict(held_out=("no_such_class",)), "held-out"),
        (dict(imaging=Imaging(snr=-1)), "snr"),
        (dict(imaging=Imaging(tilt_min=30, tilt_max=-30)), "tilt"),
        (dict(imaging=Imaging(mode="tiltseries", cs_mm=-1.0)), "cs-mm"),
        (dict(imaging=Imaging(mode="tiltseries", defocus_um=float("nan"))), "defocus-um"),
        (dict(imaging=Imaging(amplitude_contrast=1.0)), "amplitude-contrast"),
        (dict(box=31), "box"),
    ],
)
def test_bad_settings_are_input_errors(tmp_path, kwargs, field):
    args = {**SMALL, **kwargs}
    with pytest.raises(InputError, match=field):
        simulate_demo(tmp_path, **args)
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------------ tilt series, WBP, CTF


def test_wbp_of_a_centred_blob_reconstructs_it_in_place():
    shape = (40, 8, 64)
    vol = blob(shape, (20 + 3, 4, 32 - 5))
    full = tilt_angles(-90, 89, 1)
    rec = backproject(project(vol, full), full, 40, 64)
    assert np.unravel_index(rec.argmax(), shape) == (23, 4, 27)
    assert cc(rec, vol) > 0.99 and rec.max() == pytest.approx(vol.max(), rel=0.15)
    limited = tilt_angles(-60, 60, 3)
    rec = backproject(project(vol, limited), limited, 40, 64)
    assert np.unravel_index(rec.argmax(), shape) == (23, 4, 27)
    assert cc(rec, vol) > 0.8


@pytest.mark.parametrize("tilt_range", [(-60, 60), (-30, 60)])
def test_reconstruction_has_the_missing_wedge_of_the_mask_convention(tilt_range):
    shape = (48, 4, 64)
    noise = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    angles = tilt_angles(*tilt_range, 2)
    rec = backproject(project(noise, angles), angles, 48, 64)
    power = (np.abs(sfft.rfftn(rec)) ** 2).mean(axis=1)  # (kz, kx)
    ang = wedge_angles(shape)[:, 0, :]
    r = np.hypot(sfft.fftfreq(48)[:, None], sfft.rfftfreq(64)[None, :])
    ring = (r > 0.08) & (r < 0.4)
    inside = ring & (ang > tilt_range[0] + 8) & (ang < tilt_range[1] - 8)
    outside = ring & ((ang < tilt_range[0] - 8) | (ang > tilt_range[1] + 8))
    assert power[outside].mean() < 0.02 * power[inside].mean()


def test_electron_wavelength_and_ctf_zeros():
    assert electron_wavelength(300) == pytest.approx(0.019687, rel=1e-4)
    assert electron_wavelength(200) == pytest.approx(0.025079, rel=1e-4)
    zeros = ctf_zeros(4, defocus_um=3.0, voltage_kv=300, cs_mm=2.7, amplitude_contrast=0.07)
    # first zero without Cs: k^2 = (1 - phi/pi) / (lambda dF)
    phi = np.arctan2(0.07, np.sqrt(1 - 0.07**2))
    assert zeros[0] == pytest.approx(np.sqrt((1 - phi / np.pi) / (0.019687 * 3e4)), rel=0.01)
    np.testing.assert_allclose(ctf(zeros), 0.0, atol=1e-9)
    for k in zeros:  # a sign change across each zero
        assert ctf(k * 0.99) * ctf(k * 1.01) < 0
    # the 2D CTF on an FFT grid has its first zero ring at the same frequency
    grid = CtfParameters().image((1, 512), pixel_size=5.0)[0]
    freqs = np.fft.rfftfreq(512, d=5.0)
    first = freqs[np.flatnonzero(np.diff(np.sign(grid)) != 0)[0]]
    assert first == pytest.approx(zeros[0], abs=1 / (512 * 5.0))
    assert CtfParameters(phase_flip=True).image((8, 8), 10.0).min() >= 0
    assert ctf(0.0) == pytest.approx(0.07)  # positive at low frequency: protein stays bright


@pytest.mark.parametrize("noise", ["gaussian", "poisson"])
def test_tiltseries_path_reaches_the_snr(tmp_path, noise):
    classes = [SimClass(n, render_phantom(PHANTOM[n], 32, 10.0)) for n in ("l_short", "shell")]
    imaging = Imaging(mode="tiltseries", noise=noise, snr=0.5, tilt_step=4)
    summary = simulate_dataset(tmp_path, classes, shape=(48, 64, 128), per_class=2, imaging=imaging, seed=0, progress=False)
    assert summary["tomograms"][0]["snr_achieved"] == pytest.approx(0.5, rel=0.15)


def test_tiltseries_particles_sit_at_their_truth_pose(tmp_path):
    classes = [SimClass(n, render_phantom(PHANTOM[n], 32, 10.0)) for n in ("l_short", "l_long")]
    imaging = Imaging(mode="tiltseries", snr=0, contrast="dark", phase_flip=True)
    simulate_dataset(tmp_path, classes, shape=(48, 96, 128), per_class=2, imaging=imaging, seed=0, progress=False)
    tomo, _ = read_volume(tmp_path / "tomograms" / "tomo01.mrc")
    truth = read_particles(tmp_path / "truth.star")
    for row in truth.itertuples():
        centre = (int(row.rlnCoordinateZ), int(row.rlnCoordinateY), int(row.rlnCoordinateX))
        template = read_volume(tmp_path / "templates" / f"{row.afmClassName}.mrc")[0]
        a = euler_to_matrix(row.rlnAngleRot, row.rlnAngleTilt, row.rlnAnglePsi)
        box = -cut(tomo, centre, 32)  # dark protein
        assert cc(box, rotate_volume(template, a)) > 0.5
        assert cc(box, rotate_volume(template, a)) > cc(box, rotate_volume(template, a.T)) + 0.1


# ------------------------------------------------------------------ templates


def test_resample_keeps_the_centre():
    fine = blob((64, 64, 64), (32 + 4, 32, 32), sigma=3.0)  # 4 voxels of 5 Å = 2 voxels of 10 Å off centre in z
    coarse = resample(fine, 5.0, 10.0)
    assert coarse.shape == (32, 32, 32)
    assert np.unravel_index(coarse.argmax(), coarse.shape) == (18, 16, 16)
    assert resample(coarse, 10.0, 10.0) is not coarse


def test_load_templates_resamples_and_rejects_bad_maps(tmp_path):
    good = tmp_path / "good"
    write_volume(good / "a.mrc", render_phantom(PHANTOM["l_short"], 64, 5.0), 5.0)
    write_volume(good / "b.mrc", render_phantom(PHANTOM["globule"], 32, 10.0)[:, :, 2:30], 10.0)  # not a cube
    maps = load_templates(good, 10.0)
    assert sorted(maps) == ["a", "b"] and maps["a"].shape == (32, 32, 32) and maps["b"].shape == (32, 32, 32)
    cases = {
        "no_voxel": (render_phantom(PHANTOM["globule"], 16, 10.0), None, "voxel size"),
        "inverted": (-render_phantom(PHANTOM["globule"], 16, 10.0), 10.0, "density"),
        "nan": (np.full((8, 8, 8), np.nan, np.float32), 10.0, "data"),
    }
    for name, (data, vs, field) in cases.items():
        folder = tmp_path / name
        write_volume(folder / f"{name}.mrc", data, vs)
        with pytest.raises(InputError, match=field) as info:
            load_templates(folder, 10.0)
        assert name in str(info.value)
    with pytest.raises(InputError, match="at least one template"):
        load_templates(tmp_path / "empty_folder" if (tmp_path / "empty_folder").mkdir() is None else None, 10.0)


def test_shared_templates_load_at_10_and_20_angstrom(shared_data):
    folder = shared_data / "templates" / "maps_10A"
    if not folder.is_dir():
        pytest.skip(f"{folder} absent")
    at10 = load_templates(folder, 10.0)
    at20 = load_templates(folder, 20.0)
    assert len(at10) == 12 and set(at10) == set(at20)
    for name, vol in at10.items():
        assert at20[name].shape[0] == int(np.ceil(vol.shape[0] / 2 / 2) * 2)
        assert at20[name].sum() * 8 == pytest.approx(vol.sum(), rel=0.05)  # mass is kept


# ------------------------------------------------------------------ CLI


def test_cli_demo_and_errors(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["simulate", "demo", "--out", str(out), "--n-tomograms", "1", "--shape", "64", "128", "128", "--per-class", "2", "--seed", "5"]
    assert main(args) == 0
    assert {p.name for p in out.iterdir()} >= {"tomograms", "templates", "truth.star", "particles.star", "classes.csv", "simulation.json"}
    assert main(["simulate", "demo", "--out", str(tmp_path / "bad"), "--held-out", "nope"]) == 2
    assert "held-out" in capsys.readouterr().err
    templates = tmp_path / "maps"
    write_volume(templates / "l.mrc", render_phantom(PHANTOM["l_short"], 32, 10.0), 10.0)
    write_volume(templates / "g.mrc", render_phantom(PHANTOM["globule"], 32, 10.0), 10.0)
    assert main(["simulate", "templates", "--templates", str(templates), "--out", str(tmp_path / "t"), "--per-class", "2",
                 "--shape", "40", "64", "96", "--held-out", "g", "--noise", "poisson", "--tilt-step", "5"]) == 0
    summary = json.loads((tmp_path / "t" / "simulation.json").read_text())
    assert summary["imaging"]["mode"] == "tiltseries" and summary["imaging"]["contrast"] == "dark"
    assert [c["known"] for c in summary["classes"]] == [False, True]
