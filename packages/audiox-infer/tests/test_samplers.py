"""Samplers against closed forms: exact Euler on a point-mass field, Heun's order, the turbo transition by
hand, CFG in one batched forward, and the inpainting constraint."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from audiox.core.types import Conditions
from audiox.infer import EulerSampler, GuidedVelocity, HeunSampler, KnownRegion, TurboSampler, get_sampler


def point_mass(mu: torch.Tensor):
    """The exact flow to a point mass ``mu``: ``v(z, t) = (z - mu) / t`` (straight paths, constant v)."""
    return lambda z, t: (z - mu) / t.view(-1, 1, 1)


@pytest.mark.parametrize("steps,shift", [(1, 1.0), (3, 1.0), (7, 3.0)])
def test_euler_integrates_linear_field_exactly(steps: int, shift: float) -> None:
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(2, 4, 5, generator=g, dtype=torch.float64)
    z1 = torch.randn(2, 4, 5, generator=g, dtype=torch.float64)
    z0 = EulerSampler(time_shift=shift).sample(point_mass(mu), z1, steps)
    torch.testing.assert_close(z0, mu, rtol=0, atol=1e-12)


class ToyModel(nn.Module):
    """forward(z, t, cond): the point-mass field towards ``cond.global_cond`` (B, C)."""

    def forward(self, z: torch.Tensor, t: torch.Tensor, cond: Conditions) -> torch.Tensor:
        return (z - cond.global_cond[:, :, None]) / t.view(-1, 1, 1)


def _cond(mu: torch.Tensor) -> Conditions:
    b = mu.shape[0]
    return Conditions(context=torch.zeros(b, 1, 2, dtype=mu.dtype), context_mask=torch.ones(b, 1, dtype=torch.bool),
                      global_cond=mu)


def test_cfg_is_one_batched_forward_and_exact() -> None:
    g = torch.Generator().manual_seed(1)
    mu_c, mu_u = torch.randn(3, 4, generator=g, dtype=torch.float64), torch.randn(3, 4, generator=g, dtype=torch.float64)
    model = ToyModel()
    rows: list[int] = []
    model.register_forward_hook(lambda m, a, o: rows.append(a[0].shape[0]))
    scale = 4.5
    vel = GuidedVelocity(model, _cond(mu_c), _cond(mu_u), scale)
    z1 = torch.randn(3, 4, 6, generator=g, dtype=torch.float64)
    z0 = EulerSampler().sample(vel, z1, steps=5)
    # v_u + s (v_c - v_u) is the point-mass field towards mu_u + s (mu_c - mu_u): Euler lands on it exactly
    target = (mu_u + scale * (mu_c - mu_u))[:, :, None].expand_as(z0)
    torch.testing.assert_close(z0, target, rtol=0, atol=1e-10)
    assert rows == [6] * 5  # one forward per step, conditional + unconditional rows together
    assert EulerSampler().nfe(5, guided=True) == 10 and HeunSampler().nfe(5, guided=True) == 20


def test_guidance_scale_one_skips_unconditional_pass() -> None:
    mu = torch.randn(2, 4, dtype=torch.float64)
    model = ToyModel()
    rows: list[int] = []
    model.register_forward_hook(lambda m, a, o: rows.append(a[0].shape[0]))
    z0 = EulerSampler().sample(GuidedVelocity(model, _cond(mu), _cond(-mu), 1.0), torch.randn(2, 4, 3, dtype=torch.float64), 3)
    torch.testing.assert_close(z0, mu[:, :, None].expand_as(z0))
    assert rows == [2, 2, 2]


def _order_errors(sampler, steps_list):
    """dz/dt = cos(t) z  ->  z(0) = z(1) exp(-sin 1): a nonlinear-in-t toy ODE."""
    z1 = torch.linspace(-2, 2, 8, dtype=torch.float64).view(1, 1, 8)
    exact = z1 * math.exp(-math.sin(1.0))
    field = lambda z, t: torch.cos(t).view(-1, 1, 1) * z  # noqa: E731
    return [(sampler.sample(field, z1, n) - exact).abs().max().item() for n in steps_list]


def test_heun_is_second_order_and_euler_first() -> None:
    e_heun = _order_errors(HeunSampler(), [8, 16, 32])
    e_euler = _order_errors(EulerSampler(), [8, 16, 32])
    for a, b in zip(e_heun, e_heun[1:]):
        assert 3.6 < a / b < 4.4, e_heun  # halving the step quarters the error
    for a, b in zip(e_euler, e_euler[1:]):
        assert 1.8 < a / b < 2.2, e_euler
    assert e_heun[-1] < e_euler[-1] / 10


def test_turbo_denoise_renoise_by_hand() -> None:
    g = torch.Generator().manual_seed(2)
    c = torch.randn(1, 3, 4, generator=g)
    eps = [torch.randn(1, 3, 4, generator=g) for _ in range(8)]
    it = iter(eps)
    times = (1.0, 0.9, 0.6, 0.25, 0.0)
    calls: list[float] = []

    def field(z, t):
        calls.append(float(t[0]))
        return c + 0.5 * z

    z1 = torch.randn(1, 3, 4, generator=g)
    out = TurboSampler(times).sample(field, z1, 4, noise_like=lambda: next(it))
    z, k = z1, 0
    for t, t_next in zip(times[:-1], times[1:]):
        z0_hat = z - t * (c + 0.5 * z)  # Eq. 5
        if t_next > 0:
            z = t_next * eps[k] + (1 - t_next) * z0_hat
            k += 1
        else:
            z = z0_hat
    torch.testing.assert_close(out, z)
    assert calls == pytest.approx([1.0, 0.9, 0.6, 0.25])  # NFE = steps, on the model's T_N
    assert TurboSampler(times).default_steps() == 4
    # another step count overrides T_N with a uniform grid
    assert TurboSampler(times).timesteps(2) == pytest.approx([1.0, 0.5, 0.0])


def test_known_region_is_kept_and_stays_on_the_path() -> None:
    g = torch.Generator().manual_seed(3)
    b, c, t_len = 2, 3, 10
    z0_known = torch.randn(b, c, t_len, generator=g, dtype=torch.float64)
    z1 = torch.randn(b, c, t_len, generator=g, dtype=torch.float64)
    mask = torch.zeros(1, 1, t_len, dtype=torch.bool)
    mask[..., 3:7] = True  # generate frames 3..6
    seen: list[tuple[float, torch.Tensor]] = []

    def field(z, t):
        seen.append((float(t[0]), z.clone()))
        return torch.sin(z) + t.view(-1, 1, 1)

    for sampler in (EulerSampler(), HeunSampler(), TurboSampler()):
        seen.clear()
        known = KnownRegion(z0=z0_known, mask=mask)
        out = sampler.sample(field, z1.clone(), 4, noise_like=lambda: torch.randn(b, c, t_len, generator=g, dtype=torch.float64),
                             known=known)
        keep = ~mask.expand_as(out)
        assert torch.equal(out[keep], z0_known[keep])
        assert not torch.allclose(out[~keep], z0_known[~keep])
        for t, z in seen:  # each evaluation point of the known region lies on z_t = t z1 + (1-t) z0
            if sampler.name == "heun":
                continue  # Heun's predictor point is not re-projected (the corrected state is)
            torch.testing.assert_close(z[keep], (t * z1 + (1 - t) * z0_known)[keep])


def test_get_sampler() -> None:
    assert isinstance(get_sampler("Heun"), HeunSampler)
    assert get_sampler("turbo", few_step_times=(0.5,)).timesteps(2) == [1.0, 0.5, 0.0]
    with pytest.raises(ValueError, match="unknown sampler"):
        get_sampler("ddim")
    with pytest.raises(ValueError, match="steps"):
        EulerSampler().sample(lambda z, t: z, torch.zeros(1, 1, 1), 0)
