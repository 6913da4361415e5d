"""Triton kernels for the adaLN hot path: modulated LayerNorm/RMSNorm and the gated residual add.

``modulated_norm``: ``y = norm(x) * (1 + scale) + shift`` in one pass over each row (the adaLN of DiT, Peebles &
Xie 2023, used by the paper's MMDiT blocks), with ``norm`` a non-affine LayerNorm or an RMSNorm. The backward is
one pass too: with ``xhat = norm(x)`` and ``g = dy * (1 + scale)``,

    LayerNorm: dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
    RMSNorm:   dx = rstd * (g - xhat * mean(g * xhat))
    dscale = sum_L dy * xhat,   dshift = sum_L dy

``gated_residual``: ``out = x + gate * y`` (adaLN-Zero's gated branch), backward ``dx = dout``,
``dy = gate * dout``, ``dgate = sum_L dout * y``.

The sums over the sequence axis are accumulated per program over ``ROWS`` rows in float32 and the few partial
sums are added by PyTorch (no atomics, deterministic). x/y/out: (B, L, D) with a unit stride on D.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor


@triton.jit
def _modnorm_fwd_kernel(X, SHIFT, SCALE, Y, MEAN, RSTD, L, D, eps,
                        IS_RMS: tl.constexpr, ROWS: tl.constexpr, BLOCK_D: tl.constexpr):
    b = tl.program_id(1)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < D
    shift = tl.load(SHIFT + b * D + offs_d, mask=d_ok, other=0.0).to(tl.float32)
    scale1 = 1.0 + tl.load(SCALE + b * D + offs_d, mask=d_ok, other=0.0).to(tl.float32)
    for i in range(ROWS):
        row = tl.program_id(0) * ROWS + i
        if row < L:
            base = (b * L + row) * D
            x = tl.load(X + base + offs_d, mask=d_ok, other=0.0).to(tl.float32)
            if IS_RMS:
                mean = 0.0
            else:
                mean = tl.sum(x, axis=0) / D
            xc = tl.where(d_ok, x - mean, 0.0)
            rstd = 1.0 / tl.sqrt(tl.sum(xc * xc, axis=0) / D + eps)
            y = xc * rstd * scale1 + shift
            tl.store(Y + base + offs_d, y.to(Y.dtype.element_ty), mask=d_ok)
            tl.store(MEAN + b * L + row, mean)
            tl.store(RSTD + b * L + row, rstd)


@triton.jit
def _modnorm_bwd_kernel(X, SCALE, DY, MEAN, RSTD, DX, DSCALE_P, DSHIFT_P, L, D,
                        IS_RMS: tl.constexpr, ROWS: tl.constexpr, BLOCK_D: tl.constexpr):
    pid = tl.program_id(0)
    b = tl.program_id(1)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < D
    scale1 = 1.0 + tl.load(SCALE + b * D + offs_d, mask=d_ok, other=0.0).to(tl.float32)
    dscale = tl.zeros([BLOCK_D], tl.float32)
    dshift = tl.zeros([BLOCK_D], tl.float32)
    for i in range(ROWS):
        row = pid * ROWS + i
        if row < L:
            base = (b * L + row) * D
            x = tl.load(X + base + offs_d, mask=d_ok, other=0.0).to(tl.float32)
            dy = tl.load(DY + base + offs_d, mask=d_ok, other=0.0).to(tl.float32)
            mean = tl.load(MEAN + b * L + row)
            rstd = tl.load(RSTD + b * L + row)
            xhat = tl.where(d_ok, (x - mean) * rstd, 0.0)
            g = dy * scale1
            c1 = tl.sum(g * xhat, axis=0) / D
            if IS_RMS:
                dx = (g - xhat * c1) * rstd
            else:
                c2 = tl.sum(g, axis=0) / D
                dx = (g - c2 - xhat * c1) * rstd
            tl.store(DX + base + offs_d, dx.to(DX.dtype.element_ty), mask=d_ok)
            dscale += dy * xhat
            dshift += dy
    part = (b * tl.num_programs(0) + pid) * D + offs_d
    tl.store(DSCALE_P + part, dscale, mask=d_ok)
    tl.store(DSHIFT_P + part, dshift, mask=d_ok)


@triton.jit
def _gated_fwd_kernel(X, Y, GATE, OUT, L, D, ROWS: tl.constexpr, BLOCK_D: tl.constexpr):
    b = tl.program_id(1)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < D
    gate = tl.load(GATE + b * D + offs_d, mask=d_ok, other=0.0).to(tl.float32)
    for i in range(ROWS):
        row = tl.program_id(0) * ROWS + i
        if row < L:
            base = (b * L + row) * D
            x = tl.load(X + base + offs_d, mask=d_ok, other=0.0).to(tl.float32)
            y = tl.load(Y + base + offs_d, mask=d_ok, other=0.0).to(tl.float32)
            tl.store(OUT + base + offs_d, (x + gate * y).to(OUT.dtype.element_ty), mask=d_ok)


@triton.jit
def _gated_bwd_kernel(Y, GATE, DOUT, DY, DGATE_P, L, D, ROWS: tl.constexpr, BLOCK_D: tl.constexpr):
    pid = tl.program_id(0)
    b = tl.program_id(1)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < D
    gate = tl.load(GATE + b * D + offs_d, mask=d_ok, other=0.0).to(tl.float32)
    dgate = tl.zeros([BLOCK_D], tl.float32)
    for i in range(ROWS):
        row = pid * ROWS + i
        if row < L:
            base = (b * L + row) * D
            dout = tl.load(DOUT + base + offs_d, mask=d_ok, other=0.0).to(tl.float32)
            y = tl.load(Y + base + offs_d, mask=d_ok, other=0.0).to(tl.float32)
            tl.store(DY + base + offs_d, (gate * dout).to(DY.dtype.element_ty), mask=d_ok)
            dgate += dout * y
    tl.store(DGATE_P + (b * tl.num_programs(0) + pid) * D + offs_d, dgate, mask=d_ok)


def _launch_shape(L: int, D: int, rows: int | None) -> tuple[int, int, int]:
    """(rows per program, programs along L, BLOCK_D). ~32 rows per program keeps the partial sums few."""
    block_d = triton.next_power_of_2(D)
    rows = rows or max(1, min(32, L))
    return rows, triton.cdiv(L, rows), block_d


def _warps(block_d: int) -> int:
    return min(16, max(1, block_d // 256))


def _check_rows(x: Tensor, *vecs: Tensor) -> None:
    if x.dim() != 3:
        raise ValueError(f"expected x of shape (B, L, D), got {tuple(x.shape)}")
    for v in vecs:
        if v.shape != (x.shape[0], x.shape[2]):
            raise ValueError(f"per-sample vectors must be (B, D) = {(x.shape[0], x.shape[2])}, got {tuple(v.shape)}")


class _ModulatedNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, shift, scale, is_rms, eps, rows):
        x, shift, scale = x.contiguous(), shift.contiguous(), scale.contiguous()
        B, L, D = x.shape
        rows, n_prog, block_d = _launch_shape(L, D, rows)
        y = torch.empty_like(x)
        mean = torch.empty(B, L, device=x.device, dtype=torch.float32)
        rstd = torch.empty(B, L, device=x.device, dtype=torch.float32)
        _modnorm_fwd_kernel[(n_prog, B)](x, shift, scale, y, mean, rstd, L, D, eps, IS_RMS=is_rms, ROWS=rows,
                                         BLOCK_D=block_d, num_warps=_warps(block_d))
        ctx.save_for_backward(x, scale, mean, rstd)
        ctx.is_rms, ctx.rows, ctx.shift_dtype = is_rms, rows, shift.dtype
        return y

    @staticmethod
    def backward(ctx, dy):
        x, scale, mean, rstd = ctx.saved_tensors
        dy = dy.contiguous()
        B, L, D = x.shape
        rows, n_prog, block_d = _launch_shape(L, D, ctx.rows)
        dx = torch.empty_like(x)
        dscale_p = torch.empty(B, n_prog, D, device=x.device, dtype=torch.float32)
        dshift_p = torch.empty(B, n_prog, D, device=x.device, dtype=torch.float32)
        _modnorm_bwd_kernel[(n_prog, B)](x, scale, dy, mean, rstd, dx, dscale_p, dshift_p, L, D, IS_RMS=ctx.is_rms,
                                         ROWS=rows, BLOCK_D=block_d, num_warps=_warps(block_d))
        dshift = dshift_p.sum(1).to(ctx.shift_dtype)
        dscale = dscale_p.sum(1).to(scale.dtype)
        return dx, dshift, dscale, None, None, None


class _GatedResidual(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y, gate, rows):
        x, y, gate = x.contiguous(), y.contiguous(), gate.contiguous()
        B, L, D = x.shape
        rows, n_prog, block_d = _launch_shape(L, D, rows)
        out = torch.empty_like(x)
        _gated_fwd_kernel[(n_prog, B)](x, y, gate, out, L, D, ROWS=rows, BLOCK_D=block_d, num_warps=_warps(block_d))
        ctx.save_for_backward(y, gate)
        ctx.rows, ctx.x_dtype = rows, x.dtype
        return out

    @staticmethod
    def backward(ctx, dout):
        y, gate = ctx.saved_tensors
        dout = dout.contiguous()
        B, L, D = y.shape
        rows, n_prog, block_d = _launch_shape(L, D, ctx.rows)
        dy = torch.empty_like(y)
        dgate_p = torch.empty(B, n_prog, D, device=y.device, dtype=torch.float32)
        _gated_bwd_kernel[(n_prog, B)](y, gate, dout, dy, dgate_p, L, D, ROWS=rows, BLOCK_D=block_d,
                                       num_warps=_warps(block_d))
        return dout.to(ctx.x_dtype), dy, dgate_p.sum(1).to(gate.dtype), None


def triton_modulated_norm(x: Tensor, shift: Tensor, scale: Tensor, kind: str = "layer", eps: float = 1e-6,
                          rows: int | None = None) -> Tensor:
    """Fused ``norm(x) * (1 + scale) + shift``; same contract as ``reference.modulated_norm_ref``."""
    if kind not in ("layer", "rms"):
        raise ValueError(f"unknown norm kind {kind!r}")
    _check_rows(x, shift, scale)
    return _ModulatedNorm.apply(x, shift, scale, kind == "rms", eps, rows)


def triton_gated_residual(x: Tensor, y: Tensor, gate: Tensor, rows: int | None = None) -> Tensor:
    """Fused ``x + gate[:, None] * y``; same contract as ``reference.gated_residual_ref``."""
    _check_rows(x, gate)
    if y.shape != x.shape:
        raise ValueError(f"gated_residual: {x.shape=} and {y.shape=} differ")
    return _GatedResidual.apply(x, y, gate, rows)
