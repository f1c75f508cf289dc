"""``umap.npz``: the embed stage's UMAP, to place the particles of later runs on the same map.

An archive (:mod:`affinitomo.io.archives`: arrays plus JSON, read without pickle). ``meta``::

    {"format": "affinitomo-umap", "version": affinitomo version, "umap": umap-learn version,
     "params": {"n_neighbors", "min_dist", "metric", "n_components", "random_state", "init",
                "transform_seed"}}

Arrays: ``data`` (n, L) float32, the latents the UMAP was fitted on; ``embedding`` (n, d) float32,
their map coordinates (the fit's ``embedding_``; NaN for a point umap-learn left unconnected).

Reading it builds the umap-learn model again: a fit on ``data`` with ``params`` rebuilds the
neighbour graph and the search index ``transform`` queries (exact neighbours below 4096 points,
seeded NN-descent above: the same points give the same index), and the stored ``embedding``
takes the place of the layout optimisation (umap-learn's ``_fit_embed_data`` hook), so
``transform`` places new latents exactly as the fitted model did, without the cost of optimising
the layout again (``benchmarks/bench_umap_file.py`` prints the load time). A umap.pkl of the
older pickle format is read only with ``trust_pickle`` (``--trust-pickle``).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from affinitomo.errors import InputError
from affinitomo.io.archives import Kind, array, read_model_file, write_archive

log = logging.getLogger(__name__)

FORMAT = "affinitomo-umap"
NAME = "umap.npz"
KIND = Kind(FORMAT, "an affinitomo UMAP", NAME, "affinitomo embed",
            "affinitomo embed --umap, or affinitomo apply --run", "fit it again with this version")
PARAMS = ("n_neighbors", "min_dist", "metric", "n_components", "random_state", "init", "transform_seed")
INITS = ("spectral", "random", "pca", "tswspectral")


def make_umap(params: dict[str, Any]) -> Any:
    """A umap-learn UMAP with ``params`` (the keys of ``PARAMS``); single-threaded, so seeded runs repeat."""
    import umap  # slow import (numba); only when needed

    return umap.UMAP(**params, n_jobs=1)


@functools.cache
def _stored_layout_class() -> type:
    import umap

    class StoredLayoutUMAP(umap.UMAP):
        """A UMAP whose fit builds the neighbour graph and index but takes its layout from ``stored_layout``."""

        stored_layout: np.ndarray

        def _fit_embed_data(self, X, n_epochs, init, random_state, **kwargs):  # noqa: N803 - umap-learn's names
            return self.stored_layout.copy(), {}

    return StoredLayoutUMAP


@dataclass
class StoredUmap:
    """A fitted UMAP as the file holds it, and (once built or given) the umap-learn model."""

    params: dict[str, Any]
    data: np.ndarray  # (n, L) float32: the latents it was fitted on
    embedding: np.ndarray  # (n, d) float32: their map coordinates
    fitted: Any = None  # the umap-learn model, once there
    path: Path | None = None

    @classmethod
    def of(cls, model: Any, path: Path | None = None) -> "StoredUmap":
        """The stored form of a fitted umap-learn ``model``."""
        raw = getattr(model, "_raw_data", None)
        layout = getattr(model, "embedding_", None)
        if not hasattr(model, "transform") or getattr(raw, "ndim", 0) != 2 or getattr(layout, "ndim", 0) != 2:
            raise InputError(path, None, "a fitted umap-learn UMAP model")
        params = {key: value for key, value in model.get_params().items() if key in PARAMS}
        return cls(params, np.asarray(raw, np.float32), np.asarray(layout, np.float32), model, path)

    @property
    def latent_dims(self) -> int:
        return int(self.data.shape[1])

    def model(self) -> Any:
        """The umap-learn model (built from ``params``, ``data`` and ``embedding`` on first use)."""
        if self.fitted is None:
            model = _stored_layout_class()(**self.params, n_jobs=1)
            model.stored_layout = self.embedding
            try:
                model.fit(self.data)
            except Exception as exc:  # noqa: BLE001 - parameters umap-learn refuses are bad input
                raise InputError(self.path, "params", f"UMAP settings umap-learn accepts "
                                                      f"({exc.__class__.__name__}: {exc})") from None
            self.fitted = model
        return self.fitted


def check_params(path: Path | None, params: Any, n_points: int, n_components: int) -> dict[str, Any]:
    """``params`` checked against ``PARAMS`` and the stored arrays; InputError naming the file otherwise."""
    if not isinstance(params, dict) or sorted(params) != sorted(PARAMS):
        raise InputError(path, "params", f"the UMAP settings {list(PARAMS)}")

    def is_int(value: Any) -> bool:
        return type(value) is int

    checks = {"n_neighbors": is_int(params["n_neighbors"]) and 2 <= params["n_neighbors"] < max(n_points, 3),
              "min_dist": isinstance(params["min_dist"], (int, float)) and params["min_dist"] >= 0,
              "metric": isinstance(params["metric"], str),
              "n_components": params["n_components"] == n_components,
              "random_state": params["random_state"] is None or is_int(params["random_state"]),
              "init": params["init"] in INITS,
              "transform_seed": is_int(params["transform_seed"])}
    for key, ok in checks.items():
        if not ok:
            raise InputError(path, f"params.{key}", f"a valid value for {n_points} points in {n_components} "
                                                    f"dimensions, got {params[key]!r}")
    return params


def save_umap(path: str | Path, stored: StoredUmap) -> Path:
    """Write ``stored`` as ``umap.npz``, atomically."""
    meta = {"format": FORMAT, "umap": version("umap-learn"), "params": stored.params}
    return write_archive(path, meta, {"data": stored.data, "embedding": stored.embedding})


def read_umap(path: str | Path, latent_dims: int | None = None, trust_pickle: bool = False) -> StoredUmap:
    """Read and check ``umap.npz`` (no model is built yet: :meth:`StoredUmap.model`).

    InputError when the file is missing, not a UMAP file of this affinitomo version, or fitted on
    latents of another dimension than ``latent_dims``; a pickle (older format) unless ``trust_pickle``.
    """
    path = Path(path)
    found = read_model_file(path, KIND, trust_pickle)
    if found.from_pickle:
        stored = StoredUmap.of(found.pickled, path)
    else:
        data = array(path, found.arrays, "data", (None, None))
        embedding = array(path, found.arrays, "embedding", (data.shape[0], None), finite=False)
        stored = StoredUmap(found.meta.get("params"), data.astype(np.float32), embedding.astype(np.float32), path=path)
        if found.meta.get("umap") != version("umap-learn"):
            log.warning("%s was written with umap-learn %s, this is %s", path, found.meta.get("umap"),
                        version("umap-learn"))
    stored.params = check_params(path, stored.params, len(stored.data), stored.embedding.shape[1])
    if latent_dims is not None and stored.latent_dims != latent_dims:
        raise InputError(path, "latent_dims", f"a UMAP fitted on {latent_dims}-dimensional latents as given "
                                              f"(it was fitted on {stored.latent_dims})")
    return stored


def load_umap(path: str | Path, latent_dims: int | None = None, trust_pickle: bool = False) -> Any:
    """The umap-learn model of ``umap.npz``, ready to ``transform`` new latents (checks as :func:`read_umap`)."""
    return read_umap(path, latent_dims, trust_pickle).model()
