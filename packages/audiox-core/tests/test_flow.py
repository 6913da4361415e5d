import math

import pytest
import torch

from audiox.core import flow


def test_clean_estimate_from_true_velocity_is_exact():
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(4, 3, 7, generator=g, dtype=torch.float64), torch.randn(4, 3, 7, generator=g, dtype=torch.float64)
    t = torch.rand(4, generator=g, dtype=torch.float64)
    zt = flow.interpolate(z0, z1, t)
    v = flow.velocity_target(z0, z1)
    torch.testing.assert_close(flow.clean_from_velocity(zt, t, v), z0)
    torch.testing.assert_close(flow.noise_from_velocity(zt, t, v), z1)
    torch.testing.assert_close(flow.velocity_from_clean(zt, t, z0), v)


def test_interpolation_endpoints_and_formula():
    z0, z1 = torch.zeros(2, 1, 3), torch.ones(2, 1, 3)
    assert torch.equal(flow.interpolate(z0, z1, 0.0), z0)
    assert torch.equal(flow.interpolate(z0, z1, 1.0), z1)
    out = flow.interpolate(torch.full((2, 1, 1), 2.0), torch.full((2, 1, 1), -1.0), torch.tensor([0.25, 0.5]))
    torch.testing.assert_close(out.flatten(), torch.tensor([0.25 * -1 + 0.75 * 2, 0.5 * -1 + 0.5 * 2]))


def test_renoise_is_interpolation_with_fresh_noise():
    z0h, eps = torch.randn(3, 2, 5), torch.randn(3, 2, 5)
    torch.testing.assert_close(flow.renoise(z0h, 0.3, eps), 0.3 * eps + 0.7 * z0h)


def test_euler_integrates_straight_path_exactly():
    z0, z1 = torch.randn(2, 4, 6, dtype=torch.float64), torch.randn(2, 4, 6, dtype=torch.float64)
    z = z1.clone()
    grid = flow.time_grid(7, dtype=torch.float64)
    for t, tn in zip(grid[:-1], grid[1:]):
        z = flow.euler_step(z, flow.velocity_target(z0, z1), t, tn)
    torch.testing.assert_close(z, z0)


def test_grids():
    g = flow.time_grid(4)
    torch.testing.assert_close(g, torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]))
    assert torch.all(g[:-1] > g[1:])
    torch.testing.assert_close(flow.few_step_grid(steps=4), g)
    torch.testing.assert_close(flow.few_step_grid([0.9, 0.6, 0.3]), torch.tensor([1.0, 0.9, 0.6, 0.3, 0.0]))
    shifted = flow.time_grid(4, shift=3.0)
    assert shifted[0] == 1 and shifted[-1] == 0 and shifted[2] > 0.5  # shift pushes time towards noise
    with pytest.raises(ValueError):
        flow.time_grid(0)
    with pytest.raises(ValueError):
        flow.few_step_grid([1.5])


def test_timestep_sampling_distributions():
    g = torch.Generator().manual_seed(0)
    u = flow.sample_timesteps(20000, kind="uniform", generator=g)
    assert abs(u.mean().item() - 0.5) < 0.01 and u.min() >= 0 and u.max() <= 1
    ln = flow.sample_timesteps(20000, kind="logit_normal", mean=1.0, std=0.5, generator=g)
    logit = torch.log(ln) - torch.log1p(-ln)
    assert abs(logit.mean().item() - 1.0) < 0.02 and abs(logit.std().item() - 0.5) < 0.02
    # density integrates to one
    t = torch.linspace(1e-4, 1 - 1e-4, 20001, dtype=torch.float64)
    integral = torch.trapezoid(flow.logit_normal_density(t), t).item()
    assert math.isclose(integral, 1.0, rel_tol=1e-3)
    with pytest.raises(ValueError):
        flow.sample_timesteps(3, kind="cosine")
