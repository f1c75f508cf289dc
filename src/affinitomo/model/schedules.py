"""beta and gamma schedules over epochs, with the reference implementation's options.

Kinds: "flat" (always ``max``), "ramp" (one rise from ``min`` to ``max`` over the first
``ratio`` of training, then ``max``), and "cycle_linear", "cycle_sigmoid", "cycle_cosine"
(``cycles`` periods; in each, a rise from ``min`` to ``max`` over the first ``ratio`` of the
period, then ``max``; Fu et al. 2019 cyclical annealing). The rise is linear, a logistic
curve on [-6, 6], or half a cosine. Unlike the reference (whose arrays default to 1 outside
the rise), the value after the rise is ``max``, and the sigmoid rise is rescaled to start at ``min`` and end at ``max``. The schedule is a pure function of the
epoch, so resuming needs no schedule state beyond the epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

KINDS = ("flat", "ramp", "cycle_linear", "cycle_sigmoid", "cycle_cosine")


@dataclass
class Schedule:
    """One weight's schedule (beta or gamma)."""

    kind: str = "flat"
    min: float = 0.0
    max: float = 1.0
    cycles: int = 4
    ratio: float = 0.5

    def problems(self, name: str) -> list[tuple[str, str]]:
        """(field, expected) for each invalid setting."""
        out = []
        if self.kind not in KINDS:
            out.append((f"{name}.kind", f"one of {', '.join(KINDS)}; got {self.kind!r}"))
        if self.cycles < 1:
            out.append((f"{name}.cycles", f"an integer >= 1, got {self.cycles}"))
        if not 0 < self.ratio <= 1:
            out.append((f"{name}.ratio", f"a number in (0, 1], got {self.ratio}"))
        if self.min < 0 or self.max < 0:
            out.append((f"{name}.min/max", "non-negative weights"))
        return out

    def value(self, epoch: int, epochs: int) -> float:
        """Weight at ``epoch`` (0-based) of a run of ``epochs`` epochs."""
        if self.kind == "flat":
            return float(self.max)
        cycles = 1 if self.kind == "ramp" else self.cycles
        period = max(epochs, 1) / cycles
        rise = period * self.ratio
        t = min(((epoch % period) if cycles > 1 else epoch) / rise, 1.0) if rise > 0 else 1.0
        if self.kind == "cycle_sigmoid":  # logistic on [-6, 6], rescaled to start at 0 and end at 1
            lo, hi = _logistic(-6.0), _logistic(6.0)
            t = (_logistic(12.0 * t - 6.0) - lo) / (hi - lo)
        elif self.kind == "cycle_cosine":
            t = 0.5 - 0.5 * math.cos(math.pi * t)
        return float(self.min + (self.max - self.min) * t)

    def values(self, epochs: int) -> list[float]:
        """The whole schedule, one value per epoch."""
        return [self.value(e, epochs) for e in range(epochs)]


def _logistic(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))
