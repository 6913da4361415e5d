from typing import Any, Callable

import pytest
import torch
from torch import Tensor, nn

from audiox.core.flow import clean_from_velocity, velocity_target

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def debug_model():
    from audiox.core import AudioXModel, get_config

    torch.manual_seed(0)
    return AudioXModel(get_config("debug")).eval()


Batch = Callable[[torch.Generator, int], tuple[Tensor, Any]]  # (g, B) -> (z0 (B, C, T), what conditions it)
Run = Callable[[Tensor, Any, Tensor, Tensor], tuple[Tensor, Tensor]]  # (z0, cond, t, z1) -> (z_t, velocity)


def _fit_toy(run: Run, make_batch: Batch, params: list[nn.Parameter], steps: int = 150, batch: int = 16,
            lr: float = 2e-3) -> tuple[Tensor, Any, Tensor]:
    """``steps`` Adam steps of flow matching, then the clean estimate at t = 0.8 on a held-out batch of 64.
    Returns (z0, its conditioning, the clean estimate)."""
    opt = torch.optim.Adam(params, lr=lr)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        z0, cond = make_batch(g, batch)
        z1 = torch.randn(z0.shape, generator=g)
        t = torch.rand(batch, generator=g)
        _, v = run(z0, cond, t, z1)
        loss = (v - velocity_target(z0, z1)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    g = torch.Generator().manual_seed(99)
    with torch.no_grad():
        z0, cond = make_batch(g, 64)
        t = torch.full((64,), 0.8)
        z_t, v = run(z0, cond, t, torch.randn(z0.shape, generator=g))
        return z0, cond, clean_from_velocity(z_t, t, v)


@pytest.fixture(scope="session")
def fit_toy():
    """The flow-matching loop of the toy MMDiTs (test_frame_aligned.py, test_frame_inpaint.py)."""
    return _fit_toy
