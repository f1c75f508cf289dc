"""Encode every subtomogram with a trained model, streaming the stack in batches."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from affinitomo.errors import InputError
from affinitomo.io.latents import Latents, write_latents
from affinitomo.io.stacks import SubtomoStack
from affinitomo.model.device import autocast, pick_device
from affinitomo.model.loading import load_model
from affinitomo.model.refine import REFINE_STEPS, refine_rotations
from affinitomo.model.vae import AffinityVAE
from affinitomo.progress import progress_bar

log = logging.getLogger(__name__)


@torch.no_grad()
def encode_stack(
    model: AffinityVAE,
    stack: SubtomoStack,
    normalise: str,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    progress: bool = True,
    refine_steps: int = REFINE_STEPS,
) -> dict[str, np.ndarray]:
    """mu, logvar, pose (and rotation for explicit-rotation models) for every stack row.

    ``rotation`` is the encoder's estimate refined through the decoder by ``refine_steps``
    steps (:func:`affinitomo.model.refine.refine_rotations`; 0 = the encoder's estimate as is).
    """
    device = torch.device(device)
    if stack.box != model.box:
        raise InputError(stack.path, "shape", f"boxes of {model.box}^3 as the model was trained on, got {stack.box}^3")
    n = len(stack)
    latent, pose_size = model.config.latent_dims, model.config.pose_size()
    out = {
        "mu": np.empty((n, latent), np.float32),
        "logvar": np.empty((n, latent), np.float32),
        "pose": np.empty((n, pose_size), np.float32),
    }
    if model.has_rotation:
        out["rotation"] = np.empty((n, 3, 3), np.float64)
    for start in progress_bar(range(0, n, batch_size), desc="encode", unit="batch", disable=not progress):
        idx = np.arange(start, min(start + batch_size, n))
        x = torch.from_numpy(stack.read(idx, normalise)).to(device)
        if device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last_3d)
        with autocast(device):
            mu, logvar, pose = model.encoder(x)
        out["mu"][idx] = mu.float().cpu().numpy()
        out["logvar"][idx] = logvar.float().cpu().numpy()
        out["pose"][idx] = pose.float().cpu().numpy()
        if model.has_rotation:
            rotation = model.rotation_matrices(pose.float())
            if refine_steps > 0:
                rotation = refine_rotations(model.decoder, x, mu, rotation, refine_steps)
            out["rotation"][idx] = rotation.double().cpu().numpy()
    return out


def encode(
    checkpoint: str | Path,
    stack_path: str | Path,
    particle_ids: np.ndarray,
    out: str | Path,
    *,
    batch_size: int = 256,
    device: str = "auto",
    progress: bool = True,
    refine_steps: int | None = None,
) -> Path:
    """Write ``latents.npz`` (particle_id, mu, logvar, pose[, rotation]) for a stack.

    ``refine_steps``: see :func:`encode_stack` (explicit-rotation models only); None = the
    checkpoint's ``pose_refine_steps`` training option.
    """
    model, ckpt = load_model(checkpoint, pick_device(device))  # checks the checkpoint before any work
    stack = SubtomoStack(stack_path)
    particle_ids = np.asarray(particle_ids)
    if len(particle_ids) != len(stack):
        raise InputError(stack_path, "rows", f"one row per particle of the table ({len(particle_ids)}), got {len(stack)}")
    if batch_size < 1:
        raise InputError("--batch-size", None, f"a positive integer, got {batch_size}")
    if refine_steps is None:
        refine_steps = ckpt["train_config"].pose_refine_steps
    elif refine_steps < 0:
        raise InputError("--refine-steps", None, f"an integer >= 0, got {refine_steps}")
    dev = next(model.parameters()).device
    arrays = encode_stack(model, stack, ckpt["train_config"].normalise, batch_size, dev, progress, refine_steps)
    out = write_latents(out, Latents(particle_ids.astype(np.int64), arrays["mu"], arrays["logvar"], arrays["pose"],
                                     arrays.get("rotation")))
    log.info("encoded %d particles -> %s", len(stack), out)
    return out
