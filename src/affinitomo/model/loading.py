"""A trained model from its checkpoint, ready to encode or decode."""

from __future__ import annotations

from pathlib import Path

import torch

from affinitomo.errors import InputError
from affinitomo.model.checkpoint import load_checkpoint
from affinitomo.model.train_config import config_from_dict
from affinitomo.model.vae import AffinityVAE


def load_model(checkpoint: str | Path, device: torch.device | str = "cpu") -> tuple[AffinityVAE, dict]:
    """The model (eval mode) and checkpoint dict; InputError if the file is not ours."""
    ckpt = load_checkpoint(checkpoint, map_location="cpu")
    config = config_from_dict(ckpt["config"], str(checkpoint))
    model = AffinityVAE(config.model, int(ckpt["box"]))
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise InputError(checkpoint, "model", f"weights matching the stored config ({exc})") from None
    model = model.to(device).eval()
    if torch.device(device).type == "cpu":
        model = model.to(memory_format=torch.channels_last_3d)
    ckpt["train_config"] = config
    return model, ckpt
