"""Samplers: swappable objects with one interface (diffusers-style schedulers, k-diffusion-style loops).

Every sampler integrates the flow ODE ``dz/dt = v(z, t)`` from noise at ``t = 1`` to data at ``t = 0``
(time convention of :mod:`audiox.core.flow`; all the math is the helpers there)::

    z0 = sampler.sample(velocity, noise, steps=steps, noise_like=..., known=...)

``velocity(z, t)`` maps ``(B, C, T)`` latents and ``(B,)`` times to ``(B, C, T)`` velocities. Classifier-free
guidance lives in :class:`GuidedVelocity` (the conditional and unconditional passes batched into ONE forward);
a sampler only says whether it wants it (``uses_cfg``).

No host-device synchronisation happens inside the loops: the time grid is a list of Python floats built
before the loop, times reach the device as ``torch.full`` fills, and nothing calls ``.item()`` or
``bool(tensor)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from audiox.core import flow
from audiox.core.types import Conditions

__all__ = [
    "VelocityFn",
    "NoiseFn",
    "KnownRegion",
    "GuidedVelocity",
    "Sampler",
    "EulerSampler",
    "HeunSampler",
    "TurboSampler",
    "SAMPLERS",
    "get_sampler",
]

VelocityFn = Callable[[Tensor, Tensor], Tensor]  # (z (B, C, T), t (B,)) -> v (B, C, T)
NoiseFn = Callable[[], Tensor]  # fresh Gaussian noise shaped like the latent (seeded by the caller)


@dataclass
class KnownRegion:
    """Inpainting constraint: ``mask`` (B, 1 | C, T) True where the latent is GENERATED; elsewhere it is
    the known clean latent ``z0`` (B, C, T), re-noised onto the path with the sampler's own initial noise
    ``z1`` at every step (``z_t = t z1 + (1 - t) z0``, Eq. 2) and pasted back exactly at the end."""

    z0: Tensor
    mask: Tensor
    z1: Tensor | None = None  # filled by the sampler with its initial noise

    def apply(self, z: Tensor, t: float) -> Tensor:
        """Replace the known region of ``z`` (at time ``t``) with the re-noised known latent."""
        assert self.z1 is not None
        known_t = flow.interpolate(self.z0, self.z1, t)
        return torch.where(self.mask, z, known_t)


class GuidedVelocity:
    """Classifier-free guidance ``v = v_u + s (v_c - v_u)`` with ONE batched forward per call.

    ``model(z, t, cond)`` is an :class:`audiox.core.AudioXModel` (or anything with that call signature).
    The conditional and unconditional :class:`Conditions` are concatenated once here, not per step.
    With ``guidance_scale == 1`` or no ``uncond`` the unconditional pass is skipped (it would cancel).
    """

    def __init__(self, model: Callable[[Tensor, Tensor, Conditions], Tensor], cond: Conditions,
                 uncond: Conditions | None = None, guidance_scale: float = 1.0) -> None:
        self.model = model
        self.scale = float(guidance_scale)
        self.guided = uncond is not None and self.scale != 1.0
        self.cond = Conditions.cat([cond, uncond]) if self.guided else cond

    def __call__(self, z: Tensor, t: Tensor) -> Tensor:
        if not self.guided:
            return self.model(z, t, self.cond)
        v = self.model(torch.cat([z, z]), torch.cat([t, t]), self.cond)  # (2B, C, T)
        v_c, v_u = v.chunk(2)
        return v_u + self.scale * (v_c - v_u)


def _times(z: Tensor, t: float) -> Tensor:
    return torch.full((z.shape[0],), t, device=z.device, dtype=z.dtype)  # (B,), a device fill: no sync


class Sampler(ABC):
    """One interface for every sampler. Subclasses set ``name`` and ``uses_cfg`` and implement ``_loop``."""

    name: str = ""
    uses_cfg: bool = True

    def __init__(self, time_shift: float = 1.0) -> None:
        self.time_shift = float(time_shift)

    def timesteps(self, steps: int) -> list[float]:
        """Decreasing grid ``[1, ..., 0]`` with ``steps + 1`` entries (Python floats: no device sync)."""
        return flow.time_grid(steps, shift=self.time_shift, dtype=torch.float64).tolist()

    @abstractmethod
    def evaluations_per_step(self) -> int:
        """Velocity evaluations per step (each is one model forward, or two rows of one with CFG)."""

    def nfe(self, steps: int, guided: bool) -> int:
        """Expected NFE per sample (documentation; the pipeline reports the COUNTED value)."""
        return steps * self.evaluations_per_step() * (2 if guided and self.uses_cfg else 1)

    def sample(self, velocity: VelocityFn, noise: Tensor, steps: int, *, noise_like: NoiseFn | None = None,
               known: KnownRegion | None = None) -> Tensor:
        """Integrate from ``noise`` (t = 1) to a clean latent (t = 0): (B, C, T) -> (B, C, T)."""
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        grid = self.timesteps(steps)
        if known is not None:
            known.z1 = noise
            noise = known.apply(noise, grid[0])
        z = self._loop(velocity, noise, grid, noise_like, known)
        if known is not None:
            z = torch.where(known.mask, z, known.z0)  # paste the known region back exactly
        return z

    @abstractmethod
    def _loop(self, velocity: VelocityFn, z: Tensor, grid: list[float], noise_like: NoiseFn | None,
              known: KnownRegion | None) -> Tensor: ...


class EulerSampler(Sampler):
    """The teacher's sampler: explicit Euler on the flow ODE, ``z_{t'} = z_t + (t' - t) v(z_t, t)``.

    With CFG (:class:`GuidedVelocity`) one step costs one batched forward of 2B rows: NFE = 2 x steps.
    Exact for velocity fields that are constant along straight paths (e.g. a point-mass target).
    """

    name = "euler"
    uses_cfg = True

    def evaluations_per_step(self) -> int:
        return 1

    def _loop(self, velocity, z, grid, noise_like, known):
        for t, t_next in zip(grid[:-1], grid[1:]):
            v = velocity(z, _times(z, t))
            z = flow.euler_step(z, v, t, t_next)
            if known is not None:
                z = known.apply(z, t_next)
        return z


class HeunSampler(Sampler):
    """Heun's method (explicit trapezoid, 2nd order; Karras et al. 2022 Alg. 1 without churn).

    ``z_e = z + (t' - t) v(z, t)``;  ``z_{t'} = z + (t' - t) (v(z, t) + v(z_e, t')) / 2``. The correction is
    applied on every step, the last included (a flow velocity is finite at t = 0, unlike a sigma-scaled
    score), so NFE = 2 x steps, or 4 x steps with CFG.
    """

    name = "heun"
    uses_cfg = True

    def evaluations_per_step(self) -> int:
        return 2

    def _loop(self, velocity, z, grid, noise_like, known):
        for t, t_next in zip(grid[:-1], grid[1:]):
            v = velocity(z, _times(z, t))
            z_e = flow.euler_step(z, v, t, t_next)
            v_e = velocity(z_e, _times(z, t_next))
            z = flow.euler_step(z, 0.5 * (v + v_e), t, t_next)
            if known is not None:
                z = known.apply(z, t_next)
        return z


class TurboSampler(Sampler):
    """The student's few-step denoise-renoise sampler (paper Sec. V, Eq. 5).

    At each ``t_k`` of the timestep set ``T_N = {1 = t_N, ..., t_0 = 0}``: ``z0_hat = z_t - t v(z_t, t)``
    (Eq. 5), then re-noise with fresh ``eps``: ``z_{t'} = t' eps + (1 - t') z0_hat``; the last step returns
    ``z0_hat``. One forward per step and no CFG (the student has it distilled in): NFE = steps.
    """

    name = "turbo"
    uses_cfg = False

    def __init__(self, few_step_times: tuple[float, ...] | list[float] | None = None) -> None:
        super().__init__(time_shift=1.0)
        self.few_step_times = None if few_step_times is None else tuple(float(x) for x in few_step_times)

    def evaluations_per_step(self) -> int:
        return 1

    def default_steps(self) -> int | None:
        """Steps of the model's own ``T_N`` (None when the model has none: the caller picks)."""
        if self.few_step_times is None:
            return None
        return len(flow.few_step_grid(self.few_step_times, dtype=torch.float64)) - 1

    def timesteps(self, steps: int) -> list[float]:
        if self.few_step_times is not None:
            grid = flow.few_step_grid(self.few_step_times, dtype=torch.float64).tolist()
            if len(grid) - 1 == steps:
                return grid
            # an explicit different step count overrides the model's T_N with a uniform grid
        return flow.few_step_grid(None, steps, dtype=torch.float64).tolist()

    def _loop(self, velocity, z, grid, noise_like, known):
        if noise_like is None:
            noise_like = lambda: torch.randn_like(z)  # noqa: E731  (unseeded: the pipeline passes a seeded one)
        for t, t_next in zip(grid[:-1], grid[1:]):
            v = velocity(z, _times(z, t))
            z0_hat = flow.clean_from_velocity(z, t, v)  # Eq. 5
            if t_next > 0.0:  # Python floats: no device sync
                z = flow.renoise(z0_hat, t_next, noise_like())
                if known is not None:
                    z = known.apply(z, t_next)
            else:
                z = z0_hat
        return z


SAMPLERS: dict[str, type[Sampler]] = {"euler": EulerSampler, "heun": HeunSampler, "turbo": TurboSampler}


def get_sampler(name: str | Sampler, *, time_shift: float = 1.0,
                few_step_times: tuple[float, ...] | None = None) -> Sampler:
    """A sampler by name (``euler``, ``heun``, ``turbo``); a :class:`Sampler` instance is returned as is."""
    if isinstance(name, Sampler):
        return name
    key = str(name).lower()
    if key not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; expected one of {', '.join(SAMPLERS)}")
    if key == "turbo":
        return TurboSampler(few_step_times)
    return SAMPLERS[key](time_shift=time_shift)
