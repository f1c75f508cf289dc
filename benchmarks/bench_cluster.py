"""Time and peak memory of UMAP + clustering + open-set classification on synthetic latents.

    /work/venv/bin/python benchmarks/bench_cluster.py --sizes 10000 100000 --latent-dim 8

Latents: 12 Gaussian classes in L dimensions (orthogonal-ish centres), 10 % of the particles
of 10 classes labelled, 2 classes held out. UMAP is fitted on the labelled particles and
applied to the rest, as the embed stage does. Each size runs in a fresh process so that peak
memory (VmHWM, RssAnon from /proc/self/status; Python heap via tracemalloc) is per size.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def proc_status() -> dict[str, float]:
    """VmHWM and RssAnon in MiB."""
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "RssAnon"):
                out[key] = int(value.split()[0]) / 1024
    return out


def one(n: int, latent_dim: int, method: str, seed: int = 0) -> dict:
    import tracemalloc

    import numpy as np
    from sklearn.metrics import adjusted_rand_score

    from affinitomo.cluster.classify import ClassifyOptions, OpenSetClassifier
    from affinitomo.embed import EmbedOptions, choose_fit_rows, fit_embedding
    from affinitomo.grouping import ClusterOptions, cluster_points

    rng = np.random.default_rng(seed)
    k = 12
    centres = rng.normal(size=(k, latent_dim)) * 4.0
    y = rng.integers(0, k, n)
    mu = centres[y] + rng.normal(size=(n, latent_dim))
    labelled = (y < k - 2) & (rng.random(n) < 0.1)
    base = proc_status()
    tracemalloc.start()
    times = {}
    t = time.perf_counter()
    opts = EmbedOptions(seed=seed)
    _, xy = fit_embedding(mu, choose_fit_rows(labelled, opts), opts)
    times["umap_s"] = time.perf_counter() - t
    t = time.perf_counter()
    clusters, info = cluster_points(mu, ClusterOptions(method=method, seed=seed), n_known=k - 2)
    times["cluster_s"] = time.perf_counter() - t
    t = time.perf_counter()
    pred = OpenSetClassifier(ClassifyOptions(seed=seed)).fit(mu[labelled], y[labelled].astype(str)).predict(mu)
    times["classify_s"] = time.perf_counter() - t
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    status = proc_status()
    novel = y >= k - 2
    return {"n": n, "L": latent_dim, "method": method, **{k_: round(v, 2) for k_, v in times.items()},
            "total_s": round(sum(times.values()), 2), "VmHWM_MiB": round(status["VmHWM"]),
            "RssAnon_MiB": round(status["RssAnon"]), "RssAnon_before_MiB": round(base["RssAnon"]),
            "tracemalloc_peak_MiB": round(py_peak / 2**20), "n_clusters": info["n_clusters"],
            "ari_clusters": round(float(adjusted_rand_score(y, clusters)), 3),
            "novel_flagged": round(float(pred.unknown[novel].mean()), 3),
            "known_flagged": round(float(pred.unknown[~novel & ~labelled].mean()), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--latent-dim", type=int, default=8)
    parser.add_argument("--method", default="hdbscan", choices=["hdbscan", "kmeans", "gmm"])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.latent_dim, args.method)))
        return
    print("| n | L | method | UMAP s | cluster s | classify s | total s | VmHWM MiB | RssAnon MiB | "
          "tracemalloc MiB | clusters | ARI | novel flagged | known flagged |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        res = subprocess.run([sys.executable, __file__, "--one", str(n), "--latent-dim", str(args.latent_dim),
                              "--method", args.method], capture_output=True, text=True, check=True)
        r = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"| {r['n']} | {r['L']} | {r['method']} | {r['umap_s']} | {r['cluster_s']} | {r['classify_s']} | "
              f"{r['total_s']} | {r['VmHWM_MiB']} | {r['RssAnon_MiB']} | {r['tracemalloc_peak_MiB']} | "
              f"{r['n_clusters']} | {r['ari_clusters']} | {r['novel_flagged']} | {r['known_flagged']} |",
              flush=True)


if __name__ == "__main__":
    main()
