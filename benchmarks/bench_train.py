"""Training and encoding speed (samples/s) on 32^3 boxes, the reference benchmark architecture.

Depth 3, 32 base channels, latent 8, pose 1, batch 64, CNN decoder, MSE, affinity on. Data
come from a memory-mapped .npy stack through the same code path as ``affinitomo train``.

Architecture parity with alan-turing-institute/affinity-vae (model "cnn": avae/encoders/encoders.py
``Encoder`` and avae/decoders/decoders.py ``Decoder``), layer by layer for these settings:

- encoder: Conv3d 1->32->64->128, kernel 3, stride 2, padding 1 (32^3 -> 4^3), each followed by
  ReLU then BatchNorm3d when batch norm is on; linear heads 128*4^3 -> mu (8), logvar (8),
  pose (1) (the reference has three nn.Linear; ours one fused Linear to 17 outputs: same
  multiply-adds);
- decoder: Linear (8+1) -> 128*4^3, ConvTranspose3d 128->64->32->1, kernel 4, stride 2,
  padding 1, ReLU then BatchNorm3d after all but the last; the reference ends with a sigmoid
  (ours: linear output with MSE, the sigmoid being ``model.output: sigmoid``; negligible cost).
- batch norm: the reference's defaults are ``bnorm_encoder: False`` and ``bnorm_decoder: False``
  (avae/config.py), ours is on. ``--batch-norm off`` runs the reference's default network
  exactly; the default here (on) is the heavier of the two, so the comparison is conservative.

    python benchmarks/bench_train.py [--device cpu|cuda] [--particles 640] [--batch-norm on|off] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from affinitomo.encode import encode_stack
from affinitomo.io.stacks import SubtomoStack
from affinitomo.model.train_config import config_from_dict
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
    parser.add_argument("--batch-norm", default="on", choices=["on", "off"],
                        help="off = the reference implementation's default (bnorm_encoder/decoder False)")
    parser.add_argument("--profile", action="store_true", help="print a torch.profiler table of 3 training steps")
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(Path(tmp), args.particles)
        arch = {**ARCH, "decoder": args.decoder, "batch_norm": args.batch_norm == "on"}
        cfg = config_from_dict({"model": arch, "batch_size": 64, "epochs": args.epochs,
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
        "load_1min": [round(load_start, 2), round(os.getloadavg()[0], 2)], "architecture": layers(trainer.model),
        "decoder": args.decoder, "batch_norm": args.batch_norm, "batch": 64, "box": 32,
        "train_samples_per_s": round(float(np.median(rates)), 1), "encode_samples_per_s": round(enc_rate, 1),
    }))


def layers(model: torch.nn.Module) -> list[str]:
    """One short line per convolution, linear and batch-norm layer, in module order."""
    out = []
    for name, m in model.named_modules():
        if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d)):
            out.append(f"{name}: {type(m).__name__} {m.in_channels}->{m.out_channels} k{m.kernel_size[0]} "
                       f"s{m.stride[0]} p{m.padding[0]}")
        elif isinstance(m, torch.nn.Linear):
            out.append(f"{name}: Linear {m.in_features}->{m.out_features}")
        elif isinstance(m, torch.nn.BatchNorm3d):
            out.append(f"{name}: BatchNorm3d {m.num_features}")
    return out


def profile(trainer: Trainer) -> None:
    """Profile three training steps (after one warm-up) and print where the time goes."""
    from torch.profiler import ProfilerActivity, profile as torch_profile

    rows = trainer.train_rows[:64]
    x, true_rot = trainer._read(rows, None)
    for step in range(4):
        if step == 1:
            prof = torch_profile(activities=[ProfilerActivity.CPU], record_shapes=False)
            prof.__enter__()
        terms = trainer._loss(x, rows, 1.0, 1.0, true_rot)
        trainer.optimizer.zero_grad()
        terms["total"].backward()
        trainer.optimizer.step()
    prof.__exit__(None, None, None)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


if __name__ == "__main__":
    main()
