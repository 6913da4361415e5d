"""Run-time choice between the reference ops and the fast backends.

Backends per op:

- attention: ``torch`` (reference), ``sdpa`` (``F.scaled_dot_product_attention``), ``triton`` (our fused
  kernel), ``xformers`` (``memory_efficient_attention``, CUDA only, unmasked calls only, when installed).
- modulated_norm / gated_residual / attention_rope_qknorm: ``torch`` (reference) or ``triton`` (fused kernels).

``backend="auto"`` (the default) follows the environment variable ``AUDIOX_KERNELS``:

- ``reference``: always the PyTorch reference (attention: the reference too, not SDPA).
- ``triton``: always the Triton kernels (CUDA tensors, or any tensor under ``TRITON_INTERPRET=1``); an error
  where Triton cannot run.
- ``auto`` (default): on CUDA with Triton, each new shape key (op, device, dtype, shapes, mask, grad) is timed
  once for every candidate (forward, plus backward when grads are needed) and the fastest is cached in
  :data:`TUNE_TABLE` (optionally persisted as JSON at ``AUDIOX_KERNELS_CACHE``). Later calls are one dict
  look-up: no host-device sync in the hot path. The one-time measurement synchronises, so it is skipped while
  a CUDA graph is being captured or ``torch.compile`` is tracing (then SDPA / the reference, which inductor
  fuses). On CPU: SDPA for attention, the reference for the rest.

An explicit ``backend=`` argument wins over the environment variable.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Callable

import torch
import torch.nn.functional as F
from audiox.core.kernels.reference import (
    attention_ref,
    gated_residual_ref,
    modulated_norm_ref,
    rope_qknorm_ref,
)
from torch import Tensor

try:  # Triton ships with torch's Linux CUDA wheels; elsewhere it is the optional extra audiox-core[triton]
    import triton  # noqa: F401

    HAS_TRITON = True
except ImportError:  # pragma: no cover - depends on the install
    HAS_TRITON = False

try:  # optional: pip install "audiox-core[xformers]" (GPU-only kernels)
    import xformers.ops as xops

    HAS_XFORMERS = True
except Exception:  # noqa: BLE001 - ImportError, or xformers failing to load its CUDA extension
    xops = None
    HAS_XFORMERS = False

MODES = ("reference", "triton", "auto")
ATTN_BACKENDS = ("auto", "torch", "sdpa", "triton", "xformers")
#: (op, device, dtype, shapes..., has_mask, needs_grad) -> fastest backend name; filled by measurement.
TUNE_TABLE: dict[str, str] = {}
_cache_loaded = False


def kernel_mode() -> str:
    mode = os.environ.get("AUDIOX_KERNELS", "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"AUDIOX_KERNELS must be one of {MODES}, got {mode!r}")
    return mode


def triton_available(t: Tensor) -> bool:
    """Triton can run on ``t``: a CUDA tensor with Triton installed, or any tensor under its interpreter."""
    if not HAS_TRITON:
        return False
    from audiox.core.kernels.triton_attention import interpreting

    return t.is_cuda or (interpreting() and t.device.type == "cpu")


def _require_triton(t: Tensor, op: str) -> None:
    if not triton_available(t):
        why = "Triton is not installed (pip install 'audiox-core[triton]')" if not HAS_TRITON else (
            f"tensors are on {t.device}; Triton needs CUDA or TRITON_INTERPRET=1")
        raise RuntimeError(f"{op}: the triton backend was requested but {why}")


def _can_measure(t: Tensor) -> bool:
    if not t.is_cuda or torch.compiler.is_compiling():
        return False
    return not torch.cuda.is_current_stream_capturing()


# ----------------------------------------------------------------------------------------------- tuning
def _load_cache() -> None:
    global _cache_loaded
    _cache_loaded = True
    path = os.environ.get("AUDIOX_KERNELS_CACHE")
    if path and os.path.exists(path):
        try:
            with open(path) as f:
                TUNE_TABLE.update({str(k): str(v) for k, v in json.load(f).items()})
        except (OSError, ValueError):
            pass  # a corrupt cache only costs a re-measurement


def _save_cache() -> None:
    path = os.environ.get("AUDIOX_KERNELS_CACHE")
    if not path:
        return
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(TUNE_TABLE, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def time_cuda(fn: Callable[[], object], warmup: int = 2, iters: int = 5) -> float:
    """Median milliseconds of ``fn()`` on the current CUDA stream (synchronises: tuning only)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


@functools.cache
def _device_label(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)


def _shape_key(op: str, tensors: list[Tensor | None], extra: tuple = ()) -> str:
    t0 = tensors[0]
    shapes = ";".join("-" if t is None else "x".join(map(str, t.shape)) for t in tensors)
    grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
    device = _device_label(t0.device)
    return f"{op}|{device}|{t0.dtype}|{shapes}|{extra}|grad={grad}"


def _pick(key: str, candidates: dict[str, Callable[..., Tensor]], args: list, fallback: str) -> str:
    """The fastest candidate for ``key`` (measured once on copies of ``args``), or ``fallback``."""
    if not _cache_loaded:
        _load_cache()
    choice = TUNE_TABLE.get(key)
    if choice in candidates:
        return choice
    if not _can_measure(next(a for a in args if isinstance(a, Tensor))):
        return fallback
    grad = key.endswith("grad=True")
    times = {}
    for name, fn in candidates.items():
        leaves = [a.detach().requires_grad_(a.requires_grad and grad) if isinstance(a, Tensor) else a for a in args]

        def run(fn=fn, leaves=leaves):
            with torch.set_grad_enabled(grad):
                out = fn(*leaves)
                if grad:
                    out.backward(torch.ones_like(out))

        try:
            times[name] = time_cuda(run)
        except Exception:  # noqa: BLE001, S112 - a backend that cannot handle this shape is not chosen
            continue
    choice = min(times, key=times.get) if times else fallback
    TUNE_TABLE[key] = choice
    _save_cache()
    return choice


# ----------------------------------------------------------------------------------------------- attention
def _sdpa(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
    """SDPA with the reference's semantics for rows without any key (output 0) and no host sync: such rows
    attend to every key (finite softmax, so no NaN reaches the backward), then are zeroed."""
    if mask is None:
        return F.scaled_dot_product_attention(q, k, v)
    any_key = mask.any(dim=-1)  # (B,)
    safe = mask | ~any_key[:, None]
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=safe[:, None, None, :])
    return out * any_key[:, None, None, None].to(out.dtype)


def _xformers(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
    assert mask is None, "the xformers backend is only used for unmasked attention"
    # xformers wants (B, L, H, Dh)
    out = xops.memory_efficient_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return out.transpose(1, 2)


def _triton_attn(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
    from audiox.core.kernels.triton_attention import triton_attention

    return triton_attention(q, k, v, mask)


def _attn_candidates(q: Tensor, mask: Tensor | None) -> dict[str, Callable[..., Tensor]]:
    cands: dict[str, Callable[..., Tensor]] = {"sdpa": _sdpa}
    if triton_available(q) and 16 <= q.shape[-1] <= 256:
        cands["triton"] = _triton_attn
    if HAS_XFORMERS and q.is_cuda and mask is None:
        cands["xformers"] = _xformers
    return cands


def resolve_attention_backend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None,
                              backend: str = "auto") -> str:
    """The backend :func:`attention` will use for these inputs (measures once per new shape on CUDA)."""
    if backend not in ATTN_BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; choose from {ATTN_BACKENDS}")
    if backend != "auto":
        return backend
    mode = kernel_mode()
    if mode == "reference":
        return "torch"
    if mode == "triton":
        return "triton"
    if not q.is_cuda or not HAS_TRITON or torch.compiler.is_compiling():
        return "sdpa"
    cands = _attn_candidates(q, mask)
    return _pick(_shape_key("attention", [q, k, v, mask]), cands, [q, k, v, mask], "sdpa")


def attention(q: Tensor, k: Tensor, v: Tensor, *, mask: Tensor | None = None, backend: str = "auto") -> Tensor:
    """Softmax attention, (B, H, L, Dh) layout; see :func:`audiox.core.kernels.reference.attention_ref`.

    mask: (B, L_k) bool, True = attend; a row with no key at all gives 0 on every backend.
    """
    name = resolve_attention_backend(q, k, v, mask, backend)
    if name == "torch":
        return attention_ref(q, k, v, mask)
    if name == "sdpa":
        return _sdpa(q, k, v, mask)
    if name == "triton":
        _require_triton(q, "attention")
        return _triton_attn(q, k, v, mask)
    if not HAS_XFORMERS or not q.is_cuda:
        raise RuntimeError("attention: backend 'xformers' needs xformers installed and CUDA tensors")
    if mask is not None:
        raise ValueError("attention: the xformers backend takes no key-padding mask; use sdpa or triton")
    return _xformers(q, k, v, None)


def _unfused_rope_attn(q, k, v, cos, sin, q_scale, k_scale, mask, eps=1e-6):
    qr, kr = rope_qknorm_ref(q, k, cos, sin, q_scale, k_scale, eps)
    return attention(qr, kr, v, mask=mask)


def _fused_rope_attn(q, k, v, cos, sin, q_scale, k_scale, mask, eps=1e-6):
    from audiox.core.kernels.triton_attention import triton_attention_rope_qknorm

    return triton_attention_rope_qknorm(q, k, v, cos, sin, q_scale, k_scale, mask, eps)


def attention_rope_qknorm(q: Tensor, k: Tensor, v: Tensor, cos: Tensor | None, sin: Tensor | None,
                          q_scale: Tensor | None, k_scale: Tensor | None, mask: Tensor | None = None, *,
                          eps: float = 1e-6, backend: str = "auto") -> Tensor:
    """``attention(rope(rmsnorm(q) * q_scale), rope(rmsnorm(k) * k_scale), v)``, the MMDiT's attention with its
    prologue; the Triton backend fuses the prologue into the attention kernel.

    cos/sin: (L, Dh/2) (``layers.rope_cos_sin``) or None; q_scale/k_scale: (Dh,) RMSNorm weights or None.
    Backends: ``torch`` (reference prologue + reference attention), ``unfused`` (reference prologue +
    :func:`attention` auto), ``triton`` (fused), ``auto``.
    """
    args = [q, k, v, cos, sin, q_scale, k_scale, mask]
    if backend == "auto":
        mode = kernel_mode()
        if mode == "reference":
            backend = "torch"
        elif mode == "triton":
            backend = "triton"
        elif q.is_cuda and HAS_TRITON and 16 <= q.shape[-1] <= 256 and not torch.compiler.is_compiling():
            cands = {"triton": _fused_rope_attn, "unfused": _unfused_rope_attn}
            backend = _pick(_shape_key("attention_rope_qknorm", args), cands, args, "unfused")
        else:
            backend = "unfused"
    if backend == "torch":
        qr, kr = rope_qknorm_ref(q, k, cos, sin, q_scale, k_scale, eps)
        return attention_ref(qr, kr, v, mask)
    if backend == "unfused":
        return _unfused_rope_attn(*args, eps=eps)
    if backend == "triton":
        _require_triton(q, "attention_rope_qknorm")
        return _fused_rope_attn(*args, eps=eps)
    raise ValueError(f"unknown attention_rope_qknorm backend {backend!r}")


# ----------------------------------------------------------------------------------------------- adaLN ops
def _elementwise_backend(op: str, x: Tensor, tensors: list[Tensor], extra: tuple,
                         cands: dict[str, Callable[..., Tensor]], args: list) -> str:
    mode = kernel_mode()
    if mode == "reference":
        return "torch"
    if mode == "triton":
        _require_triton(x, op)
        return "triton"
    if not (x.is_cuda and HAS_TRITON) or torch.compiler.is_compiling():
        return "torch"  # on CPU, and under torch.compile (inductor fuses the reference's pointwise ops)
    return _pick(_shape_key(op, tensors, extra), cands, args, "torch")


def modulated_norm(x: Tensor, shift: Tensor, scale: Tensor, *, kind: str = "layer", eps: float = 1e-6) -> Tensor:
    """adaLN ``norm(x) * (1 + scale) + shift``; see :func:`audiox.core.kernels.reference.modulated_norm_ref`."""
    if kind not in ("layer", "rms"):
        raise ValueError(f"unknown norm kind {kind!r}")

    def tri(x, shift, scale):
        from audiox.core.kernels.triton_norm import triton_modulated_norm

        return triton_modulated_norm(x, shift, scale, kind=kind, eps=eps)

    def ref(x, shift, scale):
        return modulated_norm_ref(x, shift, scale, kind=kind, eps=eps)

    args = [x, shift, scale]
    name = _elementwise_backend("modulated_norm", x, args, (kind,), {"triton": tri, "torch": ref}, args)
    return tri(*args) if name == "triton" else ref(*args)


def gated_residual(x: Tensor, y: Tensor, gate: Tensor) -> Tensor:
    """``x + gate[:, None] * y``; see :func:`audiox.core.kernels.reference.gated_residual_ref`."""

    def tri(x, y, gate):
        from audiox.core.kernels.triton_norm import triton_gated_residual

        return triton_gated_residual(x, y, gate)

    args = [x, y, gate]
    if x.dtype != y.dtype or x.shape != y.shape:  # mixed precision / broadcasting: the reference's promotion rules
        return gated_residual_ref(*args)
    name = _elementwise_backend("gated_residual", x, args, (), {"triton": tri, "torch": gated_residual_ref}, args)
    return tri(*args) if name == "triton" else gated_residual_ref(*args)
