"""Eq. 5-14 against hand computation (float64) on small cases."""

import torch

from audiox.core import flow
from audiox.distill.dmd import (
    cfg_velocity, d_hinge_loss, dm_loss_eq10, dmd_loss, fake_flow_loss, g_hinge_loss, match_rms, sample_step_index,
    student_sample,
)
from audiox.distill.toy import ToyVelocity


def test_dmd_gradient_and_eq10_by_hand():
    g = torch.Generator().manual_seed(0)
    b, c, t = 3, 2, 5
    z0_hat = torch.randn(b, c, t, generator=g, dtype=torch.float64, requires_grad=True)
    tau = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    eps = torch.randn(b, c, t, generator=g, dtype=torch.float64)
    z_tau = tau[:, None, None] * eps + (1 - tau[:, None, None]) * z0_hat.detach()  # Eq. 6
    v_real = torch.randn(b, c, t, generator=g, dtype=torch.float64)
    v_fake = torch.randn(b, c, t, generator=g, dtype=torch.float64)
    loss, logs = dmd_loss(z0_hat, z_tau, tau, v_real, v_fake)
    loss.backward()
    for i in range(b):  # per sample, by hand
        x0_real = z_tau[i] - tau[i] * v_real[i]
        x0_fake = z_tau[i] - tau[i] * v_fake[i]
        norm = (z0_hat[i].detach() - x0_real).abs().mean()
        grad_i = (x0_fake - x0_real) / norm
        # x0_fake - x0_real = tau (v_real - v_fake): the velocity form of Eq. 10
        torch.testing.assert_close(x0_fake - x0_real, tau[i] * (v_real[i] - v_fake[i]))
        torch.testing.assert_close(z0_hat.grad[i], grad_i / z0_hat.numel())
        torch.testing.assert_close(logs["w_tau"][i], tau[i] ** 2 / (2 * norm**2))
    # the surrogate's value is Eq. 10 with w_tau = tau^2 / (2 norm^2)
    torch.testing.assert_close(loss.detach(), dm_loss_eq10(v_real, v_fake, logs["w_tau"]))
    # Eq. 10 literally, by hand
    w = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    hand = sum(w[i] * ((v_real[i] - v_fake[i]) ** 2).mean() for i in range(b)) / b
    torch.testing.assert_close(dm_loss_eq10(v_real, v_fake, w), hand)


def test_dmd_step_moves_sample_towards_teacher():
    # a gradient step on z0_hat must reduce its distance to x0_real when the fake estimate sits at z0_hat
    z0_hat = torch.zeros(1, 2, 1, dtype=torch.float64, requires_grad=True)
    tau = torch.tensor([0.5], dtype=torch.float64)
    z_tau = torch.zeros(1, 2, 1, dtype=torch.float64)
    v_real = torch.tensor([[[-2.0], [0.0]]], dtype=torch.float64)  # x0_real = (1, 0)
    v_fake = torch.zeros(1, 2, 1, dtype=torch.float64)  # x0_fake = 0 = z0_hat
    loss, _ = dmd_loss(z0_hat, z_tau, tau, v_real, v_fake)
    loss.backward()
    assert z0_hat.grad[0, 0, 0] < 0 and z0_hat.grad[0, 1, 0] == 0


def test_hinge_losses_by_hand():
    real = torch.tensor([2.0, 0.5, -1.0])
    fake = torch.tensor([-3.0, 0.0, 0.25])
    # Eq. 13: mean(max(0, 1 - D(real))) + mean(max(0, 1 + D(fake)))
    expected_d = (0.0 + 0.5 + 2.0) / 3 + (0.0 + 1.0 + 1.25) / 3
    assert abs(float(d_hinge_loss(real, fake)) - expected_d) < 1e-6
    # Eq. 14: -mean(D(fake))
    assert abs(float(g_hinge_loss(fake)) - (-(-3.0 + 0.0 + 0.25) / 3)) < 1e-6


def test_cfg_velocity_matches_two_passes():
    torch.manual_seed(0)
    m = ToyVelocity(3, width=16, depth=2)
    labels = torch.tensor([0, 1, 2, 1])
    z, t = torch.randn(4, 2, 1), torch.rand(4)
    cond, ucond = m.fuse(labels), m.fuse(labels, torch.ones(4, 3, dtype=torch.bool))
    v = cfg_velocity(m, z, t, cond, ucond, 6.0)
    v_c, v_u = m(z, t, cond), m(z, t, ucond)
    torch.testing.assert_close(v, v_u + 6.0 * (v_c - v_u), rtol=1e-5, atol=1e-5)


def test_fake_flow_loss_is_eq12_and_stops_gradient():
    torch.manual_seed(0)
    m = ToyVelocity(3, width=16, depth=2)
    labels = torch.tensor([0, 2])
    x = torch.randn(2, 2, 1, requires_grad=True)
    tau, z1 = torch.tensor([0.3, 0.8]), torch.randn(2, 2, 1)
    loss = fake_flow_loss(m, x, m.fuse(labels), tau, z1)
    z_tau = tau[:, None, None] * z1 + (1 - tau[:, None, None]) * x.detach()
    hand = ((m(z_tau, tau, m.fuse(labels)) - (z1 - x.detach())) ** 2).mean()
    torch.testing.assert_close(loss, hand)
    loss.backward()
    assert x.grad is None  # sg(z0_hat)


class _Spy(torch.nn.Module):
    """Records every call's input and whether grad was enabled; velocity = a fixed linear map."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(0.7, dtype=torch.float64))
        self.calls = []

    def forward(self, z, t, cond):
        self.calls.append((z.detach().clone(), t.detach().clone(), torch.is_grad_enabled()))
        return self.w * z + cond


def test_rollout_uses_own_renoised_estimates_and_no_grad_before_k():
    spy = _Spy()
    grid = flow.few_step_grid(None, 4, dtype=torch.float64)
    z1 = torch.randn(2, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    cond = torch.full((2, 2, 3), 0.1, dtype=torch.float64)
    gen = torch.Generator().manual_seed(5)
    ref_gen = torch.Generator().manual_seed(5)
    out = student_sample(spy, cond, z1, grid, 3, gen)
    assert len(spy.calls) == 4
    assert [c[2] for c in spy.calls] == [False, False, False, True]  # only step k has gradients
    z = z1
    for i in range(3):  # by hand: denoise (Eq. 5) then re-noise with fresh noise, the student's own estimate
        torch.testing.assert_close(spy.calls[i][0], z)
        assert torch.all(spy.calls[i][1] == grid[i])
        z0 = z - grid[i] * (0.7 * z + cond)
        eps = torch.randn(z.shape, generator=ref_gen).to(torch.float64)
        z = grid[i + 1] * eps + (1 - grid[i + 1]) * z0
    torch.testing.assert_close(spy.calls[3][0], z)
    torch.testing.assert_close(out.z_tk, z)
    assert not out.z_tk.requires_grad and out.z0_hat.requires_grad and out.t_k == float(grid[3])
    torch.testing.assert_close(out.z0_hat.detach(), z - grid[3] * (0.7 * z + cond))
    # d z0_hat / d w = -t_k z_tk only: nothing from the rollout steps
    out.z0_hat.sum().backward()
    torch.testing.assert_close(spy.w.grad, -(grid[3] * z).sum())


def test_step_index_distribution():
    g = torch.Generator().manual_seed(0)
    probs = torch.tensor([0.0, 0.5, 0.0, 0.5], dtype=torch.float64)
    ks = [sample_step_index(probs, g) for _ in range(400)]
    assert set(ks) == {1, 3} and 150 < ks.count(1) < 250


def test_match_rms_sets_the_reference_scale_and_sends_no_gradient_along_the_sample():
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(5, 4, 7, generator=g, dtype=torch.float64) * torch.tensor([0.1, 1, 3, 10, 0.5]).view(5, 1, 1))
    x.requires_grad_(True)
    ref = torch.randn(5, 4, 7, generator=g, dtype=torch.float64) * 2.0
    y = match_rms(x, ref)
    rms = lambda a: a.flatten(1).pow(2).mean(1).sqrt()  # noqa: E731
    assert torch.allclose(rms(y), rms(ref))
    assert torch.allclose(y / rms(y).view(-1, 1, 1), x / rms(x).view(-1, 1, 1))  # same shape, new scale
    # any loss of the output: the gradient at x is orthogonal to x (sample by sample), and it equals
    # gain * (I - x x^T / |x|^2) dL/dy, the paper-free closed form
    w = torch.randn(5, 4, 7, generator=g, dtype=torch.float64)
    loss = (w * y).sum() + y.pow(3).sum()  # the cube term alone would ask for a larger x
    (gx,) = torch.autograd.grad(loss, x)
    assert torch.allclose((gx * x).flatten(1).sum(1), torch.zeros(5, dtype=torch.float64), atol=1e-10)
    dy = (w + 3 * y.pow(2)).detach().flatten(1)
    xf = x.detach().flatten(1)
    gain = (rms(ref) / rms(x.detach())).view(-1, 1)
    expect = gain * (dy - xf * (dy * xf).sum(1, keepdim=True) / xf.pow(2).sum(1, keepdim=True))
    assert torch.allclose(gx.flatten(1), expect)
    assert not ref.requires_grad and match_rms(x, ref.requires_grad_(True)).grad_fn is not None
    (g_ref,) = torch.autograd.grad(match_rms(x, ref).pow(3).sum(), ref, allow_unused=True)
    assert g_ref is None  # the reference only sets the scale: nothing flows back into it
