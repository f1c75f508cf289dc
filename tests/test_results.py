"""The cluster stage end to end: results folder contents, numbering, metrics, bad inputs, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import starfile

from affinitomo.cli import main
from affinitomo.cluster import StageOptions, run_cluster
from affinitomo.errors import InputError
from affinitomo.io.particles import read_particles, write_particles
from affinitomo.io.volumes import read_volume
from affinitomo.labels import class_numbers
from synthetic_latents import HELD_OUT, KNOWN, make_blobs, write_inputs


@pytest.fixture(scope="module")
def synthetic():
    return make_blobs(n=400, seed=5)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, synthetic):
    """One full run with truth, matrix and a small stack."""
    folder = tmp_path_factory.mktemp("run")
    paths = write_inputs(folder / "in", synthetic)
    stack = np.random.default_rng(0).normal(size=(len(synthetic.mu), 8, 8, 8)).astype(np.float32)
    np.save(folder / "in" / "subtomos.npy", stack)
    summary = run_cluster(paths["latents"], paths["embedding"], paths["particles"], folder / "out",
                          truth_path=paths["truth"], matrix_path=paths["matrix"],
                          stack_path=folder / "in" / "subtomos.npy")
    return folder / "out", summary, paths


def test_class_numbers_rules():
    assigned = np.array(["b", "unknown", "unknown", "a", "unknown", "unknown"])
    clusters = np.array([0, 3, 1, 2, 3, -1])
    numbers, classes = class_numbers(["b", "a", "c"], assigned, clusters, trained=["a", "b"])
    assert numbers.tolist() == [1, 4, 5, 2, 4, 0]
    assert classes["name"].tolist() == ["b", "a", "c", "unknown_c3", "unknown_c1", "unknown"]
    assert classes["known"].tolist() == [1, 1, 0, 0, 0, 0]
    assert classes["count"].tolist() == [1, 1, 0, 2, 1, 1]


def test_results_folder_contents(finished):
    out, _, _ = finished
    for name in ["particles.star", "classes.csv", "metrics.json", "umap.png", "umap_cluster.png",
                 "umap_tomogram.png", "umap_truth.png", "confusion.png"]:
        assert (out / name).stat().st_size > 0, name
    assert not list(out.rglob(".*.tmp*")), "temporary files left behind"


def test_particles_star_is_relion_readable(finished, synthetic):
    out, _, _ = finished
    raw = starfile.read(out / "particles.star")
    assert set(raw) == {"optics", "particles"}
    df = read_particles(out / "particles.star")
    for col in ["afmClassName", "rlnClassNumber", "afmClusterId", "afmConfidence", "afmUMAP0", "afmUMAP1",
                "afmLabelled", "rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]:
        assert col in df.columns, col
    assert df["afmParticleId"].tolist() == synthetic.table["afmParticleId"].tolist()
    labelled = synthetic.table["afmClassName"].to_numpy() != ""
    assert (df["afmLabelled"].to_numpy() == labelled).all()
    assert (df.loc[labelled, "afmClassName"].to_numpy() == synthetic.table.loc[labelled, "afmClassName"]).all()
    from affinitomo.geometry import euler_to_matrix, angular_distance

    back = euler_to_matrix(df["rlnAngleRot"], df["rlnAngleTilt"], df["rlnAnglePsi"])
    model = df["afmPoseSource"].to_numpy() == "model"
    assert np.max(angular_distance(back[model], synthetic.rotation[model])) < 0.01
    group = df["afmPoseSource"].to_numpy() == "group"  # unknown groups aligned within themselves
    assert set(df["afmPoseSource"]) <= {"model", "group"}
    assert group.any() and (df.loc[group, "afmClassName"] == "unknown").all()
    assert (df.loc[group, "rlnClassNumber"] > len(KNOWN) + 1).all()  # numbers after the matrix's 4 classes


def test_numbering_follows_matrix_and_unknown_groups(finished):
    out, _, paths = finished
    from affinitomo.io.similarity import read_similarity

    names, _ = read_similarity(paths["matrix"])
    classes = pd.read_csv(out / "classes.csv")
    assert classes["name"].tolist()[: len(names)] == names
    assert classes.loc[classes["name"] == HELD_OUT, "known"].item() == 0  # in the matrix, never labelled
    df = read_particles(out / "particles.star")
    unk = df[df["afmClassName"] == "unknown"]
    assert (unk["rlnClassNumber"] > len(names)).sum() + (unk["rlnClassNumber"] == 0).sum() == len(unk)
    for row in classes.itertuples():
        star = out / "classes" / f"{row.name}.star"
        if row.number > 0 and row.count > 0:
            assert len(read_particles(star)) == row.count
        else:
            assert not star.exists()
    assert sorted(p.stem for p in (out / "averages").glob("*.mrc")) == sorted(
        classes.loc[(classes["number"] > 0) & (classes["count"] > 0), "name"])


def test_metrics(finished):
    out, _, _ = finished
    m = json.loads((out / "metrics.json").read_text())
    assert m["f1_macro"] > 0.9 and m["ari"] > 0.8 and m["nmi"] > 0.8
    assert m["f1_macro_classes"] == sorted(KNOWN, key=[HELD_OUT, *KNOWN[::-1]].index)
    assert m["n_evaluated"] + m["n_labelled"] == 400
    fate = m["fates"][HELD_OUT]
    assert fate["held_out"] and fate["assigned"]["unknown"] > 0.85
    assert m["open_set"]["threshold"] > 0 and "rule" in m["open_set"]
    assert m["pose_error"]["median_deg"] < 10
    assert {"counts", "rows", "columns"} <= set(m["confusion"])
    assert m["silhouette"] is not None


def test_no_labels_every_particle_unknown(tmp_path, synthetic):
    syn = make_blobs(n=200, labelled_fraction=0.0, seed=8)
    paths = write_inputs(tmp_path / "in", syn, with_rotation=False, matrix=False)
    summary = run_cluster(paths["latents"], paths["embedding"], paths["particles"], tmp_path / "out",
                          options=StageOptions.from_dict({"method": "gmm", "k_max": 6}))
    df = read_particles(tmp_path / "out" / "particles.star")
    assert (df["afmClassName"] == "unknown").all() and summary["n_unknown"] == 200
    assert df["rlnClassNumber"].nunique() >= 3
    assert not (tmp_path / "out" / "metrics.json").exists()


def _assert_empty(folder):
    assert not folder.exists() or not any(folder.rglob("*")), list(folder.rglob("*"))


def test_bad_inputs_write_nothing(tmp_path, synthetic):
    paths = write_inputs(tmp_path / "in", synthetic)
    out = tmp_path / "out"
    # latents for other particles
    lat = dict(np.load(paths["latents"]))
    lat["particle_id"] = lat["particle_id"] + 1
    np.savez(tmp_path / "in" / "other.npz", **lat)
    with pytest.raises(InputError, match="particle_id"):
        run_cluster(tmp_path / "in" / "other.npz", paths["embedding"], paths["particles"], out)
    # embedding missing a particle
    emb = pd.read_csv(paths["embedding"]).iloc[1:]
    emb.to_csv(tmp_path / "in" / "short.csv", index=False)
    with pytest.raises(InputError, match="embedding"):
        run_cluster(paths["latents"], tmp_path / "in" / "short.csv", paths["particles"], out)
    # a label that is not in the matrix
    table = synthetic.table.copy()
    table.loc[0, "afmClassName"] = "zeta"
    write_particles(tmp_path / "in" / "zeta.star", table)
    with pytest.raises(InputError) as err:
        run_cluster(paths["latents"], paths["embedding"], tmp_path / "in" / "zeta.star", out,
                    matrix_path=paths["matrix"])
    assert err.value.field == "afmClassName"
    # truth with unrelated ids
    truth = synthetic.truth.copy()
    truth["afmParticleId"] = truth["afmParticleId"] + 100_000
    write_particles(tmp_path / "in" / "truth_other.star", truth)
    with pytest.raises(InputError):
        run_cluster(paths["latents"], paths["embedding"], paths["particles"], out,
                    truth_path=tmp_path / "in" / "truth_other.star")
    # stack with the wrong number of rows
    np.save(tmp_path / "in" / "stack.npy", np.zeros((3, 4, 4, 4), np.float32))
    with pytest.raises(InputError, match="subtomograms"):
        from affinitomo.io.stacks import open_stacks

        open_stacks(tmp_path / "in" / "stack.npy", len(synthetic.mu))
    _assert_empty(out)


def test_cli_cluster(tmp_path, synthetic, capsys):
    paths = write_inputs(tmp_path / "in", synthetic, matrix=False)
    common = ["--latents", str(paths["latents"]), "--particles", str(paths["particles"]), "--out", str(tmp_path / "out")]
    args = ["cluster", *common, "--embedding", str(paths["embedding"]),
            "--options", '{"method": "kmeans", "n_clusters": 4, "classifier": "logistic", "seed": 3}']
    log = tmp_path / "training.csv"
    log.write_text("epoch,train_total,train_recon,train_kl,train_affinity,beta,gamma\n"
                   "0,3,2,0.5,0.5,1,1\n1,2,1.5,0.3,0.2,1,1\n")
    assert main(args) == 0
    assert main(["average", *common]) == 0
    assert main(["report", *common, "--embedding", str(paths["embedding"]), "--truth", str(paths["truth"]),
                 "--training-log", str(log)]) == 0
    assert (tmp_path / "out" / "loss.png").stat().st_size > 0
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["options"]["cluster"]["method"] == "kmeans" and m["options"]["classify"]["classifier"] == "logistic"
    bad = args[:-1] + ['{"method": "kmeans", "classifierr": "logistic"}']
    assert main(bad) == 2
    assert "classifierr" in capsys.readouterr().err


def test_report_before_average_names_the_missing_step(tmp_path, synthetic, capsys):
    paths = write_inputs(tmp_path / "in", synthetic, matrix=False)
    common = ["--latents", str(paths["latents"]), "--particles", str(paths["particles"]), "--out", str(tmp_path / "out"),
              "--embedding", str(paths["embedding"])]
    assert main(["average", *common[:-2]]) == 2
    assert "affinitomo cluster" in capsys.readouterr().err
    assert main(["cluster", *common]) == 0
    assert main(["report", *common]) == 2
    assert "affinitomo average" in capsys.readouterr().err


def test_three_clis_chained_give_the_in_process_results(tmp_path, synthetic):
    """affinitomo cluster -> average -> report write what run_cluster writes in one process: the same
    particles.star, metrics.json, classes.csv and averages; an alignment option is read by average only."""
    paths = write_inputs(tmp_path / "in", synthetic)
    rng = np.random.default_rng(1)
    n = len(synthetic.mu)
    stack = tmp_path / "in" / "subtomos.npy"
    np.save(stack, rng.normal(size=(n, 8, 8, 8)).astype(np.float32))
    best = np.where(synthetic.table["afmClassName"].to_numpy() != "", synthetic.table["afmClassName"].to_numpy(),
                    np.asarray(KNOWN, dtype=object)[rng.integers(len(KNOWN), size=n)])
    match = synthetic.table.assign(afmMatchTemplate=best, rlnAngleRot=rng.uniform(-180, 180, n),
                                   rlnAngleTilt=rng.uniform(0, 180, n), rlnAnglePsi=rng.uniform(-180, 180, n))
    write_particles(tmp_path / "in" / "match.star", match)
    values = {"seed": 2, "align_rounds": 2, "align_starts": 2}
    run_cluster(paths["latents"], paths["embedding"], paths["particles"], tmp_path / "one", truth_path=paths["truth"],
                matrix_path=paths["matrix"], stack_path=stack, match_poses=tmp_path / "in" / "match.star",
                options=StageOptions.from_dict(values))
    out = tmp_path / "three"
    common = ["--latents", str(paths["latents"]), "--particles", str(paths["particles"]), "--out", str(out)]
    classify_keys = {k: v for k, v in values.items() if not k.startswith("align_")}
    assert main(["cluster", *common, "--embedding", str(paths["embedding"]), "--matrix", str(paths["matrix"]),
                 "--options", json.dumps(classify_keys)]) == 0
    assert main(["average", *common, "--stack", str(stack), "--match-poses", str(tmp_path / "in" / "match.star"),
                 "--options", json.dumps(values)]) == 0
    assert main(["report", *common, "--embedding", str(paths["embedding"]), "--matrix", str(paths["matrix"]),
                 "--truth", str(paths["truth"]), "--stack", str(stack)]) == 0
    one, three = read_particles(tmp_path / "one" / "particles.star"), read_particles(out / "particles.star")
    assert list(one.columns) == list(three.columns)
    pd.testing.assert_frame_equal(one, three)
    assert (one["afmPoseSource"] == "group").any()
    for name in ("metrics.json", "classes.csv"):
        assert (tmp_path / "one" / name).read_text() == (out / name).read_text(), name
    averages = sorted(p.name for p in (tmp_path / "one" / "averages").glob("*.mrc"))
    assert averages and averages == sorted(p.name for p in (out / "averages").glob("*.mrc"))
    for name in averages:  # the voxels (the MRC header holds the time of writing)
        np.testing.assert_array_equal(read_volume(tmp_path / "one" / "averages" / name)[0],
                                      read_volume(out / "averages" / name)[0])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["options"]["align"]["align_rounds"] == 2 and metrics["options"]["cluster"]["seed"] == 2


def test_known_classes_and_unknown_groups_compete_with_match_poses(tmp_path, synthetic):
    """With the stack and template matching's poses, averaging.compete runs after the group alignment:
    whatever moves, labelled particles keep their labels, group poses go with 'unknown' and the
    class table counts every particle."""
    paths = write_inputs(tmp_path / "in", synthetic)
    rng = np.random.default_rng(1)
    n = len(synthetic.mu)
    np.save(tmp_path / "in" / "subtomos.npy", rng.normal(size=(n, 8, 8, 8)).astype(np.float32))
    best = np.where(synthetic.table["afmClassName"].to_numpy() != "", synthetic.table["afmClassName"].to_numpy(),
                    np.asarray(KNOWN, dtype=object)[rng.integers(len(KNOWN), size=n)])
    match = synthetic.table.assign(afmMatchTemplate=best, rlnAngleRot=rng.uniform(-180, 180, n),
                                   rlnAngleTilt=rng.uniform(0, 180, n), rlnAnglePsi=rng.uniform(-180, 180, n))
    write_particles(tmp_path / "in" / "match.star", match)
    run_cluster(paths["latents"], paths["embedding"], paths["particles"], tmp_path / "out", truth_path=paths["truth"],
                matrix_path=paths["matrix"], stack_path=tmp_path / "in" / "subtomos.npy",
                match_poses=tmp_path / "in" / "match.star")
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert set(metrics["clustering"]["compete"]) == {"to_groups", "to_classes"}
    df = read_particles(tmp_path / "out" / "particles.star")
    labelled = synthetic.table["afmClassName"].to_numpy() != ""
    assert (df.loc[labelled, "afmClassName"].to_numpy() == synthetic.table.loc[labelled, "afmClassName"]).all()
    group = df["afmPoseSource"].to_numpy() == "group"
    assert group.any() and (df.loc[group, "afmClassName"] == "unknown").all()
    assert (df.loc[df["afmPoseSource"] == "match", "afmClassName"] != "unknown").all()
    assert pd.read_csv(tmp_path / "out" / "classes.csv")["count"].sum() == n
