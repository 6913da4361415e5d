"""Building blocks of the MMDiT and MAF: timestep embedding, adaLN modulation, RoPE, QK-norm attention, MLP."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from audiox.core.kernels import attention

__all__ = [
    "timestep_embedding",
    "TimestepEmbedder",
    "ModulationOut",
    "Modulation",
    "RMSNorm",
    "rope_cos_sin",
    "apply_rope",
    "SelfAttention",
    "CrossAttention",
    "MLP",
]


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0, time_factor: float = 1000.0) -> Tensor:
    """Sinusoidal features of ``t`` (B,) in [0, 1] (scaled by ``time_factor`` as in DiT / flux) -> (B, dim)."""
    t = time_factor * t.float()
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class TimestepEmbedder(nn.Module):
    """Sinusoidal features -> MLP -> width ``hidden``."""

    def __init__(self, hidden: int, freq_dim: int = 256) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, t: Tensor) -> Tensor:  # (B,) -> (B, D)
        return self.mlp(timestep_embedding(t, self.freq_dim).to(self.mlp[0].weight.dtype))


@dataclass
class ModulationOut:
    """One adaLN modulation: ``norm(x) * (1 + scale) + shift``, residual scaled by ``gate``. Each (B, D)."""

    shift: Tensor
    scale: Tensor
    gate: Tensor


class Modulation(nn.Module):
    """SiLU -> Linear producing ``n`` :class:`ModulationOut` (adaLN-Zero: zero-initialised)."""

    def __init__(self, hidden: int, n: int) -> None:
        super().__init__()
        self.n = n
        self.lin = nn.Linear(hidden, 3 * n * hidden)

    def forward(self, c: Tensor) -> list[ModulationOut]:  # c: (B, D)
        chunks = self.lin(F.silu(c)).chunk(3 * self.n, dim=-1)
        return [ModulationOut(*chunks[3 * i : 3 * i + 3]) for i in range(self.n)]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (y * self.weight.float()).to(x.dtype)


def rope_cos_sin(positions: Tensor, head_dim: int, theta: float = 10000.0) -> tuple[Tensor, Tensor]:
    """Rotary tables for integer/float ``positions`` (L,) -> cos, sin each (L, head_dim // 2)."""
    assert head_dim % 2 == 0, f"{head_dim=} must be even"
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float64) / head_dim))
    ang = positions.to(torch.float64)[:, None] * inv[None]
    return torch.cos(ang).float(), torch.sin(ang).float()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate pairs ``(x[2i], x[2i+1])`` by the position angle. x: (B, H, L, Dh); cos/sin: (L, Dh/2)."""
    xf = x.float()
    x1, x2 = xf[..., 0::2], xf[..., 1::2]
    out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return out.flatten(-2).to(x.dtype)


class SelfAttention(nn.Module):
    """Multi-head self-attention with RMS QK-norm and RoPE over the sequence."""

    def __init__(self, dim: int, heads: int, qk_norm: bool = True, backend: str = "auto") -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.backend = backend
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm = RMSNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = RMSNorm(self.head_dim) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor] | None = None) -> Tensor:  # (B, L, D)
        q, k, v = rearrange(self.qkv(x), "B L (K H Dh) -> K B H L Dh", K=3, H=self.heads)
        q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        out = attention(q, k, v, backend=self.backend)  # (B, H, L, Dh)
        return self.proj(rearrange(out, "B H L Dh -> B L (H Dh)"))


class CrossAttention(nn.Module):
    """Queries from ``x`` attend to ``context`` (``mask``: (B, L_c) bool, True = attend)."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None, qk_norm: bool = True,
                 backend: str = "auto") -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.backend = backend
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(context_dim or dim, 2 * dim)
        self.q_norm = RMSNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = RMSNorm(self.head_dim) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, context: Tensor, mask: Tensor | None = None) -> Tensor:
        q = rearrange(self.q(x), "B L (H Dh) -> B H L Dh", H=self.heads)
        k, v = rearrange(self.kv(context), "B L (K H Dh) -> K B H L Dh", K=2, H=self.heads)
        q, k = self.q_norm(q), self.k_norm(k)
        out = attention(q, k, v, mask=mask, backend=self.backend)
        return self.proj(rearrange(out, "B H L Dh -> B L (H Dh)"))


class MLP(nn.Module):
    def __init__(self, dim: int, ratio: float = 4.0) -> None:
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))
