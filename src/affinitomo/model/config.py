"""Architecture settings of the Affinity-VAE, as one plain dataclass."""

from __future__ import annotations

from dataclasses import dataclass

ROTATION_SIZES = {"6d": 6, "quaternion": 4}


@dataclass
class ModelConfig:
    """How to build the network.

    Defaults: depth 3, 16 base channels doubling per level (16-32-64), latent 8, pose 1,
    batch norm, CNN decoder. The reference implementation's benchmark architecture has 32
    base channels; 16 trains ~3x faster on CPU and reached known-class macro F1 0.80 on
    the demo (32 with the same training settings was not measured), so about a thousand
    particles train in ~3 minutes on two cores. Set ``channels: 32`` for large
    boxes of detailed maps. Boxes must be divisible by 2**depth.
    """

    depth: int = 3
    channels: int = 16  # base channels, doubled at each level (ignored when filters is set)
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
