"""Class references from labelled particles (template-free mode) and the match settings a run records."""

from __future__ import annotations

import json

import numpy as np
import pytest

from affinitomo.averaging.references import ReferenceOptions, run_references
from affinitomo.cli import main
from affinitomo.density.ctf import CtfParameters
from affinitomo.errors import InputError
from affinitomo.evaluate import best_global_rotation
from affinitomo.geometry import angular_distance, euler_to_matrix
from affinitomo.io.particles import read_particles
from affinitomo.io.volumes import read_volume
from affinitomo.match import MatchOptions, match_particles
from affinitomo.match.settings import read_settings, recorded_settings
from affinitomo.search.stack import SearchOptions
from test_match import VOXEL, blobs, make_particles, write_inputs


def test_references_from_labels_alone_classify_and_pose_the_other_particles(tmp_path):
    """Three asymmetric molecules, no template: each class's reference is built from its labelled
    particles; matched against the references, the unlabelled particles get their class and a pose
    that agrees, up to one rotation per class (the reference's own frame), with the truth."""
    n = 32
    stack, labels, mats = make_particles([blobs(n, s) for s in range(3)], 8, seed=1, noise=0.5)
    names = ["a", "b", "c"]
    write_inputs(tmp_path, [], names, stack, labels, labelled_fraction=0.6, seed=2)
    table = read_particles(tmp_path / "particles.star")
    labelled = table["afmClassName"].astype(str).str.strip().to_numpy() != ""
    options = ReferenceOptions.from_dict({"align_starts": 2, "align_rounds": 2, "align_wedge": [-60, 60]})
    summary = run_references([tmp_path / "subtomos.npy"], [tmp_path / "particles.star"], tmp_path / "refs", options,
                             "cpu")
    assert sorted(summary["classes"]) == names and summary["skipped"] == []
    volume, voxel = read_volume(tmp_path / "refs" / "a.mrc")
    assert volume.shape == (n, n, n) and voxel == pytest.approx(VOXEL)
    assert json.loads((tmp_path / "refs" / "references.json").read_text())["box"] == n
    match_particles(tmp_path / "subtomos.npy", tmp_path / "particles.star", tmp_path / "refs", tmp_path / "match",
                    MatchOptions(SearchOptions(angular_step=30.0)), progress=False)
    out = read_particles(tmp_path / "match" / "particles.star")
    best = out["afmMatchTemplate"].to_numpy().astype(str)
    assert np.mean(best[~labelled] == np.array(names)[labels[~labelled]]) >= 0.9
    found = euler_to_matrix(*out[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]].to_numpy(float).T)
    for c, name in enumerate(names):  # one frame per class: found_i = true_i @ g for a fixed g
        rows = np.flatnonzero((labels == c) & (best == name))
        g = best_global_rotation(mats[rows], found[rows])
        assert np.median(angular_distance(found[rows], mats[rows] @ g)) < 10.0


def test_classes_with_too_few_labels_get_none_and_no_labels_is_an_error(tmp_path):
    stack, labels, _ = make_particles([blobs(16, s) for s in range(2)], 4, seed=0)
    write_inputs(tmp_path, [], ["a", "b"], stack, labels, labelled_fraction=1.0)
    (tmp_path / "refs").mkdir()
    (tmp_path / "refs" / "old.mrc").write_bytes(b"x")  # an earlier run's class: not a template any more
    options = ReferenceOptions.from_dict({"min_particles": 5, "align_starts": 1, "align_rounds": 1})
    with pytest.raises(InputError, match="min_particles"):
        run_references([tmp_path / "subtomos.npy"], [tmp_path / "particles.star"], tmp_path / "refs", options, "cpu")
    summary = run_references([tmp_path / "subtomos.npy"], [tmp_path / "particles.star"], tmp_path / "refs",
                             ReferenceOptions.from_dict({"min_particles": 4, "align_starts": 1, "align_rounds": 1}),
                             "cpu")
    assert sorted(summary["classes"]) == ["a", "b"]
    assert sorted(p.name for p in (tmp_path / "refs").glob("*.mrc")) == ["a.mrc", "b.mrc"]
    write_inputs(tmp_path, [], ["a", "b"], stack, labels, labelled_fraction=0.0)
    with pytest.raises(InputError, match="afmClassName"):
        run_references([tmp_path / "subtomos.npy"], [tmp_path / "particles.star"], tmp_path / "none",
                       ReferenceOptions(), "cpu")
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize(("options", "field"), [('{"min_particles": 0}', "min_particles"),
                                                 ('{"align_starts": 0}', "align_starts"),
                                                 ('{"starts": 2}', "starts")])
def test_bad_options_name_the_key(tmp_path, capsys, options, field):
    stack, labels, _ = make_particles([blobs(16, 0)], 4, seed=0)
    write_inputs(tmp_path, [], ["a"], stack, labels, labelled_fraction=1.0)
    status = main(["references", "--stack", str(tmp_path / "subtomos.npy"), "--particles",
                   str(tmp_path / "particles.star"), "--out", str(tmp_path / "refs"), "--options", options])
    assert status == 2 and field in capsys.readouterr().err and not (tmp_path / "refs").exists()


def test_match_records_its_settings_and_they_read_back(tmp_path):
    """match.json holds the search and the CTF; read back, they are the options the match ran with
    (what apply and the workflow's apply.from match new particles with)."""
    stack, labels, _ = make_particles([blobs(16, s) for s in range(2)], 3, seed=0)
    tdir = write_inputs(tmp_path, [blobs(16, s) for s in range(2)], ["p", "q"], stack, labels)
    opts = MatchOptions(SearchOptions(resolution=25.0, angular_step=30.0, wedge=(-50.0, 55.0)),
                        ctf=CtfParameters(defocus_um=4.0, phase_flip=True), unknown_percentile=2.0, device="cpu")
    match_particles(tmp_path / "subtomos.npy", tmp_path / "particles.star", tdir, tmp_path / "run" / "match" / "t",
                    opts, progress=False)
    recorded = recorded_settings(tmp_path / "run")
    assert recorded == tmp_path / "run" / "match" / "t" / "match.json"
    back = read_settings(recorded, "cpu")
    assert back == opts
    assert json.loads(recorded.read_text())["templates"] == str(tdir)
    recorded.write_text(json.dumps({**json.loads(recorded.read_text()), "ctf": {"defocus_um": -1}}))
    with pytest.raises(InputError, match="defocus"):
        read_settings(recorded)
    recorded.write_text(json.dumps({"search": {"resolutionn": 20}, "ctf": None, "unknown_percentile": 5,
                                    "per_class_threshold": True}))
    with pytest.raises(InputError, match="resolutionn"):
        read_settings(recorded)


def test_apply_matches_with_the_runs_recorded_settings(tmp_path):
    """apply's matching: the recorded search and CTF, and the class references of a template-free run."""
    from affinitomo.apply import recorded_matching

    run = tmp_path / "run"
    stack, labels, _ = make_particles([blobs(16, 0)], 3, seed=0)
    tdir = write_inputs(tmp_path, [blobs(16, 0)], ["p"], stack, labels)
    opts = MatchOptions(SearchOptions(angular_step=30.0), ctf=CtfParameters(defocus_um=2.5), device="cpu")
    match_particles(tmp_path / "subtomos.npy", tmp_path / "particles.star", tdir, run / "match" / "t", opts,
                    progress=False)
    templates, options = recorded_matching(run, None, None, "cpu")
    assert templates == tdir and options == opts
    (run / "references").mkdir()
    templates, _ = recorded_matching(run, None, None, "cpu")
    assert templates == run / "references"
    assert recorded_matching(tmp_path / "nothing", None, None, "cpu") == (None, None)
