"""Training option ``min_steps``: epochs raised to a number of optimiser steps ("auto": without simulated particles)."""

from __future__ import annotations

import numpy as np
import pytest

from affinitomo.errors import InputError
from affinitomo.io.stacks import SubtomoStack
from affinitomo.model.train_config import MIN_STEPS_AUTO, config_from_dict, parse_options
from affinitomo.train.loop import Trainer, TrainingData

SMALL = {"model": {"depth": 2, "channels": 4, "latent_dims": 4}, "batch_size": 8, "num_threads": 1}


def test_min_steps_raises_epochs_only_where_asked():
    auto = config_from_dict({"epochs": 5})
    assert auto.min_steps == "auto"
    assert auto.epochs_for(batches_per_epoch=3, any_simulated=False) == -(-MIN_STEPS_AUTO // 3)
    assert auto.epochs_for(batches_per_epoch=3, any_simulated=True) == 5
    assert config_from_dict({"epochs": 5, "min_steps": 0}).epochs_for(3, False) == 5
    assert config_from_dict({"epochs": 5, "min_steps": 31}).epochs_for(3, True) == 11
    assert config_from_dict({"epochs": 50, "min_steps": 31}).epochs_for(3, True) == 50
    assert parse_options('{"min_steps": "auto"}').min_steps == "auto"
    for bad in ('"many"', "-1", "true", "2.5"):
        with pytest.raises(InputError, match="min_steps"):
            parse_options(f'{{"min_steps": {bad}}}')


def _data(tmp_path, n: int, simulated: np.ndarray | None = None) -> TrainingData:
    rng = np.random.default_rng(0)
    np.save(tmp_path / "s.npy", rng.normal(size=(n, 8, 8, 8)).astype(np.float32))
    return TrainingData(SubtomoStack(tmp_path / "s.npy"), np.arange(n) % 2, ["a", "b"], np.eye(2, dtype=np.float32),
                        simulated=simulated)


def test_trainer_stores_the_raised_epochs(tmp_path):
    config = config_from_dict({**SMALL, "epochs": 2, "min_steps": 7, "val_fraction": 0.0})
    trainer = Trainer(_data(tmp_path, 12), tmp_path / "out", config, device="cpu")
    # 12 rows, batch 8: 2 batches per epoch, so 4 epochs reach 7 steps
    assert trainer.config.epochs == 4 and config.epochs == 2
    assert trainer.payload(0)["config"]["epochs"] == 4


@pytest.mark.parametrize(("simulated", "epochs"), [(False, -(-MIN_STEPS_AUTO // 2)), (True, 2)])
def test_auto_follows_simulated_particles(tmp_path, simulated, epochs):
    flags = np.arange(12) < 6 if simulated else None
    config = config_from_dict({**SMALL, "epochs": 2, "val_fraction": 0.0})
    assert Trainer(_data(tmp_path, 12, flags), tmp_path / "out", config, device="cpu").config.epochs == epochs
