"""Load time of ``umap.npz`` (rebuild of the neighbour graph and index, stored layout) against the fit.

    python benchmarks/bench_umap_file.py --sizes 3000 6000 --latent-dim 16

Per size: a fresh process fits the UMAP as the embed stage does (seeded, single-threaded) on N
latents (8 Gaussian classes) and writes ``umap.npz``, the pickle of the same model (the older
format, for comparison) and the model's transform of 500 new latents. Two more fresh processes,
as ``affinitomo embed --umap`` starts, load the npz (read + rebuild) or the pickle and transform
the 500 latents: ``load`` and ``+transform`` are the seconds to there (both include umap-learn's
numba compilation, cached on disk after the first run). ``warm load``: the npz rebuild again in the
same process (the rebuild alone). ``layout diff`` and ``transform diff``: the largest difference to
the fitted model's layout and transform. Below 4096 points umap-learn finds exact neighbours (a
pairwise-distance loop in Python), from 4096 on it builds an NN-descent index.
"""

from __future__ import annotations

import argparse
import json
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def latents(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, dim)) * 4
    return (centres[rng.integers(0, 8, n)] + rng.normal(size=(n, dim))).astype(np.float32)


def fit(folder: Path, n: int, dim: int) -> dict:
    from affinitomo.embed import EmbedOptions, fit_embedding
    from affinitomo.umap_file import StoredUmap, save_umap

    x = latents(n, dim, 0)
    start = time.perf_counter()
    model, _ = fit_embedding(x, np.arange(n), EmbedOptions())
    seconds = time.perf_counter() - start
    save_umap(folder / "umap.npz", StoredUmap.of(model))
    (folder / "umap.pkl").write_bytes(pickle.dumps(model))
    np.save(folder / "reference.npy", model.transform(latents(500, dim, 1)))
    np.save(folder / "layout.npy", model.embedding_)
    return {"fit": seconds}


def load(folder: Path, dim: int, kind: str) -> dict:
    """Cold: load ``umap.npz`` (or the pickle) and transform, in this fresh process; then the npz again."""
    from affinitomo.umap_file import read_umap

    new = latents(500, dim, 1)
    start = time.perf_counter()
    if kind == "npz":
        model = read_umap(folder / "umap.npz").model()
    else:
        with open(folder / "umap.pkl", "rb") as fh:
            model = pickle.load(fh)
    loaded = time.perf_counter() - start
    placed = model.transform(new)
    result = {f"{kind}_load": loaded, f"{kind}_total": time.perf_counter() - start,
              f"{kind}_diff": float(np.abs(placed - np.load(folder / "reference.npy")).max())}
    if kind == "npz":
        start = time.perf_counter()
        read_umap(folder / "umap.npz").model()
        result |= {"warm": time.perf_counter() - start, "npz_MiB": (folder / "umap.npz").stat().st_size / 2**20,
                   "layout_diff": float(np.nanmax(np.abs(model.embedding_ - np.load(folder / "layout.npy"))))}
    return result


def child(step: str, folder: str, n: int, dim: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", step, folder, str(n), str(dim)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3000, 6000])
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--child", nargs=4, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        step, folder, n, dim = args.child
        result = fit(Path(folder), int(n), int(dim)) if step == "fit" else load(Path(folder), int(dim), step)
        print(json.dumps(result))
        return
    print(f"{'N':>7} {'fit s':>7} {'npz load s':>10} {'+transform s':>12} {'pickle load s':>13} "
          f"{'+transform s':>12} {'warm load s':>11} {'layout diff':>11} {'transform diff':>14} {'MiB':>5}")
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as folder:
            row = (child("fit", folder, n, args.latent_dim) | child("npz", folder, n, args.latent_dim)
                   | child("pickle", folder, n, args.latent_dim))
        print(f"{n:>7} {row['fit']:>7.1f} {row['npz_load']:>10.1f} {row['npz_total']:>12.1f} "
              f"{row['pickle_load']:>13.2f} {row['pickle_total']:>12.1f} {row['warm']:>11.2f} "
              f"{row['layout_diff']:>11.2g} {max(row['npz_diff'], row['pickle_diff']):>14.2g} {row['npz_MiB']:>5.2f}")

if __name__ == "__main__":
    main()
