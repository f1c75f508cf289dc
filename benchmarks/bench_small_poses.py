"""Poses of small molecules: the coarse search on the central crop against the binned box.

Reads a data folder of ``bench_shrec.py`` (``--work``/``snr<SNR>_split<S>``: its simulated data and
extracted stack) and, per class given, takes its particles (true classes from ``truth.star``):

- template matching (``affinitomo.search.stack.match_stack``) against the class's own map from
  the shared ``maps_10A`` (the first ``--match-particles``), median pose error against the truth;
- the group alignment of unknown groups (``affinitomo.averaging.align.build_reference``, then one
  match of every particle against the reference, default ``AlignOptions``), median error after one
  global rotation (``affinitomo.evaluate.pose_error``), and the mean score; with the references
  masked around the molecule (``align_mask``, the default) and without;
- with the masked references, the bound on that alignment (``true_pose_reference``): the same
  particles averaged in their true poses, masked alike, as the reference (SNR 0.03, split 2, 1s3x,
  the best poses before ``align_pose_mean``: 9.0 degrees for all 100, against 10.2 for the reference
  built; 8.5 for the 77 of the benchmark's group, against 10.0-11.6 for every reference built from
  estimated poses; with the posterior-mean poses, the default: 8.2 and 9.5; docs/benchmarks.md,
  "What limits the unseen 1s3x at SNR 0.03").

With ``--soft``, the group alignment is also run with a soft average (``soft_alignment``): each
member enters the next reference in the 27 poses around its best one (rotation vectors on a grid of
half the coarse angular step about each axis), weighted by its likelihood exp((s^2 - max s^2) /
(2 sigma^2)) (s the score of a pose, sigma the spread of the member's scores at 16 random poses, the
noise of one score), as maximum-likelihood averaging does over its pose posterior (SNR 0.03, split 2,
1s3x: 10.8 degrees, and 11.2 with the grid at a quarter step, against 10.2 for the plain average;
docs/benchmarks.md, "Soft averaging does not help").

Each both with the search as it is (``crop``: small templates and all group references on the
central crop at full resolution) and with every coarse search on the box binned by 2
(``binned``: the search before 2026-12-01, by forcing ``coarse_kinds``). Usage::

    python benchmarks/bench_shrec.py --snr 0.1 --split 0 --variants tm --work /tmp/shrec_bench
    python benchmarks/bench_small_poses.py --data /tmp/shrec_bench/snr0.1_split0 --classes 1s3x 4cr2
"""

from __future__ import annotations

import argparse
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

import affinitomo.search.stack as search
from affinitomo.averaging.align import AlignOptions, _search_radius, average_in_frame, build_reference, masked_reference
from affinitomo.density.templates import load_templates
from affinitomo.evaluate import pose_error
from affinitomo.geometry import angular_distance, euler_to_matrix
from affinitomo.io.particles import ANGLES, read_particles

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def coarse(kind: str) -> Iterator[None]:
    """'crop': the search as it is; 'binned': every coarse search of boxes >= 32 on the binned box."""
    original = search.coarse_kinds
    if kind == "binned":
        search.coarse_kinds = lambda n, v, r, s: np.where(original(n, v, r, s) == "crop", "bin", original(n, v, r, s))
    try:
        yield
    finally:
        search.coarse_kinds = original


def soft_average(voxel: float, options: search.SearchOptions, seed: int = 0, spread: float = 0.5) -> Callable:
    """``build_reference``'s ``average``: the members' likelihood-weighted mean over poses around their best."""
    import torch
    from scipy.spatial.transform import Rotation

    from affinitomo.model.rotations import rotate_volumes
    from affinitomo.search.refine import evaluate

    rng = np.random.default_rng(seed)
    unit = np.array([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], dtype=float)

    def scores(q: torch.Tensor, support, poses: np.ndarray, shifts: np.ndarray) -> np.ndarray:
        t = np.repeat(shifts[:, None], poses.shape[1], 1)
        return evaluate(q, support, torch.as_tensor(poses, dtype=torch.float32),
                        torch.as_tensor(t, dtype=torch.float32)).numpy()

    def average(volumes: np.ndarray, found, reference: np.ndarray) -> np.ndarray:
        vols = torch.as_tensor(np.array(volumes, dtype=np.float32))
        particle_filter, (support,) = search.search_filters(torch.as_tensor(reference)[None], voxel, options)
        q = search._fine(search.filtered_particles(vols, particle_filter))
        best, shifts = found.matrices[:, 0], found.shifts[:, 0]
        local = Rotation.from_rotvec(unit * np.deg2rad(spread * found.angular_step)).as_matrix()
        poses = np.einsum("kij,njl->nkil", local, best)  # exp(d) A, as the refinement's steps
        s = scores(q, support, poses, shifts)
        noise = scores(q, support, np.einsum("kij,njl->nkil", Rotation.random(16, random_state=rng.integers(2**31)).as_matrix(), best), shifts)
        sigma = float(np.median(noise.std(1)))
        s2 = np.sign(s) * s**2
        w = np.exp((s2 - s2.max(1, keepdims=True)) / (2 * sigma**2))
        w /= w.sum(1, keepdims=True)
        total = torch.zeros(vols.shape[1:], dtype=torch.float64)
        for k in range(len(local)):
            turned = rotate_volumes(vols[:, None], torch.as_tensor(poses[:, k], dtype=torch.float32).transpose(1, 2))
            total += (turned[:, 0].double() * torch.as_tensor(w[:, k])[:, None, None, None]).sum(0)
        return (total / len(vols)).numpy().astype(np.float32)

    return average


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a bench_shrec.py folder snr<SNR>_split<S>")
    parser.add_argument("--classes", nargs="+", default=["1s3x", "4cr2"])
    parser.add_argument("--match-particles", type=int, default=60)
    parser.add_argument("--skip-alignment", action="store_true")
    parser.add_argument("--soft", action="store_true", help="also the group alignment with a soft average (crop search)")
    a = parser.parse_args()
    maps = Path(os.environ.get("AFFINITOMO_SHARED_DATA", REPO.parent / "shared" / "data")) / "templates" / "maps_10A"
    if not (a.data / "extract" / "subtomos.npy").exists() or not maps.is_dir():
        print(f"skipped: no extracted stack under {a.data} or no maps in {maps}")
        return 0
    stack = np.load(a.data / "extract" / "subtomos.npy", mmap_mode="r")
    table = read_particles(a.data / "extract" / "particles.star")
    truth = read_particles(a.data / "data" / "truth.star").set_index("afmParticleId")
    ids = table["afmParticleId"].to_numpy()
    names = truth.loc[ids, "afmClassName"].to_numpy().astype(str)
    voxel = float(table["afmPixelSize"].iloc[0])
    out = []
    for name in a.classes:
        rows = np.flatnonzero(names == name)
        true = euler_to_matrix(*truth.loc[ids[rows], ANGLES].to_numpy(float).T)
        volumes = np.asarray(stack[rows], dtype=np.float32)
        folder = a.data / f"_template_{name}"
        folder.mkdir(exist_ok=True)
        if not (folder / f"{name}.mrc").exists():
            (folder / f"{name}.mrc").symlink_to(maps / f"{name}.mrc")
        _, template, radius = load_templates(folder, voxel, stack.shape[-1], search.SearchOptions().resolution)
        for kind in ("binned", "crop"):
            row = {"class": name, "search": kind, "n": len(rows)}
            with coarse(kind):
                t0 = time.perf_counter()
                m = min(a.match_particles, len(rows))
                found = search.match_stack(volumes[:m], template, voxel, radius, progress=False)
                err = angular_distance(found.matrices[:, 0], true[:m])
                row["match"] = {"median_deg": round(float(np.median(err)), 1),
                                "within_15deg": round(float(np.mean(err < 15)), 2),
                                "seconds": round(time.perf_counter() - t0, 1)}
                for masked in (True, False) if not a.skip_alignment else ():
                    t0 = time.perf_counter()
                    opts = AlignOptions(align_mask=masked)
                    reference, _ = build_reference(volumes, voxel, opts)
                    r = _search_radius(stack.shape[-1], voxel, opts.search().max_shift)
                    aligned = search.match_stack(volumes, reference[None], voxel, r, opts.search(), progress=False)
                    pe = pose_error(aligned.matrices[:, 0], true, np.array([name] * len(rows)))["per_class"][name]
                    row["group_alignment" if masked else "group_alignment_unmasked"] = {
                        "median_deg": round(pe["median_deg"], 1), "within_30deg": pe["fraction_below_30deg"],
                        "mean_score": round(float(aligned.scores[:, 0].mean()), 3),
                        "seconds": round(time.perf_counter() - t0, 1)}
                    if masked:  # the bound: the same particles averaged in their true poses as the reference
                        oracle = masked_reference(average_in_frame(volumes, true), voxel, opts)
                        best = search.match_stack(volumes, oracle[None], voxel, r, opts.search(), progress=False)
                        pe = pose_error(best.matrices[:, 0], true, np.array([name] * len(rows)))["per_class"][name]
                        row["true_pose_reference"] = {"median_deg": round(pe["median_deg"], 1),
                                                      "within_30deg": pe["fraction_below_30deg"]}
                    if masked and a.soft and kind == "crop":
                        t0 = time.perf_counter()
                        soft, _ = build_reference(volumes, voxel, opts, average=soft_average(voxel, opts.search()))
                        found = search.match_stack(volumes, soft[None], voxel, r, opts.search(), progress=False)
                        pe = pose_error(found.matrices[:, 0], true, np.array([name] * len(rows)))["per_class"][name]
                        row["soft_alignment"] = {"median_deg": round(pe["median_deg"], 1),
                                                 "within_30deg": pe["fraction_below_30deg"],
                                                 "seconds": round(time.perf_counter() - t0, 1)}
            print(json.dumps(row), flush=True)
            out.append(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
