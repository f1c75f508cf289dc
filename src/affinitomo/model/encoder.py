"""3D convolutional encoder: volume -> latent mean, log-variance and pose."""

from __future__ import annotations

import torch
from torch import nn


class Encoder(nn.Module):
    """Strided 3x3x3 convolutions (each halves the box), ReLU, optional batch norm, then heads.

    Outputs ``mu`` and ``logvar`` (N, latent_dims) and ``pose`` (N, pose_size); the pose
    bypasses KL and affinity and feeds the decoder.
    """

    def __init__(self, box: int, filters: list[int], latent_dims: int, pose_size: int, batch_norm: bool = True):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for f in filters:
            layers.append(nn.Conv3d(channels, f, kernel_size=3, stride=2, padding=1))
            layers.append(nn.ReLU(inplace=True))
            if batch_norm:
                layers.append(nn.BatchNorm3d(f))
            channels = f
        self.features = nn.Sequential(*layers)
        bottom = box // 2 ** len(filters)
        flat = channels * bottom**3
        self.pose_size = pose_size
        self.latent_dims = latent_dims
        # One linear layer for all heads: a single matmul instead of three.
        self.heads = nn.Linear(flat, 2 * latent_dims + pose_size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.features(x).flatten(1)
        out = self.heads(h)
        n = self.latent_dims
        return out[:, :n], out[:, n : 2 * n], out[:, 2 * n :]
