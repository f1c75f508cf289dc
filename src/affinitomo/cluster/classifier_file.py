"""``classifier.npz``: the fitted open-set classifier of a run, to classify new data without refitting.

An archive (:mod:`affinitomo.io.archives`: arrays plus JSON, read without pickle). ``meta``::

    {"format": "affinitomo-classifier", "version": affinitomo version, "sklearn": version,
     "options": ClassifyOptions as a dict, "classes": class order of the run (matrix order;
     numbers 1..K), "trained": classes with labels, "latent_dims": L,
     "score_names": template names of the score features or null (latents alone),
     "model": "knn" | "logistic" | null (one class), "threshold", "p_threshold", "neighbours_k",
     "calibration": the calibration record}

Arrays (F features: L latent dimensions [+ one per template]): ``features.mean``/``features.scale``
(F,) the standardisation (with scores); ``classes`` (C,) names; ``knn.x`` (n, F), ``knn.y`` (n,)
the labelled features the kNN votes with, or ``scaler.mean``/``scaler.scale``/``scaler.var`` (F,),
``logistic.coef`` (C or 1, F), ``logistic.intercept``, ``logistic.classes`` for the logistic
regression; ``distance.classes``, ``distance.centroids`` (C, F), ``distance.precision`` (F, F);
``calibration.scores``, ``calibration.distances``; with the neighbour test ``neighbours.points``
(M, F) the whitened pool of labelled and other particles, ``neighbours.labelled`` (M,),
``neighbours.whitening`` (F, F), ``neighbours.scores``. The kNN index and the neighbour index are
built again from these points when the file is read (the same points give the same neighbours).
A classifier.pkl of the older pickle format is read only with ``trust_pickle`` (``--trust-pickle``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from affinitomo.cluster.classify import CentroidDistance, ClassifyOptions, LabelledNeighbours, OpenSetClassifier
from affinitomo.cluster.features import FeatureSpace
from affinitomo.errors import InputError
from affinitomo.io.archives import Kind, array, read_model_file, write_archive
from affinitomo.versions import check_version

log = logging.getLogger(__name__)

FORMAT = "affinitomo-classifier"
NAME = "classifier.npz"
KIND = Kind(FORMAT, "an affinitomo classifier", NAME, "affinitomo cluster",
            "affinitomo cluster --classifier, or affinitomo apply --run", "refit it with this version")


def classifier_arrays(classifier: OpenSetClassifier) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The fitted state of ``classifier`` as JSON values and arrays (see the module docstring)."""
    meta: dict[str, Any] = {"options": asdict(classifier.options), "threshold": float(classifier.threshold_),
                            "calibration": classifier.calibration_, "model": None, "p_threshold": None,
                            "neighbours_k": None}
    arrays = {"classes": np.asarray(classifier.classes_, dtype=str),
              "distance.classes": np.asarray(classifier.distance_.classes_, dtype=str),
              "distance.centroids": classifier.distance_.centroids_,
              "distance.precision": classifier.distance_.precision_,
              "calibration.scores": classifier.calibration_scores_,
              "calibration.distances": getattr(classifier, "calibration_distances_", np.empty(0))}
    model = classifier.model_
    if model is not None and hasattr(model, "steps"):  # StandardScaler + LogisticRegression
        scaler, logistic = model.steps[0][1], model.steps[-1][1]
        meta["model"] = "logistic"
        arrays |= {"scaler.mean": scaler.mean_, "scaler.scale": scaler.scale_, "scaler.var": scaler.var_,
                   "logistic.coef": logistic.coef_, "logistic.intercept": logistic.intercept_,
                   "logistic.classes": np.asarray(logistic.classes_, dtype=str)}
    elif model is not None:  # KNeighborsClassifier: its fitted state is the labelled points
        meta["model"] = "knn"
        meta["knn_neighbors"] = int(model.n_neighbors)
        arrays |= {"knn.x": model._fit_X, "knn.y": np.asarray(model.classes_, dtype=str)[model._y]}
    neighbours = getattr(classifier, "neighbours_", None)
    if neighbours is not None:
        meta |= {"p_threshold": float(classifier.p_threshold_), "neighbours_k": int(neighbours.k_)}
        arrays |= {"neighbours.points": neighbours.index_._fit_X, "neighbours.labelled": neighbours.labelled_,
                   "neighbours.whitening": neighbours.whitening_, "neighbours.scores": classifier.neighbour_scores_}
    return meta, arrays


def save_classifier(path: str | Path, classifier: OpenSetClassifier, classes: list[str], trained: list[str],
                    latent_dims: int, features: FeatureSpace | None = None) -> Path:
    """Write ``classifier`` with its options, class order, latent size and features, atomically."""
    import sklearn

    features = features or FeatureSpace()
    meta, arrays = classifier_arrays(classifier)
    meta |= {"format": FORMAT, "sklearn": sklearn.__version__, "classes": list(classes), "trained": list(trained),
             "latent_dims": int(latent_dims), "score_names": features.score_names}
    if features.uses_scores:
        arrays |= {"features.mean": features.mean, "features.scale": features.scale}
    return write_archive(path, meta, arrays)


def _names(path: Path, meta: dict[str, Any], key: str) -> list[str]:
    value = meta.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(path, key, "a list of class names")
    return value


def _rebuild(path: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray], n_features: int) -> OpenSetClassifier:
    """The OpenSetClassifier stored in ``arrays`` (InputError naming the file and array when one is wrong)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    f = n_features
    if not isinstance(meta.get("options"), dict):
        raise InputError(path, "options", "the classifier's options (a JSON object)")
    clf = OpenSetClassifier(ClassifyOptions.from_dict(meta["options"], source=path))
    clf.classes_ = array(path, arrays, "classes", (None,), "U")
    distance = CentroidDistance()
    distance.classes_ = array(path, arrays, "distance.classes", (None,), "U")
    distance.centroids_ = array(path, arrays, "distance.centroids", (distance.classes_.size, f))
    distance.precision_ = array(path, arrays, "distance.precision", (f, f))
    clf.distance_ = distance
    clf.calibration_scores_ = array(path, arrays, "calibration.scores", (None,), finite=False)
    clf.calibration_distances_ = array(path, arrays, "calibration.distances", (None,), finite=False)
    if not isinstance(meta.get("calibration"), dict):
        raise InputError(path, "calibration", "the calibration record (a JSON object)")
    clf.calibration_ = meta["calibration"]
    clf.threshold_ = float(meta["threshold"])
    kind = meta.get("model")
    if kind == "knn":
        x = array(path, arrays, "knn.x", (None, f))
        y = array(path, arrays, "knn.y", (x.shape[0],), "U")
        k = meta.get("knn_neighbors")
        if not isinstance(k, int) or not 1 <= k <= len(x):
            raise InputError(path, "knn_neighbors", f"an integer in [1, {len(x)}]")
        clf.model_ = KNeighborsClassifier(n_neighbors=k).fit(x, y)
    elif kind == "logistic":
        scaler = StandardScaler()
        scaler.mean_ = array(path, arrays, "scaler.mean", (f,))
        scaler.scale_ = array(path, arrays, "scaler.scale", (f,))
        scaler.var_ = array(path, arrays, "scaler.var", (f,))
        scaler.n_features_in_ = f
        logistic = LogisticRegression(C=clf.options.C, max_iter=2000)
        logistic.classes_ = array(path, arrays, "logistic.classes", (None,), "U")
        rows = 1 if logistic.classes_.size == 2 else logistic.classes_.size
        logistic.coef_ = array(path, arrays, "logistic.coef", (rows, f))
        logistic.intercept_ = array(path, arrays, "logistic.intercept", (rows,))
        logistic.n_features_in_ = f
        clf.model_ = make_pipeline(scaler, logistic)
    elif kind is None:
        clf.model_ = None
    else:
        raise InputError(path, "model", f"'knn', 'logistic' or null, got {kind!r}")
    clf.neighbours_ = None
    if meta.get("neighbours_k") is not None:
        nb = LabelledNeighbours()
        points = array(path, arrays, "neighbours.points", (None, f))
        nb.labelled_ = array(path, arrays, "neighbours.labelled", (points.shape[0],), "b")
        nb.whitening_ = array(path, arrays, "neighbours.whitening", (f, f))
        nb.k_ = meta["neighbours_k"]
        if not isinstance(nb.k_, int) or not 1 <= nb.k_ < len(points):
            raise InputError(path, "neighbours_k", f"an integer in [1, {len(points) - 1}]")
        nb.index_ = NearestNeighbors(n_neighbors=nb.k_ + 1).fit(points)
        clf.neighbours_ = nb
        clf.neighbour_scores_ = array(path, arrays, "neighbours.scores", (None,))
        clf.p_threshold_ = float(meta["p_threshold"])
    try:  # one prediction, so that arrays that do not fit together fail here, not mid-run
        clf.predict(np.zeros((1, f)))
    except Exception as exc:  # noqa: BLE001 - any inconsistency of the stored arrays is bad input
        raise InputError(path, None, f"a consistent classifier ({exc.__class__.__name__}: {exc})") from None
    return clf


def _from_archive(path: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The payload dict of :func:`load_classifier` from an archive's ``meta`` and ``arrays``."""
    latent_dims = meta.get("latent_dims")
    if not isinstance(latent_dims, int) or latent_dims < 1:
        raise InputError(path, "latent_dims", "a positive integer")
    names = meta.get("score_names")
    options = meta.get("options")
    used = latent_dims if not isinstance(options, dict) or options.get("latents", True) else 0  # latents: false
    if names is None:
        features = FeatureSpace()
    elif isinstance(names, list) and all(isinstance(n, str) for n in names):
        f = used + len(names)
        features = FeatureSpace(names, array(path, arrays, "features.mean", (f,)),
                                array(path, arrays, "features.scale", (f,)))
    else:
        raise InputError(path, "score_names", "a list of template names or null")
    try:
        clf = _rebuild(path, meta, arrays, used + len(names or []))
    except InputError:
        raise
    except KeyError as exc:
        raise InputError(path, str(exc.args[0]), "present in an affinitomo classifier file") from None
    except (TypeError, ValueError) as exc:
        raise InputError(path, None, f"{KIND.expected} ({exc.__class__.__name__}: {exc})") from None
    return {"format": FORMAT, "version": meta["version"], "sklearn": meta.get("sklearn"), "classifier": clf,
            "options": asdict(clf.options), "classes": _names(path, meta, "classes"),
            "trained": _names(path, meta, "trained"), "latent_dims": latent_dims, "features": features}


def _from_pickle(path: Path, payload: Any) -> dict[str, Any]:
    """The payload of a trusted classifier.pkl of the older format, checked as it was."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(path, "format", f"'{FORMAT}' (not an affinitomo classifier file)")
    for key in ("version", "classifier", "classes", "trained", "latent_dims"):
        if key not in payload:
            raise InputError(path, key, "present in an affinitomo classifier file")
    check_version(path, payload["version"], KIND.what, KIND.remedy)
    if not isinstance(payload["classifier"], OpenSetClassifier):
        raise InputError(path, "classifier", "a fitted OpenSetClassifier")
    payload.setdefault("features", FeatureSpace())
    if not isinstance(payload["features"], FeatureSpace):
        raise InputError(path, "features", "the classifier's feature layout (FeatureSpace)")
    return payload


def load_classifier(path: str | Path, *, latent_dims: int | None = None, matrix_names: list[str] | None = None,
                    matrix_path: Any = None, trust_pickle: bool = False) -> dict[str, Any]:
    """Read ``classifier.npz`` and check it against the data before any work.

    Returns ``{"classifier": OpenSetClassifier, "classes", "trained", "latent_dims", "features":
    FeatureSpace, "options", "version", "sklearn", "format"}``. Checks: our format, the same
    affinitomo major.minor version, ``latent_dims`` equal to the latents' dimension, and (when a
    similarity matrix is given) the same class names in the same order as the matrix, since class
    numbers follow that order. A pickle (older format) is refused unless ``trust_pickle``.
    """
    path = Path(path)
    stored = read_model_file(path, KIND, trust_pickle)
    if stored.from_pickle:
        payload = _from_pickle(path, stored.pickled)
    else:
        payload = _from_archive(path, stored.meta, stored.arrays)
    if latent_dims is not None and int(payload["latent_dims"]) != int(latent_dims):
        raise InputError(path, "latent_dims", f"{latent_dims} latent dimensions as in the latents given "
                                              f"(the classifier was fitted on {payload['latent_dims']})")
    if matrix_names is not None and list(matrix_names) != list(payload["classes"]):
        raise InputError(path, "classes", f"the classes of {matrix_path} in its order {list(matrix_names)}; "
                                          f"the classifier's class map is {payload['classes']}")
    import sklearn

    if payload.get("sklearn") and payload["sklearn"] != sklearn.__version__:
        log.warning("%s was written with scikit-learn %s, this is %s", path, payload["sklearn"], sklearn.__version__)
    log.info("loaded classifier %s (classes %s, latent %d)", path, payload["classes"], payload["latent_dims"])
    return payload
