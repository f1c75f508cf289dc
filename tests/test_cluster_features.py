"""Template-matching scores as features of the cluster stage (scores.csv -> FeatureSpace -> classifier)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from affinitomo.cluster import run_cluster
from affinitomo.cluster.features import FeatureSpace
from affinitomo.errors import InputError
from affinitomo.io.particles import read_particles
from affinitomo.io.scores import read_scores, write_scores
from synthetic_latents import HELD_OUT, KNOWN, Synthetic, make_blobs, write_inputs


def informative_scores(syn: Synthetic, seed: int = 0) -> np.ndarray:
    """One score per known template: high for its own class, low for the others and the held-out class."""
    rng = np.random.default_rng(seed)
    own = np.array([[c == k for k in KNOWN] for c in syn.true_class], dtype=float)
    return 0.15 + 0.3 * own + 0.05 * rng.normal(size=own.shape)


@pytest.fixture(scope="module")
def weak(tmp_path_factory):
    """Latents that barely tell the classes apart (separation 1.5), scores that do."""
    folder = tmp_path_factory.mktemp("features")
    syn = make_blobs(n=400, separation=1.5, labelled_fraction=0.4, seed=5)
    paths = write_inputs(folder / "in", syn)
    ids = syn.table["afmParticleId"].to_numpy()
    scores = informative_scores(syn)
    half = len(ids) // 2  # two files, as the workflow writes one per tomogram
    csvs = [write_scores(folder / "a.csv", ids[:half], KNOWN, scores[:half]),
            write_scores(folder / "b.csv", ids[half:], KNOWN, scores[half:])]
    return syn, folder, paths, csvs


def test_scores_csv_round_trip_in_table_order(tmp_path):
    table = pd.DataFrame({"afmParticleId": [5, 3, 9]})
    write_scores(tmp_path / "s.csv", np.array([3, 9, 5]), ["t1", "t2"], np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]))
    names, values = read_scores(tmp_path / "s.csv", table)
    assert names == ["t1", "t2"]
    np.testing.assert_allclose(values, [[0.5, 0.6], [0.1, 0.2], [0.3, 0.4]])


@pytest.mark.parametrize("case", ["missing_id", "text", "columns", "duplicate", "no_file", "no_id_column"])
def test_bad_scores_name_the_file_and_field(tmp_path, case):
    table = pd.DataFrame({"afmParticleId": [1, 2]})
    a = tmp_path / "a.csv"
    b = tmp_path / "b.csv"
    paths = [a]
    if case == "missing_id":
        a.write_text("afmParticleId,t1\n1,0.5\n")
        field = "afmParticleId"
    elif case == "text":
        a.write_text("afmParticleId,t1\n1,0.5\n2,high\n")
        field = "t1"
    elif case == "columns":
        a.write_text("afmParticleId,t1\n1,0.5\n")
        b.write_text("afmParticleId,t2\n2,0.5\n")
        paths, field = [a, b], "columns"
    elif case == "duplicate":
        a.write_text("afmParticleId,t1\n1,0.5\n2,0.1\n")
        b.write_text("afmParticleId,t1\n2,0.5\n")
        paths, field = [a, b], "afmParticleId"
    elif case == "no_file":
        field = None
    else:
        a.write_text("id,t1\n1,0.5\n")
        field = "afmParticleId"
    with pytest.raises(InputError) as err:
        read_scores(paths, table, "particles.star")
    assert err.value.field == field
    assert str(a) in str(err.value) or str(b) in str(err.value)


def test_feature_space_standardises_and_checks_templates():
    rng = np.random.default_rng(0)
    mu, s = rng.normal(5, 3, size=(50, 4)), rng.uniform(0, 0.2, size=(50, 2))
    space = FeatureSpace.fit(mu, ["a", "b"], s)
    x = space.transform(mu, ["a", "b"], s)
    assert x.shape == (50, 6)
    np.testing.assert_allclose(x.mean(axis=0), 0, atol=1e-9)
    np.testing.assert_allclose(x.std(axis=0), 1, atol=1e-9)
    with pytest.raises(InputError, match=r"\['a', 'b'\]"):
        space.transform(mu, ["b", "a"], s)
    with pytest.raises(InputError, match="fitted with them"):
        space.transform(mu)
    with pytest.raises(InputError) as err:
        space.transform(mu[:, :3], ["a", "b"], s)
    assert err.value.field == "latent_dims"
    plain = FeatureSpace.fit(mu)
    assert plain.transform(mu) is not None and np.array_equal(plain.transform(mu), mu)
    with pytest.raises(InputError, match="latents alone"):
        plain.transform(mu, ["a", "b"], s)


def test_scores_raise_f1_where_latents_are_weak(weak, tmp_path):
    syn, folder, paths, csvs = weak
    run_cluster(paths["latents"], paths["embedding"], paths["particles"], tmp_path / "latent",
                matrix_path=paths["matrix"], truth_path=paths["truth"])
    run_cluster(paths["latents"], paths["embedding"], paths["particles"], tmp_path / "fused",
                matrix_path=paths["matrix"], truth_path=paths["truth"], match_scores=csvs)
    latent = json.loads((tmp_path / "latent" / "metrics.json").read_text())
    fused = json.loads((tmp_path / "fused" / "metrics.json").read_text())
    assert fused["f1_macro"] > latent["f1_macro"] + 0.1 and fused["f1_macro"] > 0.9
    assert fused["fates"][HELD_OUT]["assigned"].get("unknown", 0) > 0.85
    assert fused["open_set"]["features"]["template_scores"] == KNOWN
    assert latent["open_set"]["features"]["template_scores"] is None


def test_stored_classifier_needs_the_same_scores(weak, tmp_path):
    syn, folder, paths, csvs = weak
    first = tmp_path / "first"
    run_cluster(paths["latents"], paths["embedding"], paths["particles"], first, matrix_path=paths["matrix"],
                match_scores=csvs)
    pkl = first / "classifier.npz"
    again = tmp_path / "again"
    run_cluster(paths["latents"], paths["embedding"], paths["particles"], again, matrix_path=paths["matrix"],
                match_scores=csvs, classifier_path=pkl)
    a = read_particles(first / "particles.star").set_index("afmParticleId")
    b = read_particles(again / "particles.star").set_index("afmParticleId")
    # Not identical: applied to its own particles, each one is its own neighbour in the open-set test.
    assert np.mean(a["afmClassName"].to_numpy() == b.loc[a.index, "afmClassName"].to_numpy()) > 0.97
    with pytest.raises(InputError, match="fitted with them"):
        run_cluster(paths["latents"], paths["embedding"], paths["particles"], tmp_path / "none",
                    matrix_path=paths["matrix"], classifier_path=pkl)
    assert not (tmp_path / "none").exists()
    other = tmp_path / "other.csv"
    frame = pd.read_csv(csvs[0])
    pd.concat([frame, pd.read_csv(csvs[1])]).rename(columns={KNOWN[0]: "zeta"}).to_csv(other, index=False)
    with pytest.raises(InputError, match="templates"):
        run_cluster(paths["latents"], paths["embedding"], paths["particles"], tmp_path / "other",
                    matrix_path=paths["matrix"], classifier_path=pkl, match_scores=[other])


def test_known_class_poses_come_from_template_matching_in_one_frame(tmp_path):
    """Matched rows take the match pose; the class's other rows move into the template frame; unknown keep the model's."""
    from affinitomo.averaging.poses import MatchPoses, combine_poses, read_match_poses
    from affinitomo.geometry import angular_distance, matrix_to_euler, random_matrices

    rng = np.random.default_rng(0)
    n = 60
    true = random_matrices(n, rng)
    g = random_matrices(1, rng)[0]  # the model's frame differs from the template's by g
    model = true @ g.T
    assigned = np.array(["a"] * 40 + ["unknown"] * 20, dtype=object)
    template = np.array(["a"] * 30 + ["b"] * 10 + ["a"] * 20)  # 10 'a' rows whose best template is another
    match = MatchPoses(template, true.copy())
    rotation, source = combine_poses(assigned, ["a", "b"], model, match, np.zeros((n, 3)))
    assert list(source[:30]) == ["match"] * 30 and set(source[30:]) == {"model"}
    assert angular_distance(rotation[:40], true[:40]).max() < 1e-3  # degrees: one frame for the whole class
    np.testing.assert_allclose(rotation[40:], model[40:])  # unknown rows: the model's pose
    only_match, src = combine_poses(assigned, ["a"], None, match, matrix_to_euler(true))
    assert set(src[:30]) == {"match"} and set(src[30:]) == {"input"}
    assert angular_distance(only_match, true).max() < 1e-3  # input angles kept where nothing better
    assert combine_poses(assigned, ["a"], None, None, np.zeros((n, 3)))[0] is None
    # The match stage's table: aligned by id; a missing column is named.
    table = pd.DataFrame({"afmParticleId": np.arange(n)[::-1]})
    frame = pd.DataFrame(matrix_to_euler(true), columns=["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"])
    frame["afmParticleId"], frame["afmMatchTemplate"] = np.arange(n), template
    from affinitomo.io.particles import write_particles

    write_particles(tmp_path / "m.star", frame.assign(rlnTomoName="t", rlnCoordinateX=0.0, rlnCoordinateY=0.0,
                                                        rlnCoordinateZ=0.0))
    read = read_match_poses(tmp_path / "m.star", table)
    assert list(read.template) == list(template[::-1])
    star = read_particles(tmp_path / "m.star")  # one file per tomogram, as the workflow writes them
    write_particles(tmp_path / "m1.star", star.iloc[:25])
    write_particles(tmp_path / "m2.star", star.iloc[25:])
    both = read_match_poses([tmp_path / "m1.star", tmp_path / "m2.star"], table)
    assert list(both.template) == list(template[::-1])
    with pytest.raises(InputError, match=r"a pose for every particle.*35 missing"):
        read_match_poses(tmp_path / "m1.star", table)  # the other tomogram's file left out
    assert angular_distance(read.rotation, true[::-1]).max() < 1e-3
    write_particles(tmp_path / "bad.star", frame.drop(columns="afmMatchTemplate").assign(
        rlnTomoName="t", rlnCoordinateX=0.0, rlnCoordinateY=0.0, rlnCoordinateZ=0.0))
    with pytest.raises(InputError) as err:
        read_match_poses(tmp_path / "bad.star", table)
    assert err.value.field == "afmMatchTemplate"


def test_known_from_scores_gives_each_kept_particle_its_best_scoring_class(weak, tmp_path):
    """known_from: scores (template-free mode): the open set decides what is unknown, the best score
    which known class; the option travels with the stored classifier, and needs scores."""
    from affinitomo.cluster.pipeline import StageOptions

    syn, folder, paths, csvs = weak
    options = StageOptions.from_dict({"known_from": "scores"})
    run_cluster(paths["latents"], paths["embedding"], paths["particles"], tmp_path / "best",
                matrix_path=paths["matrix"], truth_path=paths["truth"], match_scores=csvs, options=options)
    table = read_particles(tmp_path / "best" / "particles.star")
    _, scores = read_scores(csvs, table)
    assigned = table["afmClassName"].to_numpy().astype(str)
    given = syn.table.set_index("afmParticleId").loc[table["afmParticleId"], "afmClassName"]
    unlabelled = given.fillna("").astype(str).str.strip().to_numpy() == ""
    kept = unlabelled & (assigned != "unknown")
    assert kept.sum() > 100 and list(assigned[kept]) == list(np.asarray(KNOWN)[scores[kept].argmax(axis=1)])
    metrics = json.loads((tmp_path / "best" / "metrics.json").read_text())
    assert metrics["options"]["classify"]["known_from"] == "scores" and metrics["f1_macro"] > 0.9
    again = tmp_path / "again"  # the stored classifier brings known_from with it
    run_cluster(paths["latents"], paths["embedding"], paths["particles"], again, matrix_path=paths["matrix"],
                match_scores=csvs, classifier_path=tmp_path / "best" / "classifier.npz")
    b = read_particles(again / "particles.star")["afmClassName"].to_numpy().astype(str)
    keep_b = unlabelled & (b != "unknown")
    assert list(b[keep_b]) == list(np.asarray(KNOWN)[scores[keep_b].argmax(axis=1)])
    with pytest.raises(InputError, match="known_from"):
        run_cluster(paths["latents"], paths["embedding"], paths["particles"], tmp_path / "none",
                    matrix_path=paths["matrix"], options=options)
    with pytest.raises(InputError, match="known_from"):
        StageOptions.from_dict({"known_from": "templates"})


def test_known_from_auto_takes_the_scores_when_given_else_the_classifier(weak, tmp_path):
    """The default (auto): with template scores, the best-scoring class; without, the classifier's."""
    from affinitomo.cluster.pipeline import StageOptions

    syn, folder, paths, csvs = weak
    run_cluster(paths["latents"], paths["embedding"], paths["particles"], tmp_path / "auto",
                matrix_path=paths["matrix"], truth_path=paths["truth"], match_scores=csvs)
    run_cluster(paths["latents"], paths["embedding"], paths["particles"], tmp_path / "knn",
                matrix_path=paths["matrix"], truth_path=paths["truth"], match_scores=csvs,
                options=StageOptions.from_dict({"known_from": "classifier"}))
    auto = read_particles(tmp_path / "auto" / "particles.star")
    _, scores = read_scores(csvs, auto)
    a = auto["afmClassName"].to_numpy().astype(str)
    unlabelled = auto["afmLabelled"].astype(int).to_numpy() == 0
    kept = unlabelled & (a != "unknown")
    assert list(a[kept]) == list(np.asarray(KNOWN)[scores[kept].argmax(axis=1)])
    metrics = {name: json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("auto", "knn")}
    assert metrics["auto"]["open_set"]["known_class_from"] == "scores"
    assert metrics["knn"]["open_set"]["known_class_from"] == "classifier"
    run_cluster(paths["latents"], paths["embedding"], paths["particles"], tmp_path / "none",
                matrix_path=paths["matrix"], truth_path=paths["truth"])
    none = json.loads((tmp_path / "none" / "metrics.json").read_text())
    assert none["open_set"]["known_class_from"] == "classifier"
    # scores for all but one known class: that class could never be given, so the classifier decides
    ids = syn.table["afmParticleId"].to_numpy()
    part = write_scores(tmp_path / "part.csv", ids, KNOWN[:-1], informative_scores(syn)[:, :-1])
    run_cluster(paths["latents"], paths["embedding"], paths["particles"], tmp_path / "part",
                matrix_path=paths["matrix"], truth_path=paths["truth"], match_scores=[part])
    partial = json.loads((tmp_path / "part" / "metrics.json").read_text())
    assert partial["open_set"]["known_class_from"] == "classifier"


def test_scores_alone_as_features_and_back_from_the_stored_classifier(weak, tmp_path):
    """latents: false: the template scores are the only features (here they tell the classes apart and
    the latents barely do); a stored classifier fitted so is used so again, and needs the scores."""
    from affinitomo.cluster.pipeline import StageOptions

    syn, folder, paths, csvs = weak
    options = StageOptions.from_dict({"latents": False})
    run_cluster(paths["latents"], paths["embedding"], paths["particles"], tmp_path / "scores",
                matrix_path=paths["matrix"], truth_path=paths["truth"], match_scores=csvs, options=options)
    metrics = json.loads((tmp_path / "scores" / "metrics.json").read_text())
    assert metrics["f1_macro"] > 0.9 and metrics["options"]["classify"]["latents"] is False
    first = read_particles(tmp_path / "scores" / "particles.star")["afmClassName"].to_numpy()
    run_cluster(paths["latents"], paths["embedding"], paths["particles"], tmp_path / "again",
                matrix_path=paths["matrix"], match_scores=csvs, classifier_path=tmp_path / "scores" / "classifier.npz")
    again = read_particles(tmp_path / "again" / "particles.star")["afmClassName"].to_numpy()
    assert np.mean(first == again) > 0.97
    with pytest.raises(InputError, match="latents"):
        run_cluster(paths["latents"], paths["embedding"], paths["particles"], tmp_path / "none",
                    matrix_path=paths["matrix"], options=options)
