"""The math of AudioX-Turbo (paper Sec. V), generic over a small velocity-model protocol.

A *velocity model* (the real :class:`audiox.core.AudioXModel`, or the toy MLP of :mod:`audiox.distill.toy`) has::

    cond = model.fuse(feats, drop)            # drop: (B, 3) bool, True = null condition (CFG); None = keep all
    v    = model(z_t, t, cond)                # (B, C, T) velocity, t: (B,)
    hs   = model.forward_features(z_t, t, cond, num_blocks=L)   # list of L hidden states (B, T', D)

Time convention (audiox.core.flow): data at t=0, noise at t=1, ``z_t = t z1 + (1 - t) z0``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from einops import rearrange
from torch import Tensor, nn

from audiox.core import flow

__all__ = [
    "VelocityModel",
    "null_drop",
    "cfg_velocity",
    "sample_step_index",
    "StudentSample",
    "student_sample",
    "dmd_loss",
    "dm_loss_eq10",
    "fake_flow_loss",
    "per_sample_rms",
    "match_rms",
    "d_hinge_loss",
    "g_hinge_loss",
    "DiffusionDiscriminator",
]


class VelocityModel(Protocol):
    def fuse(self, feats: Any, drop: Tensor | None = None) -> Any: ...

    def __call__(self, z_t: Tensor, t: Tensor, cond: Any) -> Tensor: ...

    def forward_features(self, z_t: Tensor, t: Tensor, cond: Any, num_blocks: int) -> list[Tensor]: ...


def null_drop(batch_size: int, device: torch.device | str) -> Tensor:
    """Drop mask of the unconditional CFG branch: every modality column [text, video, audio] dropped."""
    return torch.ones(batch_size, 3, dtype=torch.bool, device=device)


def _cat_cond(a: Any, b: Any) -> Any:
    if isinstance(a, Tensor):
        return torch.cat([a, b])
    return type(a).cat([a, b])


def cfg_velocity(model: VelocityModel, z: Tensor, t: Tensor, cond: Any, ucond: Any, scale: float) -> Tensor:
    """Classifier-free guidance ``v_u + s (v_c - v_u)``, both branches in one batched forward."""
    if scale == 1.0:
        return model(z, t, cond)
    v_c, v_u = model(torch.cat([z, z]), torch.cat([t, t]), _cat_cond(cond, ucond)).chunk(2)
    return v_u + scale * (v_c - v_u)


def sample_step_index(probs: Tensor, generator: torch.Generator) -> int:
    """Draw the step ``k`` (0 = the first step, from pure noise at t=1) with probabilities ``probs`` (N,)."""
    return int(torch.multinomial(probs, 1, generator=generator).item())


@dataclass
class StudentSample:
    z0_hat: Tensor  # (B, C, T) Eq. 5 at step k, carries the student's graph when built with grad
    z_tk: Tensor  # (B, C, T) the state the student saw at t_k (no graph)
    t_k: float
    k: int


def student_sample(student: VelocityModel, cond: Any, z1: Tensor, grid: Tensor, k: int,
                   generator: torch.Generator, *, grad: bool = True) -> StudentSample:
    """Backward-simulated student sample (Sec. V-A).

    From noise ``z1`` at ``t_N = 1`` the student runs steps ``0 .. k-1`` without gradients with the
    denoise-renoise transition (its OWN estimate ``z0_hat`` re-noised with fresh noise to the next time), then
    takes step ``k`` with gradients: ``z0_hat = z_{t_k} - t_k v_phi(z_{t_k}, t_k, H_c)`` (Eq. 5).
    ``cond`` is the student's conditioning; for the gradient step it must carry the student's graph.
    """
    b = z1.shape[0]
    z = z1
    with torch.no_grad():
        for i in range(k):
            t = grid[i].expand(b)
            z0 = flow.clean_from_velocity(z, grid[i], student(z, t, _detach_cond(cond)))
            eps = torch.randn(z.shape, generator=generator).to(z.device, z.dtype)
            z = flow.renoise(z0, grid[i + 1], eps)
    z = z.detach()
    with torch.set_grad_enabled(grad):
        t_k = grid[k]
        z0_hat = flow.clean_from_velocity(z, t_k, student(z, t_k.expand(b), cond))
    return StudentSample(z0_hat=z0_hat, z_tk=z, t_k=float(t_k), k=k)


def _detach_cond(cond: Any) -> Any:
    if isinstance(cond, Tensor):
        return cond.detach()
    fields = getattr(cond, "__dataclass_fields__", None)
    if fields is None:
        return cond
    kw = {}
    for name in fields:
        v = getattr(cond, name)
        if isinstance(v, Tensor):
            v = v.detach()
        elif isinstance(v, dict):
            v = {k: x.detach() if isinstance(x, Tensor) else x for k, x in v.items()}
        kw[name] = v
    return type(cond)(**kw)


def _per_sample_mean(x: Tensor) -> Tensor:
    """Mean over every non-batch dim, shaped (B, 1, ..., 1)."""
    return x.flatten(1).mean(1).view(-1, *([1] * (x.dim() - 1)))


def dm_loss_eq10(v_real: Tensor, v_fake: Tensor, weight: Tensor) -> Tensor:
    """Eq. 10 literally: ``E[w_tau || v_theta - v_psi ||^2]`` with per-sample ``weight`` (B,), mean over elements."""
    per = (v_real - v_fake).pow(2).flatten(1).mean(1)
    return (weight * per).mean()


def dmd_loss(z0_hat: Tensor, z_tau: Tensor, tau: Tensor, v_real: Tensor, v_fake: Tensor,
             norm_eps: float = 1e-6) -> tuple[Tensor, dict[str, Tensor]]:
    """Distribution-matching loss (Eq. 6-10) with DMD2's normalised-gradient weighting.

    With clean estimates from each model at ``z_tau`` (Eq. 5 applied to the teacher and fake velocities)
    ``x0_real = z_tau - tau v_real`` and ``x0_fake = z_tau - tau v_fake``, so
    ``x0_fake - x0_real = tau (v_real - v_fake)``: the velocity difference of Eq. 10 is, up to the factor tau,
    the score difference of Eq. 7 (Eq. 9 with the drift cancelled). The per-sample DMD gradient is::

        g = (x0_fake - x0_real) / mean|z0_hat - x0_real|        (mean over non-batch dims, detached)

    and the loss ``0.5 * mean((z0_hat - sg(z0_hat - g))^2)`` has ``d loss / d z0_hat = g / numel``: gradients reach
    the student only through ``z0_hat`` (teacher and fake are evaluated without graph, and the Jacobians of their
    velocities w.r.t. ``z_tau`` are dropped, as in DMD/DMD2). Its value equals Eq. 10 with the weight
    ``w_tau = tau^2 / (2 mean|z0_hat - x0_real|^2)``, which is returned in ``logs["w_tau"]``.
    ``v_real`` must already include the teacher's CFG.
    """
    tau_b = flow.broadcast_time(tau, z_tau)
    with torch.no_grad():
        x0_real = z_tau - tau_b * v_real
        x0_fake = z_tau - tau_b * v_fake
        norm = _per_sample_mean((z0_hat.detach() - x0_real).abs()).clamp_min(norm_eps)
        g = (x0_fake - x0_real) / norm
        target = z0_hat.detach() - g
    loss = 0.5 * (z0_hat - target).pow(2).mean()
    w_tau = (tau_b.flatten(1)[:, 0] ** 2) / (2.0 * norm.flatten() ** 2)
    return loss, {"grad": g, "w_tau": w_tau, "norm": norm.flatten()}


def fake_flow_loss(fake: VelocityModel, z0_hat: Tensor, cond: Any, tau: Tensor, z1: Tensor) -> Tensor:
    """Eq. 11-12: flow matching of the fake model on stop-gradient student samples."""
    x = z0_hat.detach()
    z_tau = flow.interpolate(x, z1, tau)
    return (fake(z_tau, tau, cond) - flow.velocity_target(x, z1)).pow(2).mean()


def per_sample_rms(x: Tensor, eps: float = 1e-8) -> Tensor:
    """(B,) rms over every non-batch dim, summed in at least float32 (bf16 latents), floored at ``eps``."""
    acc = torch.promote_types(x.dtype, torch.float32)
    return x.flatten(1).to(acc).pow(2).mean(1).sqrt().clamp_min(eps)


def match_rms(x: Tensor, ref: Tensor) -> Tensor:
    """``x_i * rms(ref_i) / rms(x_i)`` per sample (rms over every non-batch dim; ``ref`` carries no graph).

    Differentiable in ``x``: its Jacobian is ``rms(ref_i) / rms(x_i)`` times the projection orthogonal to ``x_i``, so
    a loss of the output sends no gradient along ``x_i`` itself (it can steer the sample's shape, not its scale).
    """
    gain = per_sample_rms(ref.detach()) / per_sample_rms(x)  # (B,)
    return x * gain.to(x.dtype).view(-1, *([1] * (x.dim() - 1)))


def d_hinge_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Eq. 13: ``E[max(0, 1 - D(z_td)) + max(0, 1 + D(z_hat_td))]``."""
    return torch.relu(1.0 - real_logits).mean() + torch.relu(1.0 + fake_logits).mean()


def g_hinge_loss(fake_logits: Tensor) -> Tensor:
    """Eq. 14: ``-E[D(z_hat_td)]``."""
    return -fake_logits.mean()


class DiffusionDiscriminator(nn.Module):
    """Sec. V-B: the first ``L`` blocks of the frozen teacher as backbone + a trainable light head.

    The backbone is the teacher itself (``forward_features``), which stays frozen (``requires_grad=False``)
    and is not a sub-module here (so it is never in this module's parameters or optimiser). Each block's hidden
    states (B, T', D) are mean-pooled over tokens, concatenated over the L blocks and mapped to one logit by
    two linear layers (``per_frame``: the same head on each token's concatenated states, one logit per token).
    Gradients flow through the frozen backbone to the input latent (the generator's path).
    """

    def __init__(self, backbone: VelocityModel, num_blocks: int, width: int, hidden: int = 256,
                 per_frame: bool = False) -> None:
        super().__init__()
        self.__dict__["backbone"] = backbone  # plain attribute: not registered, not trained, not checkpointed here
        self.num_blocks = num_blocks
        self.per_frame = per_frame
        self.head = nn.Sequential(nn.Linear(num_blocks * width, hidden), nn.SiLU(), nn.Linear(hidden, 1))

    def forward(self, z_td: Tensor, t_d: Tensor, cond: Any) -> Tensor:
        """Logits (B,), or (B, T') with ``per_frame`` (one per token of the latent; the hinge losses average them)."""
        hs = self.backbone.forward_features(z_td, t_d, cond, num_blocks=self.num_blocks)  # L x (B, T', D)
        dtype = self.head[0].weight.dtype
        if self.per_frame:
            frames = torch.stack([h.float() for h in hs], 2)  # (B, T', L, D)
            return self.head(rearrange(frames, "B T L D -> B T (L D)").to(dtype)).squeeze(-1)  # (B, T')
        pooled = torch.stack([h.float().mean(1) for h in hs], 1)  # (B, L, D)
        return self.head(rearrange(pooled, "B L D -> B (L D)").to(dtype)).squeeze(-1)  # (B,)
