"""Applying an earlier run's classifier to new data, run.json, and the decoder plots of the cluster stage."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from affinitomo.cli import main
from affinitomo.cluster import run_cluster
from affinitomo.cluster.classifier_file import load_classifier
from affinitomo.cluster.inputs import latent_prior
from affinitomo.errors import InputError
from affinitomo.io.particles import read_particles
from synthetic_latents import HELD_OUT, KNOWN, Synthetic, make_blobs, write_inputs


def subset(syn: Synthetic, rows: np.ndarray) -> Synthetic:
    return Synthetic(syn.table.iloc[rows].reset_index(drop=True), syn.truth.iloc[rows].reset_index(drop=True),
                     syn.mu[rows], syn.rotation[rows], syn.true_class[rows])


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    """Full run on all particles; run on part A (every labelled particle + half the rest); part B."""
    folder = tmp_path_factory.mktemp("apply")
    syn = make_blobs(n=300, seed=11)
    labelled = syn.table["afmClassName"].to_numpy() != ""
    rest = np.flatnonzero(~labelled)
    a_rows = np.sort(np.concatenate([np.flatnonzero(labelled), rest[::2]]))
    b_rows = rest[1::2]
    full = write_inputs(folder / "all", syn)
    run_cluster(full["latents"], full["embedding"], full["particles"], folder / "out_all", matrix_path=full["matrix"])
    part_a = write_inputs(folder / "a", subset(syn, a_rows))
    run_cluster(part_a["latents"], part_a["embedding"], part_a["particles"], folder / "out_a",
                matrix_path=part_a["matrix"])
    return syn, folder, b_rows


def test_apply_gives_the_classes_of_the_full_run(split):
    syn, folder, b_rows = split
    part_b = write_inputs(folder / "b", subset(syn, b_rows))
    assert (part_b["particles"].parent / "particles.star").exists()
    run_cluster(part_b["latents"], part_b["embedding"], part_b["particles"], folder / "out_b",
                matrix_path=part_b["matrix"], classifier_path=folder / "out_a" / "classifier.npz",
                truth_path=part_b["truth"])
    full = read_particles(folder / "out_all" / "particles.star").set_index("afmParticleId")
    b = read_particles(folder / "out_b" / "particles.star").set_index("afmParticleId")
    assert len(b) == len(b_rows)
    pd.testing.assert_series_equal(b["afmClassName"], full.loc[b.index, "afmClassName"])
    known = b["afmClassName"] != "unknown"
    assert (b.loc[known, "rlnClassNumber"] == full.loc[b.index[known], "rlnClassNumber"]).all()
    np.testing.assert_allclose(b["afmConfidence"], full.loc[b.index, "afmConfidence"])
    assert set(b["afmClassName"]) >= set(KNOWN)  # the known classes are found without labels
    m = json.loads((folder / "out_b" / "metrics.json").read_text())
    assert m["fates"][HELD_OUT]["assigned"]["unknown"] > 0.85
    assert m["open_set"]["applied_from"].endswith("classifier.npz")
    again = load_classifier(folder / "out_b" / "classifier.npz")
    assert again["classes"] == load_classifier(folder / "out_a" / "classifier.npz")["classes"]


def with_meta(archive: Path, out: Path, **meta) -> Path:
    """A copy of ``archive`` with ``meta`` entries changed."""
    with np.load(archive, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    arrays["meta"] = np.array(json.dumps(json.loads(str(arrays["meta"])) | meta))
    np.savez(out, **arrays)
    return out


def test_classifier_mismatch_fails_before_any_work(split, tmp_path):
    syn, folder, b_rows = split
    pkl = folder / "out_a" / "classifier.npz"
    sub = subset(syn, b_rows)
    out = tmp_path / "out"
    # latents of another dimension
    small = Synthetic(sub.table, sub.truth, sub.mu[:, :5], sub.rotation, sub.true_class)
    p = write_inputs(tmp_path / "l5", small, matrix=False)
    with pytest.raises(InputError) as err:
        run_cluster(p["latents"], p["embedding"], p["particles"], out, classifier_path=pkl)
    assert err.value.field == "latent_dims"
    # a matrix with other classes (the class map does not match)
    p = write_inputs(tmp_path / "m", sub)
    names = pd.read_csv(p["matrix"]).columns.tolist()
    mat = pd.read_csv(p["matrix"])
    mat.columns = [n.replace(HELD_OUT, "epsilon") for n in names]
    mat.to_csv(tmp_path / "other.csv", index=False)
    with pytest.raises(InputError) as err:
        run_cluster(p["latents"], p["embedding"], p["particles"], out, classifier_path=pkl,
                    matrix_path=tmp_path / "other.csv")
    assert err.value.field == "classes" and "epsilon" in str(err.value)
    # a label the classifier does not know
    table = sub.table.copy()
    table.loc[0, "afmClassName"] = HELD_OUT
    from affinitomo.io.particles import write_particles

    write_particles(tmp_path / "lab.star", table)
    with pytest.raises(InputError) as err:
        run_cluster(p["latents"], p["embedding"], tmp_path / "lab.star", out, classifier_path=pkl)
    assert err.value.field == "afmClassName"
    # an archive of another format, one of another version, and a pickle
    with pytest.raises(InputError, match="format"):
        run_cluster(p["latents"], p["embedding"], p["particles"], out,
                    classifier_path=with_meta(pkl, tmp_path / "umap.npz", format="affinitomo-umap"))
    with pytest.raises(InputError) as err:
        run_cluster(p["latents"], p["embedding"], p["particles"], out,
                    classifier_path=with_meta(pkl, tmp_path / "old.npz", version="0.0.1"))
    assert err.value.field == "version"
    (tmp_path / "x.pkl").write_bytes(pickle.dumps({"hello": 1}))
    with pytest.raises(InputError, match="pickle.*--trust-pickle"):
        run_cluster(p["latents"], p["embedding"], p["particles"], out, classifier_path=tmp_path / "x.pkl")
    assert not out.exists()


def test_run_json_matches_the_viewer(split, tmp_path):
    from affinitomo.napari.results import read_run_info

    syn, folder, b_rows = split
    p = write_inputs(tmp_path / "in", subset(syn, b_rows), matrix=False)
    tomo_dir = tmp_path / "tomos"
    tomo_dir.mkdir()
    (tomo_dir / "tomo_a.mrc").write_bytes(b"")
    (tmp_path / "tomo_b.mrc").write_bytes(b"")
    (tomo_dir / "notes.txt").write_text("not a tomogram")
    common = ["--latents", str(p["latents"]), "--particles", str(p["particles"]), "--out", str(tmp_path / "out")]
    assert main(["cluster", *common, "--embedding", str(p["embedding"]),
                 "--classifier", str(folder / "out_a" / "classifier.npz")]) == 0
    assert main(["average", *common]) == 0
    assert main(["report", *common, "--embedding", str(p["embedding"]),
                 "--tomograms", str(tomo_dir), str(tmp_path / "tomo_b.mrc"), "--particle-diameter", "120"]) == 0
    raw = json.loads((tmp_path / "out" / "run.json").read_text())
    assert raw["checkpoint"] is None and raw["stack"] is None and raw["particle_diameter"] == 120.0
    info = read_run_info(tmp_path / "out")
    assert info.tomograms == {"tomo_a": (tomo_dir / "tomo_a.mrc").resolve(),
                              "tomo_b": (tmp_path / "tomo_b.mrc").resolve()}
    assert info.latents == p["latents"].resolve() and info.particle_diameter == 120.0
    # a tomogram path that does not exist: error, nothing written
    with pytest.raises(InputError, match="tomogram"):
        run_cluster(p["latents"], p["embedding"], p["particles"], tmp_path / "out2",
                    tomograms=[tmp_path / "missing.mrc"])
    with pytest.raises(InputError):
        run_cluster(p["latents"], p["embedding"], p["particles"], tmp_path / "out2", particle_diameter=-1.0)
    assert not (tmp_path / "out2").exists()


def write_model(path, latent_dims, box=16, **model):
    from affinitomo.model.checkpoint import save_checkpoint
    from affinitomo.model.train_config import config_from_dict
    from affinitomo.model.vae import AffinityVAE

    cfg = config_from_dict({"model": {"depth": 2, "channels": 4, "latent_dims": latent_dims, **model}})
    torch.manual_seed(0)
    net = AffinityVAE(cfg.model, box)
    save_checkpoint(path, {"config": cfg.to_dict(), "classes": KNOWN, "model": net.state_dict(), "box": box})
    return path


@pytest.mark.parametrize("decoder", ["cnn", "rotation"])
def test_decoder_plots_with_checkpoint_and_stack(tmp_path, decoder):
    syn = make_blobs(n=80, seed=3)
    p = write_inputs(tmp_path / "in", syn, pose_dims=6 if decoder == "rotation" else 2)
    np.save(tmp_path / "in" / "subtomos.npy",
            np.random.default_rng(0).normal(size=(80, 16, 16, 16)).astype(np.float32))
    ckpt = write_model(tmp_path / "model.pt", syn.mu.shape[1], decoder=decoder, pose_dims=2)
    run_cluster(p["latents"], p["embedding"], p["particles"], tmp_path / "out", matrix_path=p["matrix"],
                truth_path=p["truth"], stack_path=tmp_path / "in" / "subtomos.npy", checkpoint=ckpt)
    out = tmp_path / "out"
    for name in ["reconstructions.png", "traversals.png", "latent_similarity.png", "run.json"]:
        assert (out / name).stat().st_size > 0, name
    m = json.loads((out / "metrics.json").read_text())
    assert "prior_spearman" in m and m["prior_spearman_basis"].startswith("true")
    assert json.loads((out / "run.json").read_text())["checkpoint"] == str(ckpt.resolve())
    assert not list(out.rglob(".*.tmp*"))


def test_checkpoint_mismatch_fails_before_any_work(tmp_path):
    syn = make_blobs(n=60, seed=4)
    p = write_inputs(tmp_path / "in", syn)
    np.save(tmp_path / "in" / "s.npy", np.zeros((60, 16, 16, 16), np.float32))
    with pytest.raises(InputError) as err:
        run_cluster(p["latents"], p["embedding"], p["particles"], tmp_path / "out",
                    stack_path=tmp_path / "in" / "s.npy", checkpoint=write_model(tmp_path / "m3.pt", 3))
    assert err.value.field == "latent_dims"
    with pytest.raises(InputError) as err:
        run_cluster(p["latents"], p["embedding"], p["particles"], tmp_path / "out",
                    stack_path=tmp_path / "in" / "s.npy", checkpoint=write_model(tmp_path / "m6.pt", 8, pose_dims=6))
    assert err.value.field == "pose_dims"
    np.save(tmp_path / "in" / "s8.npy", np.zeros((60, 8, 8, 8), np.float32))
    with pytest.raises(InputError) as err:
        run_cluster(p["latents"], p["embedding"], p["particles"], tmp_path / "out",
                    stack_path=tmp_path / "in" / "s8.npy", checkpoint=write_model(tmp_path / "m8.pt", 8, pose_dims=3))
    assert err.value.field == "box"
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(InputError, match="format"):
        run_cluster(p["latents"], p["embedding"], p["particles"], tmp_path / "out", checkpoint=tmp_path / "foreign.pt")
    assert not (tmp_path / "out").exists()


def test_latent_prior_rank_agreement():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 6))
    unit = centres / np.linalg.norm(centres, axis=1, keepdims=True)
    names = ["a", "b", "c", "d"]
    cls = rng.integers(0, 4, 200)
    mu = centres[cls] + rng.normal(scale=0.01, size=(200, 6))
    labels = np.array(names, dtype=object)[cls]
    labels[:5] = "unknown"
    prior = latent_prior(mu, labels, (names + ["e"], np.pad(unit @ unit.T, ((0, 1), (0, 1)), constant_values=0.1)),
                         "test")
    assert prior["rho"] > 0.99 and prior["names"] == names and prior["cosine"].shape == (4, 4)
