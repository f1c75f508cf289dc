"""Files a user can trust: each bad input stops with a message naming the file and the field (or, for
boxes without finite data, is skipped and counted), and nothing half-written is left behind."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
import torch

from affinitomo.cli import main
from affinitomo.cluster import run_cluster
from affinitomo.cluster.inputs import truth_for
from affinitomo.cluster.pipeline import StageOptions
from affinitomo.cluster.run_info import check_against_run
from affinitomo.errors import InputError
from affinitomo.extract import extract_subtomograms
from affinitomo.io.particles import read_particles, write_particles
from affinitomo.io.volumes import open_volume, write_volume
from affinitomo.model.checkpoint import save_checkpoint
from affinitomo.model.train_config import config_from_dict, parse_options
from affinitomo.model.vae import AffinityVAE
from affinitomo.options import read_options
from synthetic_latents import KNOWN, make_blobs, write_inputs
from test_workflow import snakemake, write_config


def one_error_line(err: str, verb: str) -> str:
    """The single error line a failed command prints (no traceback, no second message; progress
    bars aside)."""
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(f"{verb}: ")]
    assert len(lines) == 1 and lines[0].startswith(f"affinitomo {verb}: error: "), err
    assert "Traceback" not in err
    return lines[0]


# --------------------------------------------------------------------------- 1. corrupt data


def mrc_with_header_size(path: Path, nx: int, ny: int, nz: int) -> Path:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6))
    with mrcfile.open(path, "r+", permissive=True) as mrc:
        mrc.header.nx, mrc.header.ny, mrc.header.nz = nx, ny, nz
    return path


@pytest.mark.parametrize("size", [(6, 5, 3), (6, 5, 5), (60, 5, 4)], ids=["fewer", "more", "far-more"])
def test_mrc_header_size_that_disagrees_with_the_data_is_named(tmp_path, size, capsys):
    path = mrc_with_header_size(tmp_path / "t1.mrc", *size)
    with pytest.raises(InputError) as err:
        open_volume(path)
    assert err.value.field == "nx/ny/nz" and err.value.path == str(path) and "scrambled" in str(err.value)
    table = pd.DataFrame({"rlnTomoName": ["t1"], "rlnCoordinateX": [2.0], "rlnCoordinateY": [2.0],
                          "rlnCoordinateZ": [2.0], "afmPixelSize": [5.0]})
    write_particles(tmp_path / "p.star", table)
    out = tmp_path / "out"
    assert main(["extract", "--particles", str(tmp_path / "p.star"), "--tomograms", str(path), "--box", "4",
                 "--out", str(out)]) == 2
    assert "t1.mrc: field 'nx/ny/nz'" in one_error_line(capsys.readouterr().err, "extract")
    assert not out.exists()


def test_mrc_that_matches_its_header_still_reads(tmp_path):
    path = mrc_with_header_size(tmp_path / "ok.mrc", 6, 5, 4)
    np.testing.assert_array_equal(open_volume(path)[0], np.arange(120, dtype=np.float32).reshape(4, 5, 6))


@pytest.mark.filterwarnings("ignore:Data array contains NaN")
def test_extract_skips_boxes_with_non_finite_voxels_and_counts_them(tmp_path, caplog):
    vol = np.random.default_rng(0).normal(size=(30, 30, 40)).astype(np.float32)
    vol[10:20, 10:20, 25:35] = np.nan  # a masked region
    vol[3, 3, 3] = np.inf
    path = write_volume(tmp_path / "t1.mrc", vol, 5.0)
    xyz = [[8, 15, 15], [30, 15, 15], [20, 22, 15], [3, 3, 3]]  # the second and fourth boxes hold NaN / Inf
    table = pd.DataFrame({"rlnTomoName": "t1", "rlnCoordinateX": [p[0] for p in xyz],
                          "rlnCoordinateY": [p[1] for p in xyz], "rlnCoordinateZ": [p[2] for p in xyz],
                          "afmPixelSize": 5.0, "afmParticleId": [10, 11, 12, 13]})
    with caplog.at_level(logging.WARNING, logger="affinitomo.extract"):
        result = extract_subtomograms(table, {"t1": path}, 8, tmp_path / "out", progress=False)
    assert result["afmParticleId"].tolist() == [10, 12]
    assert read_particles(tmp_path / "out" / "particles.star")["afmParticleId"].tolist() == [10, 12]
    stack = np.load(tmp_path / "out" / "subtomos.npy")
    assert stack.shape == (2, 8, 8, 8) and np.isfinite(stack).all()
    assert "skipped 2 of 4 particles whose box holds non-finite voxels" in caplog.text and "t1: 2" in caplog.text
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    with pytest.raises(InputError, match="t1.mrc.*all 2 boxes hold NaN or Inf"):
        extract_subtomograms(table.iloc[[1, 3]], {"t1": path}, 8, tmp_path / "none", progress=False)
    assert not (tmp_path / "none").exists()


def test_match_refuses_a_stack_with_non_finite_voxels(tmp_path):
    from affinitomo.match import match_particles
    from test_match import blobs, make_particles
    from test_match import write_inputs as write_match_inputs

    templates = [blobs(16, 1)]
    stack, labels, _ = make_particles(templates, 4, seed=5)
    stack[2, 3, 3, 3] = np.nan
    tdir = write_match_inputs(tmp_path, templates, ["a"], stack, labels)
    with pytest.raises(InputError) as err:
        match_particles(tmp_path / "subtomos.npy", tmp_path / "particles.star", tdir, tmp_path / "out", progress=False)
    assert err.value.field == "values" and "subtomos.npy" in str(err.value) and "rows [2]" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_cluster_never_classifies_a_particle_without_finite_features(tmp_path):
    from affinitomo.cluster.classify import ClassifyOptions
    from affinitomo.cluster.pipeline import classify

    syn = make_blobs(n=60, seed=3)
    labels = syn.table["afmClassName"].to_numpy().astype(str)
    scores = np.random.default_rng(0).random((60, 2))
    scores[7, 1] = np.inf
    with pytest.raises(InputError, match=r"features.*rows \[7\]"):
        classify(syn.mu, labels, labels != "", KNOWN, ClassifyOptions(), None, "p.star", (["t1", "t2"], scores),
                 "scores.csv")
    (tmp_path / "scores.csv").write_text("afmParticleId,t1\n" + "".join(
        f"{i},{'nan' if i == 7 else 0.5}\n" for i in syn.table["afmParticleId"]))
    from affinitomo.io.scores import read_scores

    with pytest.raises(InputError, match="scores.csv.*t1.*finite"):
        read_scores(tmp_path / "scores.csv", syn.table)


@pytest.fixture(scope="module")
def blob_inputs(tmp_path_factory):
    syn = make_blobs(n=120, seed=4)
    return syn, write_inputs(tmp_path_factory.mktemp("blobs"), syn)


def test_truth_is_checked_by_tomogram_and_place_not_by_id_alone(blob_inputs, tmp_path):
    syn, paths = blob_inputs
    table = read_particles(paths["particles"])
    assert (truth_for(table, paths["truth"])["afmClassName"] != "").all()
    binned = syn.truth.copy()  # the same particles in a table of unbinned pixels: the same places in Å
    binned[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]] *= 2
    binned["afmPixelSize"] /= 2
    write_particles(tmp_path / "binned.star", binned)
    assert (truth_for(table, tmp_path / "binned.star")["afmClassName"] != "").all()
    renamed = syn.truth.assign(rlnTomoName="other_tomo")
    write_particles(tmp_path / "renamed.star", renamed)
    with pytest.raises(InputError) as err:
        truth_for(table, tmp_path / "renamed.star", paths["particles"])
    assert err.value.field == "rlnTomoName" and "other_tomo" in str(err.value)
    moved = syn.truth.copy()
    moved.loc[5:, "rlnCoordinateX"] += 40.0  # same ids, other particles
    write_particles(tmp_path / "moved.star", moved)
    with pytest.raises(InputError) as err:
        truth_for(table, tmp_path / "moved.star")
    assert err.value.field == "rlnCoordinateX/Y/Z" and f"{len(moved) - 5} of {len(moved)}" in str(err.value)


# --------------------------------------------------------------------------- 2. options checked first


@pytest.mark.parametrize(("override", "message"), [
    ({"train": {"epoch": 2}}, "field 'train.epoch': a known option"),
    ({"cluster": {"methd": "kmeans"}}, "field 'cluster.methd': a cluster option"),
    ({"embed": {"n_neighbours": 5}}, "field 'embed.n_neighbours': an embed option"),
    ({"cluster": {"quantile": "high"}}, "field 'cluster.quantile': a value of type float"),
])
def test_options_sections_fail_the_dry_run_naming_the_key(tmp_path, override, message):
    proc = snakemake(tmp_path, write_config(tmp_path, **override), "-n", "--cores", "1", check=False)
    assert proc.returncode != 0 and message in proc.stdout + proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "results").exists()


def test_duplicate_key_in_the_config_fails_the_dry_run(tmp_path):
    config = write_config(tmp_path)
    config.write_text(config.read_text() + "device: cpu\n")  # `device` is in config.yaml already
    proc = snakemake(tmp_path, config, "-n", "--cores", "1", check=False)
    assert proc.returncode != 0
    assert "field 'device': one value per key; the key is given twice" in proc.stdout + proc.stderr


def test_duplicate_keys_in_options_files_and_json(tmp_path):
    yml = tmp_path / "train.yaml"
    yml.write_text("epochs: 3\nmodel:\n  depth: 2\n  depth: 3\n")
    with pytest.raises(InputError, match=r"train.yaml: field 'depth': one value per key.*lines 3 and 4"):
        parse_options(str(yml))
    with pytest.raises(InputError, match="--options: field 'n_neighbors': one value per key"):
        read_options('{"n_neighbors": 5, "n_neighbors": 6}')
    with pytest.raises(InputError, match="field 'align_starts': a value of type int"):
        StageOptions.from_dict({"align_starts": 2.5})


# --------------------------------------------------------------------------- 3. errors are messages


def test_out_under_a_file_is_one_line_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "m.csv").write_text("a,b\n1,0.5\n0.5,1\n")
    (tmp_path / "afile").write_text("in the way")
    before = sorted(p.name for p in tmp_path.iterdir())
    out = tmp_path / "afile" / "matrix.csv"
    assert main(["similarity", "--matrix", str(tmp_path / "m.csv"), "--out", str(out)]) == 1
    line = one_error_line(capsys.readouterr().err, "similarity")
    assert line == f"affinitomo similarity: error: {out}: Not a directory"
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_read_only_out_is_one_line_naming_the_output(tmp_path, capsys, monkeypatch):
    (tmp_path / "m.csv").write_text("a,b\n1,0.5\n0.5,1\n")
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: the refusal the kernel would give
        def refuse(*args, dir=None, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied", os.path.join(dir, ".matrix.x.tmp.csv"))

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
    else:
        folder.chmod(0o555)
    try:
        assert main(["similarity", "--matrix", str(tmp_path / "m.csv"), "--out", str(folder / "matrix.csv")]) == 1
    finally:
        folder.chmod(0o755)
    line = one_error_line(capsys.readouterr().err, "similarity")
    assert line == f"affinitomo similarity: error: {folder / 'matrix.csv'}: Permission denied"
    assert not any(folder.iterdir())


def test_full_disk_is_one_line_and_leaves_no_partial_file(tmp_path, capsys, monkeypatch):
    vol = np.random.default_rng(1).normal(size=(20, 20, 20)).astype(np.float32)
    write_volume(tmp_path / "t1.mrc", vol, 5.0)
    write_particles(tmp_path / "p.star", pd.DataFrame({
        "rlnTomoName": ["t1"] * 3, "rlnCoordinateX": [8.0, 10, 12], "rlnCoordinateY": 10.0, "rlnCoordinateZ": 10.0,
        "afmPixelSize": 5.0}))

    def full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "pwrite", full)
    out = tmp_path / "out"
    assert main(["extract", "--particles", str(tmp_path / "p.star"), "--tomograms", str(tmp_path / "t1.mrc"),
                 "--box", "8", "--out", str(out)]) == 1
    line = one_error_line(capsys.readouterr().err, "extract")
    assert line == f"affinitomo extract: error: {out / 'subtomos.npy'}: No space left on device"
    assert not out.exists() or not any(out.iterdir())


def tiny_training(tmp_path: Path) -> list[str]:
    from test_train import _write_table, make_stack

    n = 30
    make_stack(tmp_path / "s.npy", n)
    _write_table(tmp_path / "p.star", [["bar", "ball"][i % 2] if i % 3 else "" for i in range(n)])
    (tmp_path / "m.csv").write_text("ball,bar\n1,-0.2\n-0.2,1\n")
    return ["train", "--stack", str(tmp_path / "s.npy"), "--particles", str(tmp_path / "p.star"), "--matrix",
            str(tmp_path / "m.csv"), "--out", str(tmp_path / "out"), "--no-progress", "--device", "cpu"]


def test_train_error_is_not_followed_by_a_loss_plot_traceback(tmp_path, capsys, monkeypatch, caplog):
    from affinitomo.model import losses
    from affinitomo.plots import training as plots

    real, calls = losses.reconstruction_loss, {"n": 0}

    def poisoned(recon, target, kind="mse"):
        calls["n"] += torch.is_grad_enabled()
        return real(recon, target, kind) * (float("nan") if calls["n"] > 2 else 1.0)

    def no_plot(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "loss.png")

    monkeypatch.setattr(losses, "reconstruction_loss", poisoned)
    monkeypatch.setattr(plots, "plot_training", no_plot)
    argv = tiny_training(tmp_path) + ["--options", json.dumps(
        {"model": {"depth": 2, "channels": 4, "latent_dims": 4}, "batch_size": 16, "num_threads": 1, "epochs": 3})]
    with caplog.at_level(logging.WARNING, logger="affinitomo.train.loop"):
        assert main(argv) == 1
    line = one_error_line(capsys.readouterr().err, "train")
    assert "non-finite loss at epoch 2" in line
    assert "loss.png not written" in caplog.text


def test_fresh_training_in_an_old_run_folder_clears_the_old_model(tmp_path, caplog):
    from test_train import SMALL, make_data

    out = tmp_path / "out"
    out.mkdir()
    for name in ("model.pt", "best.pt", "training.csv", "loss.png"):
        (out / name).write_bytes(b"the earlier run's")
    (out / "notes.txt").write_text("kept")

    def killed(epoch, row):
        raise KeyboardInterrupt

    from affinitomo.train.loop import train

    cfg = config_from_dict({**SMALL, "epochs": 4, "checkpoint_every": 5})
    with caplog.at_level(logging.WARNING, logger="affinitomo.train.loop"), pytest.raises(KeyboardInterrupt):
        train(make_data(tmp_path), out, cfg, device="cpu", on_epoch_end=killed, progress=False)
    assert not (out / "model.pt").exists()  # killed before the first model.pt: no earlier one beside best.pt
    assert torch.load(out / "best.pt", weights_only=True)["epoch"] == 1
    assert len(pd.read_csv(out / "training.csv")) == 1 and (out / "notes.txt").exists()
    assert "removed the earlier run's model.pt, best.pt, training.csv, loss.png" in caplog.text


def test_temporaries_of_a_killed_save_are_removed_by_the_next_write(tmp_path):
    stale = [tmp_path / ".particles.k3j9x_2a.tmp.star", tmp_path / "..particles.k3j9x_2a.tmp.0abcdefg.tmp.star"]
    other = tmp_path / ".other.k3j9x_2a.tmp.star"  # another file's: maybe being written right now
    for path in (*stale, other):
        path.write_text("half")
    write_particles(tmp_path / "particles.star", pd.DataFrame({
        "rlnTomoName": ["t"], "rlnCoordinateX": [1.0], "rlnCoordinateY": [1.0], "rlnCoordinateZ": [1.0]}))
    assert not any(p.exists() for p in stale) and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [other.name, "particles.star"]


# --------------------------------------------------------------------------- 4. run.json fingerprints


def save_model(path: Path, seed: int) -> Path:
    cfg = config_from_dict({"model": {"depth": 2, "channels": 4, "latent_dims": 8}})
    torch.manual_seed(seed)
    save_checkpoint(path, {"config": cfg.to_dict(), "classes": KNOWN, "model": AffinityVAE(cfg.model, 16).state_dict(),
                           "box": 16})
    return path


def recorded_run(folder: Path, seed: int = 5) -> Path:
    """A results folder in the workflow's layout whose run.json fingerprints its files."""
    inputs = write_inputs(folder / "inputs", make_blobs(n=200, seed=seed), pose_dims=1)
    for sub in ("embed", "similarity"):
        (folder / sub).mkdir(parents=True)
    shutil.copy(inputs["embedding"], folder / "embed" / "embedding.csv")
    (folder / "embed" / "umap.npz").write_bytes(b"the run's UMAP")
    shutil.copy(inputs["matrix"], folder / "similarity" / "matrix.csv")
    model = save_model(folder / "train" / "model.pt", seed)
    run_cluster(inputs["latents"], folder / "embed" / "embedding.csv", inputs["particles"], folder,
                matrix_path=folder / "similarity" / "matrix.csv", checkpoint=model)
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    return recorded_run(base / "run"), recorded_run(base / "other", seed=6)


def test_run_json_records_the_sha256_of_the_run_files(runs):
    run, _ = runs
    files = json.loads((run / "run.json").read_text())["files"]
    assert {role: entry["path"] for role, entry in files.items()} == {
        "checkpoint": "train/model.pt", "classifier": "classifier.npz", "umap": "embed/umap.npz",
        "matrix": "similarity/matrix.csv"}
    from affinitomo.cluster.run_info import sha256

    assert all(sha256(run / entry["path"]) == entry["sha256"] for entry in files.values())


def tampered(runs, tmp_path: Path, relative: str) -> Path:
    """A copy of the run (moved: its run.json still applies) with ``relative`` taken from the other run."""
    run, other = runs
    copy = tmp_path / "copied_run"
    shutil.copytree(run, copy)
    shutil.copy(other / relative, copy / relative)
    return copy


def test_a_classifier_that_is_not_the_runs_is_named(runs, tmp_path, capsys):
    run = tampered(runs, tmp_path, "classifier.npz")
    inputs = run / "inputs"
    out = tmp_path / "new"
    assert main(["cluster", "--latents", str(inputs / "latents.npz"), "--embedding", str(inputs / "embedding.csv"),
                 "--particles", str(inputs / "particles.star"), "--out", str(out),
                 "--classifier", str(run / "classifier.npz")]) == 2
    line = one_error_line(capsys.readouterr().err, "cluster")
    assert f"{(run / 'classifier.npz').resolve()}: field 'sha256'" in line and str(run / "run.json") in line
    assert not out.exists()
    check_against_run(runs[0] / "classifier.npz", "classifier", out)  # the run's own file passes
    check_against_run(run / "classifier.npz", "classifier", run)  # remaking that run: not checked


def test_a_model_changed_after_the_run_is_named_by_encode_and_apply(runs, tmp_path, capsys):
    run = tampered(runs, tmp_path, "train/model.pt")
    assert main(["encode", "--checkpoint", str(run / "train" / "model.pt"), "--stack", str(tmp_path / "s.npy"),
                 "--particles", str(run / "inputs" / "particles.star"), "--out", str(tmp_path / "lat.npz")]) == 2
    assert "model.pt: field 'sha256'" in one_error_line(capsys.readouterr().err, "encode")
    from affinitomo.apply import apply_run

    with pytest.raises(InputError, match=r"model.pt: field 'sha256'.*changed or replaced"):
        apply_run(run, [tmp_path / "none.mrc"], tmp_path / "applied", particles=run / "inputs" / "particles.star")
    assert not (tmp_path / "applied").exists() and not (tmp_path / "lat.npz").exists()


def test_a_umap_that_is_not_the_runs_is_named_by_embed(runs, tmp_path, capsys):
    run = tampered(runs, tmp_path, "embed/umap.npz")
    (run / "embed" / "umap.npz").write_bytes(b"another UMAP")
    assert main(["embed", "--latents", str(run / "inputs" / "latents.npz"), "--particles",
                 str(run / "inputs" / "particles.star"), "--out", str(tmp_path / "e"), "--umap",
                 str(run / "embed" / "umap.npz")]) == 2
    assert "umap.npz: field 'sha256'" in one_error_line(capsys.readouterr().err, "embed")
    assert not (tmp_path / "e").exists()


# --------------------------------------------------------------------------- 5. readers (examples)


@pytest.mark.parametrize("name", ["nan", "NaN", "_tomo", 'a"b', "a#b", ""])
def test_star_writer_refuses_names_a_star_file_cannot_keep(tmp_path, name):
    table = pd.DataFrame({"rlnTomoName": [name], "rlnCoordinateX": [1.0], "rlnCoordinateY": [1.0],
                          "rlnCoordinateZ": [1.0]})
    with pytest.raises(InputError, match="rlnTomoName.*names that a STAR file keeps"):
        write_particles(tmp_path / "p.star", table)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(("text", "field"), [
    ("x,y,z,tomo\n1,2,3,NA\n", None),  # a tomogram named NA is a name, not a missing value
    ("x,y,z,rlnCoordinateX,tomo\n1,2,3,4,t\n", "rlnCoordinateX"),
    ("x,y,z,tomo,class,Class\n1,2,3,t,a,b\n", "Class"),
    ("x,y,z,tomo\n1,2,3,\n", "rlnTomoName"),
    ("x,y,z,tomo,id\n1,2,3,t,1e300\n", "afmParticleId"),
])
def test_csv_tables(tmp_path, text, field):
    (tmp_path / "p.csv").write_text(text)
    if field is None:
        assert read_particles(tmp_path / "p.csv")["rlnTomoName"].tolist() == ["NA"]
        return
    with pytest.raises(InputError) as err:
        read_particles(tmp_path / "p.csv")
    assert err.value.field == field and err.value.path == str(tmp_path / "p.csv")


@pytest.mark.parametrize(("point", "field"), [
    ({"location": {"x": 1, "y": 2, "z": 3}, "score": "high"}, "points[0].score"),
    ({"location": {"x": 1, "y": 2, "z": 3}, "instance_id": 1.5}, "points[0].instance_id"),
    ({"location": {"x": 1, "y": 2, "z": 3}, "transformation_": [[1, 0], [0]]}, "points[0].transformation_"),
])
def test_copick_fields(tmp_path, point, field):
    (tmp_path / "p.json").write_text(json.dumps({"run_name": "t", "points": [point]}))
    with pytest.raises(InputError) as err:
        read_particles(tmp_path / "p.json", pixel_size=10.0)
    assert err.value.field == field


def test_star_with_an_optics_block_alone_or_bad_optics(tmp_path):
    (tmp_path / "a.star").write_text("data_optics\n\nloop_\n_rlnOpticsGroup\n_rlnImagePixelSize\n1 2.0\n")
    with pytest.raises(InputError, match="data_optics alone"):
        read_particles(tmp_path / "a.star")
    (tmp_path / "b.star").write_text(
        "data_optics\n\nloop_\n_rlnOpticsGroup\n_rlnTomoTiltSeriesPixelSize\n1 big\n\n"
        "data_particles\n\nloop_\n_rlnCoordinateX\n_rlnCoordinateY\n_rlnCoordinateZ\n_rlnTomoName\n1 2 3 t\n")
    with pytest.raises(InputError) as err:
        read_particles(tmp_path / "b.star")
    assert err.value.field == "rlnTomoTiltSeriesPixelSize"
