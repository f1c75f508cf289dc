"""Pose refinement through the explicit-rotation decoder (analysis by synthesis).

The encoder's rotation is a one-shot regression; it lands near the true pose but not on it
(demo L-shapes: ~20 degrees median on held-out particles). The decoder, however, renders the
content latent as a canonical volume that, rotated by the right pose, reconstructs the particle.
Refinement keeps that canonical volume fixed and minimises the same reconstruction error over
the rotation alone, starting from the encoder's estimate: ``A = A0 expm([w]x)`` with Adam on
the rotation vector ``w`` (3 numbers per particle, no network weights change). A local search:
it corrects estimates within its basin (tens of degrees), not a wrong one.
"""

from __future__ import annotations

import torch

from affinitomo.model.rotations import matrix_from_rotvec, rotate_volumes

REFINE_STEPS = 30  # Adam steps; 0 = the encoder's rotation as it is (TrainConfig.pose_refine_steps)
REFINE_LR = 0.02  # radians (~1.1 degrees) per step at most, so at most ~35 degrees in 30 steps


def refine_rotations(
    decoder: torch.nn.Module,
    x: torch.Tensor,
    z: torch.Tensor,
    start: torch.Tensor,
    steps: int = REFINE_STEPS,
    lr: float = REFINE_LR,
) -> torch.Tensor:
    """Rotations (N, 3, 3) near ``start`` that best reconstruct ``x`` (N, 1, B, B, B) from latents ``z``.

    ``decoder`` is a :class:`~affinitomo.model.decoders.RotationDecoder` (its ``canonical``
    network renders ``z``); the objective is the mean squared error of each particle, as in
    training with ``recon_loss: mse``. Works under ``torch.no_grad()`` too; no parameter of
    ``decoder`` is changed or receives a gradient.
    """
    start = start.detach().float()
    if steps <= 0:
        return start
    with torch.no_grad():
        canonical = decoder.canonical(z.float()).float().contiguous()
    target = x.detach().float().contiguous()
    with torch.enable_grad():
        w = torch.zeros(len(start), 3, device=start.device, requires_grad=True)
        optimiser = torch.optim.Adam([w], lr=lr)
        for _ in range(steps):
            optimiser.zero_grad(set_to_none=True)
            recon = rotate_volumes(canonical, start @ matrix_from_rotvec(w))
            loss = (recon - target).pow(2).flatten(1).mean(1).sum()  # per-particle terms: independent
            loss.backward()
            optimiser.step()
    with torch.no_grad():
        return start @ matrix_from_rotvec(w.detach())
