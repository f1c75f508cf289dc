"""The CUDA paths of training and encoding; these run only where a CUDA GPU exists.

On a GPU, training reads page-locked batches one ahead and copies them without blocking, under
bf16 autocast; its losses must stay those of the CPU's float32 within the precision of bf16, and
the latents encoded on the GPU must match the CPU's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from affinitomo.encode import encode
from affinitomo.model.train_config import config_from_dict
from affinitomo.train.loop import train

from test_train import SMALL, make_data

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_training_on_cuda_keeps_the_cpu_losses(tmp_path):
    cfg = config_from_dict({**SMALL, "epochs": 3})
    runs = {}
    for device in ("cpu", "cuda"):
        (tmp_path / device).mkdir()
        train(make_data(tmp_path / device), tmp_path / device / "out", cfg, device=device, progress=False)
        runs[device] = pd.read_csv(tmp_path / device / "out" / "training.csv")
    for column in ("train_total", "val_total"):
        np.testing.assert_allclose(runs["cuda"][column], runs["cpu"][column], rtol=0.1)
    assert (runs["cuda"]["train_total"].iloc[-1] < runs["cuda"]["train_total"].iloc[0])


def test_encoding_on_cuda_matches_the_cpu(tmp_path):
    (tmp_path / "data").mkdir()
    data = make_data(tmp_path / "data")
    train(data, tmp_path / "out", config_from_dict({**SMALL, "epochs": 1}), device="cpu", progress=False)
    ids = np.arange(len(data.labels))
    for device in ("cpu", "cuda"):
        encode(tmp_path / "out" / "model.pt", tmp_path / "data" / "s.npy", ids, tmp_path / f"{device}.npz",
               device=device, progress=False)
    cpu, gpu = np.load(tmp_path / "cpu.npz"), np.load(tmp_path / "cuda.npz")
    np.testing.assert_allclose(gpu["mu"], cpu["mu"], atol=0.05 * np.abs(cpu["mu"]).max())
