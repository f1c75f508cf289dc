"""The trained model's reconstruction of one particle, on the CPU, for the review widget."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


class Reconstructor:
    """A checkpoint loaded once (on first use, CPU, eval mode) that reconstructs single subtomograms.

    The input is normalised as in training (the checkpoint's ``normalise``); in eval mode
    the decoder sees the latent mean, so the result is deterministic.
    """

    def __init__(self, checkpoint: str | Path):
        self.checkpoint = Path(checkpoint)
        self._model = None
        self._normalise = "zscore"

    def _load(self):
        if self._model is None:
            from affinitomo.model.loading import load_model

            self._model, ckpt = load_model(self.checkpoint, "cpu")  # InputError if not ours
            self._normalise = ckpt["train_config"].normalise
            log.info("loaded %s (box %d) for reconstructions", self.checkpoint, self._model.box)
        return self._model

    @property
    def box(self) -> int:
        """The model's box size (voxels per side)."""
        return int(self._load().box)

    def reconstruct(self, volume: np.ndarray) -> np.ndarray:
        """The model's output ``[z, y, x]`` float32 for one ``box``^3 subtomogram."""
        import torch

        from affinitomo.io.stacks import normalise_inplace

        model = self._load()
        volume = np.asarray(volume, dtype=np.float32)
        if volume.shape != (model.box,) * 3:
            raise ValueError(f"the model takes {model.box}^3 boxes, got {volume.shape}")
        batch = volume[None].copy()
        normalise_inplace(batch, self._normalise)
        with torch.no_grad():
            out = model(torch.from_numpy(batch[:, None]))
        return out.recon[0, 0].float().numpy()
