"""Flow-matching math: the one place where the time convention lives.

Convention (paper Eq. 2-5, DESIGN.md): data ``z0`` at ``t = 0``, Gaussian noise ``z1`` at ``t = 1``.

    z_t    = t * z1 + (1 - t) * z0          (Eq. 2)   -> :func:`interpolate`
    u      = z1 - z0                         (Eq. 3)   -> :func:`velocity_target`
    z0_hat = z_t - t * v                     (Eq. 5)   -> :func:`clean_from_velocity`
    z1_hat = z_t + (1 - t) * v                         -> :func:`noise_from_velocity`
    z_t'   = t' * eps + (1 - t') * z0_hat   (re-noise) -> :func:`renoise`

Every package calls these helpers; nobody re-derives them. ``t`` may be a Python float, a 0-d tensor
or a ``(B,)`` tensor; it is broadcast against the batch axis of ``z`` (any trailing shape).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "broadcast_time",
    "interpolate",
    "velocity_target",
    "clean_from_velocity",
    "noise_from_velocity",
    "velocity_from_clean",
    "renoise",
    "euler_step",
    "time_grid",
    "few_step_grid",
    "sample_timesteps",
    "shift_time",
]


def broadcast_time(t: Tensor | float, z: Tensor) -> Tensor:
    """Return ``t`` shaped ``(B, 1, ..., 1)`` (or a scalar tensor) so that it broadcasts against ``z``."""
    if not isinstance(t, Tensor):
        return torch.as_tensor(t, dtype=z.dtype, device=z.device)
    t = t.to(device=z.device, dtype=z.dtype)
    if t.ndim == 0:
        return t
    assert t.ndim == 1 and t.shape[0] == z.shape[0], f"{t.shape=} must be () or (B,) with {z.shape=}"
    return t.view(-1, *([1] * (z.ndim - 1)))


def interpolate(z0: Tensor, z1: Tensor, t: Tensor | float) -> Tensor:
    """Eq. 2: ``z_t = t * z1 + (1 - t) * z0`` (noise ``z1`` at t=1, data ``z0`` at t=0)."""
    tb = broadcast_time(t, z0)
    return tb * z1 + (1 - tb) * z0


def velocity_target(z0: Tensor, z1: Tensor) -> Tensor:
    """Eq. 3: the straight-path velocity ``u = z1 - z0`` (constant along the path)."""
    return z1 - z0


def clean_from_velocity(z_t: Tensor, t: Tensor | float, v: Tensor) -> Tensor:
    """Eq. 5: ``z0_hat = z_t - t * v``."""
    return z_t - broadcast_time(t, z_t) * v


def noise_from_velocity(z_t: Tensor, t: Tensor | float, v: Tensor) -> Tensor:
    """The noise endpoint implied by a velocity: ``z1_hat = z_t + (1 - t) * v``."""
    return z_t + (1 - broadcast_time(t, z_t)) * v


def velocity_from_clean(z_t: Tensor, t: Tensor | float, z0: Tensor) -> Tensor:
    """Inverse of :func:`clean_from_velocity` for ``t > 0``: ``v = (z_t - z0) / t``."""
    return (z_t - z0) / broadcast_time(t, z_t)


def renoise(z0_hat: Tensor, t_next: Tensor | float, eps: Tensor) -> Tensor:
    """Denoise-renoise transition: ``z_{t'} = t' * eps + (1 - t') * z0_hat`` with fresh noise ``eps``."""
    return interpolate(z0_hat, eps, t_next)


def euler_step(z_t: Tensor, v: Tensor, t: Tensor | float, t_next: Tensor | float) -> Tensor:
    """One Euler step of ``dz/dt = v`` from ``t`` to ``t_next`` (``t_next < t`` when sampling)."""
    return z_t + (broadcast_time(t_next, z_t) - broadcast_time(t, z_t)) * v


def shift_time(t: Tensor, shift: float) -> Tensor:
    """SD3 / flux resolution shift ``t' = s*t / (1 + (s-1)*t)``; ``shift=1`` is the identity."""
    if shift == 1.0:
        return t
    return shift * t / (1 + (shift - 1) * t)


def time_grid(
    steps: int,
    *,
    shift: float = 1.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Decreasing sampling grid ``[1 = t_N, ..., t_0 = 0]`` with ``steps + 1`` entries (optionally shifted)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    t = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    return shift_time(t, shift).to(device=device, dtype=dtype)


def few_step_grid(
    times: list[float] | tuple[float, ...] | None = None,
    steps: int = 4,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """The student's timestep set ``T_N = {t_N = 1, ..., t_1, t_0 = 0}`` as a decreasing tensor.

    ``times`` may list the interior points (any order) or the full set including 1 and 0; by default the
    grid is uniform with ``steps`` intervals (``[1, .75, .5, .25, 0]`` for N=4).
    """
    if times is None:
        return time_grid(steps, device=device, dtype=dtype)
    pts = sorted({float(x) for x in times} | {0.0, 1.0}, reverse=True)
    if any(not 0.0 <= x <= 1.0 for x in pts):
        raise ValueError(f"few-step times must lie in [0, 1], got {times}")
    return torch.tensor(pts, device=device, dtype=dtype)


def sample_timesteps(
    batch_size: int,
    *,
    kind: Literal["uniform", "logit_normal"] = "uniform",
    mean: float = 0.0,
    std: float = 1.0,
    eps: float = 0.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Training timesteps ``t in [eps, 1]``: uniform, or logit-normal (SD3) ``t = sigmoid(N(mean, std))``."""
    if kind == "uniform":
        t = torch.rand(batch_size, generator=generator, device=device)
    elif kind == "logit_normal":
        t = torch.sigmoid(mean + std * torch.randn(batch_size, generator=generator, device=device))
    else:
        raise ValueError(f"unknown timestep sampling {kind!r}; use 'uniform' or 'logit_normal'")
    if eps > 0:
        t = eps + (1 - eps) * t
    return t


def logit_normal_density(t: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Density of the logit-normal distribution on (0, 1) (for tests and loss weighting)."""
    logit = torch.log(t) - torch.log1p(-t)
    return torch.exp(-((logit - mean) ** 2) / (2 * std**2)) / (std * math.sqrt(2 * math.pi) * t * (1 - t))
