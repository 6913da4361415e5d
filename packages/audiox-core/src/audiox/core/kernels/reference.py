"""Plain-PyTorch references for the fused kernels (always available; the ground truth in tests)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def attention_ref(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
    """Softmax attention. q: (B, H, Lq, Dh); k, v: (B, H, Lk, Dh); mask: (B, Lk) bool (True = attend)."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = torch.einsum("bhqd,bhkd->bhqk", q.float(), k.float()) * scale
    if mask is not None:
        assert mask.shape == (q.shape[0], k.shape[2]), f"{mask.shape=} {k.shape=}"
        scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
    probs = scores.softmax(dim=-1)
    probs = torch.nan_to_num(probs, nan=0.0)  # rows with no key at all attend to nothing
    return torch.einsum("bhqk,bhkd->bhqd", probs, v.float()).to(q.dtype)


def modulated_norm_ref(x: Tensor, shift: Tensor, scale: Tensor, kind: str = "layer", eps: float = 1e-6) -> Tensor:
    """adaLN: ``norm(x) * (1 + scale) + shift`` with a non-affine LayerNorm or RMSNorm. x: (B, L, D)."""
    xf = x.float()
    if kind == "layer":
        y = F.layer_norm(xf, (x.shape[-1],), eps=eps)
    elif kind == "rms":
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    else:
        raise ValueError(f"unknown norm kind {kind!r}")
    y = y * (1 + scale.float()[:, None, :]) + shift.float()[:, None, :]
    return y.to(x.dtype)


def gated_residual_ref(x: Tensor, y: Tensor, gate: Tensor) -> Tensor:
    """``x + gate * y`` with gate (B, D) broadcast over the sequence axis. x, y: (B, L, D)."""
    return x + gate[:, None, :] * y
