"""All training options in one dataclass, parsed from a JSON string or a YAML/JSON file."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from affinitomo.errors import InputError
from affinitomo.model.config import ModelConfig
from affinitomo.model.schedules import Schedule
from affinitomo.options import read_options

#: ``min_steps`` "auto" without simulated particles (:meth:`TrainConfig.epochs_for`).
MIN_STEPS_AUTO = 300


def _beta_default() -> Schedule:
    return Schedule(kind="ramp", min=0.0, max=0.1, cycles=1, ratio=0.25)


def _gamma_default() -> Schedule:
    return Schedule(kind="flat", min=0.0, max=1.0, cycles=1, ratio=1.0)


@dataclass
class TrainConfig:
    """Every training option, with its default.

    Keys (nested dicts for ``model``, ``beta`` and ``gamma``; a bare number for ``beta`` or
    ``gamma`` means a flat schedule at that value):

    - ``model``: :class:`~affinitomo.model.config.ModelConfig` (depth 3, channels 16, filters
      None, batch_norm True, latent_dims 8, pose_dims 1, decoder "cnn", rotation "6d",
      output "linear").
    - ``recon_loss``: "mse" (default; standardised real-valued data) or "bce" (needs
      ``normalise: minmax`` and ``model.output: sigmoid``, set automatically).
    - ``kl_reduction``: "mean" (over latent dims and batch, default) or "sum" (over dims,
      mean over batch, as the reference).
    - ``beta``: KL weight schedule; default a linear warm-up 0 -> 0.1 over the first quarter
      of training (avoids posterior collapse early; a standard VAE practice). Why 0.1: both
      terms are means, the reconstruction over B^3 voxels (32768 at 32^3) and the KL over
      the latent dims (8), so beta 1 weighs the KL ~4000x more, per unit of information,
      than the reference's summed terms with beta 1; it collapsed the class content of the
      latents (demo: f1_macro 0.15 at beta 1, 0.80 at beta 0.1, everything else equal but
      lr/batch, see docs in the report). 0.1 still keeps the latents near N(0, I).
    - ``gamma``: affinity weight schedule; default flat 1 (the affinity term, in [0, 2], on
      the same footing as the per-voxel reconstruction error of unit-variance data).
    - ``epochs`` 20, ``batch_size`` 32, ``learning_rate`` 2e-3 (Adam), ``weight_decay`` 0:
      data sets of a few hundred to a few thousand particles get twice the optimiser steps
      per epoch of batch 64 at the same CPU throughput (batch 32 fills two cores already).
    - ``min_steps`` "auto" (default) or an integer >= 0: ``epochs`` is raised, when needed, so that
      training takes at least this many optimiser steps (:meth:`epochs_for`). "auto" is
      :data:`MIN_STEPS_AUTO` (300) when no simulated particle is in the training data, 0 otherwise.
      Why: a template-free run (a matrix CSV and labels, no templates) trains on its labelled
      particles alone, a few batches per epoch, so 20 epochs are ~60 steps and the losses still
      fall. On the template-free tier of benchmarks/bench_ablation.py (split 0, seed 0: 72
      training particles, 3 batches per epoch) 300 steps (100 epochs) gave known-class macro F1
      0.573 against 0.285 at 20 epochs, ARI of the groups 0.563 against 0.468. With simulated
      particles (1000 per known class by default) 20 epochs are thousands of steps already.
    - ``val_fraction`` 0.1 (random from ``seed``, stratified by class and real/simulated, so
      real labelled particles are validated on; best.pt then follows their loss), ``seed`` 0.
    - ``augmentation``: "wedge" (default: a random one of the identity and the
      half turns about X, Y and Z: the proper rotations that keep a missing wedge about the
      tilt axis Y in place, see :func:`~affinitomo.train.data.wedge_group`) or "rot90"
      (random proper 90-degree rotations: 24 of them, but 90 degrees about X or Z turns the
      wedge, so the model sees wedges real data never have) or "none". Never mirrors, which would
      change the hand of a protein. True poses are rotated with the volumes.
    - ``pose_weight`` 1.0: weight of the pose loss (rotation decoder only), the chordal
      distance 1 - cos(angle) between predicted and true rotations, in [0, 2] like the
      affinity term and given the same weight as gamma's default. See
      :func:`~affinitomo.model.losses.pose_loss` for the symmetric-class caveat.
    - ``pose_refine_steps`` 30: at encoding (rotation decoder only), steps refining each
      particle's rotation through the decoder, the canonical volume fixed
      (:func:`~affinitomo.model.refine.refine_rotations`); 0 = the encoder's rotation as is.
      Held-out asymmetric demo classes (benchmarks/bench_pose.py): median error 9.5-21 ->
      4.6-8.3 degrees; costs ~30 decoder-sized passes per particle at encoding. Does not affect training (may change on resume).
    - ``true_poses``: which rows' angles supervise the pose: "simulated" (default; rows with
      afmSimulated=1), "table" (every row with rlnAngleRot/Tilt/Psi, e.g. poses refined by
      subtomogram averaging) or "none".
    - ``normalise``: "zscore" per particle (default; makes any data set's intensity scale
      comparable), "minmax" per particle to [0, 1], or "none".
    - ``checkpoint_every`` 5 epochs (model.pt; best.pt at every new best validation loss).
    - ``semi_supervised`` False: when True unlabelled particles join training for
      reconstruction + KL; the affinity term uses labelled pairs only. Off also without simulated
      particles: on the template-free tier of benchmarks/bench_ablation.py (split 0) it gave
      known-class F1 0.272 against 0.285 labelled-only at 20 epochs, 0.401 against 0.573 at 100.
    - ``num_threads`` 0 (= all cores this process may use).
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    recon_loss: str = "mse"
    kl_reduction: str = "mean"
    beta: Schedule = field(default_factory=_beta_default)
    gamma: Schedule = field(default_factory=_gamma_default)
    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 0.0
    val_fraction: float = 0.1
    seed: int = 0
    augmentation: str = "wedge"
    pose_weight: float = 1.0
    pose_refine_steps: int = 30
    true_poses: str = "simulated"
    normalise: str = "zscore"
    checkpoint_every: int = 5
    semi_supervised: bool = False
    min_steps: int | str = "auto"
    num_threads: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (for checkpoints and logs)."""
        return asdict(self)

    def threads(self) -> int:
        """Number of CPU threads to use."""
        if self.num_threads > 0:
            return self.num_threads
        try:
            return len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - non-Linux
            return os.cpu_count() or 1

    def epochs_for(self, batches_per_epoch: int, any_simulated: bool) -> int:
        """``epochs``, raised so that ``batches_per_epoch`` x epochs reaches ``min_steps`` ("auto"
        resolved by whether the training data hold simulated particles)."""
        steps = (0 if any_simulated else MIN_STEPS_AUTO) if self.min_steps == "auto" else int(self.min_steps)
        return max(self.epochs, -(-steps // max(batches_per_epoch, 1)))

    def problems(self) -> list[tuple[str, str]]:
        """(field, expected) for each invalid option."""
        out = self.model.problems()
        out += self.beta.problems("beta") + self.gamma.problems("gamma")
        choices = {
            "recon_loss": ("mse", "bce"),
            "kl_reduction": ("mean", "sum"),
            "augmentation": ("none", "wedge", "rot90"),
            "true_poses": ("simulated", "table", "none"),
            "normalise": ("zscore", "minmax", "none"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                out.append((name, f"one of {', '.join(allowed)}; got {getattr(self, name)!r}"))
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "checkpoint_every": self.checkpoint_every}
        for name, value in positive.items():
            if value < 1:
                out.append((name, f"an integer >= 1, got {value}"))
        if self.learning_rate <= 0:
            out.append(("learning_rate", f"a positive number, got {self.learning_rate}"))
        if self.pose_refine_steps < 0:
            out.append(("pose_refine_steps", f"an integer >= 0, got {self.pose_refine_steps}"))
        if self.pose_weight < 0:
            out.append(("pose_weight", f"a non-negative number, got {self.pose_weight}"))
        if not 0 <= self.val_fraction < 1:
            out.append(("val_fraction", f"a number in [0, 1), got {self.val_fraction}"))
        if self.recon_loss == "bce" and self.normalise == "zscore":
            out.append(("normalise", "'minmax' or 'none' (data in [0, 1]) with recon_loss 'bce'"))
        return out


def _build(cls: type, values: Any, prefix: str, source: str) -> Any:
    """Instantiate dataclass ``cls`` from a dict, rejecting unknown keys and wrong types."""
    if not isinstance(values, dict):
        raise InputError(source, prefix or None, f"a mapping of options, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    defaults = cls()
    for key, value in values.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if key not in fields:
            raise InputError(source, name, f"a known option; known: {', '.join(sorted(fields))}")
        default = getattr(defaults, key)
        if dataclasses.is_dataclass(default):
            if isinstance(value, (int, float)) and not isinstance(value, bool) and isinstance(default, Schedule):
                value = {"kind": "flat", "max": float(value)}
            kwargs[key] = _build(type(default), value, name, source)
            continue
        kwargs[key] = _coerce(value, default, name, source)
    return cls(**kwargs)


def _coerce(value: Any, default: Any, name: str, source: str) -> Any:
    """Check ``value`` has the type of ``default`` (ints accepted for floats)."""
    if name == "min_steps":  # an integer or "auto"
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            return value
        raise InputError(source, name, f"an integer >= 0 or 'auto', got {value!r}")
    if default is None:  # model.filters
        if value is None:
            return None
        if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return value
        raise InputError(source, name, f"a list of integers, got {value!r}")
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    raise InputError(source, name, f"a {type(default).__name__}, got {value!r}")


def config_from_dict(values: dict[str, Any] | None, source: str = "options") -> TrainConfig:
    """Validated :class:`TrainConfig` from a (possibly partial) nested dict."""
    config = _build(TrainConfig, values or {}, "", source)
    if config.recon_loss == "bce":
        if config.normalise == "zscore" and "normalise" not in (values or {}):
            config.normalise = "minmax"
        config.model.output = "sigmoid"
    problems = config.problems()
    if problems:
        name, expected = problems[0]
        raise InputError(source, name, expected)
    return config


def parse_options(text: str | None) -> TrainConfig:
    """Options from an inline JSON object, or from a YAML/JSON file path; None -> defaults
    (:func:`affinitomo.options.read_options`: a key given twice is an error)."""
    values, source = read_options(text)
    return config_from_dict(values, str(source))
