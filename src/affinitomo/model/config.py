"""Architecture settings of the Affinity-VAE, as one plain dataclass."""

from __future__ import annotations

from dataclasses import dataclass

ROTATION_SIZES = {"6d": 6, "quaternion": 4}


@dataclass
class ModelConfig:
    """How to build the network.

    Defaults (depth 3, 32 base channels doubling per level, latent 8, pose 1, batch norm,
    CNN decoder) are the reference implementation's benchmark architecture: it is known to
    work on 32^3 to 64^3 boxes of many proteins, and trains in about a minute on two CPU
    cores for a few hundred particles. Boxes must be divisible by 2**depth.
    """

    depth: int = 3
    channels: int = 32  # base channels, doubled at each level (ignored when filters is set)
    filters: list[int] | None = None  # explicit channels per level; len(filters) is the depth
    batch_norm: bool = True
    latent_dims: int = 8
    pose_dims: int = 1  # CNN decoder only; the rotation decoder's pose is its rotation
    decoder: str = "cnn"  # "cnn" or "rotation"
    rotation: str = "6d"  # "6d" or "quaternion" (rotation decoder only)
    output: str = "linear"  # decoder output: "linear" (MSE on standardised data) or "sigmoid"

    def level_filters(self) -> list[int]:
        """Channels at each encoder level."""
        if self.filters:
            return [int(f) for f in self.filters]
        return [self.channels * 2**i for i in range(self.depth)]

    def pose_size(self) -> int:
        """Number of pose outputs of the encoder."""
        if self.decoder == "rotation":
            return ROTATION_SIZES[self.rotation]
        return self.pose_dims

    def problems(self, box: int | None = None) -> list[tuple[str, str]]:
        """(field, expected) for every invalid setting; empty when valid."""
        out: list[tuple[str, str]] = []
        if self.decoder not in ("cnn", "rotation"):
            out.append(("model.decoder", f"'cnn' or 'rotation', got {self.decoder!r}"))
        if self.rotation not in ROTATION_SIZES:
            out.append(("model.rotation", f"'6d' or 'quaternion', got {self.rotation!r}"))
        if self.output not in ("linear", "sigmoid"):
            out.append(("model.output", f"'linear' or 'sigmoid', got {self.output!r}"))
        filters = self.level_filters() if (self.filters or self.depth >= 1) else []
        if not filters or any(int(f) < 1 for f in filters):
            out.append(("model.filters", "at least one level with positive channel counts"))
        if self.latent_dims < 1:
            out.append(("model.latent_dims", f"an integer >= 1, got {self.latent_dims}"))
        if self.pose_dims < 0:
            out.append(("model.pose_dims", f"an integer >= 0, got {self.pose_dims}"))
        if box is not None and filters and box % (2 ** len(filters)) != 0:
            out.append(("model.depth", f"box size {box} divisible by 2**depth = {2 ** len(filters)}"))
        return out
