"""The training loop: epochs, validation, metrics CSV, checkpoints, exact resume, NaN guard."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from affinitomo.errors import InputError
from affinitomo.io.atomic import atomic_path
from affinitomo.io.stacks import SubtomoStack
from affinitomo.model import losses
from affinitomo.model.checkpoint import load_checkpoint, save_checkpoint
from affinitomo.model.device import autocast, pick_device
from affinitomo.model.train_config import TrainConfig, config_from_dict
from affinitomo.model.vae import AffinityVAE
from affinitomo.progress import progress_bar
from affinitomo.train import distributed as ddp
from affinitomo.train.data import AUGMENTATION_GROUPS, StackSet, group_augment, stratified_split

log = logging.getLogger(__name__)

TERMS = ("total", "recon", "kl", "affinity", "pose")
CSV_COLUMNS = (
    ["epoch"] + [f"train_{t}" for t in TERMS] + [f"val_{t}" for t in TERMS]
    + ["val_real_total", "beta", "gamma", "samples_per_s", "seconds"]
)
# Options that may change between a run and its resumption.
RESUMABLE_CHANGES = {"epochs", "num_threads", "checkpoint_every", "pose_refine_steps"}


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainingData:
    """What training needs: the stack(s), per-row labels (-1 = unlabelled), class names, matrix.

    Optional per-row facts: ``rotations`` (N, 3, 3) true poses A (reference -> particle,
    RELION convention; NaN rows where unknown) and ``simulated`` (N,) True for particles
    simulated from templates (afmSimulated=1). Without them no pose is known and every
    particle counts as real.
    """

    stack: SubtomoStack | StackSet
    labels: np.ndarray  # (N,) int64 class index into ``classes``, -1 unlabelled
    classes: list[str]
    matrix: np.ndarray  # (C, C) similarity in [-1, 1], rows/cols in ``classes`` order
    rotations: np.ndarray | None = None  # (N, 3, 3) float32, NaN where unknown
    simulated: np.ndarray | None = None  # (N,) bool

    def is_simulated(self) -> np.ndarray:
        """(N,) bool, all False when no simulated flag was given."""
        if self.simulated is None:
            return np.zeros(len(self.labels), bool)
        return np.asarray(self.simulated, bool)

    def pose_known(self, source: str) -> np.ndarray:
        """(N,) bool: rows whose true pose supervises the rotation head.

        ``source``: "simulated" (rows with afmSimulated=1 and angles), "table" (every row
        with angles, e.g. poses from subtomogram averaging) or "none".
        """
        if self.rotations is None or source == "none":
            return np.zeros(len(self.labels), bool)
        finite = np.isfinite(np.asarray(self.rotations)).reshape(len(self.labels), -1).all(1)
        return finite & self.is_simulated() if source == "simulated" else finite

    def rows(self, semi_supervised: bool) -> np.ndarray:
        """Stack rows used for training: labelled ones, or all with ``semi_supervised``."""
        if semi_supervised:
            return np.arange(len(self.labels))
        return np.flatnonzero(self.labels >= 0)


def _epoch_batches(
    rows: np.ndarray, batch_size: int, rng: np.random.Generator | None, info: ddp.DistInfo
) -> list[np.ndarray]:
    """Shuffle ``rows`` (unless ``rng`` is None) and cut this rank's share into near-equal batches.

    Every rank gets the same number of batches of the same sizes (needed by all_gather), and
    ``array_split`` avoids a trailing batch of one (batch norm needs two).
    """
    perm = rng.permutation(rows) if rng is not None else np.asarray(rows)
    usable = len(perm) - len(perm) % info.world_size
    mine = perm[:usable][info.rank :: info.world_size]
    if len(mine) == 0:
        return []
    n_batches = max(1, math.ceil(len(mine) / batch_size))
    return [b for b in np.array_split(mine, n_batches) if len(b)]


def _adam(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Adam:
    """Adam; the fused kernel (one pass over all parameters) where this torch supports it."""
    kwargs = {"lr": config.learning_rate, "weight_decay": config.weight_decay}
    device = next(model.parameters()).device.type
    if device in ("cpu", "cuda"):
        try:
            return torch.optim.Adam(model.parameters(), fused=True, **kwargs)
        except (RuntimeError, TypeError):  # older torch: no fused CPU Adam
            pass
    return torch.optim.Adam(model.parameters(), **kwargs)


def _state_dict_cpu(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


class Trainer:
    """Holds the model, optimiser and history of one training run in ``out_dir``."""

    def __init__(self, data: TrainingData, out_dir: str | Path, config: TrainConfig, device: str = "auto"):
        self.data = data
        self.out_dir = Path(out_dir)
        self.config = config
        torch.set_num_threads(config.threads())
        self.device = pick_device(device, int(os.environ.get("LOCAL_RANK", "0")))
        self.info = ddp.init_distributed(self.device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        torch.manual_seed(config.seed)
        self.model = AffinityVAE(config.model, data.stack.box).to(self.device)
        if self.device.type == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last_3d)
        self.net: torch.nn.Module = self.model
        if self.info.enabled:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.optimizer = _adam(self.model, config)
        self.matrix = torch.as_tensor(data.matrix, dtype=torch.float32, device=self.device)
        self.labels = torch.as_tensor(data.labels, dtype=torch.int64)
        rows = data.rows(config.semi_supervised)
        if len(rows) < 2:
            raise InputError(data.stack.path, "afmClassName", f"at least 2 training particles, got {len(rows)}")
        # validation split per (real/simulated, class): real labelled particles stay in validation
        sim = data.is_simulated()
        groups = (data.labels[rows] + 1) + (len(data.classes) + 1) * sim[rows]
        self.train_rows, self.val_rows = stratified_split(rows, groups, config.val_fraction, config.seed)
        epochs = config.epochs_for(len(_epoch_batches(self.train_rows, config.batch_size, None, self.info)),
                                   bool(sim.any()))
        if epochs != config.epochs:
            log.info("%d epochs (min_steps %s)", epochs, config.min_steps)
            self.config = config = dataclasses.replace(config, epochs=epochs)
        self.val_real = self.val_rows[~sim[self.val_rows]]
        self.val_sim = self.val_rows[sim[self.val_rows]]
        known = data.pose_known(config.true_poses) if self.model.has_rotation else np.zeros(len(data.labels), bool)
        self.supervise_pose = bool(config.pose_weight > 0 and known.any())
        if self.supervise_pose:
            rot = np.where(known[:, None, None], np.asarray(data.rotations, np.float32), np.nan)
            self.rotations = torch.as_tensor(rot, dtype=torch.float32)
        self.group = AUGMENTATION_GROUPS[config.augmentation]() if config.augmentation != "none" else None
        self.history: list[dict] = []
        self.best_val = math.inf
        self.start_epoch = 0

    # -- files ---------------------------------------------------------------------------
    @property
    def model_path(self) -> Path:
        return self.out_dir / "model.pt"

    @property
    def best_path(self) -> Path:
        return self.out_dir / "best.pt"

    @property
    def csv_path(self) -> Path:
        return self.out_dir / "training.csv"

    def payload(self, epoch: int) -> dict:
        """Checkpoint content after ``epoch`` completed epochs."""
        return {
            "config": self.config.to_dict(),
            "classes": list(self.data.classes),
            "matrix": torch.as_tensor(self.data.matrix, dtype=torch.float32).cpu(),
            "box": self.data.stack.box,
            "model": _state_dict_cpu(self.model),
            "optimizer": self.optimizer.state_dict(),
            "epoch": epoch,
            "history": [dict(r) for r in self.history],
            "best_val": float(self.best_val),
            "schedules": {
                "beta": self.config.beta.values(self.config.epochs),
                "gamma": self.config.gamma.values(self.config.epochs),
            },
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            },
            "split": {"train": torch.as_tensor(self.train_rows), "val": torch.as_tensor(self.val_rows)},
        }

    def write_csv(self) -> None:
        frame = pd.DataFrame(self.history, columns=CSV_COLUMNS)
        with atomic_path(self.csv_path) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6g")

    def write_plot(self, quiet: bool = False) -> None:
        """loss.png of the epochs so far; ``quiet`` (training already failed): a failure to write it
        is logged, so that the error that stopped training is the one reported."""
        from affinitomo.plots.training import plot_training

        try:
            plot_training(pd.DataFrame(self.history, columns=CSV_COLUMNS), self.out_dir / "loss.png")
        except Exception as exc:  # noqa: BLE001 - only when quiet; re-raised otherwise
            if not quiet:
                raise
            log.warning("%s not written: %s", self.out_dir / "loss.png", exc)

    def start_afresh(self) -> None:
        """Remove an earlier run's model.pt, best.pt, training.csv and loss.png from the output folder.

        A fresh run writes them again, but not all at once: killed before its first model.pt,
        it would leave the earlier run's model beside its own best.pt and training.csv, as if
        they belonged together.
        """
        if not self.info.is_main:
            return
        earlier = [p for p in (self.model_path, self.best_path, self.csv_path, self.out_dir / "loss.png")
                   if p.is_file()]
        for path in earlier:
            path.unlink()
        if earlier:
            log.warning("training afresh in %s: removed the earlier run's %s (--resume continues a run instead)",
                        self.out_dir, ", ".join(p.name for p in earlier))

    # -- resume --------------------------------------------------------------------------
    def resume(self) -> bool:
        """Restore state from ``model.pt``; False when there is none to resume from."""
        if not self.model_path.is_file():
            log.warning("nothing to resume in %s: starting from scratch", self.out_dir)
            return False
        ckpt = load_checkpoint(self.model_path, map_location=self.device)
        old = config_from_dict(ckpt["config"], str(self.model_path)).to_dict()
        new = self.config.to_dict()
        for key in new:
            if key not in RESUMABLE_CHANGES and old.get(key) != new[key]:
                raise InputError(
                    self.model_path, f"config.{key}",
                    f"the same as the run being resumed ({old.get(key)!r}); got {new[key]!r}. "
                    "Start a new run (without --resume) to change it",
                )
        if list(ckpt["classes"]) != list(self.data.classes):
            raise InputError(self.model_path, "classes", f"the same training classes as now ({self.data.classes})")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["rng"]["torch"].cpu())
        if torch.cuda.is_available() and ckpt["rng"]["cuda"]:
            torch.cuda.set_rng_state_all([s.cpu() for s in ckpt["rng"]["cuda"]])
        self.history = [dict(r) for r in ckpt["history"]]
        self.best_val = float(ckpt["best_val"])
        self.start_epoch = int(ckpt["epoch"])
        log.info("resuming %s after epoch %d", self.model_path, self.start_epoch)
        return True

    # -- one epoch -----------------------------------------------------------------------
    def _read(self, idx: np.ndarray, rng: np.random.Generator | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The batch on the device, and its true poses (NaN rows where unknown) or None."""
        batch = self.data.stack.read(idx, self.config.normalise)
        turns = None
        if rng is not None and self.group is not None:
            batch, turns = group_augment(batch, self.group, rng)
        x = torch.from_numpy(batch)
        if self.device.type == "cuda":  # page-locked, so the copy below overlaps the GPU's work
            x = x.pin_memory()
        x = x.to(self.device, non_blocking=True)
        if self.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last_3d)
        if not self.supervise_pose:
            return x, None
        true = self.rotations[torch.from_numpy(np.asarray(idx, np.int64))]
        if turns is not None:  # a particle of pose A rotated by R has pose R A
            true = torch.as_tensor(turns, dtype=torch.float32) @ true
        return x, true.to(self.device)

    def _loss(
        self, x: torch.Tensor, idx: np.ndarray, beta: float, gamma: float, true_rot: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        with autocast(self.device):
            out = self.net(x)
        recon = losses.reconstruction_loss(out.recon, x, self.config.recon_loss)
        kl = losses.kl_divergence(out.mu, out.logvar, self.config.kl_reduction)
        labels = self.labels[idx].to(self.device)
        mu_all = ddp.gather_with_grad(out.mu.float(), self.info)
        labels_all = ddp.gather_plain(labels, self.info)
        affinity = losses.affinity_loss(mu_all, labels_all, self.matrix)
        total = recon + beta * kl + gamma * affinity
        if true_rot is not None:
            pose = losses.pose_loss(self.model.rotation_matrices(out.pose.float()), true_rot)
            total = total + self.config.pose_weight * pose
        else:
            pose = torch.zeros((), device=recon.device)
        return {"total": total, "recon": recon, "kl": kl, "affinity": affinity, "pose": pose}

    def _check_finite(self, terms: dict[str, torch.Tensor], epoch: int, batch: int) -> None:
        flag = torch.tensor([0.0 if torch.isfinite(terms["total"]).item() else 1.0], device=self.device)
        if ddp.sum_across(flag, self.info).item() > 0:
            values = ", ".join(f"{k}={v.item():.4g}" for k, v in terms.items())
            kept = f"{self.model_path} (epoch {self.last_saved})" if self.last_saved else "no checkpoint yet"
            raise TrainingDiverged(
                f"non-finite loss at epoch {epoch + 1}, batch {batch + 1} ({values}); training stopped. "
                f"Last good checkpoint: {kept}. Try a lower learning_rate or beta/gamma, or check the input."
            )

    def _run_epoch(
        self, epoch: int, train: bool, bar: tqdm | None, rows: np.ndarray | None = None
    ) -> tuple[dict[str, float], int, float]:
        cfg = self.config
        beta, gamma = cfg.beta.value(epoch, cfg.epochs), cfg.gamma.value(epoch, cfg.epochs)
        if rows is None:
            rows = self.train_rows if train else self.val_rows
        rng = np.random.default_rng([cfg.seed, epoch, 0 if train else 1])
        batches = _epoch_batches(rows, cfg.batch_size, rng if train else None, self.info)
        self.net.train(train)
        sums = torch.zeros(len(TERMS), dtype=torch.float64)
        count = 0
        start = time.perf_counter()
        for b, (idx, (x, true_rot)) in enumerate(zip(batches, self._prefetched(batches, rng if train else None))):
            if train:
                terms = self._loss(x, idx, beta, gamma, true_rot)
                self._check_finite(terms, epoch, b)
                self.optimizer.zero_grad(set_to_none=True)
                terms["total"].backward()
                self.optimizer.step()
            else:
                with torch.no_grad():
                    terms = self._loss(x, idx, beta, gamma, true_rot)
            n = len(idx)
            sums += torch.tensor([terms[t].item() for t in TERMS], dtype=torch.float64) * n
            count += n
            if bar is not None and train:
                rate = count / max(time.perf_counter() - start, 1e-9)
                bar.set_postfix(
                    {k: f"{v / count:.4f}" for k, v in zip(TERMS, sums.tolist())} | {"samples/s": f"{rate:.0f}"},
                    refresh=False,
                )
                bar.update(0)
        seconds = time.perf_counter() - start
        totals = ddp.sum_across(torch.cat([sums, torch.tensor([float(count)], dtype=torch.float64)]), self.info)
        n_all = int(totals[-1].item())
        means = {t: (float(totals[i]) / n_all if n_all else float("nan")) for i, t in enumerate(TERMS)}
        return means, n_all, seconds

    def _prefetched(self, batches: list[np.ndarray], rng: np.random.Generator | None):
        """The batches read one ahead by a worker thread, so reading the memory-mapped stack (and
        the host-to-device copy) overlaps the model's work. One worker reads them in order, so the
        augmentation draws from ``rng`` in the same order as a plain loop: same batches, same weights."""
        with ThreadPoolExecutor(max_workers=1) as reader:
            pending = reader.submit(self._read, batches[0], rng) if len(batches) else None
            for b in range(len(batches)):
                batch = pending.result()
                if b + 1 < len(batches):
                    pending = reader.submit(self._read, batches[b + 1], rng)
                yield batch

    def _validate(self, epoch: int) -> tuple[dict[str, float], float]:
        """Validation means over all validation rows, and the total over the real ones alone.

        With both real and simulated rows they are run as separate batches (so the real
        particles' loss is not diluted) and the overall means are count-weighted.
        """
        if not (self.val_real.size and self.val_sim.size):
            means, _, _ = self._run_epoch(epoch, False, None)
            return means, (means["total"] if self.val_real.size else float("nan"))
        real, n_real, _ = self._run_epoch(epoch, False, None, self.val_real)
        simulated, n_sim, _ = self._run_epoch(epoch, False, None, self.val_sim)
        total = max(n_real + n_sim, 1)
        means = {t: (real[t] * n_real + simulated[t] * n_sim) / total for t in TERMS}
        return means, real["total"]

    # -- the run -------------------------------------------------------------------------
    def fit(self, on_epoch_end: Callable[[int, dict], None] | None = None, progress: bool = True) -> list[dict]:
        """Train up to ``config.epochs``; returns the per-epoch history."""
        cfg = self.config
        self.last_saved = self.start_epoch if self.start_epoch else 0
        main = self.info.is_main
        if main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        log.info(
            "training on %s: %d train / %d val particles, %d classes, box %d, %d threads",
            self.device, len(self.train_rows), len(self.val_rows), len(self.data.classes),
            self.data.stack.box, torch.get_num_threads(),
        )
        bar = progress_bar(total=cfg.epochs, initial=self.start_epoch, desc="train", unit="epoch",
                   disable=not (progress and main), dynamic_ncols=True)
        failed = True
        try:
            for epoch in range(self.start_epoch, cfg.epochs):
                train_means, n_train, seconds = self._run_epoch(epoch, True, bar)
                val_means, val_real = self._validate(epoch)
                row = {"epoch": epoch + 1}
                row.update({f"train_{k}": v for k, v in train_means.items()})
                row.update({f"val_{k}": v for k, v in val_means.items()})
                row.update({
                    "val_real_total": val_real,
                    "beta": cfg.beta.value(epoch, cfg.epochs),
                    "gamma": cfg.gamma.value(epoch, cfg.epochs),
                    "samples_per_s": n_train / max(seconds, 1e-9),
                    "seconds": seconds,
                })
                self.history.append(row)
                if self.val_real.size and self.val_sim.size:
                    score = val_real  # best.pt follows the real particles when there are both
                else:
                    score = row["val_total"] if self.val_rows.size else row["train_total"]
                improved = score < self.best_val
                if improved:
                    self.best_val = score
                done = epoch + 1
                if main:
                    self.write_csv()
                    if improved:
                        save_checkpoint(self.best_path, self.payload(done))
                    if done % cfg.checkpoint_every == 0 or done == cfg.epochs:
                        save_checkpoint(self.model_path, self.payload(done))
                        self.last_saved = done
                elif done % cfg.checkpoint_every == 0 or done == cfg.epochs:
                    self.last_saved = done
                ddp.barrier(self.info)
                bar.update(1)
                bar.set_postfix({"train": f"{row['train_total']:.4f}", "val": f"{row['val_total']:.4f}",
                                 "samples/s": f"{row['samples_per_s']:.0f}"})
                if on_epoch_end is not None:
                    on_epoch_end(done, row)
            failed = False
        finally:
            bar.close()
            if main and self.history:
                self.write_plot(quiet=failed)  # also after a divergence or interruption: the curves so far
        return self.history


def train(
    data: TrainingData,
    out_dir: str | Path,
    config: TrainConfig,
    *,
    resume: bool = False,
    device: str = "auto",
    on_epoch_end: Callable[[int, dict], None] | None = None,
    progress: bool = True,
) -> list[dict]:
    """Train an Affinity-VAE, writing model.pt, best.pt, training.csv and loss.png in ``out_dir``.

    Without ``resume`` (or with nothing to resume) those files of an earlier run in ``out_dir``
    are removed first (:meth:`Trainer.start_afresh`).

    ``on_epoch_end(epoch, row)`` is called after each epoch's files are written.
    Raises :class:`TrainingDiverged` on a NaN/inf loss (files of earlier epochs are kept).
    """
    trainer = Trainer(data, out_dir, config, device)
    if not (resume and trainer.resume()):
        trainer.start_afresh()
    return trainer.fit(on_epoch_end, progress)
