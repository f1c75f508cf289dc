"""Apply a trained run to new tomograms: checks before any work (fast), end to end on the demo (slow)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from affinitomo.apply import TrainedRun, apply_run, check_trained_run
from affinitomo.cluster import run_cluster
from affinitomo.errors import InputError
from affinitomo.io.scores import write_scores
from affinitomo.model.checkpoint import save_checkpoint
from affinitomo.model.train_config import config_from_dict
from affinitomo.model.vae import AffinityVAE
from synthetic_latents import KNOWN, make_blobs, write_inputs


def fake_run(folder: Path, classes: list[str], latent_dims: int = 8, score_names: list[str] | None = None) -> Path:
    """A results folder with a (random) model, a fitted classifier (on latents, or latents + template
    scores for ``score_names``), matrix and a placeholder UMAP file."""
    syn = make_blobs(n=200, seed=5, latent_dim=latent_dims)
    inputs = write_inputs(folder / "inputs", syn)
    scores = None
    if score_names:
        scores = write_scores(folder / "inputs" / "scores.csv", syn.table["afmParticleId"].to_numpy(), score_names,
                              np.random.default_rng(0).random((len(syn.table), len(score_names))))
    run_cluster(inputs["latents"], inputs["embedding"], inputs["particles"], folder, matrix_path=inputs["matrix"],
                match_scores=scores)
    (folder / "similarity").mkdir()
    shutil.copy(inputs["matrix"], folder / "similarity" / "matrix.csv")
    cfg = config_from_dict({"model": {"depth": 2, "channels": 4, "latent_dims": latent_dims}})
    torch.manual_seed(0)
    net = AffinityVAE(cfg.model, 16)
    save_checkpoint(folder / "train" / "model.pt",
                    {"config": cfg.to_dict(), "classes": classes, "model": net.state_dict(), "box": 16})
    (folder / "embed").mkdir()
    (folder / "embed" / "umap.npz").write_bytes(b"not read in these tests")
    return folder


def test_missing_file_of_the_earlier_run_is_named(tmp_path):
    run = fake_run(tmp_path / "run", KNOWN)
    (run / "classifier.npz").unlink()
    with pytest.raises(InputError, match="classifier.npz.*classifier file"):
        apply_run(run, [tmp_path / "none.mrc"], tmp_path / "out", particles=tmp_path / "p.star")
    assert not (tmp_path / "out").exists()


def test_class_map_that_does_not_match_the_model_is_refused(tmp_path):
    run = TrainedRun.from_folder(fake_run(tmp_path / "run", ["x", "y"]))
    with pytest.raises(InputError, match="classes the model .* was trained on"):
        check_trained_run(run)


def test_checkpoint_of_another_version_is_refused(tmp_path):
    run = fake_run(tmp_path / "run", KNOWN)
    ckpt = torch.load(run / "train" / "model.pt", weights_only=True)
    ckpt["version"] = "9.4.0"
    torch.save(ckpt, run / "train" / "model.pt")
    with pytest.raises(InputError, match="version.*affinitomo 0.1.x .*9.4.0"):
        check_trained_run(TrainedRun.from_folder(run))


def test_latent_size_mismatch_between_model_and_classifier_is_refused(tmp_path):
    run = fake_run(tmp_path / "run", KNOWN)
    cfg = config_from_dict({"model": {"depth": 2, "channels": 4, "latent_dims": 5}})
    save_checkpoint(run / "train" / "model.pt", {"config": cfg.to_dict(), "classes": KNOWN,
                                                 "model": AffinityVAE(cfg.model, 16).state_dict(), "box": 16})
    with pytest.raises(InputError, match="latent_dims"):
        check_trained_run(TrainedRun.from_folder(run))


def test_classifier_fitted_with_template_scores_needs_those_templates(tmp_path):
    run = TrainedRun.from_folder(fake_run(tmp_path / "run", KNOWN, score_names=["t1", "t2"]))
    with pytest.raises(InputError) as err:
        check_trained_run(run)
    assert err.value.field == "features" and "t1" in str(err.value)
    maps = tmp_path / "maps"
    maps.mkdir()
    for name in ("t1", "t3"):
        (maps / f"{name}.mrc").write_bytes(b"")
    with pytest.raises(InputError, match=r"fitted with: \['t1', 't2'\]; got \['t1', 't3'\]"):
        check_trained_run(run, templates=maps)
    with pytest.raises(InputError, match="features"):  # apply_run checks before any work
        apply_run(run.classifier.parent, [tmp_path / "none.mrc"], tmp_path / "out", particles=tmp_path / "p.star")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("value", "message"), [("{\"align_unknown\": 2}", "align_unknown"),
                                                ("{not json", "--cluster-options"),
                                                ("missing.json", "missing.json")])
def test_bad_cluster_options_stop_apply_before_any_work(tmp_path, capsys, value, message):
    from affinitomo.cli import main

    run = fake_run(tmp_path / "run", KNOWN)
    code = main(["apply", "--run", str(run), "--tomograms", str(tmp_path / "none.mrc"), "--particles",
                 str(tmp_path / "p.star"), "--out", str(tmp_path / "out"), "--cluster-options", value])
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_train_on_two_demo_tomograms_apply_to_a_third(tmp_path):
    """A CTF run: tilt-series demo tomograms (CTF at 3 µm), matched with the CTF. Workflow on tomograms 1-2;
    then its apply mode on tomogram 3, and `affinitomo apply` on tomogram 1, which matches with the run's
    recorded CTF (match.json) and gives the full run's classes."""
    import yaml

    from affinitomo.io.particles import read_particles

    from test_workflow import snakemake

    demo = tmp_path / "demo"
    env_bin = str(Path(sys.executable).parent)
    base = yaml.safe_load((REPO / "config.yaml").read_text())
    size = ["--per-class", str(base["demo"]["per_class"]), "--shape", *map(str, base["demo"]["shape"])]
    subprocess.run([f"{env_bin}/affinitomo", "simulate", "demo", "--out", str(demo), "--n-tomograms", "3", *size,
                    "--imaging", "tiltseries", "--defocus-um", "3.0", "--no-progress"], check=True, capture_output=True)
    tomos = demo / "tomograms"
    base["data"] = {"particles": str(demo / "particles.star"), "tomograms": [str(tomos / "tomo01.mrc"),
                    str(tomos / "tomo02.mrc")], "pixel_size": None, "truth": str(demo / "truth.star")}
    base["similarity"]["templates"] = str(demo / "templates")
    base["imaging"] = {"model": "tiltseries", "ctf": True, "defocus_um": 3.0}
    # Agreement between the full run and apply mode, not accuracy: fewer simulated particles keep it quick.
    base["training_data"]["simulated_per_class"] = 100
    # The unknown groups' 3-D alignment (minutes per cluster stage) is the demo test's; here the classifier is.
    base["cluster"] = {"align_unknown": False, "align_regroup": False}
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(base))
    snakemake(tmp_path, tmp_path / "train.yaml", "--cores", "2")
    trained = tmp_path / "results"
    full = json.loads((trained / "metrics.json").read_text())
    recorded = json.loads((trained / "match" / "tomo01" / "match.json").read_text())
    assert recorded["ctf"] is not None and recorded["ctf"]["defocus_um"] == 3.0, recorded

    # The documented config mode: only tomogram 3, the earlier run's model, UMAP and classifier.
    applied = dict(base, results="results_new", apply={"from": "results"})
    applied["data"] = dict(base["data"], tomograms=[str(tomos / "tomo03.mrc")])
    (tmp_path / "apply.yaml").write_text(yaml.safe_dump(applied))
    proc = snakemake(tmp_path, tmp_path / "apply.yaml", "--cores", "2")
    assert "rule train" not in proc.stdout + proc.stderr
    new = tmp_path / "results_new"
    table = read_particles(new / "particles.star")
    assert set(table["rlnTomoName"]) == {"tomo03"} and len(table) == 10 * base["demo"]["per_class"]
    metrics = json.loads((new / "metrics.json").read_text())
    # Classes agree with the truth as well as in the full run (a new tomogram, the same model).
    assert metrics["f1_macro"] > full["f1_macro"] - 0.15, (metrics["f1_macro"], full["f1_macro"])
    # The new particles land on the first run's map: the same UMAP range.
    old_xy = read_particles(trained / "particles.star")[["afmUMAP0", "afmUMAP1"]].to_numpy()
    new_xy = table[["afmUMAP0", "afmUMAP1"]].to_numpy()
    assert np.all(new_xy.min(0) > old_xy.min(0) - 0.25 * np.ptp(old_xy, 0))
    assert np.all(new_xy.max(0) < old_xy.max(0) + 0.25 * np.ptp(old_xy, 0))

    # `affinitomo apply` on tomogram 1 (seen in training): the same class for every particle.
    out = tmp_path / "apply_cli"
    subprocess.run([f"{env_bin}/affinitomo", "apply", "--run", str(trained), "--tomograms", str(tomos / "tomo01.mrc"),
                    "--particles", str(demo / "particles.star"), "--out", str(out), "--templates", str(demo / "templates"),
                    "--cluster-options", json.dumps(base["cluster"])],
                   check=True, capture_output=True)
    again = read_particles(out / "particles.star").set_index("afmParticleId")
    before = read_particles(trained / "particles.star").set_index("afmParticleId").loc[again.index]
    unlabelled = before["afmLabelled"].astype(int) == 0
    agree = (again["afmClassName"][unlabelled] == before["afmClassName"][unlabelled]).mean()
    assert agree > 0.95, agree  # clusters (recomputed per run) may move a few borderline particles
    # ... because it matched as the run did: the run's CTF, and the same template scores.
    assert json.loads((out / "match" / "match.json").read_text())["ctf"] == recorded["ctf"]
