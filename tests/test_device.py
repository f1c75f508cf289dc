"""Asking for a GPU on a machine without one: a clear error, a fallback only with 'auto'."""

from __future__ import annotations

import pytest
import torch

from affinitomo.cli import main
from affinitomo.model.device import pick_device


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_gpu_is_a_clear_error_and_auto_falls_back(tmp_path, capsys):
    assert pick_device("auto").type in ("cpu", "mps")
    code = main(["encode", "--checkpoint", str(tmp_path / "m.pt"), "--stack", str(tmp_path / "s.npy"),
                 "--particles", str(tmp_path / "p.star"), "--out", str(tmp_path / "l.npz"), "--device", "cuda"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--device" in err and "needs a CUDA GPU" in err and "'auto' falls back" in err
    assert not (tmp_path / "l.npz").exists()
