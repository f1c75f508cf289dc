"""The extraction stack, memory-mapped, read one batch at a time (no worker processes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from affinitomo.errors import InputError
from affinitomo.io.stacks import SubtomoStack


class StackSet:
    """Several stacks seen as one: row i of the set is a row of one member stack.

    An index map (source, row) over the members' memmaps; nothing is loaded into memory.
    All members must have the same box size. Offers the reading interface of
    :class:`SubtomoStack` (``read``, ``box``, ``len``, ``path``).
    """

    def __init__(self, stacks: list[SubtomoStack]):
        if not stacks:
            raise ValueError("StackSet needs at least one stack")
        box = stacks[0].box
        for s in stacks[1:]:
            if s.box != box:
                raise InputError(s.path, "shape", f"boxes of {box}^3 like {stacks[0].path}, got {s.box}^3")
        self.stacks = list(stacks)
        sizes = np.array([len(s) for s in stacks], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(sizes)])
        self.source = np.repeat(np.arange(len(stacks)), sizes)  # (N,) member of each row

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def box(self) -> int:
        return self.stacks[0].box

    @property
    def path(self) -> Path:
        """The first member's path (for messages)."""
        return self.stacks[0].path

    def read(self, indices: np.ndarray, normalise: str = "zscore") -> np.ndarray:
        """Rows ``indices`` of the set as (n, 1, B, B, B) float32, normalised per particle."""
        indices = np.asarray(indices, dtype=np.int64)
        out = np.empty((len(indices), 1) + (self.box,) * 3, np.float32)
        src = self.source[indices]
        for k in np.unique(src):
            where = np.flatnonzero(src == k)
            out[where] = self.stacks[k].read(indices[where] - self.offsets[k], normalise)
        return out


def _axis_half_turns() -> dict[str, np.ndarray]:
    """180-degree rotations about X, Y, Z as matrices acting on (x, y, z)."""
    return {
        "x": np.diag([1.0, -1.0, -1.0]),
        "y": np.diag([-1.0, 1.0, -1.0]),
        "z": np.diag([-1.0, -1.0, 1.0]),
    }


def wedge_group() -> np.ndarray:
    """(4, 3, 3): identity and the half turns about X, Y and Z.

    These are the proper rotations that map a missing wedge about the tilt axis Y onto
    itself. A tilt range symmetric about 0 leaves {k: |k_z| > |k_x| tan(max tilt)} unchanged
    under k -> (+-k_x, +-k_y, +-k_z) with an even number of sign flips (rotations, not
    mirrors). The half turn about Y keeps even an asymmetric range in place (it maps k to
    -k in the x-z plane, and a real volume's transform is Hermitian); the ones about X and Z
    mirror the range (a -50..60 wedge becomes -60..50), so they assume a near-symmetric
    range, as collected with almost every tilt scheme.
    """
    turns = _axis_half_turns()
    return np.stack([np.eye(3), turns["x"], turns["y"], turns["z"]])


def cube_group() -> np.ndarray:
    """(24, 3, 3): the proper rotations of a cube (multiples of 90 degrees about the axes)."""
    base = [np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], float),  # 90 degrees about Z
            np.array([[0, 0, 1], [0, 1, 0], [-1, 0, 0]], float),  # 90 degrees about Y
            np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], float)]  # 90 degrees about X
    found = {tuple(np.eye(3).ravel().astype(int))}
    frontier = [np.eye(3)]
    while frontier:
        nxt = []
        for m in frontier:
            for b in base:
                r = b @ m
                key = tuple(np.rint(r).ravel().astype(int))
                if key not in found:
                    found.add(key)
                    nxt.append(r)
        frontier = nxt
    return np.array(sorted(found), dtype=float).reshape(-1, 3, 3)


def rotate_exact(volume: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Rotate a ``[z, y, x]`` cube by a signed permutation matrix A (acting on x, y, z).

    Exact (no interpolation), about the box centre N//2 like
    :func:`affinitomo.geometry.rotate_volume`: out(c + A p) = in(c + p). For even N the one
    face plane that has no partner wraps around (it is background in an extraction box).
    """
    n = volume.shape[-1]
    c = n // 2
    rev = np.asarray(matrix, float)[::-1, ::-1]  # the same matrix acting on (z, y, x)
    grid = np.indices((n, n, n)).reshape(3, -1) - c
    src = np.rint(rev.T @ grid).astype(np.int64) + c  # input index of each output voxel
    src %= n
    flat = (src[0] * n + src[1]) * n + src[2]
    return volume.reshape(-1)[flat].reshape(volume.shape)


def group_augment(
    batch: np.ndarray, group: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Rotate each (1, B, B, B) volume by a random element of ``group``.

    Returns the rotated batch and the (n, 3, 3) matrices R used: a particle with pose A
    (reference -> particle) has pose R @ A after the rotation.
    """
    picks = rng.integers(0, len(group), size=len(batch))
    out = np.empty_like(batch)
    for i, k in enumerate(picks):
        out[i, 0] = rotate_exact(batch[i, 0], group[k])
    return out, group[picks]


def rot90_augment(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Apply a random proper 90-degree rotation (one of 24) to each (1, B, B, B) volume."""
    return group_augment(batch, cube_group(), rng)[0]


AUGMENTATION_GROUPS = {"rot90": cube_group, "wedge": wedge_group}


def split_indices(rows: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random train/validation split of ``rows`` (reproducible from ``seed``)."""
    rows = np.asarray(rows, dtype=np.int64)
    rng = np.random.default_rng([seed, 7919])
    perm = rng.permutation(rows)
    n_val = int(round(len(rows) * val_fraction))
    if val_fraction > 0 and len(rows) >= 4:
        n_val = max(n_val, 1)
    n_val = min(n_val, max(len(rows) - 2, 0))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def stratified_split(
    rows: np.ndarray, groups: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Train/validation split of ``rows`` with each group (``groups[i]`` for ``rows[i]``)
    split in the same proportion, so that small groups (e.g. real labelled particles of
    each class, beside many simulated ones) are represented in validation.

    Each group's share is rounded; the total is at least one particle when ``val_fraction``
    > 0 and at least 4 rows exist, and at least two rows stay in training.
    """
    rows = np.asarray(rows, dtype=np.int64)
    groups = np.asarray(groups)
    rng = np.random.default_rng([seed, 7919])
    val: list[np.ndarray] = []
    remainder: list[tuple[float, np.ndarray]] = []
    for g in np.unique(groups):
        members = rng.permutation(rows[groups == g])
        exact = len(members) * val_fraction
        k = int(np.floor(exact))
        val.append(members[:k])
        if k < len(members):
            remainder.append((exact - k, members[k:]))
    n_val = sum(len(v) for v in val)
    target = int(round(len(rows) * val_fraction))
    if val_fraction > 0 and len(rows) >= 4:
        target = max(target, 1)
    target = min(target, max(len(rows) - 2, 0))
    # hand out the rounding remainders to the groups with the largest fractional parts
    order = sorted(range(len(remainder)), key=lambda i: -remainder[i][0])
    for i in order:
        if n_val >= target:
            break
        val.append(remainder[i][1][:1])
        n_val += 1
    val_rows = np.sort(np.concatenate(val)) if val else np.empty(0, np.int64)
    if len(val_rows) > target:
        val_rows = np.sort(rng.permutation(val_rows)[:target])
    train_rows = np.setdiff1d(rows, val_rows)
    return train_rows, val_rows
