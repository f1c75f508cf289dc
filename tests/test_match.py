"""Template matching: scores against brute force, poses, classes, 'unknown', CLI and bad inputs."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest
import torch

from affinitomo.density.filters import apply_filter
from affinitomo.density.resample import upsample2
from affinitomo.density.score import FourierScorer
from affinitomo.density.wedge import wedge_filter
from affinitomo.density.wedge import apply_wedge
from affinitomo.errors import InputError
from affinitomo.geometry import angular_distance, euler_to_matrix, random_matrices, rotate_volume
from affinitomo.io.particles import canonicalise, read_particles, write_particles
from affinitomo.io.scores import read_scores
from affinitomo.io.volumes import write_volume
from affinitomo.match import MatchOptions, assign, match_particles, unknown_threshold
from affinitomo.search.refine import TemplateSupport, evaluate
from affinitomo.search.stack import SearchOptions
from affinitomo.search.stack import coarse_kinds, match_stack
from affinitomo.search.wedge_norm import WedgeNorm

VOXEL = 10.0


SHAPES = {  # asymmetric chains of lobes (x, y, z offsets in units of n/32 voxels)
    0: [(-6, -4, 0), (-2, -4, 0), (2, -4, 0), (6, -4, 0), (6, 0, 0), (6, 4, 0)],  # L
    1: [(-5, 0, -3), (0, 0, 0), (5, 0, 3), (0, 5, 0), (0, 8, 2)],  # bent Y
    2: [(0, 0, -8), (0, 0, -4), (0, 0, 0), (0, 0, 4), (0, 0, 8), (4, 2, 8)],  # rod with a hook
    3: [(-6, 0, 0), (0, 0, 0), (6, 0, 0), (0, 0, 5), (0, 0, 9), (3, 3, -3)],  # twisted T
}


def blobs(n: int, shape: int) -> np.ndarray:
    """An asymmetric template: Gaussian lobes of unequal sizes along a shape of ``SHAPES``."""
    z, y, x = np.indices((n, n, n), dtype=float) - n // 2
    vol = np.zeros((n, n, n))
    for k, c in enumerate(SHAPES[shape % 4]):
        c = np.array(c) * n / 32
        s = n / 20 * (1 + 0.15 * (k % 3))
        vol += np.exp(-((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) / (2 * s * s))
    return vol.astype(np.float32)


def make_particles(templates: list[np.ndarray], per_class: int, seed: int, noise: float = 0.3):
    rng = np.random.default_rng(seed)
    mats = random_matrices(per_class * len(templates), rng)
    labels = np.repeat(np.arange(len(templates)), per_class)
    stack = []
    for a, c in zip(mats, labels):
        vol = rotate_volume(templates[c], a)
        vol = np.roll(vol, tuple(rng.integers(-1, 2, 3)), axis=(0, 1, 2))
        vol = apply_wedge(vol, -60, 60) + noise * vol.std() * rng.standard_normal(vol.shape)
        stack.append((vol - vol.mean()) / vol.std())
    return np.stack(stack).astype(np.float32), labels, mats


def write_inputs(tmp_path, templates, names, stack, labels, labelled_fraction=0.5, seed=0):
    tdir = tmp_path / "templates"
    for t, name in zip(templates, names):
        write_volume(tdir / f"{name}.mrc", t, VOXEL)
    rng = np.random.default_rng(seed)
    n = len(stack)
    lab = np.array([names[c] if c < len(names) and rng.random() < labelled_fraction else "" for c in labels])
    df = canonicalise(pd.DataFrame({
        "rlnTomoName": "t", "rlnCoordinateX": np.arange(n, dtype=float), "rlnCoordinateY": 0.0,
        "rlnCoordinateZ": 0.0, "afmClassName": lab}), pixel_size=VOXEL)
    write_particles(tmp_path / "particles.star", df)
    np.save(tmp_path / "subtomos.npy", stack)
    return tdir


def test_wedge_norm_matches_rotated_filtered_template():
    """|W A u| from u's spectrum equals the norm of the rotated, wedge-filtered map (within 2%)."""
    n = 24
    z, y, x = np.indices((n, n, n)) - n // 2
    t = np.exp(-(x**2 / 40 + y**2 / 4 + z**2 / 4)).astype(np.float32)  # long along x
    u = torch.as_tensor(t - t.mean())
    norm = WedgeNorm(u, (-60.0, 60.0))
    w = wedge_filter(n, (-60.0, 60.0), torch.device("cpu"))
    mats = [euler_to_matrix(0, 0, 0), euler_to_matrix(0, 90, 0), euler_to_matrix(20, 40, 70), euler_to_matrix(-60, 120, 10)]
    for a in mats:
        got = float(norm(torch.as_tensor(a[None], dtype=torch.float32))[0])
        rotated = torch.as_tensor(rotate_volume(t, a, order=3))
        want = float(apply_filter((rotated - rotated.mean())[None], w)[0].norm())
        assert got == pytest.approx(want, rel=0.02)
    flat = euler_to_matrix(0, 90, 0)  # long axis along z: its spectrum (across the axis) leaves the wedge
    assert float(norm(torch.as_tensor(flat[None], dtype=torch.float32))[0]) > 1.5 * float(norm(torch.eye(3)[None])[0])
    assert float(WedgeNorm(u, None)(torch.eye(3)[None])[0]) == pytest.approx(float(u.norm()), rel=1e-4)


def test_refine_score_is_the_fourier_ncc_of_wedge_filtered_maps():
    """evaluate() equals FourierScorer's NCC of W L p and W L A t (no shift)."""
    n, res = 24, 25.0
    t = blobs(n, 0)
    a = euler_to_matrix(30.0, 50.0, -20.0)
    rng = np.random.default_rng(0)
    p = rotate_volume(blobs(n, 1), euler_to_matrix(10, 20, 30)) + 0.5 * rng.standard_normal((n, n, n)).astype(np.float32)
    scorer = FourierScorer(n, VOXEL, res, "ncc", device="cpu")
    scorer.filter = scorer.filter * wedge_filter(n, (-60.0, 60.0), torch.device("cpu"))
    for particle in (p, rotate_volume(t, a) + 0.2 * p):
        want = float((scorer.spectra(torch.as_tensor(particle)[None]) * scorer.spectra(torch.as_tensor(rotate_volume(t, a, order=3))[None]).conj()
                      * scorer.weight).real.sum())
        q = apply_filter(torch.as_tensor(particle)[None], scorer.filter)[0]
        q = q / q.norm()
        lp_dc = FourierScorer(n, VOXEL, res, "ncc", device="cpu").filter.clone()
        lp_dc[0, 0, 0] = 1.0
        support = TemplateSupport(apply_filter(torch.as_tensor(t)[None], lp_dc)[0], (-60.0, 60.0), energy=1.0)
        got = float(evaluate(upsample2(q[None]), support, torch.as_tensor(a, dtype=torch.float32)[None, None], torch.zeros(1, 1, 3))[0, 0])
        assert got == pytest.approx(want, abs=0.03)


def test_unknown_threshold_per_class_and_pooled():
    rng = np.random.default_rng(0)
    scores = np.column_stack([rng.uniform(0.5, 0.9, 40), rng.uniform(0.1, 0.3, 40)])
    own = np.r_[np.zeros(20, int), np.ones(20, int)]
    per = unknown_threshold(scores, own, 5.0)
    assert per[0] == pytest.approx(np.percentile(scores[:20, 0], 5))
    assert per[1] == pytest.approx(np.percentile(scores[20:, 1], 5))
    pooled = unknown_threshold(scores, own, 5.0, per_class=False)
    assert np.all(pooled == pooled[0])
    assert unknown_threshold(scores, np.full(40, -1), 5.0) is None
    names, numbers, best = assign(np.array([[0.95, 0.0], [0.2, 0.4], [0.01, 0.0]]), ["a", "b"], per)
    assert list(names) == ["a", "b", "unknown"] and list(numbers) == [1, 2, 0]
    assert list(assign(np.array([[0.01, 0.0]]), ["a", "b"], None)[0]) == ["a"]


def test_match_classifies_poses_and_flags_unknown(tmp_path):
    """Box 32 (coarse search at bin 2): three known classes, one class without a template."""
    n = 32
    templates = [blobs(n, s) for s in range(4)]
    stack, labels, mats = make_particles(templates, 8, seed=3)
    names = ["a", "b", "c"]  # template 'd' is unknown
    write_inputs(tmp_path, templates[:3], names, stack, labels, labelled_fraction=0.6)
    opts = MatchOptions(SearchOptions(angular_step=30.0, refine_levels=3), unknown_percentile=5.0)
    result = match_particles(tmp_path / "subtomos.npy", tmp_path / "particles.star", tmp_path / "templates",
                             tmp_path / "out", opts, progress=False)
    table = read_particles(tmp_path / "out" / "particles.star")
    score_names, scores = read_scores(tmp_path / "out" / "scores.csv", table)
    assert scores.shape == (len(stack), 3) and result.classes == names == score_names
    assert np.allclose(scores, result.scores, atol=1e-5)
    known = labels < 3
    assigned = table["afmClassName"].to_numpy()
    assert np.mean(assigned[known] == np.array(names)[labels[known]]) >= 0.9
    assert np.mean(assigned[~known] == "unknown") >= 0.75
    ok = known & (assigned == np.array(names + ["x"])[labels])
    pred = euler_to_matrix(*table[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]].to_numpy().T)
    assert np.median(angular_distance(pred[ok], mats[ok])) < 8.0
    assert {"afmMatchScore", "afmMatchShiftX", "rlnClassNumber"} <= set(table.columns)
    assert set(table.loc[assigned == "unknown", "rlnClassNumber"]) <= {0}


def small_pseudo_dimer(n: int) -> np.ndarray:
    """A molecule of radius ~4 voxels: two equal lobes (a two-fold) and two weak ones that break it."""
    z, y, x = np.indices((n, n, n), dtype=float) - n // 2
    vol = np.zeros((n, n, n))
    for (cx, cy, cz), s, a in (((-2.5, 0, 0), 1.5, 1.0), ((2.5, 0, 0), 1.5, 1.0), ((1, 2.5, 0), 1.2, 0.5),
                               ((-1, 0, 2.5), 1.0, 0.4)):
        vol += a * np.exp(-((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) / (2 * s * s))
    return vol.astype(np.float32)


def test_small_templates_are_searched_on_the_central_crop():
    """A small, nearly two-fold symmetric molecule keeps no orientation on the binned box (its
    coarse search flips it); on the central crop at full resolution its poses are right."""
    n = 32
    small, large = small_pseudo_dimer(n), blobs(n, 0)
    radii = np.array([45.0, 120.0])
    assert coarse_kinds(n, VOXEL, radii, 2.0).tolist() == ["crop", "bin"]
    assert coarse_kinds(24, VOXEL, radii, 2.0).tolist() == ["full", "full"]
    stack, _, mats = make_particles([small], 16, seed=5, noise=1.0)
    opts = SearchOptions(refine_levels=3)
    found = match_stack(stack, small[None], VOXEL, radii[:1], opts, progress=False)
    errors = angular_distance(found.matrices[:, 0], mats)
    assert np.median(errors) < 10.0 and np.mean(errors < 20.0) >= 0.8
    both = match_stack(stack, np.stack([small, large]), VOXEL, radii, opts, progress=False)
    assert np.allclose(both.matrices[:, 0], found.matrices[:, 0], atol=1e-4)  # levels do not interact


def test_cli_run_without_wedge_small_box(tmp_path):
    """Box 16 (no binning), --no-wedge, no labels: every particle gets a class."""
    from affinitomo.cli import match as cli

    n = 16
    templates = [blobs(n, s) for s in (0, 2)]
    stack, labels, _ = make_particles(templates, 5, seed=4, noise=0.2)
    tdir = write_inputs(tmp_path, templates, ["p", "q"], stack, labels, labelled_fraction=0.0)
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["--stack", str(tmp_path / "subtomos.npy"), "--particles", str(tmp_path / "particles.star"),
                              "--templates", str(tdir), "--out", str(tmp_path / "out"), "--no-wedge",
                              "--angular-step", "30", "--device", "cpu", "--no-progress"])
    assert cli.run(args) == 0
    table = read_particles(tmp_path / "out" / "particles.star")
    assert np.mean(table["afmClassName"].to_numpy() == np.array(["p", "q"])[labels]) >= 0.9


def test_bad_inputs_raise_and_write_nothing(tmp_path):
    n = 16
    templates = [blobs(n, 1)]
    stack, labels, _ = make_particles(templates, 3, seed=5)
    tdir = write_inputs(tmp_path, templates, ["a"], stack, labels)
    out = tmp_path / "out"
    np.save(tmp_path / "short.npy", stack[:2])
    with pytest.raises(InputError, match="one per table row"):
        match_particles(tmp_path / "short.npy", tmp_path / "particles.star", tdir, out, progress=False)
    np.save(tmp_path / "flat.npy", stack[:, :, :, :8])
    with pytest.raises(InputError, match="cubic"):
        match_particles(tmp_path / "flat.npy", tmp_path / "particles.star", tdir, out, progress=False)
    with pytest.raises(InputError):
        match_particles(tmp_path / "subtomos.npy", tmp_path / "particles.star", tmp_path / "nowhere", out, progress=False)
    with pytest.raises(InputError, match="percentile"):
        match_particles(tmp_path / "subtomos.npy", tmp_path / "particles.star", tdir, out,
                        MatchOptions(unknown_percentile=150), progress=False)
    assert not out.exists() or not any(out.iterdir())


def test_ctf_volume_is_the_radial_ctf_and_its_magnitude_when_phase_flipped():
    from affinitomo.density.ctf import CtfParameters, ctf, ctf_zeros

    params = CtfParameters(defocus_um=3.0)
    n = 32
    vol = params.volume(n, VOXEL)
    assert vol.shape == (n, n, n // 2 + 1)
    assert np.isclose(vol[0, 0, 5], ctf(np.array(5 / (n * VOXEL)), 3.0)) and np.isclose(vol[5, 0, 0], vol[0, 0, 5])
    assert np.isclose(vol[0, 3, 4], vol[0, 0, 5])  # |k| = 5 in another direction
    first_zero = ctf_zeros(1, 3.0)[0]
    assert 1 / first_zero < 2.5 * VOXEL  # 3 µm: the sign flips inside the band up to 20 Å
    assert vol.min() < 0 and np.allclose(CtfParameters(3.0, phase_flip=True).volume(n, VOXEL), np.abs(vol))


def test_ctf_weighted_templates_match_particles_that_went_through_the_ctf(tmp_path):
    """Particles imaged through a CTF whose first zero lies in the working band score higher, and
    are classified at least as well, against CTF-weighted templates (the CLI's --defocus-um)."""
    from affinitomo.cli import match as cli
    from affinitomo.density.ctf import CtfParameters

    n = 16
    templates = [blobs(n, s) for s in (0, 2)]
    transfer = CtfParameters(defocus_um=3.0).volume(n, VOXEL)
    through = [np.fft.irfftn(np.fft.rfftn(t) * transfer, s=(n,) * 3, axes=(0, 1, 2)).astype(np.float32) for t in templates]
    stack, labels, _ = make_particles(through, 6, seed=6, noise=0.5)
    tdir = write_inputs(tmp_path, templates, ["p", "q"], stack, labels, labelled_fraction=0.0)
    plain = match_particles(tmp_path / "subtomos.npy", tmp_path / "particles.star", tdir, tmp_path / "plain",
                            MatchOptions(SearchOptions(angular_step=30.0)), progress=False)
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["--stack", str(tmp_path / "subtomos.npy"), "--particles", str(tmp_path / "particles.star"),
                              "--templates", str(tdir), "--out", str(tmp_path / "ctf"), "--angular-step", "30",
                              "--defocus-um", "3", "--device", "cpu", "--no-progress"])
    assert cli.run(args) == 0
    table = read_particles(tmp_path / "ctf" / "particles.star")
    _, weighted = read_scores(tmp_path / "ctf" / "scores.csv", table)
    rows = np.arange(len(labels))
    assert weighted[rows, labels].mean() > plain.scores[rows, labels].mean() + 0.05
    right = np.mean(table["afmClassName"].to_numpy() == np.array(["p", "q"])[labels])
    assert right >= np.mean(plain.table["afmClassName"].to_numpy() == np.array(["p", "q"])[labels]) and right >= 0.9


@pytest.mark.parametrize(("ctf", "field"), [(dict(defocus_um=-1.0), "defocus-um"),
                                             (dict(defocus_um=float("nan")), "defocus-um"),
                                             (dict(voltage_kv=0.0), "voltage-kv"),
                                             (dict(cs_mm=-1.0), "cs-mm"),
                                             (dict(amplitude_contrast=1.5), "amplitude-contrast")])
def test_bad_ctf_raises_naming_the_option_and_writes_nothing(tmp_path, ctf, field):
    from affinitomo.density.ctf import CtfParameters

    n = 16
    stack, labels, _ = make_particles([blobs(n, 1)], 3, seed=5)
    tdir = write_inputs(tmp_path, [blobs(n, 1)], ["a"], stack, labels)
    with pytest.raises(InputError, match=field):
        match_particles(tmp_path / "subtomos.npy", tmp_path / "particles.star", tdir, tmp_path / "out",
                        MatchOptions(ctf=CtfParameters(**ctf)), progress=False)
    assert not (tmp_path / "out").exists()


def test_posterior_mean_pose_finds_the_peak_near_the_best_pose_and_stays_in_its_cell():
    from scipy.spatial.transform import Rotation

    from affinitomo.search.refine import posterior_mean_poses
    from affinitomo.search.stack import _fine, filtered_particles, search_filters

    n, step = 32, 20.0
    template = blobs(n, 1)
    true = random_matrices(4, np.random.default_rng(5))
    rng = np.random.default_rng(6)
    stack = np.stack([apply_wedge(rotate_volume(template, a), -60, 60) for a in true])
    opts = SearchOptions()
    filt, (support,) = search_filters(torch.as_tensor(template)[None], VOXEL, opts)
    # A quarter step off about x: a grid point of the posterior sits on the truth.
    off = np.einsum("ij,njk->nik", Rotation.from_rotvec([-np.deg2rad(step / 4), 0, 0]).as_matrix(), true)
    q = _fine(filtered_particles(torch.as_tensor(stack, dtype=torch.float32), filt))
    mean = posterior_mean_poses(q, support, off, np.zeros((4, 3)), step)
    assert np.all(angular_distance(off, true) > 4.9)
    assert np.all(angular_distance(mean, true) < 1.5), angular_distance(mean, true)
    # Drowned in noise the likelihood is broad: the mean is a rotation within the best pose's cell.
    noisy = stack + 30 * stack.std() * rng.standard_normal(stack.shape)
    q = _fine(filtered_particles(torch.as_tensor(noisy, dtype=torch.float32), filt))
    mean = posterior_mean_poses(q, support, off, np.zeros((4, 3)), step)
    assert np.allclose(mean @ mean.transpose(0, 2, 1), np.eye(3), atol=1e-6) and np.allclose(np.linalg.det(mean), 1)
    assert np.all(angular_distance(mean, off) < step / 2 * np.sqrt(3))


def test_pose_mean_changes_only_the_best_templates_pose():
    """match_stack's pose_mean: the best template's pose becomes the posterior mean (near the best
    pose); the other templates keep their best poses and every score stays as it was."""
    from dataclasses import replace

    n = 32
    a, b = blobs(n, 0), blobs(n, 1)
    stack, _, mats = make_particles([a], 6, seed=7, noise=1.0)
    opts = SearchOptions(refine_levels=2)
    best = match_stack(stack, np.stack([a, b]), VOXEL, np.array([120.0, 120.0]), opts, progress=False)
    mean = match_stack(stack, np.stack([a, b]), VOXEL, np.array([120.0, 120.0]), replace(opts, pose_mean=True),
                       progress=False)
    assert np.array_equal(best.scores, mean.scores) and best.scores[:, 0].min() > best.scores[:, 1].max()
    np.testing.assert_array_equal(mean.matrices[:, 1], best.matrices[:, 1])
    moved = angular_distance(mean.matrices[:, 0], best.matrices[:, 0])
    assert np.all(moved > 0) and np.all(moved < best.angular_step / 2 * np.sqrt(3)), moved
    assert np.median(angular_distance(mean.matrices[:, 0], mats)) < 10.0
