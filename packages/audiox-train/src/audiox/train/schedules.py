"""Learning-rate multipliers (``torch.optim.lr_scheduler.LambdaLR``), stable-audio-tools conventions.

- ``inverse`` (paper Sec. VI-A for distillation: InverseLR, inv_gamma 1e6, power 0.5, warm-up 0.99):
  ``(1 - warmup ** (step + 1)) * (1 + step / inv_gamma) ** -power``
- ``exponential`` (teacher: "exponential ramp-up and decay phases"):
  ``(1 - warmup ** (step + 1)) * decay ** step``
- ``constant``: ``1 - warmup ** (step + 1)`` (just the ramp).
All are floored at ``min_factor``.
"""

from __future__ import annotations

from typing import Callable

import torch

from audiox.train.config import ScheduleConfig

__all__ = ["lr_factor", "build_scheduler"]


def lr_factor(cfg: ScheduleConfig) -> Callable[[int], float]:
    def f(step: int) -> float:
        ramp = 1.0 - cfg.warmup ** (step + 1) if cfg.warmup > 0 else 1.0
        if cfg.kind == "inverse":
            value = ramp * (1.0 + step / cfg.inv_gamma) ** (-cfg.power)
        elif cfg.kind == "exponential":
            value = ramp * cfg.decay**step
        else:
            value = ramp
        return max(cfg.min_factor, value)

    return f


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg))
