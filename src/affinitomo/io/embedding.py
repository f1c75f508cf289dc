"""``embedding.csv``: the UMAP coordinates of each particle (``afmParticleId,UMAP0,UMAP1[,...]``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from affinitomo.errors import InputError
from affinitomo.io.atomic import atomic_path


def write_embedding(path: str | Path, particle_id: np.ndarray, embedding: np.ndarray) -> Path:
    """Write ``afmParticleId,UMAP0,UMAP1[,...]`` atomically."""
    frame = pd.DataFrame({"afmParticleId": np.asarray(particle_id, dtype=np.int64)})
    for d in range(embedding.shape[1]):
        frame[f"UMAP{d}"] = embedding[:, d]
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")
    return Path(path)


def read_embedding(path: str | Path) -> pd.DataFrame:
    """Read ``embedding.csv``; checks the id and UMAP0/UMAP1 columns."""
    from affinitomo.io.tables import read_csv_table

    path = Path(path)
    frame = read_csv_table(path, ("afmParticleId", "UMAP0", "UMAP1"), "an embedding.csv of 'affinitomo embed'")
    if not frame["afmParticleId"].is_unique:
        raise InputError(path, "afmParticleId", "unique particle ids")
    return frame
