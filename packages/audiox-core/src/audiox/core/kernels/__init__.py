"""Hot-path ops of the MMDiT behind one dispatching API.

Every op has a plain-PyTorch reference (``audiox.core.kernels.reference``) that is always available; faster
backends (Triton, SDPA, xformers) are chosen at run time where they exist and measure faster, and tests check
that they agree with the reference (the Triton kernels under ``TRITON_INTERPRET=1`` on CPU).

    attention(q, k, v, *, mask=None, backend="auto")    q/k/v: (B, H, L, Dh); mask: (B, L_k) bool, True = keep
    attention_rope_qknorm(q, k, v, cos, sin, q_scale, k_scale, mask=None)   the same after the QK-norm + RoPE
                                                         prologue, fused into the Triton kernel
    modulated_norm(x, shift, scale, *, kind="layer", eps=1e-6)   x: (B, L, D); shift/scale: (B, D)
    gated_residual(x, y, gate)                           x + gate[:, None] * y

``AUDIOX_KERNELS=reference|triton|auto`` (default ``auto``) forces a backend for calls with ``backend="auto"``;
see :mod:`audiox.core.kernels.dispatch` for the per-shape measurement on CUDA.
"""

from audiox.core.kernels.dispatch import (
    HAS_TRITON,
    HAS_XFORMERS,
    TUNE_TABLE,
    attention,
    attention_rope_qknorm,
    gated_residual,
    kernel_mode,
    modulated_norm,
    resolve_attention_backend,
)

__all__ = [
    "HAS_TRITON",
    "HAS_XFORMERS",
    "TUNE_TABLE",
    "attention",
    "attention_rope_qknorm",
    "gated_residual",
    "kernel_mode",
    "modulated_norm",
    "resolve_attention_backend",
]
