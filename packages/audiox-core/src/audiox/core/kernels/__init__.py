"""Hot-path ops of the MMDiT behind one dispatching API.

Every op has a plain-PyTorch reference (``audiox.core.kernels.reference``) that is always available; faster
backends (Triton, SDPA, xformers) are chosen at run time where they exist and measure faster, and tests check
that they agree with the reference.

    attention(q, k, v, *, mask=None, backend="auto")    q/k/v: (B, H, L, Dh); mask: (B, L_k) bool, True = keep
    modulated_norm(x, shift, scale, *, kind="layer", eps=1e-6)   x: (B, L, D); shift/scale: (B, D)
    gated_residual(x, y, gate)                           x + gate[:, None] * y
"""

from audiox.core.kernels.dispatch import attention, gated_residual, modulated_norm

__all__ = ["attention", "modulated_norm", "gated_residual"]
