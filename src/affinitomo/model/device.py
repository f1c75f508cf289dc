"""Choosing the compute device."""

from __future__ import annotations

import torch

from affinitomo.errors import InputError


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """"auto" -> cuda, then mps, then cpu; "cpu", "cuda" (or "cuda:N") and "mps" as asked."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError("--device", None, "'cuda' needs a CUDA GPU and a CUDA build of torch; none found here "
                             "(device 'auto' falls back to the CPU, if that is what you want)")
        return torch.device(name if ":" in name else f"cuda:{local_rank}")
    if name == "mps":
        if not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
            raise InputError("--device", None, "'mps' needs Apple silicon; not available")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise InputError("--device", None, f"one of auto, cpu, cuda, mps; got {name!r}")


def autocast(device: torch.device):
    """bf16 autocast on CUDA; a no-op context elsewhere."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
