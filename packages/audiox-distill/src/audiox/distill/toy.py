"""A known low-dimensional target for the honest proof: a class-conditional mixture of Gaussians.

The toy velocity model follows the same protocol as :class:`audiox.core.AudioXModel` (``fuse``, ``forward``,
``forward_features``), so the distiller runs the same code path on it. Latents are ``(B, C, 1)`` with C=2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from audiox.core import flow

from audiox.distill.pairs import teacher_ode

__all__ = ["GaussianMixture", "ToyVelocity", "train_toy_teacher", "euler_cfg", "turbo_sample", "energy_distance",
           "mode_coverage", "mmd_rbf", "ToySource"]


@dataclass
class GaussianMixture:
    """``num_classes`` classes, each an equal-weight mixture of ``modes`` isotropic Gaussians in 2-D.

    Class c's modes sit on a circle of radius ``radius`` at angles offset by class, so classes interleave and
    only a conditional sampler that resolves both the class and the mode gets a low distance.
    """

    num_classes: int = 3
    modes: int = 3
    radius: float = 2.0
    std: float = 0.15

    def means(self) -> Tensor:
        """(K, M, 2) mode centres."""
        k = torch.arange(self.num_classes, dtype=torch.float64)[:, None]
        m = torch.arange(self.modes, dtype=torch.float64)[None, :]
        ang = 2 * math.pi * (m / self.modes + k / (self.num_classes * self.modes))
        return (self.radius * torch.stack([ang.cos(), ang.sin()], -1)).float()

    def sample(self, labels: Tensor, generator: torch.Generator) -> Tensor:
        """(B,) labels -> (B, 2, 1) latents."""
        b = labels.shape[0]
        mode = torch.randint(0, self.modes, (b,), generator=generator)
        mu = self.means()[labels, mode]
        return (mu + self.std * torch.randn(b, 2, generator=generator))[:, :, None]


class _Cond:
    """Conditions of the toy model: a (B, H) embedding; ``cat`` like ``audiox.core.types.Conditions``."""

    def __init__(self, emb: Tensor) -> None:
        self.emb = emb

    @staticmethod
    def cat(items: list["_Cond"]) -> "_Cond":
        return _Cond(torch.cat([c.emb for c in items]))


class _Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.mod = nn.Linear(width, 2 * width)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.SiLU(), nn.Linear(2 * width, width))

    def forward(self, h: Tensor, c: Tensor) -> Tensor:
        scale, shift = self.mod(c).chunk(2, -1)
        return h + self.mlp(self.norm(h) * (1 + scale) + shift)


class ToyVelocity(nn.Module):
    """A residual MLP velocity field ``v(z_t, t, class)`` with a null class for CFG."""

    def __init__(self, num_classes: int = 3, channels: int = 2, width: int = 128, depth: int = 4) -> None:
        super().__init__()
        self.num_classes, self.channels, self.width = num_classes, channels, width
        self.label = nn.Embedding(num_classes + 1, width)  # index num_classes = null (CFG)
        self.time = nn.Sequential(nn.Linear(32, width), nn.SiLU(), nn.Linear(width, width))
        self.inp = nn.Linear(channels, width)
        self.blocks = nn.ModuleList([_Block(width) for _ in range(depth)])
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, channels))

    def fuse(self, feats: Tensor, drop: Tensor | None = None) -> _Cond:
        """``feats``: (B,) long labels; ``drop[:, 0]`` (the text column) nulls the label."""
        labels = feats
        if drop is not None:
            labels = torch.where(drop[:, 0].to(labels.device), torch.full_like(labels, self.num_classes), labels)
        return _Cond(self.label(labels))

    def _embed_t(self, t: Tensor) -> Tensor:
        freqs = torch.exp(torch.linspace(0, math.log(1000.0), 16, device=t.device))
        ang = t.float()[:, None] * freqs[None] * 2 * math.pi / 10
        return self.time(torch.cat([ang.sin(), ang.cos()], -1))

    def _run(self, z_t: Tensor, t: Tensor, cond: _Cond, num_blocks: int) -> tuple[Tensor, list[Tensor]]:
        c = cond.emb + self._embed_t(t)
        h = self.inp(z_t[:, :, 0])
        hs = []
        for blk in self.blocks[:num_blocks]:
            h = blk(h, c)
            hs.append(h[:, None, :])  # (B, 1, D): one token, like (B, T, D)
        return h, hs

    def forward(self, z_t: Tensor, t: Tensor, cond: _Cond) -> Tensor:
        h, _ = self._run(z_t, t, cond, len(self.blocks))
        return self.out(h)[:, :, None]

    def forward_features(self, z_t: Tensor, t: Tensor, cond: _Cond, num_blocks: int) -> list[Tensor]:
        if num_blocks > len(self.blocks):
            raise ValueError(f"num_blocks={num_blocks} exceeds the model's {len(self.blocks)} blocks")
        return self._run(z_t, t, cond, num_blocks)[1]


def train_toy_teacher(mix: GaussianMixture, steps: int = 3000, batch: int = 512, lr: float = 2e-3, p_drop: float = 0.15,
                      seed: int = 0, **model_kw) -> ToyVelocity:
    """Flow matching (Eq. 4) with label dropout for CFG."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = ToyVelocity(mix.num_classes, **model_kw)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        labels = torch.randint(0, mix.num_classes, (batch,), generator=g)
        z0 = mix.sample(labels, g)
        drop = (torch.rand(batch, generator=g) < p_drop)[:, None].expand(batch, 3)
        t = torch.rand(batch, generator=g)
        z1 = torch.randn(z0.shape, generator=g)
        loss = (model(flow.interpolate(z0, z1, t), t, model.fuse(labels, drop)) - flow.velocity_target(z0, z1)).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    model.eval().requires_grad_(False)
    return model


@torch.no_grad()
def euler_cfg(model: ToyVelocity, labels: Tensor, steps: int, scale: float, generator: torch.Generator) -> Tensor:
    z1 = torch.randn(labels.shape[0], model.channels, 1, generator=generator)
    return teacher_ode(model, labels, z1, steps, scale)


@torch.no_grad()
def turbo_sample(model: ToyVelocity, labels: Tensor, grid: Tensor, generator: torch.Generator) -> Tensor:
    """Denoise-renoise sampling over ``grid`` (what audiox-infer's TurboSampler does), no CFG."""
    b = labels.shape[0]
    cond = model.fuse(labels)
    z = torch.randn(b, model.channels, 1, generator=generator)
    for i in range(len(grid) - 1):
        z0 = flow.clean_from_velocity(z, grid[i], model(z, grid[i].expand(b), cond))
        z = flow.renoise(z0, grid[i + 1], torch.randn(z.shape, generator=generator)) if grid[i + 1] > 0 else z0
    return z


def energy_distance(x: Tensor, y: Tensor) -> float:
    """``2 E|X-Y| - E|X-X'| - E|Y-Y'|`` (V-statistic) between (n, d) and (m, d) samples, float64."""
    x, y = x.double().flatten(1), y.double().flatten(1)
    return float(2 * torch.cdist(x, y).mean() - torch.cdist(x, x).mean() - torch.cdist(y, y).mean())


def mmd_rbf(x: Tensor, y: Tensor, bandwidth: float) -> float:
    """Squared MMD (biased V-statistic) with the Gaussian kernel ``exp(-|a-b|^2 / (2 h^2))``, float64.

    With ``h`` of the order of the modes' width it sees blur around the modes that the energy distance,
    dominated by the large-scale layout, barely registers."""
    x, y = x.double().flatten(1), y.double().flatten(1)
    k = lambda a, b: torch.exp(-torch.cdist(a, b).pow(2) / (2 * bandwidth**2)).mean()  # noqa: E731
    return float(k(x, x) + k(y, y) - 2 * k(x, y))


def mode_coverage(samples: Tensor, labels: Tensor, mix: GaussianMixture, radius_std: float = 3.0,
                  min_frac: float = 0.1) -> tuple[float, float]:
    """(coverage, precision): the fraction of (class, mode) pairs that receive at least ``min_frac`` of their
    fair share of samples within ``radius_std`` std of the centre, and the fraction of samples that lie within
    that radius of a mode of their own class."""
    mu = mix.means()  # (K, M, 2)
    x = samples.flatten(1).float()
    d = (x[:, None, :] - mu[labels]).norm(dim=-1)  # (B, M)
    near, idx = d.min(-1)
    ok = near < radius_std * mix.std
    covered = 0
    for c in range(mix.num_classes):
        sel = labels == c
        n_c = int(sel.sum())
        for m in range(mix.modes):
            hits = int((ok & sel & (idx == m)).sum())
            covered += hits >= min_frac * n_c / mix.modes
    return covered / (mix.num_classes * mix.modes), float(ok.float().mean())


class ToySource:
    """Batches ``(labels, z0)`` of real data for the discriminator; a resumable position (its own generator)."""

    def __init__(self, mix: GaussianMixture, batch_size: int, seed: int = 0) -> None:
        self.mix, self.batch_size, self.seed = mix, batch_size, seed
        self.position = 0

    def next_batch(self) -> tuple[Tensor, Tensor]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.position)
        self.position += 1
        labels = torch.randint(0, self.mix.num_classes, (self.batch_size,), generator=g)
        return labels, self.mix.sample(labels, g)

    def state_dict(self) -> dict[str, int]:
        return {"position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.position = int(state["position"])
