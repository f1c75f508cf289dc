"""DistributedDataParallel under torchrun: process groups, rank helpers, gathered latents."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    """This process's place in the job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """True when torchrun (or another launcher) set WORLD_SIZE > 1."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group torchrun set up (NCCL on CUDA, gloo otherwise)."""
    if not launched_by_torchrun():
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def gather_with_grad(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Concatenate ``tensor`` from all ranks; gradients flow back to each rank's part.

    All ranks must pass the same shape (the loop gives every rank equal-sized batches).
    """
    if not info.enabled:
        return tensor
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor), dim=0)


def gather_plain(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Concatenate ``tensor`` from all ranks (no gradient)."""
    if not info.enabled:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(info.world_size)]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)


def sum_across(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a tensor over ranks (for epoch metrics)."""
    if info.enabled:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def barrier(info: DistInfo) -> None:
    """Wait for all ranks."""
    if info.enabled:
        dist.barrier()
