"""latents.npz reading, table alignment, and the UMAP embed stage."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from affinitomo.embed import EmbedOptions, choose_fit_rows, run_embed
from affinitomo.errors import InputError
from affinitomo.io.embedding import read_embedding
from affinitomo.io.latents import align_to_table, read_latents
from affinitomo.labels import labelled_mask
from affinitomo.options import read_options
from affinitomo.umap_file import load_umap
from synthetic_latents import Synthetic, make_blobs, write_inputs


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _good(n=5, l=3):
    return {"particle_id": np.arange(n), "mu": np.zeros((n, l)), "logvar": np.zeros((n, l)),
            "pose": np.zeros((n, 2))}


def test_read_latents_ok_with_rotation(tmp_path):
    arrays = _good() | {"rotation": np.tile(np.eye(3), (5, 1, 1))}
    lat = read_latents(_npz(tmp_path / "l.npz", **arrays))
    assert lat.mu.shape == (5, 3) and lat.rotation.shape == (5, 3, 3) and len(lat) == 5


@pytest.mark.parametrize("change, field", [
    ({"mu": None}, "mu"),
    ({"logvar": np.zeros((5, 2))}, "logvar"),
    ({"particle_id": np.array([0, 1, 1, 2, 3])}, "particle_id"),
    ({"particle_id": np.arange(5.0)}, "particle_id"),
    ({"rotation": np.zeros((5, 3))}, "rotation"),
    ({"mu": np.full((5, 3), np.nan)}, "mu"),
])
def test_read_latents_bad(tmp_path, change, field):
    arrays = _good() | change
    arrays = {k: v for k, v in arrays.items() if v is not None}
    with pytest.raises(InputError) as err:
        read_latents(_npz(tmp_path / "l.npz", **arrays))
    assert err.value.field == field and "l.npz" in str(err.value)


def test_read_latents_missing_and_not_npz(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_latents(tmp_path / "none.npz")
    (tmp_path / "x.npz").write_text("not a zip")
    with pytest.raises(InputError):
        read_latents(tmp_path / "x.npz")


def test_align_reorders_and_rejects_mismatch(tmp_path):
    lat = read_latents(_npz(tmp_path / "l.npz", **(_good() | {"mu": np.arange(15.0).reshape(5, 3)})))
    table = pd.DataFrame({"afmParticleId": [3, 0, 4, 1, 2]})
    aligned = align_to_table(lat, table)
    assert aligned.particle_id.tolist() == [3, 0, 4, 1, 2] and aligned.mu[0, 0] == 9.0
    with pytest.raises(InputError, match="missing"):
        align_to_table(lat, pd.DataFrame({"afmParticleId": [0, 1, 99]}), "l.npz", "p.star")
    with pytest.raises(InputError, match="not in the table"):
        align_to_table(lat, pd.DataFrame({"afmParticleId": [0, 1]}), "l.npz", "p.star")
    with pytest.raises(InputError) as err:
        align_to_table(lat, pd.DataFrame({"x": [0]}), "l.npz", "p.star")
    assert err.value.field == "afmParticleId"


def test_choose_fit_rows():
    lab = np.array([True, False, True, True, False, False])
    assert choose_fit_rows(lab, EmbedOptions()).tolist() == [0, 2, 3]
    assert choose_fit_rows(lab, EmbedOptions(fit_on="all")).tolist() == list(range(6))
    assert choose_fit_rows(np.array([True, False, False, False]), EmbedOptions()).tolist() == [0, 1, 2, 3]
    assert len(choose_fit_rows(np.ones(100, bool), EmbedOptions(max_fit=10))) == 10
    assert labelled_mask(pd.DataFrame({"afmClassName": ["a", "", " ", None]})).tolist() == [True, False,
                                                                                           False, False]


def parse_options(text):
    """The options mapping the CLIs read from --options."""
    return read_options(text)[0]


def test_parse_options(tmp_path):
    assert parse_options(None) == {}
    assert parse_options('{"n_neighbors": 5}') == {"n_neighbors": 5}
    f = tmp_path / "o.json"
    f.write_text(json.dumps({"min_dist": 0.3}))
    assert parse_options(str(f)) == {"min_dist": 0.3}
    with pytest.raises(InputError):
        parse_options("{bad json")
    with pytest.raises(InputError):
        parse_options("[1, 2]")
    with pytest.raises(InputError):
        EmbedOptions.from_dict({"n_neighbours": 5})
    with pytest.raises(InputError):
        EmbedOptions.from_dict({"fit_on": "some"})


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One fitted embed run shared by the tests below (the first UMAP fit pays numba's JIT, ~20 s)."""
    folder = tmp_path_factory.mktemp("embed")
    syn = make_blobs(n=150, seed=1)
    paths = write_inputs(folder / "in", syn, matrix=False)
    out = run_embed(paths["latents"], paths["particles"], folder / "a", EmbedOptions(seed=4))
    return syn, paths, out, folder


def test_run_embed_fit_on_labelled_then_transform(fitted):
    syn, paths, out, folder = fitted
    emb = read_embedding(out["embedding"])
    assert emb["afmParticleId"].tolist() == syn.table["afmParticleId"].tolist()
    assert np.isfinite(emb[["UMAP0", "UMAP1"]].to_numpy()).all()
    model = load_umap(out["umap"])
    assert model.transform(syn.mu[:3].astype(np.float32)).shape == (3, 2)
    again = run_embed(paths["latents"], paths["particles"], folder / "b", EmbedOptions(seed=4))
    np.testing.assert_allclose(read_embedding(again["embedding"])[["UMAP0", "UMAP1"]], emb[["UMAP0", "UMAP1"]],
                               atol=1e-4)


def test_run_embed_with_existing_umap_lands_on_the_same_map(fitted, tmp_path):
    """A second run on other particles only transforms: they land where the first run put them."""
    syn, paths, out, _ = fitted
    first = read_embedding(out["embedding"]).set_index("afmParticleId")
    unlabelled = syn.table["afmClassName"].to_numpy() == ""
    sub = Synthetic(syn.table[unlabelled].reset_index(drop=True), syn.truth[unlabelled].reset_index(drop=True),
                    syn.mu[unlabelled], syn.rotation[unlabelled], syn.true_class[unlabelled])
    part = write_inputs(tmp_path / "in", sub, matrix=False)
    second = run_embed(part["latents"], part["particles"], tmp_path / "out", EmbedOptions(seed=99),
                       umap_path=out["umap"])
    emb = read_embedding(second["embedding"]).set_index("afmParticleId")
    a = first.loc[emb.index, ["UMAP0", "UMAP1"]].to_numpy()
    b = emb[["UMAP0", "UMAP1"]].to_numpy()
    span = np.ptp(first[["UMAP0", "UMAP1"]].to_numpy(), axis=0).max()
    assert np.median(np.linalg.norm(a - b, axis=1)) < 0.05 * span  # same map (transform is stochastic)
    assert (tmp_path / "out" / "umap.npz").stat().st_size > 0
    from affinitomo.cli import main

    assert main(["embed", "--latents", str(part["latents"]), "--particles", str(part["particles"]),
                 "--out", str(tmp_path / "cli"), "--umap", str(out["umap"])]) == 0
    assert len(read_embedding(tmp_path / "cli" / "embedding.csv")) == len(sub.mu)


def test_run_embed_existing_umap_bad(fitted, tmp_path):
    syn, paths, out, _ = fitted
    np.savez(tmp_path / "l5.npz", particle_id=syn.table["afmParticleId"].to_numpy(), mu=syn.mu[:, :5],
             logvar=syn.mu[:, :5], pose=syn.mu[:, :1])
    with pytest.raises(InputError) as err:
        run_embed(tmp_path / "l5.npz", paths["particles"], tmp_path / "o", umap_path=out["umap"])
    assert err.value.field == "latent_dims"
    (tmp_path / "not.npz").write_bytes(b"not an archive")
    with pytest.raises(InputError, match="umap.npz written by 'affinitomo embed'"):
        run_embed(paths["latents"], paths["particles"], tmp_path / "o", umap_path=tmp_path / "not.npz")
    with pytest.raises(InputError, match="not found"):
        run_embed(paths["latents"], paths["particles"], tmp_path / "o", umap_path=tmp_path / "none.npz")
    assert not (tmp_path / "o").exists()


def test_run_embed_small_set_clips_neighbours(fitted, tmp_path):
    syn = make_blobs(n=8, labelled_fraction=0.0, seed=2)
    syn.table.loc[:2, "afmClassName"] = "alpha"  # three labelled: n_neighbors 15 -> 2
    paths = write_inputs(tmp_path / "in", syn, matrix=False)
    out = run_embed(paths["latents"], paths["particles"], tmp_path / "o", EmbedOptions())
    assert len(read_embedding(out["embedding"])) == 8


def test_run_embed_bad_input_leaves_nothing(tmp_path):
    syn = make_blobs(n=30, seed=0)
    paths = write_inputs(tmp_path / "in", syn, matrix=False)
    np.savez(paths["latents"], particle_id=np.arange(30) + 10_000, mu=syn.mu, logvar=syn.mu, pose=syn.mu[:, :1])
    with pytest.raises(InputError):
        run_embed(paths["latents"], paths["particles"], tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_read_embedding_bad(tmp_path):
    f = tmp_path / "e.csv"
    f.write_text("afmParticleId,UMAP0\n1,0.5\n")
    with pytest.raises(InputError) as err:
        read_embedding(f)
    assert err.value.field == "UMAP1"
