"""Run-time choice between the reference ops and the fast backends."""

from __future__ import annotations

from torch import Tensor

from audiox.core.kernels.reference import attention_ref, gated_residual_ref, modulated_norm_ref


def attention(q: Tensor, k: Tensor, v: Tensor, *, mask: Tensor | None = None, backend: str = "auto") -> Tensor:
    """Softmax attention, (B, H, L, Dh) layout; see :func:`audiox.core.kernels.reference.attention_ref`."""
    if backend in ("auto", "sdpa"):
        import torch.nn.functional as F

        attn_mask = None if mask is None else mask[:, None, None, :]
        if mask is not None and backend == "auto":
            # SDPA returns NaN for fully masked rows; fall back to the reference there.
            if not bool(mask.any(dim=-1).all()):
                return attention_ref(q, k, v, mask)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    if backend == "torch":
        return attention_ref(q, k, v, mask)
    raise ValueError(f"unknown attention backend {backend!r}")


def modulated_norm(x: Tensor, shift: Tensor, scale: Tensor, *, kind: str = "layer", eps: float = 1e-6) -> Tensor:
    return modulated_norm_ref(x, shift, scale, kind=kind, eps=eps)


def gated_residual(x: Tensor, y: Tensor, gate: Tensor) -> Tensor:
    return gated_residual_ref(x, y, gate)
