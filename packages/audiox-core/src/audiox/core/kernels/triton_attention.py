"""Flash-attention-style fused attention in Triton (forward and backward), optionally with RMS QK-norm and RoPE
fused into the prologue.

Forward (FlashAttention-2, Dao 2023): each program owns ``BLOCK_M`` query rows of one (batch, head) and streams
the keys in ``BLOCK_N`` tiles with an online softmax, so the (L_q, L_k) score matrix never reaches memory; it
saves the row log-sum-exp for the backward. Backward: ``delta = rowsum(dO * O)``, then one kernel per key tile
accumulates dK, dV over all query tiles and one kernel per query tile accumulates dQ (no atomics).

Semantics are those of :func:`audiox.core.kernels.reference.attention_ref`: ``softmax(q k^T / sqrt(Dh)) v`` over
the keys whose ``mask`` entry is True; a query row with no key attends to nothing (output 0, gradient 0).

The fused prologue (:func:`attention_rope_qknorm`) matches :func:`audiox.core.kernels.reference.rope_qknorm_ref`:
``q' = rope(rmsnorm(q) * q_scale)`` and the same for ``k``, the order used by ``audiox.core.layers``. The
rotated/normalised q', k' are never written in the forward; the backward recomputes them once with PyTorch and
back-propagates through that small prologue.

Layout: q/k/v (B, H, L, Dh) with any strides (no copies of the usual ``rearrange`` views); mask (B, L_k) bool.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from audiox.core.kernels.reference import rope_qknorm_ref
from torch import Tensor

_LOG2E = 1.4426950408889634


def interpreting() -> bool:
    """True when this module's kernels run in Triton's CPU interpreter: ``TRITON_INTERPRET=1`` was set when
    the module was imported (``@triton.jit`` reads it at decoration time)."""
    return type(_attn_fwd_kernel).__name__ == "InterpretedFunction"


@dataclass(frozen=True)
class AttnBlocks:
    """Tile sizes and launch options. Defaults suit H100-class GPUs; tests use 16 to cross many tile edges."""

    block_m: int = 128
    block_n: int = 64
    num_warps: int = 4
    num_stages: int = 2
    bwd_block_m: int = 64
    bwd_block_n: int = 64
    bwd_num_warps: int = 4


def default_blocks(head_dim: int) -> AttnBlocks:
    if head_dim > 64:
        return AttnBlocks(block_m=128, block_n=64, num_warps=8, num_stages=2, bwd_block_m=64, bwd_block_n=32)
    return AttnBlocks()


@triton.jit
def _dot(a, b, PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    """``a @ b`` accumulated in float32. UPCAST (set under TRITON_INTERPRET) feeds float32 operands: the
    interpreter's dot multiplies bf16 bit patterns as integers (triton 3.8); bf16 products are exact in fp32,
    which is what the GPU's tensor cores compute too."""
    if UPCAST:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
    return tl.dot(a, b, input_precision=PRECISION)


@triton.jit
def _load_prologue(base, rows, offs_d, s_l, s_d, L, Dh, COS, SIN, SCALE, eps,
                   ROPE: tl.constexpr, QKNORM: tl.constexpr, HALF: tl.constexpr):
    """Load a (rows, Dh) tile and apply ``rope(rmsnorm(x) * scale)`` in float32; returns the input dtype."""
    row_ok = rows < L
    d_ok = offs_d < Dh
    ld_mask = row_ok[:, None] & d_ok[None, :]
    x = tl.load(base + rows[:, None] * s_l + offs_d[None, :] * s_d, mask=ld_mask, other=0.0)
    if ROPE or QKNORM:
        xf = x.to(tl.float32)
        partner = offs_d ^ 1  # the other element of each rotated pair (2i <-> 2i+1)
        if ROPE:
            xs = tl.load(base + rows[:, None] * s_l + partner[None, :] * s_d, mask=ld_mask, other=0.0).to(tl.float32)
        if QKNORM:
            rstd = 1.0 / tl.sqrt(tl.sum(xf * xf, axis=1) / Dh + eps)
            w = tl.load(SCALE + offs_d, mask=d_ok, other=0.0).to(tl.float32)
            # layers.RMSNorm rounds to the input dtype before RoPE; keep that rounding
            xf = (xf * rstd[:, None] * w[None, :]).to(x.dtype).to(tl.float32)
            if ROPE:
                ws = tl.load(SCALE + partner, mask=d_ok, other=0.0).to(tl.float32)
                xs = (xs * rstd[:, None] * ws[None, :]).to(x.dtype).to(tl.float32)
        if ROPE:
            cs_off = rows[:, None] * HALF + (offs_d // 2)[None, :]
            c = tl.load(COS + cs_off, mask=ld_mask, other=0.0)
            s = tl.load(SIN + cs_off, mask=ld_mask, other=0.0)
            sign = tl.where(offs_d % 2 == 0, -1.0, 1.0)
            xf = xf * c + sign[None, :] * xs * s  # out[2i] = x0 c - x1 s; out[2i+1] = x1 c + x0 s
        x = xf.to(x.dtype)
    return x


@triton.jit
def _attn_fwd_kernel(
    Q, K, V, O, LSE, MASK, COS, SIN, QS, KS,
    sqb, sqh, sql, sqd, skb, skh, skl, skd, svb, svh, svl, svd, sob, soh, sol, sod, smb,
    H, Lq, Lk, Dh, qk_scale, eps,
    HAS_MASK: tl.constexpr, ROPE: tl.constexpr, QKNORM: tl.constexpr, HALF: tl.constexpr,
    PRECISION: tl.constexpr, UPCAST: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < Dh

    q = _load_prologue(Q + b * sqb + h * sqh, offs_m, offs_d, sql, sqd, Lq, Dh, COS, SIN, QS, eps,
                       ROPE, QKNORM, HALF)  # (BLOCK_M, BLOCK_D)
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    k_base = K + b * skb + h * skh
    v_base = V + b * svb + h * svh
    for start_n in range(0, Lk, BLOCK_N):
        cols = start_n + offs_n
        k = _load_prologue(k_base, cols, offs_d, skl, skd, Lk, Dh, COS, SIN, KS, eps, ROPE, QKNORM, HALF)
        s = _dot(q, tl.trans(k), PRECISION, UPCAST) * qk_scale  # (BLOCK_M, BLOCK_N), log2 units
        valid = cols < Lk
        if HAS_MASK:
            keep = tl.load(MASK + b * smb + cols, mask=valid, other=0)
            valid = valid & (keep != 0)
        s = tl.where(valid[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        m_use = tl.where(m_new == float("-inf"), 0.0, m_new)  # rows with no key yet: avoid -inf - -inf
        p = tl.exp2(s - m_use[:, None])
        alpha = tl.exp2(m_i - m_use)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = tl.load(v_base + cols[:, None] * svl + offs_d[None, :] * svd,
                    mask=valid[:, None] & d_ok[None, :], other=0.0)
        acc = acc * alpha[:, None] + _dot(p.to(v.dtype), v, PRECISION, UPCAST)
        m_i = m_new
    empty = l_i == 0.0  # no key at all: output 0, and lse = +inf makes every backward probability 0
    out = acc / tl.where(empty, 1.0, l_i)[:, None]
    lse = tl.where(empty, float("inf"), m_i + tl.log2(tl.where(empty, 1.0, l_i)))
    row_ok = offs_m < Lq
    tl.store(O + b * sob + h * soh + offs_m[:, None] * sol + offs_d[None, :] * sod, out.to(O.dtype.element_ty),
             mask=row_ok[:, None] & d_ok[None, :])
    tl.store(LSE + pid_bh * Lq + offs_m, lse, mask=row_ok)


@triton.jit
def _attn_bwd_dkdv_kernel(
    Q, K, V, DO, LSE, DELTA, MASK, DK, DV,
    sqb, sqh, sql, sqd, skb, skh, skl, skd, svb, svh, svl, svd, sdb, sdh, sdl, sdd, smb,
    H, Lq, Lk, Dh, qk_scale, sm_scale,
    HAS_MASK: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """One key tile: dV = sum_m P^T dO, dK = sum_m dS^T Q * scale. DK/DV are contiguous (B, H, Lk, Dh)."""
    pid_n = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < Dh
    col_ok = offs_n < Lk
    valid = col_ok
    if HAS_MASK:
        keep = tl.load(MASK + b * smb + offs_n, mask=col_ok, other=0)
        valid = valid & (keep != 0)
    kv_mask = col_ok[:, None] & d_ok[None, :]
    k = tl.load(K + b * skb + h * skh + offs_n[:, None] * skl + offs_d[None, :] * skd, mask=kv_mask, other=0.0)
    v = tl.load(V + b * svb + h * svh + offs_n[:, None] * svl + offs_d[None, :] * svd, mask=kv_mask, other=0.0)
    dk = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    for start_m in range(0, Lq, BLOCK_M):
        rows = start_m + offs_m
        row_ok = rows < Lq
        q_mask = row_ok[:, None] & d_ok[None, :]
        q = tl.load(Q + b * sqb + h * sqh + rows[:, None] * sql + offs_d[None, :] * sqd, mask=q_mask, other=0.0)
        do = tl.load(DO + b * sdb + h * sdh + rows[:, None] * sdl + offs_d[None, :] * sdd, mask=q_mask, other=0.0)
        lse = tl.load(LSE + pid_bh * Lq + rows, mask=row_ok, other=float("inf"))
        delta = tl.load(DELTA + pid_bh * Lq + rows, mask=row_ok, other=0.0)
        s = _dot(q, tl.trans(k), PRECISION, UPCAST) * qk_scale  # (BLOCK_M, BLOCK_N)
        s = tl.where(valid[None, :], s, float("-inf"))
        p = tl.exp2(s - lse[:, None])
        dv += _dot(tl.trans(p.to(do.dtype)), do, PRECISION, UPCAST)
        dp = _dot(do, tl.trans(v), PRECISION, UPCAST)
        ds = p * (dp - delta[:, None])
        dk += _dot(tl.trans(ds.to(q.dtype)), q, PRECISION, UPCAST)
    out_off = pid_bh * Lk * Dh + offs_n[:, None] * Dh + offs_d[None, :]
    tl.store(DK + out_off, (dk * sm_scale).to(DK.dtype.element_ty), mask=kv_mask)
    tl.store(DV + out_off, dv.to(DV.dtype.element_ty), mask=kv_mask)


@triton.jit
def _attn_bwd_dq_kernel(
    Q, K, V, DO, LSE, DELTA, MASK, DQ,
    sqb, sqh, sql, sqd, skb, skh, skl, skd, svb, svh, svl, svd, sdb, sdh, sdl, sdd, smb,
    H, Lq, Lk, Dh, qk_scale, sm_scale,
    HAS_MASK: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """One query tile: dQ = sum_n dS K * scale. DQ is contiguous (B, H, Lq, Dh)."""
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < Dh
    row_ok = offs_m < Lq
    q_mask = row_ok[:, None] & d_ok[None, :]
    q = tl.load(Q + b * sqb + h * sqh + offs_m[:, None] * sql + offs_d[None, :] * sqd, mask=q_mask, other=0.0)
    do = tl.load(DO + b * sdb + h * sdh + offs_m[:, None] * sdl + offs_d[None, :] * sdd, mask=q_mask, other=0.0)
    lse = tl.load(LSE + pid_bh * Lq + offs_m, mask=row_ok, other=float("inf"))
    delta = tl.load(DELTA + pid_bh * Lq + offs_m, mask=row_ok, other=0.0)
    dq = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    for start_n in range(0, Lk, BLOCK_N):
        cols = start_n + offs_n
        valid = cols < Lk
        if HAS_MASK:
            keep = tl.load(MASK + b * smb + cols, mask=valid, other=0)
            valid = valid & (keep != 0)
        kv_mask = (cols < Lk)[:, None] & d_ok[None, :]
        k = tl.load(K + b * skb + h * skh + cols[:, None] * skl + offs_d[None, :] * skd, mask=kv_mask, other=0.0)
        v = tl.load(V + b * svb + h * svh + cols[:, None] * svl + offs_d[None, :] * svd, mask=kv_mask, other=0.0)
        s = _dot(q, tl.trans(k), PRECISION, UPCAST) * qk_scale
        s = tl.where(valid[None, :], s, float("-inf"))
        p = tl.exp2(s - lse[:, None])
        dp = _dot(do, tl.trans(v), PRECISION, UPCAST)
        ds = p * (dp - delta[:, None])
        dq += _dot(ds.to(k.dtype), k, PRECISION, UPCAST)
    tl.store(DQ + pid_bh * Lq * Dh + offs_m[:, None] * Dh + offs_d[None, :], (dq * sm_scale).to(DQ.dtype.element_ty),
             mask=q_mask)


def _check(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> None:
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"attention expects (B, H, L, Dh) tensors, got {q.shape=} {k.shape=} {v.shape=}")
    B, H, _, Dh = q.shape
    if k.shape[:2] != (B, H) or v.shape != k.shape or k.shape[-1] != Dh:
        raise ValueError(f"attention shape mismatch: {q.shape=} {k.shape=} {v.shape=}")
    if not 16 <= Dh <= 256:
        raise ValueError(f"Triton attention supports head dims 16..256, got {Dh}")
    if not (q.dtype == k.dtype == v.dtype) or q.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"attention needs one float dtype for q/k/v, got {q.dtype} {k.dtype} {v.dtype}")
    if mask is not None and mask.shape != (B, k.shape[2]):
        raise ValueError(f"mask must be (B, L_k) = {(B, k.shape[2])}, got {tuple(mask.shape)}")


def _precision(dtype: torch.dtype) -> str:
    # fp32 inputs: honour torch's TF32 switch so "fp32" means what the reference computes by default
    if dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32:
        return "ieee"
    return "tf32" if dtype == torch.float32 else "ieee"


def _mask_arg(mask: Tensor | None, like: Tensor) -> tuple[Tensor, int]:
    if mask is None:
        return like, 0  # unused pointer
    m = mask.to(torch.int8)
    if m.stride(-1) != 1:
        m = m.contiguous()
    return m, m.stride(0)


def _forward(q, k, v, mask, cos, sin, q_scale, k_scale, eps, blocks: AttnBlocks) -> tuple[Tensor, Tensor]:
    B, H, Lq, Dh = q.shape
    Lk = k.shape[2]
    o = torch.empty(B, H, Lq, Dh, device=q.device, dtype=q.dtype)
    lse = torch.empty(B * H, Lq, device=q.device, dtype=torch.float32)
    m, smb = _mask_arg(mask, q)
    rope = cos is not None
    qknorm = q_scale is not None
    dummy = lse
    grid = (triton.cdiv(Lq, blocks.block_m), B * H)
    _attn_fwd_kernel[grid](
        q, k, v, o, lse, m,
        cos if rope else dummy, sin if rope else dummy,
        q_scale if qknorm else dummy, k_scale if qknorm else dummy,
        *q.stride(), *k.stride(), *v.stride(), *o.stride(), smb,
        H, Lq, Lk, Dh, _LOG2E / math.sqrt(Dh), eps,
        HAS_MASK=mask is not None, ROPE=rope, QKNORM=qknorm, HALF=Dh // 2,
        PRECISION=_precision(q.dtype), UPCAST=interpreting(),
        BLOCK_M=blocks.block_m, BLOCK_N=blocks.block_n, BLOCK_D=triton.next_power_of_2(Dh),
        num_warps=blocks.num_warps, num_stages=blocks.num_stages,
    )
    return o, lse


def _backward(do, q, k, v, o, lse, mask, blocks: AttnBlocks) -> tuple[Tensor, Tensor, Tensor]:
    B, H, Lq, Dh = q.shape
    Lk = k.shape[2]
    delta = (do.float() * o.float()).sum(-1).reshape(B * H, Lq)  # rowsum(dO * O)
    dq = torch.empty(B, H, Lq, Dh, device=q.device, dtype=q.dtype)
    dk = torch.empty(B, H, Lk, Dh, device=q.device, dtype=k.dtype)
    dv = torch.empty(B, H, Lk, Dh, device=q.device, dtype=v.dtype)
    m, smb = _mask_arg(mask, q)
    common = {"HAS_MASK": mask is not None, "PRECISION": _precision(q.dtype), "UPCAST": interpreting(),
              "BLOCK_M": blocks.bwd_block_m, "BLOCK_N": blocks.bwd_block_n,
              "BLOCK_D": triton.next_power_of_2(Dh), "num_warps": blocks.bwd_num_warps}
    strides = (*q.stride(), *k.stride(), *v.stride(), *do.stride(), smb)
    scales = (H, Lq, Lk, Dh, _LOG2E / math.sqrt(Dh), 1.0 / math.sqrt(Dh))
    _attn_bwd_dkdv_kernel[(triton.cdiv(Lk, blocks.bwd_block_n), B * H)](
        q, k, v, do, lse, delta, m, dk, dv, *strides, *scales, **common)
    _attn_bwd_dq_kernel[(triton.cdiv(Lq, blocks.bwd_block_m), B * H)](
        q, k, v, do, lse, delta, m, dq, *strides, *scales, **common)
    return dq, dk, dv


class _TritonAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, mask, blocks):
        o, lse = _forward(q, k, v, mask, None, None, None, None, 0.0, blocks)
        ctx.save_for_backward(q, k, v, o, lse, mask)
        ctx.blocks = blocks
        return o

    @staticmethod
    def backward(ctx, do):
        q, k, v, o, lse, mask = ctx.saved_tensors
        dq, dk, dv = _backward(do, q, k, v, o, lse, mask, ctx.blocks)
        return dq, dk, dv, None, None


class _TritonAttentionRopeQKNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, cos, sin, q_scale, k_scale, mask, eps, blocks):
        o, lse = _forward(q, k, v, mask, cos, sin, q_scale, k_scale, eps, blocks)
        ctx.save_for_backward(q, k, v, cos, sin, q_scale, k_scale, o, lse, mask)
        ctx.blocks, ctx.eps = blocks, eps
        return o

    @staticmethod
    def backward(ctx, do):
        q, k, v, cos, sin, q_scale, k_scale, o, lse, mask = ctx.saved_tensors
        with torch.enable_grad():  # recompute q', k' once and differentiate the small prologue in PyTorch
            leaves = [t.detach().requires_grad_(t.requires_grad) if t is not None else None
                      for t in (q, k, cos, sin, q_scale, k_scale)]
            qr, kr = rope_qknorm_ref(leaves[0], leaves[1], *leaves[2:], eps=ctx.eps)
        dqr, dkr, dv = _backward(do, qr.detach(), kr.detach(), v, o, lse, mask, ctx.blocks)
        needs = [t for t in leaves if t is not None and t.requires_grad]
        grads = torch.autograd.grad((qr, kr), needs, (dqr, dkr), allow_unused=True) if needs else ()
        it = iter(grads)
        dq, dk, dcos, dsin, dqs, dks = (next(it) if t is not None and t.requires_grad else None for t in leaves)
        return dq, dk, dv, dcos, dsin, dqs, dks, None, None, None


def triton_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None,
                     blocks: AttnBlocks | None = None) -> Tensor:
    """Fused softmax attention; same contract as :func:`audiox.core.kernels.reference.attention_ref`."""
    _check(q, k, v, mask)
    return _TritonAttention.apply(q, k, v, mask, blocks or default_blocks(q.shape[-1]))


def triton_attention_rope_qknorm(q: Tensor, k: Tensor, v: Tensor, cos: Tensor | None, sin: Tensor | None,
                                 q_scale: Tensor | None, k_scale: Tensor | None, mask: Tensor | None = None,
                                 eps: float = 1e-6, blocks: AttnBlocks | None = None) -> Tensor:
    """Attention with ``rope(rmsnorm(x) * scale)`` applied to q and k inside the kernel's prologue.

    cos/sin: (L, Dh/2) tables (``audiox.core.layers.rope_cos_sin``) covering both sequences, or None for no
    RoPE; q_scale/k_scale: (Dh,) RMSNorm weights, or None for no QK-norm.
    """
    _check(q, k, v, mask)
    Dh = q.shape[-1]
    if (cos is None) != (sin is None) or (q_scale is None) != (k_scale is None):
        raise ValueError("cos/sin and q_scale/k_scale come in pairs (both or neither)")
    if cos is not None:
        need = max(q.shape[2], k.shape[2])
        if cos.shape[0] < need or cos.shape[1:] != (Dh // 2,) or sin.shape != cos.shape:
            raise ValueError(f"cos/sin must be (>= {need}, {Dh // 2}), got {tuple(cos.shape)} {tuple(sin.shape)}")
        cos, sin = cos.float().contiguous(), sin.float().contiguous()
    if q_scale is not None:
        if q_scale.shape != (Dh,) or k_scale.shape != (Dh,):
            raise ValueError(f"q_scale/k_scale must be ({Dh},), got {tuple(q_scale.shape)} {tuple(k_scale.shape)}")
        q_scale, k_scale = q_scale.contiguous(), k_scale.contiguous()
    return _TritonAttentionRopeQKNorm.apply(q, k, v, cos, sin, q_scale, k_scale, mask, eps,
                                            blocks or default_blocks(Dh))
