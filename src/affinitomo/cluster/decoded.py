"""What the trained decoder makes of the results: reconstructions of example particles and
latent traversals (CPU, small batches; the stack is read only at the rows shown).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from affinitomo.errors import InputError

log = logging.getLogger(__name__)


def load_checked_model(checkpoint: str | Path, latent_dims: int, pose_dims: int,
                       box: int | None) -> tuple[Any, dict]:
    """The model on the CPU (eval mode); InputError when it does not fit the latents or the stack."""
    from affinitomo.model.loading import load_model

    model, ckpt = load_model(checkpoint, "cpu")  # InputError when the file is not ours
    if model.config.latent_dims != latent_dims:
        raise InputError(checkpoint, "latent_dims", f"{latent_dims} latent dimensions as in the latents "
                                                    f"(the model has {model.config.latent_dims})")
    if model.config.pose_size() != pose_dims:
        raise InputError(checkpoint, "pose_dims", f"{pose_dims} pose values as in the latents "
                                                  f"(the model has {model.config.pose_size()})")
    if box is not None and model.box != box:
        raise InputError(checkpoint, "box", f"boxes of {box}^3 as in the stack (the model takes {model.box}^3)")
    return model, ckpt


def pick_examples(numbers: np.ndarray, per_group: int = 3, max_groups: int = 12,
                  seed: int = 0) -> dict[int, np.ndarray]:
    """Up to ``per_group`` random rows for each numbered group (> 0), groups in number order."""
    rng = np.random.default_rng(seed)
    numbers = np.asarray(numbers, dtype=np.int64)
    out: dict[int, np.ndarray] = {}
    for g in sorted(set(numbers[numbers > 0].tolist()))[:max_groups]:
        rows = np.flatnonzero(numbers == g)
        out[g] = np.sort(rng.choice(rows, min(per_group, rows.size), replace=False))
    return out


def reconstruct_rows(model: Any, stack: np.ndarray, rows: np.ndarray, normalise: str,
                     batch: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(inputs normalised as in training, reconstructions), each (n, B, B, B) float32."""
    import torch

    from affinitomo.io.stacks import normalise_inplace

    rows = np.asarray(rows, dtype=np.int64)
    inputs = np.empty((rows.size,) + stack.shape[1:], np.float32)
    recons = np.empty_like(inputs)
    for start in range(0, rows.size, batch):
        sel = slice(start, start + batch)
        x = np.asarray(stack[np.sort(rows[sel])], dtype=np.float32)[np.argsort(np.argsort(rows[sel]))]
        normalise_inplace(x, normalise)
        inputs[sel] = x
        with torch.no_grad():
            recons[sel] = model(torch.from_numpy(x[:, None].copy())).recon[:, 0].float().numpy()
    return inputs, recons


def decode(model: Any, z: np.ndarray, pose: np.ndarray | None, batch: int = 32) -> np.ndarray:
    """Decoded volumes (n, B, B, B) for latents ``z``; the rotation decoder's canonical (unrotated) volume."""
    import torch

    out = []
    with torch.no_grad():
        for start in range(0, len(z), batch):
            zt = torch.from_numpy(np.ascontiguousarray(z[start:start + batch], dtype=np.float32))
            if model.has_rotation:
                vol = model.decoder.canonical(zt)
            else:
                pt = None if pose is None else torch.from_numpy(
                    np.ascontiguousarray(pose[start:start + batch], dtype=np.float32))
                vol = model.decoder(zt, pt)
            out.append(vol[:, 0].float().numpy())
    return np.concatenate(out, axis=0)


def traversals(model: Any, mu: np.ndarray, pose: np.ndarray, anchor_rows: np.ndarray, steps: int = 7,
               span: float = 2.0, max_rows: int = 16) -> dict[str, Any]:
    """Decode the anchor latent with one dimension varied at a time.

    The anchor is the mean latent (and median pose) of ``anchor_rows`` (the largest group); each
    dimension d goes through ``steps`` values from -span to +span times its standard deviation
    over all particles, so the range follows the data whatever its scale. Pose dimensions of a
    CNN decoder are traversed too; the rotation decoder is shown in its canonical frame. With more
    than ``max_rows`` dimensions, those of largest spread are shown.
    """
    mu = np.asarray(mu, dtype=np.float64)
    pose = np.asarray(pose, dtype=np.float64)
    z0 = mu[anchor_rows].mean(axis=0)
    p0 = np.median(pose[anchor_rows], axis=0) if pose.shape[1] else np.zeros(0)
    sd_z = mu.std(axis=0)
    use_pose = (not model.has_rotation) and pose.shape[1] > 0
    sd_p = pose.std(axis=0) if use_pose else np.zeros(0)
    dims = [("z", d, sd_z[d]) for d in range(mu.shape[1])] + [("pose", d, sd_p[d]) for d in range(len(sd_p))]
    if len(dims) > max_rows:
        dims = sorted(dims, key=lambda t: -t[2])[:max_rows]
    offsets = np.linspace(-span, span, steps)
    zs, ps, labels = [], [], []
    for kind, d, sd in dims:
        for o in offsets:
            z, p = z0.copy(), p0.copy()
            if kind == "z":
                z[d] += o * sd
            else:
                p[d] += o * sd
            zs.append(z)
            ps.append(p)
        labels.append(f"{'z' if kind == 'z' else 'pose'}{d}")
    volumes = decode(model, np.array(zs), np.array(ps) if use_pose else None)
    box = volumes.shape[1:]
    return {"volumes": volumes.reshape((len(dims), steps) + box), "rows": labels, "offsets": offsets}
