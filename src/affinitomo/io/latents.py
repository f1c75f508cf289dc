"""``latents.npz``: one reader, one writer and the row alignment to a particle table.

The encode stage writes it, gather concatenates it per tomogram, embed and the cluster stage read
it, and the napari viewer reads its means. Arrays, one row per particle: ``particle_id`` (int64),
``mu`` and ``logvar`` (N, L) float32, ``pose`` (N, P) float32 and, for explicit-rotation models,
``rotation`` (N, 3, 3) RELION-convention matrices. Read with ``allow_pickle=False``: the file
cannot run code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from affinitomo.errors import InputError
from affinitomo.io.atomic import atomic_path

LATENT_KEYS = ("particle_id", "mu", "logvar", "pose")


@dataclass
class Latents:
    """Contents of ``latents.npz``: one row per particle."""

    particle_id: np.ndarray  # (N,) int
    mu: np.ndarray  # (N, L) float
    logvar: np.ndarray  # (N, L) float
    pose: np.ndarray  # (N, P) float
    rotation: np.ndarray | None = None  # (N, 3, 3) RELION-convention matrices, or None

    def __len__(self) -> int:
        return int(self.particle_id.shape[0])

    def take(self, index: np.ndarray) -> "Latents":
        """Rows ``index`` of every array."""
        rot = None if self.rotation is None else self.rotation[index]
        return Latents(self.particle_id[index], self.mu[index], self.logvar[index], self.pose[index], rot)


def read_latents(path: str | Path) -> Latents:
    """Read and check ``latents.npz`` (keys particle_id, mu, logvar, pose, optional rotation)."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, None, "file not found")
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise InputError(path, None, f"a readable .npz archive ({exc})") from exc
    with npz:
        for key in LATENT_KEYS:
            if key not in npz.files:
                raise InputError(path, key, f"an array '{key}' (found {sorted(npz.files)})")
        ids = np.asarray(npz["particle_id"])
        mu = np.asarray(npz["mu"], dtype=np.float64)
        logvar = np.asarray(npz["logvar"], dtype=np.float64)
        pose = np.asarray(npz["pose"], dtype=np.float64)
        rotation = np.asarray(npz["rotation"], dtype=np.float64) if "rotation" in npz.files else None
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise InputError(path, "particle_id", f"a 1-D integer array, got {ids.dtype} {ids.shape}")
    n = ids.shape[0]
    if n == 0:
        raise InputError(path, "particle_id", "at least one particle")
    if len(np.unique(ids)) != n:
        raise InputError(path, "particle_id", "unique particle ids")
    if mu.ndim != 2 or mu.shape[0] != n or mu.shape[1] < 1:
        raise InputError(path, "mu", f"shape (N={n}, L>=1), got {mu.shape}")
    if logvar.shape != mu.shape:
        raise InputError(path, "logvar", f"the shape of mu {mu.shape}, got {logvar.shape}")
    if pose.ndim == 1 and pose.shape[0] == n:
        pose = pose[:, None]
    if pose.ndim != 2 or pose.shape[0] != n:
        raise InputError(path, "pose", f"shape (N={n}, P), got {pose.shape}")
    if rotation is not None and rotation.shape != (n, 3, 3):
        raise InputError(path, "rotation", f"shape (N={n}, 3, 3), got {rotation.shape}")
    if not np.all(np.isfinite(mu)):
        raise InputError(path, "mu", "finite values (found NaN or inf)")
    return Latents(ids.astype(np.int64), mu, logvar, pose, rotation)


def align_to_table(latents: Latents, table: pd.DataFrame, latents_path: Any = None,
                   table_path: Any = None) -> Latents:
    """Reorder ``latents`` to the rows of ``table`` (matched by ``afmParticleId``).

    Every particle of the table must have latents; latents of particles not in
    the table are an error too (a sign of mixing runs).
    """
    if "afmParticleId" not in table.columns:
        raise InputError(table_path, "afmParticleId", "a particle id column (canonical particle table)")
    table_ids = table["afmParticleId"].to_numpy().astype(np.int64)
    pos = pd.Index(latents.particle_id).get_indexer(table_ids)
    missing = table_ids[pos < 0]
    if missing.size:
        raise InputError(latents_path, "particle_id",
                         f"latents for every particle of {table_path}; {missing.size} missing "
                         f"(e.g. afmParticleId {missing[:5].tolist()})")
    if len(latents) != len(table):
        extra = np.setdiff1d(latents.particle_id, table_ids)
        raise InputError(latents_path, "particle_id",
                         f"only particles of {table_path}; {extra.size} ids are not in the table "
                         f"(e.g. {extra[:5].tolist()})")
    return latents.take(pos)


def write_latents(path: str | Path, latents: Latents) -> Path:
    """Write ``latents`` as ``latents.npz``, atomically."""
    arrays = {"particle_id": latents.particle_id, "mu": latents.mu.astype(np.float32),
              "logvar": latents.logvar.astype(np.float32), "pose": latents.pose.astype(np.float32)}
    if latents.rotation is not None:
        arrays["rotation"] = latents.rotation
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
    return path


def latent_means(path: str | Path, particle_ids: np.ndarray) -> np.ndarray:
    """Latent means (float32) for ``particle_ids``, in that order, from a ``latents.npz``.

    Only ``particle_id`` and ``mu`` are needed here (the napari viewer's results folders may hold
    no more); every id must be present.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            ids, mu = np.asarray(npz["particle_id"]), np.asarray(npz["mu"], dtype=np.float32)
    except KeyError as exc:
        raise InputError(path, str(exc.args[0]), "arrays 'particle_id' and 'mu'") from exc
    except (OSError, ValueError) as exc:
        raise InputError(path, None, f"a readable .npz file ({exc})") from exc
    if mu.ndim != 2 or len(mu) != len(ids):
        raise InputError(path, "mu", f"an (N, L) array matching 'particle_id' ({len(ids)}), got {mu.shape}")
    pos = pd.Index(ids).get_indexer(np.asarray(particle_ids))
    if (pos < 0).any():
        missing = np.asarray(particle_ids)[pos < 0][:5].tolist()
        raise InputError(path, "particle_id", f"every particle of the table, missing e.g. {missing}")
    return mu[pos]
