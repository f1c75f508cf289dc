"""``classifier.pkl``: the fitted open-set classifier of a run, to classify new data without refitting.

The file is a pickle of a plain dict::

    {"format": "affinitomo-classifier", "version": affinitomo version, "sklearn": version,
     "classifier": OpenSetClassifier, "options": ClassifyOptions as a dict,
     "classes": class order of the run (matrix order; numbers 1..K), "trained": classes with labels,
     "latent_dims": L, "features": FeatureSpace (latents alone, or latents + template scores)}

A pickle runs code when loaded: load only classifier files your own runs wrote.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import asdict
from pathlib import Path
from typing import Any

from affinitomo import __version__
from affinitomo.cluster.classify import OpenSetClassifier
from affinitomo.cluster.features import FeatureSpace
from affinitomo.errors import InputError
from affinitomo.versions import check_version
from affinitomo.io.pickles import read_pickle
from affinitomo.io.atomic import atomic_path

log = logging.getLogger(__name__)

FORMAT = "affinitomo-classifier"


def save_classifier(path: str | Path, classifier: OpenSetClassifier, classes: list[str], trained: list[str],
                    latent_dims: int, features: FeatureSpace | None = None) -> Path:
    """Pickle ``classifier`` with its options, class order, latent size and features, atomically."""
    import sklearn

    payload = {"format": FORMAT, "version": __version__, "sklearn": sklearn.__version__,
               "classifier": classifier, "options": asdict(classifier.options), "classes": list(classes),
               "trained": list(trained), "latent_dims": int(latent_dims),
               "features": features or FeatureSpace()}
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            pickle.dump(payload, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def load_classifier(path: str | Path, *, latent_dims: int | None = None,
                    matrix_names: list[str] | None = None, matrix_path: Any = None) -> dict[str, Any]:
    """Read ``classifier.pkl`` and check it against the data before any work.

    Checks: our format, the same affinitomo major.minor version, ``latent_dims`` equal to the
    latents' dimension, and (when a similarity matrix is given) the same class names in the
    same order as the matrix, since class numbers follow that order.
    """
    path = Path(path)
    payload = read_pickle(
        path,
        missing="classifier file not found (classifier.pkl from 'affinitomo cluster')",
        expected="a classifier.pkl written by 'affinitomo cluster'",
    )
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(path, "format", f"'{FORMAT}' (not an affinitomo classifier file)")
    for key in ("version", "classifier", "classes", "trained", "latent_dims"):
        if key not in payload:
            raise InputError(path, key, "present in an affinitomo classifier file")
    check_version(path, payload["version"], "a classifier", "refit it with this version")
    if not isinstance(payload["classifier"], OpenSetClassifier):
        raise InputError(path, "classifier", "a fitted OpenSetClassifier")
    payload.setdefault("features", FeatureSpace())
    if not isinstance(payload["features"], FeatureSpace):
        raise InputError(path, "features", "the classifier's feature layout (FeatureSpace)")
    if latent_dims is not None and int(payload["latent_dims"]) != int(latent_dims):
        raise InputError(path, "latent_dims", f"{latent_dims} latent dimensions as in the latents given "
                                              f"(the classifier was fitted on {payload['latent_dims']})")
    if matrix_names is not None and list(matrix_names) != list(payload["classes"]):
        raise InputError(path, "classes", f"the classes of {matrix_path} in its order {list(matrix_names)}; "
                                          f"the classifier's class map is {payload['classes']}")
    try:
        import sklearn

        if payload.get("sklearn") and payload["sklearn"] != sklearn.__version__:
            log.warning("%s was written with scikit-learn %s, this is %s", path, payload["sklearn"],
                        sklearn.__version__)
    except ImportError:  # pragma: no cover - sklearn is a dependency
        pass
    log.info("loaded classifier %s (classes %s, latent %d)", path, payload["classes"], payload["latent_dims"])
    return payload
