"""3D convolutional encoder: volume -> latent mean, log-variance and pose."""

from __future__ import annotations

import torch
from torch import nn

#: Soft bound on the log-variance: ``b * tanh(raw / b)``, so the posterior's standard deviation
#: stays within [e^-3, e^3] = [0.05, 20]. Unbounded, log-variances drifted to +25 while beta was 0
#: (a KL-free warm-up) on noisy data whose reconstruction barely depends on z, and the KL term then
#: spiked to 1e6-1e7 (SHREC-like set at SNR 0.1), wrecking epochs and best-checkpoint selection.
LOGVAR_BOUND = 6.0


class Encoder(nn.Module):
    """Strided 3x3x3 convolutions (each halves the box), ReLU, optional batch norm, then heads.

    Outputs ``mu`` and ``logvar`` (N, latent_dims; the log-variance softly bounded to
    ±``LOGVAR_BOUND``) and ``pose`` (N, pose_size); the pose bypasses KL and affinity and
    feeds the decoder.
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
        logvar = LOGVAR_BOUND * torch.tanh(out[:, n : 2 * n] / LOGVAR_BOUND)
        return out[:, :n], logvar, out[:, 2 * n :]
