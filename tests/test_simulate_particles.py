"""Simulated training subtomograms (affinitomo.simulate.particles) and the SNR estimate (simulate.snr)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from scipy import fft as sfft

from affinitomo.cli import main
from affinitomo.density.wedge import wedge_angles
from affinitomo.errors import InputError
from affinitomo.extract import extract_subtomograms
from affinitomo.geometry import angular_distance, euler_to_matrix, rotate_volume
from affinitomo.io.particles import read_particles
from affinitomo.io.volumes import read_volume, write_volume
from affinitomo.simulate import particles as particles_module
from affinitomo.simulate.dataset import SimClass, simulate_dataset
from affinitomo.simulate.imaging import Imaging
from affinitomo.simulate.particles import image_signal, simulate_particles
from affinitomo.simulate.phantoms import demo_phantoms, render_phantom
from affinitomo.simulate.snr import estimate_snr
from affinitomo.simulate.tomogram import cut
from affinitomo.simulate.transfer import imaging_transfer

PHANTOM = {p.name: p for p in demo_phantoms()}
BOX = 32


def cc(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


@pytest.fixture(scope="module")
def maps() -> dict[str, np.ndarray]:
    return {n: render_phantom(PHANTOM[n], BOX, 10.0) for n in ("l_short", "globule", "shell")}


def simulate(maps, out, **kw) -> tuple[np.ndarray, "object"]:
    args = dict(per_class=6, box=BOX, voxel_size=10.0, imaging=Imaging(mode="wedge", snr=0.3), seed=1, progress=False)
    args.update(kw)
    table = simulate_particles(maps, out, **args)
    return np.load(Path(out) / "subtomos.npy"), table


def no_temporaries(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if ".tmp" in p.name]


# ------------------------------------------------------------------ poses and tables


def test_box_shows_the_template_at_the_truth_pose(maps, tmp_path):
    """Noise-free, no wedge: box = template rotated by euler_to_matrix(truth angles); the transpose does not fit."""
    imaging = Imaging(mode="wedge", tilt_min=-90, tilt_max=90, snr=0)
    stack, _ = simulate(maps, tmp_path, imaging=imaging, normalise=False)
    truth = read_particles(tmp_path / "truth.star")
    assert len(truth) == len(stack) == 18
    for row in truth.itertuples():
        a = euler_to_matrix(row.rlnAngleRot, row.rlnAngleTilt, row.rlnAnglePsi)
        template = maps[row.afmClassName]
        box = stack[row.afmParticleId]
        assert cc(box, rotate_volume(template, a)) > 0.999
        if row.afmClassName == "l_short" and angular_distance(a, a.T) > 60:
            assert cc(box, rotate_volume(template, a.T)) < 0.9


def test_tables_are_canonical_and_identical(maps, tmp_path):
    _, table = simulate(maps, tmp_path)
    for name in ("truth.star", "particles.star"):
        t = read_particles(tmp_path / name)
        assert (t["rlnTomoName"] == "simulated").all() and (t["afmSimulated"] == 1).all()
        assert (t[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].to_numpy() == BOX // 2).all()
        assert t["afmParticleId"].tolist() == list(range(18))
        assert t["afmClassName"].tolist() == ["l_short"] * 6 + ["globule"] * 6 + ["shell"] * 6
        assert t["rlnClassNumber"].tolist() == [1] * 6 + [2] * 6 + [3] * 6
        assert np.allclose(t["afmPixelSize"], 10.0)
        assert np.allclose(t["rlnAngleTilt"], table["rlnAngleTilt"], atol=1e-5)
    summary = json.loads((tmp_path / "simulation.json").read_text())
    assert summary["snr_achieved"] == pytest.approx(0.3, rel=0.02)
    assert no_temporaries(tmp_path)


# ------------------------------------------------------------------ imaging


def test_snr_is_the_target(maps, tmp_path):
    """Noisy minus noise-free (same seed: same poses) is the noise; pooled var ratio = target."""
    clean, _ = simulate(maps, tmp_path / "clean", imaging=Imaging(mode="wedge", snr=0), normalise=False, per_class=10)
    for mode, snr in (("wedge", 0.3), ("tiltseries", 0.1)):
        kw = dict(normalise=False, per_class=10)
        signal, _ = simulate(maps, tmp_path / f"{mode}0", imaging=Imaging(mode=mode, snr=0, contrast="bright", tilt_step=5), **kw)
        noisy, _ = simulate(maps, tmp_path / mode, imaging=Imaging(mode=mode, snr=snr, contrast="bright", tilt_step=5), **kw)
        noise = noisy.astype(np.float64) - signal
        assert signal.var() / noise.var() == pytest.approx(snr, rel=0.03)
        assert json.loads((tmp_path / mode / "simulation.json").read_text())["snr_achieved"] == pytest.approx(snr, rel=0.01)
    assert cc(clean, signal) > 0.5  # same poses in every run of a seed


def test_missing_wedge_in_the_tomogram_frame(maps, tmp_path):
    """Power inside the missing wedge (about k_z, tilt axis Y) is ~0 for every particle, whatever its pose."""
    for mode in ("wedge", "tiltseries"):
        stack, _ = simulate(maps, tmp_path / mode, imaging=Imaging(mode=mode, snr=0.5, tilt_min=-45, tilt_max=45, tilt_step=5), per_class=8)
        power = (np.abs(sfft.rfftn(stack.astype(np.float64), axes=(1, 2, 3))) ** 2).mean(axis=0)
        ang = np.abs(np.broadcast_to(wedge_angles((BOX,) * 3), power.shape))
        k = np.sqrt(sfft.fftfreq(BOX)[:, None, None] ** 2 + sfft.rfftfreq(BOX)[None, None, :] ** 2)
        k = np.broadcast_to(k, power.shape)
        band = (k > 0.08) & (k < 0.4)
        missing = power[band & (ang > 55)].mean()
        measured = power[band & (ang < 35)].mean()
        assert missing < 0.03 * measured, mode
        # the same wedge about X (k_y <-> k_z swapped) would empty the k_z ~ 0 plane; it is full
        ky_angle = np.degrees(np.arctan2(np.abs(sfft.fftfreq(BOX))[None, :, None], sfft.rfftfreq(BOX)[None, None, :]))
        assert power[band & (ang < 35) & (ky_angle > 55)].mean() > 0.3 * measured


def test_tiltseries_transfer_matches_the_tomogram_path(tmp_path):
    """A box cut from a simulated tilt-series tomogram equals the particle imaged by the transfer filters."""
    template = render_phantom(PHANTOM["l_short"], BOX, 10.0)
    imaging = Imaging(mode="tiltseries", snr=0, tilt_step=4, defocus_um=2.0)
    simulate_dataset(tmp_path, [SimClass("l", template)], shape=(48, 64, 96), per_class=2, imaging=imaging, seed=0, progress=False, whole_box_inside=True)
    tomo, _ = read_volume(tmp_path / "tomograms" / "tomo01.mrc")
    truth = read_particles(tmp_path / "truth.star")
    transfer = imaging_transfer(imaging, 10.0, BOX, np.random.default_rng(0))
    for row in truth.itertuples():
        a = euler_to_matrix(row.rlnAngleRot, row.rlnAngleTilt, row.rlnAnglePsi)
        padded = cut(rotate_volume(template, a), (BOX // 2,) * 3, transfer.pad_box)
        simulated = image_signal(padded[None], transfer)[0]
        real = cut(tomo, (int(row.rlnCoordinateZ), int(row.rlnCoordinateY), int(row.rlnCoordinateX)), BOX)
        assert cc(simulated, real) > 0.9
        assert simulated.std() == pytest.approx(real.std(), rel=0.2)


def test_deterministic_for_a_seed(maps, tmp_path):
    a, _ = simulate(maps, tmp_path / "a")
    b, _ = simulate(maps, tmp_path / "b")
    c, _ = simulate(maps, tmp_path / "c", seed=2)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("invert,mask_radius", [(False, None), (True, None), (False, 10.0)])
def test_normalisation_is_extracts(maps, tmp_path, invert, mask_radius):
    """Normalised output = raw output put in a tomogram and run through affinitomo.extract with the same options."""
    raw, table = simulate(maps, tmp_path / "raw", normalise=False, invert=False, per_class=2)
    norm, _ = simulate(maps, tmp_path / "norm", normalise=True, invert=invert, mask_radius=mask_radius, per_class=2)
    tomos = {}
    for i in range(len(raw)):
        write_volume(tmp_path / "tomos" / f"p{i}.mrc", raw[i], 10.0)
        tomos[f"p{i}"] = tmp_path / "tomos" / f"p{i}.mrc"
    t = table.copy()
    t["rlnTomoName"] = [f"p{i}" for i in range(len(raw))]
    extract_subtomograms(t, tomos, BOX, tmp_path / "ex", invert=invert, mask_radius=mask_radius, progress=False)
    extracted = np.load(tmp_path / "ex" / "subtomos.npy")
    np.testing.assert_allclose(norm, extracted, atol=2e-5)
    if mask_radius is None:
        assert np.allclose(norm.reshape(len(norm), -1).mean(1), 0, atol=1e-5)
        assert np.allclose(norm.reshape(len(norm), -1).std(1), 1, atol=1e-4)


def test_dark_contrast_is_negated(maps, tmp_path):
    bright, _ = simulate(maps, tmp_path / "b", imaging=Imaging(mode="wedge", snr=0.3, contrast="bright"))
    dark, _ = simulate(maps, tmp_path / "d", imaging=Imaging(mode="wedge", snr=0.3, contrast="dark"))
    np.testing.assert_allclose(dark, -bright, atol=1e-5)


# ------------------------------------------------------------------ bad inputs


def test_bad_inputs_are_input_errors_and_leave_nothing(maps, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="at least one template map"):
        simulate(str(tmp_path / "empty"), tmp_path / "o1")
    with pytest.raises(InputError, match="box"):
        simulate(maps, tmp_path / "o2", box=4)
    with pytest.raises(InputError, match="per-class"):
        simulate(maps, tmp_path / "o3", per_class=0)
    with pytest.raises(InputError, match="positive"):
        simulate({"neg": -maps["shell"]}, tmp_path / "o4")
    with pytest.raises(InputError, match="snr"):
        simulate(maps, tmp_path / "o5", imaging=Imaging(snr=-1))
    assert not any((tmp_path / f"o{i}").exists() for i in range(1, 6))


def test_failure_midway_leaves_nothing_half_written(maps, tmp_path, monkeypatch):
    simulate(maps, tmp_path)  # an earlier complete result stays intact
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(particles_module, "_add_noise", boom)
    with pytest.raises(RuntimeError):
        simulate(maps, tmp_path, seed=5)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before
    assert no_temporaries(tmp_path)


def test_particle_larger_than_the_box_is_cropped_with_a_warning(tmp_path, caplog):
    big = render_phantom(PHANTOM["shell"], 48, 10.0)  # radius ~11 voxels
    with caplog.at_level(logging.WARNING):
        stack, _ = simulate({"shell": big}, tmp_path, box=16, imaging=Imaging(mode="wedge", tilt_min=-90, tilt_max=90, snr=0), normalise=False, per_class=2)
    assert "cropped" in caplog.text and "shell" in caplog.text
    assert stack.shape == (2, 16, 16, 16)
    assert json.loads((tmp_path / "simulation.json").read_text())["classes"][0]["cropped"] is True


# ------------------------------------------------------------------ estimate_snr


def synthetic_stack(n: int, box: int, snr: float, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Gaussian blobs of varied size and height at the centre plus white noise; returns stack and true pooled SNR."""
    g = np.arange(box) - box // 2
    r2 = g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2
    sigma = rng.uniform(1.5, 3.0, n)
    height = rng.uniform(0.5, 1.5, n)
    signal = height[:, None, None, None] * np.exp(-r2[None] / (2 * sigma[:, None, None, None] ** 2))
    noise_sd = np.sqrt(signal.var() / snr)
    noise = rng.normal(0, noise_sd, signal.shape)
    return (signal + noise).astype(np.float32), float(signal.var() / noise.var())


@pytest.mark.parametrize("snr", [0.05, 0.2, 1.0])
def test_estimate_snr_on_synthetic_data(snr):
    stack, true = synthetic_stack(400, 24, snr, np.random.default_rng(0))
    assert estimate_snr(stack, 8) == pytest.approx(true, rel=0.1)
    assert estimate_snr(stack) == pytest.approx(true, rel=0.1)
    # invariant to per-particle normalisation and contrast
    flat = stack.reshape(len(stack), -1)
    normalised = -((flat - flat.mean(1, keepdims=True)) / flat.std(1, keepdims=True)).reshape(stack.shape)
    assert estimate_snr(normalised, 8) == pytest.approx(estimate_snr(stack, 8), rel=1e-3)


def test_estimate_snr_ignores_a_neighbour_in_one_corner():
    rng = np.random.default_rng(1)
    stack, true = synthetic_stack(300, 24, 0.2, rng)
    stack[:, :6, :6, :6] += np.float32(3.0 * stack.std()) * np.ones((6, 6, 6), np.float32)  # a bright neighbour in one corner
    assert estimate_snr(stack, 8) > 0.9 * true


def test_estimate_snr_recovers_simulated_particles(maps, tmp_path):
    stack, _ = simulate(maps, tmp_path, per_class=30, imaging=Imaging(mode="wedge", snr=0.2))
    assert estimate_snr(np.load(tmp_path / "subtomos.npy", mmap_mode="r")) == pytest.approx(0.2, rel=0.15)


def test_estimate_snr_bad_inputs():
    with pytest.raises(InputError, match="stack"):
        estimate_snr(np.zeros((4, 8, 8)), 2)
    with pytest.raises(InputError, match="radius"):
        estimate_snr(np.zeros((4, 8, 8, 8)), 7)
    with pytest.raises(InputError, match="radius"):
        estimate_snr(np.zeros((4, 8, 8, 8)), -1)
    with pytest.raises(InputError, match="non-constant"):
        estimate_snr(np.zeros((4, 8, 8, 8)), 2)


# ------------------------------------------------------------------ CLI


def test_cli_particles(maps, tmp_path, capsys):
    folder = tmp_path / "maps"
    for name in ("l_short", "globule"):
        write_volume(folder / f"{name}.mrc", maps[name], 10.0)
    out = tmp_path / "sim"
    assert main(["simulate", "particles", "--templates", str(folder), "--out", str(out), "--per-class", "4", "--box", "32",
                 "--imaging", "wedge", "--snr", "0.5", "--contrast", "bright", "--seed", "3"]) == 0
    summary = json.loads((out / "simulation.json").read_text())
    assert summary["voxel_size"] == 10.0 and summary["imaging"]["mode"] == "wedge" and summary["snr_achieved"] == pytest.approx(0.5, rel=0.02)
    assert np.load(out / "subtomos.npy").shape == (8, 32, 32, 32)
    out2 = tmp_path / "sim2"
    assert main(["simulate", "particles", "--templates", str(folder), "--out", str(out2), "--per-class", "2",
                 "--snr-from", str(out / "subtomos.npy"), "--tilt-step", "6", "--phase-flip"]) == 0
    summary2 = json.loads((out2 / "simulation.json").read_text())
    assert summary2["imaging"]["mode"] == "tiltseries" and summary2["imaging"]["phase_flip"]
    assert summary2["imaging"]["snr"] == pytest.approx(estimate_snr(np.load(out / "subtomos.npy")))
    (tmp_path / "none").mkdir()
    assert main(["simulate", "particles", "--templates", str(tmp_path / "none"), "--out", str(tmp_path / "x")]) == 2
    assert "at least one template map" in capsys.readouterr().err
    assert main(["simulate", "particles", "--templates", str(folder), "--out", str(tmp_path / "y"), "--snr-from", str(tmp_path / "missing.npy")]) == 2
    assert "missing.npy" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
