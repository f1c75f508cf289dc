"""The Affinity-VAE module: encoder, reparameterisation, decoder."""

from __future__ import annotations

from dataclasses import asdict
from typing import NamedTuple

import torch
from torch import nn

from affinitomo.errors import InputError
from affinitomo.model.config import ModelConfig
from affinitomo.model.decoders import CNNDecoder, RotationDecoder
from affinitomo.model.encoder import Encoder


class VAEOutput(NamedTuple):
    """Everything one forward pass produces."""

    recon: torch.Tensor  # (N, 1, B, B, B)
    mu: torch.Tensor  # (N, latent_dims)
    logvar: torch.Tensor  # (N, latent_dims)
    pose: torch.Tensor  # (N, pose_size)


class AffinityVAE(nn.Module):
    """beta-VAE with pose channels; the affinity prior acts on ``mu`` in the loss.

    Input volumes are (N, 1, B, B, B) ``[z, y, x]``. In training mode the decoder sees
    ``mu + sigma * eps``; in eval mode it sees ``mu``.
    """

    def __init__(self, config: ModelConfig, box: int):
        super().__init__()
        problems = config.problems(box)
        if problems:
            field, expected = problems[0]
            raise InputError(None, field, expected)
        self.config = config
        self.box = box
        filters = config.level_filters()
        self.encoder = Encoder(box, filters, config.latent_dims, config.pose_size(), config.batch_norm)
        if config.decoder == "rotation":
            self.decoder: nn.Module = RotationDecoder(
                box, filters, config.latent_dims, config.rotation, config.batch_norm, config.output
            )
        else:
            self.decoder = CNNDecoder(
                box, filters, config.latent_dims, config.pose_dims, config.batch_norm, config.output
            )

    @property
    def has_rotation(self) -> bool:
        """True when the pose is an explicit rotation."""
        return self.config.decoder == "rotation"

    def rotation_matrices(self, pose: torch.Tensor) -> torch.Tensor:
        """Matrices A (N, 3, 3) rotating the canonical frame into each particle."""
        if not self.has_rotation:
            raise ValueError("this model has no explicit-rotation decoder")
        return self.decoder.matrices(pose)

    def forward(self, x: torch.Tensor) -> VAEOutput:
        mu, logvar, pose = self.encoder(x)
        if self.training:
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        else:
            z = mu
        return VAEOutput(self.decoder(z, pose), mu, logvar, pose)

    def plain_config(self) -> dict:
        """The architecture as a plain dict (for checkpoints)."""
        return asdict(self.config)
