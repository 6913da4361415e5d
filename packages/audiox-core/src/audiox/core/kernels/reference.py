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


def rope_qknorm_ref(q: Tensor, k: Tensor, cos: Tensor | None, sin: Tensor | None, q_scale: Tensor | None,
                    k_scale: Tensor | None, eps: float = 1e-6) -> tuple[Tensor, Tensor]:
    """The attention prologue of ``audiox.core.layers``: ``x' = rope(rmsnorm(x) * scale)`` for q and k.

    RMSNorm (QK-norm, Dehghani et al. 2023) over the head dim with weight ``scale`` (Dh,), rounded to the input
    dtype; then RoPE (Su et al. 2021) on interleaved pairs ``(x[2i], x[2i+1])`` with ``cos``/``sin`` (L, Dh/2)
    indexed by position. ``None`` skips a step.
    """

    def one(x: Tensor, w: Tensor | None) -> Tensor:
        if w is not None:
            xf = x.float()
            x = (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * w.float()).to(x.dtype)
        if cos is not None:
            L = x.shape[-2]
            c, s = cos[:L].float(), sin[:L].float()
            xf = x.float()
            x1, x2 = xf[..., 0::2], xf[..., 1::2]
            x = torch.stack([x1 * c - x2 * s, x1 * s + x2 * c], dim=-1).flatten(-2).to(x.dtype)
        return x

    return one(q, q_scale), one(k, k_scale)


def attention_rope_qknorm_ref(q: Tensor, k: Tensor, v: Tensor, cos: Tensor | None, sin: Tensor | None,
                              q_scale: Tensor | None, k_scale: Tensor | None, mask: Tensor | None = None,
                              eps: float = 1e-6) -> Tensor:
    """:func:`attention_ref` on the prologue's output :func:`rope_qknorm_ref` (what the fused kernel computes)."""
    qr, kr = rope_qknorm_ref(q, k, cos, sin, q_scale, k_scale, eps)
    return attention_ref(qr, kr, v, mask)
