"""Exponential moving average of the trainable weights (what gets exported)."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

__all__ = ["EMA"]


class EMA:
    """``shadow = decay * shadow + (1 - decay) * param`` over a fixed, named parameter set.

    Before ``start_step`` the shadow just copies the weights. The shadow is kept in float32 on the parameters'
    device. ``state_dict`` uses the model's parameter names, so an export can merge it into the full model.
    """

    def __init__(self, named_params: Iterable[tuple[str, nn.Parameter]], decay: float = 0.999, start_step: int = 0) -> None:
        self.decay = decay
        self.start_step = start_step
        self.params = dict(named_params)
        self.shadow = {k: p.detach().float().clone() for k, p in self.params.items()}

    @torch.no_grad()
    def update(self, step: int) -> None:
        d = 0.0 if step < self.start_step else self.decay
        for k, p in self.params.items():
            s = self.shadow[k]
            s.mul_(d).add_(p.detach().float(), alpha=1.0 - d)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        own = dict(model.named_parameters())
        for k, s in self.shadow.items():
            own[k].copy_(s.to(own[k].dtype))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in self.shadow.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.shadow) - set(state)
        if missing:
            raise ValueError(f"EMA state lacks {len(missing)} parameters, e.g. {sorted(missing)[:3]}")
        for k in self.shadow:
            self.shadow[k].copy_(state[k])
