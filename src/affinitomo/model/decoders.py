"""Decoders: a 3D transposed-convolution decoder, and one with an explicit rotation."""

from __future__ import annotations

import torch
from torch import nn

from affinitomo.model.rotations import matrix_from_pose, rotate_volumes


class CNNDecoder(nn.Module):
    """Linear layer to the bottom grid, then 4x4x4 stride-2 transposed convolutions.

    Mirrors :class:`~affinitomo.model.encoder.Encoder`: the pose (if any) is concatenated
    to the latent sample. ``output`` is "linear" (for MSE on standardised volumes) or
    "sigmoid" (for BCE on volumes scaled to [0, 1]).
    """

    def __init__(
        self,
        box: int,
        filters: list[int],
        latent_dims: int,
        pose_dims: int,
        batch_norm: bool = True,
        output: str = "linear",
    ):
        super().__init__()
        self.bottom = box // 2 ** len(filters)
        self.top_channels = filters[-1]
        self.fc = nn.Linear(latent_dims + pose_dims, filters[-1] * self.bottom**3)
        layers: list[nn.Module] = []
        for level in reversed(range(len(filters))):
            out_ch = filters[level - 1] if level > 0 else 1
            layers.append(nn.ConvTranspose3d(filters[level], out_ch, kernel_size=4, stride=2, padding=1))
            if level > 0:
                layers.append(nn.ReLU(inplace=True))
                if batch_norm:
                    layers.append(nn.BatchNorm3d(out_ch))
        if output == "sigmoid":
            layers.append(nn.Sigmoid())
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, pose: torch.Tensor | None = None) -> torch.Tensor:
        if pose is not None and pose.shape[1] > 0:
            z = torch.cat([z, pose], dim=1)
        b = self.bottom
        x = self.fc(z).view(z.shape[0], self.top_channels, b, b, b)
        if z.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last_3d)  # faster oneDNN kernels
        return self.deconv(x)


class RotationDecoder(nn.Module):
    """Decode the content latent to a canonical volume, then rotate it by the pose.

    The pose is a rotation parameterisation (6D or quaternion) turned into a matrix A
    rotating the canonical frame into the particle (RELION convention), applied with
    ``affine_grid`` + ``grid_sample``. The canonical volume depends on content only, so the
    pose is forced to carry the orientation, and A is a real orientation estimate (up to one
    global rotation per class between the learnt canonical frame and the true one).
    """

    def __init__(
        self,
        box: int,
        filters: list[int],
        latent_dims: int,
        rotation: str = "6d",
        batch_norm: bool = True,
        output: str = "linear",
    ):
        super().__init__()
        self.rotation = rotation
        self.canonical = CNNDecoder(box, filters, latent_dims, 0, batch_norm, output)

    def matrices(self, pose: torch.Tensor) -> torch.Tensor:
        """Rotation matrices (N, 3, 3) from pose parameters."""
        return matrix_from_pose(pose.float(), self.rotation)

    def forward(self, z: torch.Tensor, pose: torch.Tensor | None = None) -> torch.Tensor:
        if pose is None:
            raise ValueError("the rotation decoder needs a pose")
        volume = self.canonical(z)
        return rotate_volumes(volume.contiguous(), self.matrices(pose))
