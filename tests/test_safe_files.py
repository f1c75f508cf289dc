"""Model files that cannot run code: crafted pickles refused by every entry point, round trips of
``classifier.npz`` and ``umap.npz``, broken files named in the error, trusted old pickles converted."""

from __future__ import annotations

import logging
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from affinitomo import __version__
from affinitomo.cli import main
from affinitomo.cluster.classifier_file import load_classifier, save_classifier
from affinitomo.cluster.classify import ClassifyOptions, OpenSetClassifier
from affinitomo.cluster.features import FeatureSpace
from affinitomo.embed import EmbedOptions, fit_embedding
from affinitomo.errors import InputError
from affinitomo.io.embedding import read_embedding
from affinitomo.umap_file import StoredUmap, load_umap, make_umap, read_umap, save_umap
from synthetic_latents import HELD_OUT, KNOWN, make_blobs, write_inputs
from test_apply import fake_run


class Payload:
    """Unpickling this creates ``marker``: what a crafted file could do instead."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def crafted(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(Payload(marker)))
    return path


def test_the_payload_runs_when_unpickled(tmp_path):
    """The files below are live: a plain pickle.load would create the marker."""
    pickle.loads(crafted(tmp_path / "x.pkl", tmp_path / "marker").read_bytes()).close()
    assert (tmp_path / "marker").exists()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("safe")
    return write_inputs(folder / "in", make_blobs(n=200, seed=5))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    return fake_run(tmp_path_factory.mktemp("run") / "run", KNOWN)


def entry_point(case: str, tmp_path: Path, inputs: dict, trained_run: Path, marker: Path) -> list[str]:
    """The command line of ``case``, with a crafted pickle where it reads a model file."""
    out = str(tmp_path / "out")
    data = ["--latents", str(inputs["latents"]), "--particles", str(inputs["particles"])]
    if case.startswith("embed"):
        evil = crafted(tmp_path / case.split(":")[1], marker)
        return ["embed", *data, "--out", out, "--umap", str(evil)]
    if case.startswith("cluster"):
        evil = crafted(tmp_path / case.split(":")[1], marker)
        return ["cluster", *data, "--embedding", str(inputs["embedding"]), "--out", out, "--classifier", str(evil)]
    run = tmp_path / "old"
    shutil.copytree(trained_run, run)
    target = case.split(":")[1]  # the file of the run folder that is crafted
    for name in ("classifier.npz", "embed/umap.npz"):
        if name.split(".")[0] == target.split(".")[0]:
            (run / name).unlink()
    crafted(run / target, marker)
    return ["apply", "--run", str(run), "--tomograms", str(tmp_path / "none.mrc"), "--particles",
            str(inputs["particles"]), "--out", out]


@pytest.mark.parametrize("case", ["embed:umap.pkl", "embed:umap.npz", "cluster:classifier.pkl",
                                  "cluster:classifier.npz", "apply:classifier.pkl", "apply:embed/umap.pkl",
                                  "apply:classifier.npz"])
def test_crafted_pickle_is_refused_and_never_run(case, tmp_path, inputs, trained_run, capsys):
    marker = tmp_path / "marker"
    argv = entry_point(case, tmp_path, inputs, trained_run, marker)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "is a pickle" in err and "--trust-pickle" in err and "can run code" in err, err
    assert Path(case.split(":")[1]).name in err  # the file is named
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def fitted_classifier(kind: str, scores: bool) -> tuple[OpenSetClassifier, FeatureSpace, np.ndarray]:
    syn = make_blobs(n=300, seed=2)
    labels = syn.table["afmClassName"].to_numpy().astype(str)
    labelled = labels != ""
    values = np.random.default_rng(0).random((len(labels), 2)) if scores else None
    names = ["t1", "t2"] if scores else None
    space = FeatureSpace.fit(syn.mu, names, values)
    x = space.transform(syn.mu, names, values)
    clf = OpenSetClassifier(ClassifyOptions(classifier=kind)).fit(x[labelled], labels[labelled],
                                                                  unlabelled=x[~labelled])
    return clf, space, x


def assert_same_predictions(a: OpenSetClassifier, b: OpenSetClassifier, x: np.ndarray) -> None:
    pa, pb = a.predict(x), b.predict(x)
    for field in ("label", "known_label", "confidence", "distance", "unknown"):
        np.testing.assert_array_equal(getattr(pa, field), getattr(pb, field), err_msg=field)


@pytest.mark.parametrize(("kind", "scores"), [("knn", False), ("knn", True), ("logistic", False)])
def test_classifier_round_trip_gives_identical_predictions(kind, scores, tmp_path):
    clf, space, x = fitted_classifier(kind, scores)
    path = save_classifier(tmp_path / "classifier.npz", clf, KNOWN + [HELD_OUT], KNOWN, 8, space)
    with np.load(path, allow_pickle=False) as npz:  # plain arrays: nothing needs pickle
        assert "meta" in npz.files and all(npz[k].dtype != object for k in npz.files)
    back = load_classifier(path, latent_dims=8, matrix_names=KNOWN + [HELD_OUT])
    assert back["classes"] == KNOWN + [HELD_OUT] and back["trained"] == KNOWN
    assert back["features"].score_names == space.score_names
    assert back["classifier"].calibration_ == clf.calibration_
    assert_same_predictions(clf, back["classifier"], x)


@pytest.fixture(scope="module")
def fitted_umap():
    syn = make_blobs(n=150, seed=1)
    rows = np.flatnonzero(np.arange(150) % 3 != 0)  # fit on two thirds, as on the labelled particles
    model, embedding = fit_embedding(syn.mu, rows, EmbedOptions(seed=4))
    return syn, model, embedding


def test_umap_round_trip_gives_identical_embedding(fitted_umap, tmp_path):
    syn, model, embedding = fitted_umap
    path = save_umap(tmp_path / "umap.npz", StoredUmap.of(model))
    stored = read_umap(path, latent_dims=8)
    back = stored.model()
    np.testing.assert_array_equal(back.embedding_, model.embedding_)
    new = (syn.mu[::3] + 0.1).astype(np.float32)
    np.testing.assert_array_equal(back.transform(new), model.transform(new))
    # Fitting again from the stored latents and settings gives the stored layout, to float32 precision.
    again = make_umap(stored.params).fit(stored.data)
    np.testing.assert_allclose(again.embedding_, stored.embedding, atol=1e-5)


def test_trusted_pickles_are_converted(fitted_umap, inputs, tmp_path, caplog):
    """--trust-pickle reads an old pickle (with a warning) and the stage writes the new format."""
    syn, model, _ = fitted_umap
    old = tmp_path / "umap.pkl"
    old.write_bytes(pickle.dumps(model))
    with pytest.raises(InputError, match="is a pickle"):
        load_umap(old)
    part = write_inputs(tmp_path / "in", syn, matrix=False)
    argv = ["embed", "--latents", str(part["latents"]), "--particles", str(part["particles"]),
            "--out", str(tmp_path / "e"), "--umap", str(old)]
    assert main(argv) == 2
    with caplog.at_level(logging.WARNING):
        assert main(argv + ["--trust-pickle"]) == 0
    assert "can run code" in caplog.text
    converted = load_umap(tmp_path / "e" / "umap.npz")
    np.testing.assert_array_equal(converted.embedding_, model.embedding_)
    xy = read_embedding(tmp_path / "e" / "embedding.csv")[["UMAP0", "UMAP1"]].to_numpy()
    np.testing.assert_allclose(xy, model.transform(syn.mu.astype(np.float32)), rtol=1e-5, atol=1e-4)

    clf, space, x = fitted_classifier("knn", False)
    legacy = {"format": "affinitomo-classifier", "version": __version__, "classifier": clf,
              "classes": KNOWN + [HELD_OUT], "trained": KNOWN, "latent_dims": 8, "features": space}
    (tmp_path / "classifier.pkl").write_bytes(pickle.dumps(legacy))
    with pytest.raises(InputError, match="is a pickle"):
        load_classifier(tmp_path / "classifier.pkl")
    payload = load_classifier(tmp_path / "classifier.pkl", trust_pickle=True)
    new = save_classifier(tmp_path / "classifier.npz", payload["classifier"], payload["classes"], payload["trained"],
                          payload["latent_dims"], payload["features"])
    assert_same_predictions(clf, load_classifier(new)["classifier"], x)


def broken_copies(path: Path, folder: Path) -> dict[str, Path]:
    """A truncated copy, one with a byte changed in its data, one that is not an archive."""
    raw = path.read_bytes()
    folder.mkdir()
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0xFF
    files = {"truncated": raw[: len(raw) // 2], "flipped": bytes(flipped), "text": b"hello"}
    for name, content in files.items():
        (folder / f"{name}{path.suffix}").write_bytes(content)
    return {name: folder / f"{name}{path.suffix}" for name in files}


def test_broken_files_give_input_error_naming_the_file(fitted_umap, tmp_path):
    clf, space, _ = fitted_classifier("knn", False)
    good_classifier = save_classifier(tmp_path / "classifier.npz", clf, KNOWN + [HELD_OUT], KNOWN, 8, space)
    good_umap = save_umap(tmp_path / "umap.npz", StoredUmap.of(fitted_umap[1]))
    for good, load in ((good_classifier, load_classifier), (good_umap, read_umap)):
        for case, path in broken_copies(good, tmp_path / good.stem).items():
            with pytest.raises(InputError) as err:
                load(path)
            assert str(path) in str(err.value), (case, str(err.value))
    with np.load(good_classifier, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files if key != "distance.precision"}
    np.savez(tmp_path / "partial.npz", **arrays)
    with pytest.raises(InputError) as err:
        load_classifier(tmp_path / "partial.npz")
    assert err.value.field == "distance.precision" and err.value.path == str(tmp_path / "partial.npz")
