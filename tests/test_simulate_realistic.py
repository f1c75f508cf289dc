"""Realistic simulation: each realism knob of `simulate templates` changes what it should and only that;
off, the outputs are those of the plain simulation bit for bit; every knob is deterministic for a seed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import fft as sfft

from affinitomo.cli import main
from affinitomo.errors import InputError
from affinitomo.io.particles import read_particles
from affinitomo.io.volumes import read_volume, write_volume
from affinitomo.simulate.imaging import Imaging, tilt_bfactors
from affinitomo.simulate.realism import ParticleVariation, Realism, displacement_field, support, warp
from affinitomo.simulate.templates import load_templates, simulate_from_templates
from affinitomo.simulate.tiltseries import accumulated_dose, dose_symmetric_order, tilt_angles

BOX = 24
VOXEL = 10.0
WEDGE = Imaging(mode="wedge", snr=0.3, contrast="dark")
TILT = Imaging(mode="tiltseries", tilt_step=10.0, snr=0.3, contrast="dark")
SMALL = dict(per_class=3, shape=(36, 72, 72), n_tomograms=2, voxel_size=VOXEL, progress=False)


def cc(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def blobs(centres: np.ndarray, box: int, sigma: float = 1.5) -> np.ndarray:
    """Gaussian blobs at ``centres`` (voxels, z y x) in a ``box``^3 cube, float32."""
    grid = np.indices((box,) * 3, dtype=np.float64)
    vol = sum(np.exp(-((grid - c[:, None, None, None]) ** 2).sum(0) / (2 * sigma**2)) for c in centres)
    return (100 * vol).astype(np.float32)


def molecule_atoms(seed: int) -> np.ndarray:
    """Atom positions (Å, x y z about the origin) of an asymmetric pseudo-molecule: 5 lumps of 40 atoms."""
    rng = np.random.default_rng(seed)
    lumps = rng.uniform(-25, 25, size=(5, 3))
    return np.concatenate([lump + rng.normal(0, 5, size=(40, 3)) for lump in lumps])


def molecule(seed: int) -> np.ndarray:
    """The map of :func:`molecule_atoms`: a Gaussian blob per atom, box centre ``BOX//2``."""
    xyz = molecule_atoms(seed) / VOXEL
    return blobs(xyz[:, ::-1] + BOX // 2, BOX) / 20


@pytest.fixture(scope="module")
def maps(tmp_path_factory) -> Path:
    """A folder of three small asymmetric maps (10 Å voxels)."""
    folder = tmp_path_factory.mktemp("maps")
    for i, name in enumerate(("alpha", "beta", "gamma")):
        write_volume(folder / f"{name}.mrc", molecule(i), VOXEL)
    return folder


def simulate(maps: Path, out: Path, imaging: Imaging = WEDGE, **kw) -> dict:
    return simulate_from_templates(maps, out, imaging=imaging, **{**SMALL, **kw})


def tomogram(out: Path, name: str = "tomo01") -> np.ndarray:
    return read_volume(out / "tomograms" / f"{name}.mrc")[0]


def template_file(out: Path, name: str) -> np.ndarray:
    return read_volume(out / "templates" / f"{name}.mrc")[0]


def same_outputs(a: Path, b: Path) -> bool:
    """Tomograms, templates and tables identical (MRC data, STAR values, CSV bytes)."""
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.name != "simulation.json")
    if files != sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file() and p.name != "simulation.json"):
        return False
    for f in files:
        if f.suffix == ".mrc" and not np.array_equal(read_volume(a / f)[0], read_volume(b / f)[0]):
            return False
        if f.suffix == ".star" and not read_particles(a / f).equals(read_particles(b / f)):
            return False
        if f.suffix == ".csv" and (a / f).read_bytes() != (b / f).read_bytes():
            return False
    return True


def variation(template: np.ndarray, n: int, seed: int = 0, **knobs) -> tuple[list[np.ndarray], dict]:
    """``n`` particles of one class through :class:`ParticleVariation`, and its truth columns."""
    v = ParticleVariation([template], np.zeros(n, int), Realism(**knobs), VOXEL, np.random.SeedSequence(seed))
    return [v(i, template) for i in range(n)], v.columns()


# ------------------------------------------------------------------ off: unchanged


def test_knobs_off_leave_the_simulation_unchanged_bit_for_bit(maps, tmp_path):
    """Secondary settings of knobs that are off change nothing, in the library and the CLI."""
    simulate(maps, tmp_path / "plain", imaging=TILT, held_out=["gamma"], seed=4)
    off = Realism(deform_length_A=10.0, partner_scale=0.3, missing_scale=0.2)
    imaging = Imaging(mode="tiltseries", tilt_step=10.0, snr=0.3, contrast="dark", dose_per_tilt=7.0, dose_bfactor=50.0)
    simulate(maps, tmp_path / "off", imaging=imaging, held_out=["gamma"], seed=4, realism=off, template_source="same", template_bfactor=100.0)
    assert same_outputs(tmp_path / "plain", tmp_path / "off")
    columns = set(read_particles(tmp_path / "plain" / "truth.star").columns)
    assert not {c for c in columns if c in ("afmOccupancy", "afmPartnerMass", "afmMissingMass", "afmTrueDefocusUm")}
    # the CLI's defaults are the library's
    assert main(["simulate", "templates", "--templates", str(maps), "--out", str(tmp_path / "cli"), "--seed", "4", "--per-class", "3",
                 "--shape", "36", "72", "72", "--n-tomograms", "2", "--held-out", "gamma", "--tilt-step", "10", "--snr", "0.3", "--no-progress"]) == 0
    assert same_outputs(tmp_path / "plain", tmp_path / "cli")
    summary = json.loads((tmp_path / "cli" / "simulation.json").read_text())
    assert summary["realism"] == Realism().as_dict() and summary["template_source"]["source"] == "same"
    assert summary["imaging"]["dose_symmetric"] is False


# ------------------------------------------------------------------ per particle


def test_deformation_moves_density_by_a_field_of_the_requested_rms():
    template = molecule(0)
    rng = np.random.default_rng(1)
    field = displacement_field(template, 1.5, 4.0, rng)
    inside = support(template)
    assert np.sqrt((field[:, inside] ** 2).sum(0).mean()) == pytest.approx(1.5, rel=1e-4)
    # warping the coordinate ramps recovers the field: out(p) = in(p - d(p))
    ramps = np.indices(template.shape, dtype=np.float32)
    inner = (slice(6, -6),) * 3
    for axis in range(3):
        moved = warp(ramps[axis], field)
        np.testing.assert_allclose(ramps[axis][inner] - moved[inner], field[axis][inner], atol=1e-3)
    # measured on the density: point-like lumps on a lattice move by the requested RMS
    c, step = 20, 8
    lattice = np.array([(c + i, c + j, c + k) for i in (-step, 0, step) for j in (-step, 0, step) for k in (-step, 0, step)], float)
    dots = blobs(lattice, 40, sigma=1.0)
    deformed, _ = variation(dots, 6, deform_rms_A=15.0, deform_length_A=40.0)
    grid = np.indices(dots.shape, dtype=np.float64).reshape(3, -1)
    shifts = []
    for d in deformed:
        for p in lattice:
            q = p.copy()
            for _ in range(4):  # centroid in a window that follows the lump
                near = ((grid - q[:, None]) ** 2).sum(0) < 3.5**2
                w = d.ravel()[near]
                q = (grid[:, near] * w).sum(1) / w.sum()
            shifts.append(q - p)
    measured = float(np.sqrt((np.array(shifts) ** 2).sum(1).mean()))
    # a lump moves by the field averaged over its extent, a little less than the field's RMS
    assert 0.85 * 1.5 < measured <= 1.5
    # a realistic setting keeps the mass and most of the shape; particles differ from each other
    template = molecule(0)
    deformed, cols = variation(template, 4, deform_rms_A=5.0)
    assert cols == {}
    assert all(abs(d.sum() / template.sum() - 1) < 0.05 for d in deformed)
    assert all(0.8 < cc(d, template) < 0.995 for d in deformed) and cc(deformed[0], deformed[1]) < 0.995


def test_occupancy_scales_the_density_and_nothing_else(maps, tmp_path):
    template = molecule(0)
    dens, cols = variation(template, 20, occupancy_min=0.5, occupancy_max=0.9)
    occ = cols["afmOccupancy"]
    assert set(cols) == {"afmOccupancy"} and np.all((occ >= 0.5) & (occ <= 0.9)) and occ.std() > 0.05
    for d, s in zip(dens, occ):
        np.testing.assert_allclose(d, template * np.float32(s), rtol=1e-6)
    # noise-free tomograms: occupancy 0.5 everywhere halves every voxel (same placement and poses)
    clean = Imaging(mode="wedge", snr=0)
    simulate(maps, tmp_path / "full", imaging=clean, seed=2)
    simulate(maps, tmp_path / "half", imaging=clean, seed=2, realism=Realism(occupancy_min=0.5, occupancy_max=0.5))
    np.testing.assert_allclose(tomogram(tmp_path / "half"), 0.5 * tomogram(tmp_path / "full"), rtol=1e-5, atol=1e-4)
    truth = read_particles(tmp_path / "half" / "truth.star")
    assert np.allclose(truth["afmOccupancy"], 0.5)
    assert np.array_equal(template_file(tmp_path / "half", "alpha"), template_file(tmp_path / "full", "alpha"))


def test_partner_adds_density_outside_and_missing_removes_it_inside():
    template = molecule(1)
    r = support(template)
    grid = np.indices(template.shape).reshape(3, -1) - BOX // 2
    radius = np.sqrt((grid[:, r.ravel()] ** 2).sum(0)).max()

    def centroid_distance(w: np.ndarray) -> float:
        w = np.clip(w.ravel(), 0, None)
        return float(np.linalg.norm((grid * w).sum(1) / w.sum()))

    with_partner, cols = variation(template, 8, partner_fraction=1.0)
    assert set(cols) == {"afmPartnerMass"} and np.all(cols["afmPartnerMass"] > 0.03)
    for d in with_partner:
        assert np.all(d >= template - 1e-6)  # a union: nothing of the particle is lost
        assert centroid_distance(d - template) > 0.6 * radius  # attached at the surface, not inside
        assert np.abs(d[[0, -1]]).max() < 1e-3 * d.max()  # kept inside the box
    without, cols = variation(template, 8, missing_fraction=1.0)
    assert set(cols) == {"afmMissingMass"} and np.all(cols["afmMissingMass"] > 0.02)
    for d in without:
        assert np.all(d <= template + 1e-6)
        assert centroid_distance(template - d) < radius
    # fractions: about half of 60 particles get a partner; which ones does not depend on other knobs
    _, half = variation(template, 60, partner_fraction=0.5)
    _, both = variation(template, 60, partner_fraction=0.5, missing_fraction=0.5, occupancy_min=0.8)
    carries = half["afmPartnerMass"] > 0
    assert 15 <= carries.sum() <= 45
    assert np.array_equal(carries, both["afmPartnerMass"] > 0)


def test_partner_and_missing_reach_the_tomograms_and_truth(maps, tmp_path):
    simulate(maps, tmp_path / "plain", seed=5)
    simulate(maps, tmp_path / "varied", seed=5, realism=Realism(partner_fraction=0.5, missing_fraction=0.5))
    plain, varied = read_particles(tmp_path / "plain" / "truth.star"), read_particles(tmp_path / "varied" / "truth.star")
    pd.testing.assert_frame_equal(plain, varied[plain.columns])  # same placement, poses, labels
    assert {"afmPartnerMass", "afmMissingMass"} <= set(varied.columns)
    assert "afmPartnerMass" not in read_particles(tmp_path / "varied" / "particles.star").columns
    assert not np.array_equal(tomogram(tmp_path / "plain"), tomogram(tmp_path / "varied"))
    assert np.array_equal(template_file(tmp_path / "plain", "beta"), template_file(tmp_path / "varied", "beta"))


# ------------------------------------------------------------------ per tomogram


def test_defocus_spread_images_each_tomogram_at_its_true_defocus(maps, tmp_path):
    """The spread run equals a run imaged at the recorded true defocus; the metadata keep the stated one."""
    summary = simulate(maps, tmp_path / "spread", imaging=TILT, seed=6, realism=Realism(defocus_spread_um=0.8))
    true = [t["defocus_um_true"] for t in summary["tomograms"]]
    assert all(t["defocus_um_stated"] == 3.0 for t in summary["tomograms"]) and summary["imaging"]["defocus_um"] == 3.0
    assert len(set(true)) == 2 and all(t != 3.0 and t > 0 for t in true)
    truth = read_particles(tmp_path / "spread" / "truth.star")
    assert truth.groupby("rlnTomoName")["afmTrueDefocusUm"].first().round(5).tolist() == [round(t, 5) for t in true]
    # tomogram 1 is what imaging at its true defocus gives (placement, poses and noise untouched)
    from dataclasses import replace

    simulate(maps, tmp_path / "at_true", imaging=replace(TILT, defocus_um=true[0]), seed=6)
    assert np.array_equal(tomogram(tmp_path / "spread"), tomogram(tmp_path / "at_true"))
    with pytest.raises(InputError, match="defocus-spread"):
        simulate(maps, tmp_path / "wedge", imaging=WEDGE, realism=Realism(defocus_spread_um=0.5))


def test_dose_symmetric_order_and_accumulated_dose():
    angles = tilt_angles(-9, 9, 3)  # -9 -6 -3 0 3 6 9
    assert angles[dose_symmetric_order(angles)].tolist() == [0, 3, 6, -3, -6, 9, -9]
    dose = accumulated_dose(angles, 2.0)
    assert dose.tolist() == [13.0, 9.0, 7.0, 1.0, 3.0, 5.0, 11.0]
    b = tilt_bfactors(Imaging(mode="tiltseries", dose_symmetric=True, dose_bfactor=10.0, dose_per_tilt=3.0))
    full = tilt_angles(-60, 60, 3)
    assert b[np.argmin(np.abs(full))] == b.min() == 15.0 and b.max() == pytest.approx(10 * 3 * 40.5)
    assert not tilt_bfactors(Imaging(mode="tiltseries")).any()
    with pytest.raises(InputError, match="dose-symmetric"):
        Imaging(mode="wedge", dose_symmetric=True).validate()


def test_dose_attenuation_damps_high_frequencies(maps, tmp_path):
    clean = Imaging(mode="tiltseries", tilt_step=10.0, snr=0, ctf=False)
    simulate(maps, tmp_path / "plain", imaging=clean, seed=7, n_tomograms=1)
    simulate(maps, tmp_path / "zero", imaging=Imaging(**{**clean.as_dict(), "dose_symmetric": True, "dose_bfactor": 0.0}), seed=7, n_tomograms=1)
    plain = tomogram(tmp_path / "plain")
    np.testing.assert_allclose(tomogram(tmp_path / "zero"), plain, atol=1e-5 * np.abs(plain).max())  # an FFT round trip
    dosed = Imaging(**{**clean.as_dict(), "dose_symmetric": True, "dose_per_tilt": 9.0})  # 13 tilts, 117 e/Å²
    summary = simulate(maps, tmp_path / "dose", imaging=dosed, seed=7, n_tomograms=1)
    assert len(summary["tomograms"][0]["accumulated_dose"]) == len(tilt_angles(-60, 60, 10))

    def band_power(vol: np.ndarray, lo: float, hi: float) -> float:
        spec = np.abs(sfft.rfftn(vol)) ** 2
        k = np.sqrt(sum(np.square(f) for f in np.meshgrid(sfft.fftfreq(vol.shape[0]), sfft.fftfreq(vol.shape[1]), sfft.rfftfreq(vol.shape[2]), indexing="ij", sparse=True)))
        return float(spec[(k >= lo) & (k < hi)].sum())

    a, b = tomogram(tmp_path / "plain"), tomogram(tmp_path / "dose")
    low, high = band_power(b, 0.02, 0.1) / band_power(a, 0.02, 0.1), band_power(b, 0.3, 0.5) / band_power(a, 0.3, 0.5)
    assert 0.9 < low <= 1.0 and high < 0.7 * low


# ------------------------------------------------------------------ templates


def test_lowpass_templates_differ_from_the_rendered_density_only(maps, tmp_path):
    simulate(maps, tmp_path / "same", seed=8)
    summary = simulate(maps, tmp_path / "low", seed=8, template_source="lowpass-bfactor", template_bfactor=4000.0)
    assert summary["template_source"]["source"] == "lowpass-bfactor" and summary["template_source"]["bfactor"] == 4000.0
    rendered = load_templates(maps, VOXEL)["alpha"]
    same, low = template_file(tmp_path / "same", "alpha"), template_file(tmp_path / "low", "alpha")
    assert cc(same, rendered) == pytest.approx(1.0, abs=1e-9)
    assert 0.9 < cc(low, rendered) < 0.999 and low.sum() == pytest.approx(rendered.sum(), rel=1e-3)
    assert np.abs(sfft.rfftn(low))[6, 6, 6] < np.abs(sfft.rfftn(rendered))[6, 6, 6]
    # the tomograms and tables do not change
    for name in ("tomograms/tomo01.mrc", "tomograms/tomo02.mrc"):
        assert np.array_equal(read_volume(tmp_path / "same" / name)[0], read_volume(tmp_path / "low" / name)[0])
    assert read_particles(tmp_path / "same" / "truth.star").equals(read_particles(tmp_path / "low" / "truth.star"))


def write_pdb(path: Path, xyz: np.ndarray) -> None:
    lines = [f"ATOM  {i + 1:5d}  CA  ALA A{i + 1:4d}    {x:8.3f}{y:8.3f}{z:8.3f}  1.00  0.00           C" for i, (x, y, z) in enumerate(xyz)]
    path.write_text("\n".join([*lines, "END", ""]))


def test_pdb_templates_come_from_the_models(maps, tmp_path, caplog):
    models = tmp_path / "models"
    models.mkdir()
    for i, name in enumerate(("alpha", "beta")):  # gamma has no model: it keeps its map
        write_pdb(models / f"{name}.pdb", molecule_atoms(i) + 200.0)  # any frame origin: centred on the map
    simulate(maps, tmp_path / "same", seed=9)
    summary = simulate(maps, tmp_path / "pdb", seed=9, template_source="pdb", pdb=models)
    origin = summary["template_source"]["per_class"]
    assert origin["gamma"] == "map" and origin["alpha"].endswith("alpha.pdb") and "gamma" in caplog.text
    rendered = load_templates(maps, VOXEL)
    for name in ("alpha", "beta"):
        t = template_file(tmp_path / "pdb", name)
        assert 0.6 < cc(t, rendered[name]) < 0.99  # sharper atoms than the maps' lumps
        assert t.sum() == pytest.approx(rendered[name].sum(), rel=1e-4)
    assert np.array_equal(template_file(tmp_path / "pdb", "gamma"), template_file(tmp_path / "same", "gamma"))
    assert np.array_equal(tomogram(tmp_path / "same"), tomogram(tmp_path / "pdb"))
    with pytest.raises(InputError, match="pdb"):
        simulate(maps, tmp_path / "none", template_source="pdb")


def test_pdb_templates_of_the_shrec_models(shared_data, tmp_path):
    """The reference models give templates close to, not equal to, the reference maps."""
    from affinitomo.simulate.templates import reference_templates

    maps = load_templates(shared_data / "templates" / "maps_10A", VOXEL)
    refs, origin = reference_templates(maps, ["1s3x", "3qm1", "4cr2"], "pdb", VOXEL, pdb=shared_data / "templates" / "pdb")
    assert refs["4cr2"] is None and origin["4cr2"] == "map"
    for name in ("1s3x", "3qm1"):
        inside = maps[name] > 0.05 * maps[name].max()
        assert 0.9 < cc(refs[name][inside], maps[name][inside]) < 0.999


# ------------------------------------------------------------------ all knobs: determinism, CLI


def test_every_knob_is_deterministic_for_a_seed(maps, tmp_path):
    args = ["simulate", "templates", "--templates", str(maps), "--per-class", "3", "--shape", "36", "72", "72", "--n-tomograms", "2",
            "--tilt-step", "10", "--deform-rms-A", "4", "--occupancy-min", "0.6", "--occupancy-max", "1", "--partner-fraction", "0.5",
            "--missing-fraction", "0.5", "--defocus-spread-um", "0.5", "--dose-symmetric", "--template-source", "lowpass-bfactor", "--no-progress"]
    for out, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        assert main([*args, "--out", str(tmp_path / out), "--seed", seed]) == 0
    assert same_outputs(tmp_path / "a", tmp_path / "b") and not same_outputs(tmp_path / "a", tmp_path / "c")
    summary = json.loads((tmp_path / "a" / "simulation.json").read_text())
    assert summary["realism"] == {**Realism().as_dict(), "deform_rms_A": 4.0, "occupancy_min": 0.6, "partner_fraction": 0.5,
                                  "missing_fraction": 0.5, "defocus_spread_um": 0.5}
    assert summary["imaging"]["dose_symmetric"] is True and summary["template_source"]["source"] == "lowpass-bfactor"
    truth = read_particles(tmp_path / "a" / "truth.star")
    assert {"afmOccupancy", "afmPartnerMass", "afmMissingMass", "afmTrueDefocusUm"} <= set(truth.columns)
    # bad settings are input errors (exit status 2)
    assert main([*args, "--out", str(tmp_path / "bad"), "--occupancy-min", "1.2"]) == 2
    assert main([*args[:-3], "--template-source", "pdb", "--out", str(tmp_path / "nopdb")]) == 2
