"""Training and encoding speed (samples/s) on 32^3 boxes, the reference benchmark architecture.

Depth 3, 32 base channels, latent 8, pose 1, batch 64, CNN decoder, MSE, affinity on. Data
come from a memory-mapped .npy stack through the same code path as ``affinitomo train``.

    python benchmarks/bench_train.py [--device cpu|cuda] [--particles 640] [--profile]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from affinitomo.encode import encode_stack
from affinitomo.train.config import config_from_dict
from affinitomo.train.data import SubtomoStack
from affinitomo.train.loop import Trainer, TrainingData

ARCH = {"depth": 3, "channels": 32, "latent_dims": 8, "pose_dims": 1, "decoder": "cnn"}


def make_data(folder: Path, n: int, box: int = 32, classes: int = 4) -> TrainingData:
    rng = np.random.default_rng(0)
    path = folder / "subtomos.npy"
    stack = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, box, box, box))
    for start in range(0, n, 64):
        stack[start : start + 64] = rng.normal(size=(min(64, n - start), box, box, box))
    stack.flush()
    del stack
    matrix = np.full((classes, classes), 0.2, np.float32)
    np.fill_diagonal(matrix, 1.0)
    return TrainingData(SubtomoStack(path), np.arange(n) % classes, [f"c{i}" for i in range(classes)], matrix)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--particles", type=int, default=640)
    parser.add_argument("--epochs", type=int, default=3, help="the first epoch is warm-up and not counted")
    parser.add_argument("--decoder", default="cnn", choices=["cnn", "rotation"])
    parser.add_argument("--profile", action="store_true", help="print a torch.profiler table of 3 training steps")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(Path(tmp), args.particles)
        cfg = config_from_dict({"model": {**ARCH, "decoder": args.decoder}, "batch_size": 64, "epochs": args.epochs,
                                "val_fraction": 0.0, "checkpoint_every": 1000})
        trainer = Trainer(data, Path(tmp) / "out", cfg, args.device)
        if args.profile:
            profile(trainer)
            return
        history = trainer.fit(progress=False)
        rates = [row["samples_per_s"] for row in history[1:]]
        model = trainer.model.eval()
        encode_stack(model, data.stack, cfg.normalise, 256, trainer.device, progress=False)  # warm-up
        start = time.perf_counter()
        encode_stack(model, data.stack, cfg.normalise, 256, trainer.device, progress=False)
        enc_rate = len(data.stack) / (time.perf_counter() - start)
    print(json.dumps({
        "device": str(trainer.device), "threads": torch.get_num_threads(), "torch": torch.__version__,
        "decoder": args.decoder, "batch": 64, "box": 32,
        "train_samples_per_s": round(float(np.median(rates)), 1), "encode_samples_per_s": round(enc_rate, 1),
    }))


def profile(trainer: Trainer) -> None:
    """Profile three training steps (after one warm-up) and print where the time goes."""
    from torch.profiler import ProfilerActivity, profile as torch_profile

    rows = trainer.train_rows[:64]
    x = trainer._read(rows, None)
    for step in range(4):
        if step == 1:
            prof = torch_profile(activities=[ProfilerActivity.CPU], record_shapes=False)
            prof.__enter__()
        terms = trainer._loss(x, rows, 1.0, 1.0)
        trainer.optimizer.zero_grad()
        terms["total"].backward()
        trainer.optimizer.step()
    prof.__exit__(None, None, None)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


if __name__ == "__main__":
    main()
