"""The Triton kernels against their PyTorch references, run on the CPU by Triton's interpreter.

``@triton.jit`` reads ``TRITON_INTERPRET`` when a kernel is decorated, so it is set before the kernel modules are
imported here. Sizes are small (the interpreter is slow) and awkward: sequence lengths and feature sizes that
are not multiples of the tiles, 16-wide tiles so every call crosses several tile edges, masks with a batch
element that has no key at all, bf16 and fp32, forward and backward.

Tolerance by dtype: the kernel's error against a float64 evaluation of the reference must be at most twice the
error of the reference itself run in the input dtype, plus a small floor.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Triton decorates its own standard library (tl.zeros, tl.sum, ...) with @jit when it is first imported, so the
# interpreter only works in a process whose first `import triton` saw TRITON_INTERPRET=1. Run alone, this module
# sets it before anything imports triton; inside a larger session that already imported triton, the tests below
# run in one fresh Python process instead (test_in_fresh_process).
_PREVIOUS = os.environ.get("TRITON_INTERPRET")
DELEGATE = "triton" in sys.modules and _PREVIOUS != "1"
if not DELEGATE:
    os.environ["TRITON_INTERPRET"] = "1"
triton = pytest.importorskip("triton")

import torch
from audiox.core.kernels import (
    attention,
    dispatch,
)
from audiox.core.kernels.reference import (
    attention_ref,
    attention_rope_qknorm_ref,
    gated_residual_ref,
    modulated_norm_ref,
)
from audiox.core.kernels.triton_attention import (
    AttnBlocks,
    interpreting,
    triton_attention,
    triton_attention_rope_qknorm,
)
from audiox.core.kernels.triton_norm import triton_gated_residual, triton_modulated_norm
from audiox.core.layers import rope_cos_sin
from einops import rearrange

SMALL = AttnBlocks(block_m=16, block_n=16, num_warps=1, num_stages=1, bwd_block_m=16, bwd_block_n=16, bwd_num_warps=1)
FLOOR = {torch.float32: 2e-5, torch.bfloat16: 2e-2}


@pytest.fixture(autouse=True, scope="module")
def _restore_env():
    yield
    if _PREVIOUS is None:
        os.environ.pop("TRITON_INTERPRET", None)
    else:
        os.environ["TRITON_INTERPRET"] = _PREVIOUS


@pytest.fixture(autouse=True)
def _where(request):
    delegating_test = request.node.name == "test_in_fresh_process"
    if DELEGATE != delegating_test:
        pytest.skip("runs in the fresh interpreter process" if DELEGATE else "already in an interpreter process")


def test_in_fresh_process():
    """This module's tests, in a new process whose first `import triton` sees TRITON_INTERPRET=1."""
    env = {**os.environ, "TRITON_INTERPRET": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.run([sys.executable, "-m", "pytest", str(Path(__file__)), "-q", "-p", "no:cacheprovider"],
                          env=env, capture_output=True, check=False, text=True, timeout=900, cwd=Path(__file__).parent)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout


def _close(got, ref64, ref_lowp, dtype, what):
    """|got - ref64| <= 2 |ref_lowp - ref64| + floor * (1 + max|ref64|), elementwise maxima."""
    assert got.dtype == ref_lowp.dtype, f"{what}: dtype {got.dtype} != {ref_lowp.dtype}"
    assert torch.isfinite(got).all(), f"{what}: non-finite values"
    err = (got.double() - ref64.double()).abs().max().item()
    base = (ref_lowp.double() - ref64.double()).abs().max().item()
    bound = 2 * base + FLOOR[dtype] * (1 + ref64.abs().max().item())
    assert err <= bound, f"{what}: max error {err:.3g} > {bound:.3g} (reference's own error {base:.3g})"


def _run(fn, inputs, dout):
    """Output and gradients of ``fn(*inputs)`` for the leaves that require grad."""
    leaves = [t.detach().clone().requires_grad_(t.requires_grad) if isinstance(t, torch.Tensor) else t
              for t in inputs]
    out = fn(*leaves)
    grads = torch.autograd.grad(out, [t for t in leaves if isinstance(t, torch.Tensor) and t.requires_grad],
                                dout.to(out.dtype))
    return out, grads


def _compare(kernel, reference, inputs, dtype, what):
    g = torch.Generator().manual_seed(1)
    out_shape = reference(*inputs).shape
    dout = torch.randn(out_shape, generator=g)
    out, grads = _run(kernel, inputs, dout)
    ref, ref_grads = _run(reference, inputs, dout)
    as64 = [t.double().detach().requires_grad_(t.requires_grad) if isinstance(t, torch.Tensor)
            and t.is_floating_point() else t for t in inputs]
    ref64, ref64_grads = _run(reference, as64, dout.double())
    _close(out, ref64, ref, dtype, f"{what} forward")
    for i, (a, b, c) in enumerate(zip(grads, ref64_grads, ref_grads)):
        _close(a, b, c, dtype, f"{what} grad #{i}")
    return out, grads


def _qkv(B, H, Lq, Lk, Dh, dtype, seed=0, strided=False):
    g = torch.Generator().manual_seed(seed)
    if strided:  # the MMDiT's layout: a (B, L, 3 H Dh) projection viewed as (B, H, L, Dh) without a copy
        qkv = torch.randn(B, Lq, 3 * H * Dh, generator=g).to(dtype)
        q, k, v = rearrange(qkv, "B L (K H Dh) -> K B H L Dh", K=3, H=H)
        assert not q.is_contiguous()
    else:
        q = torch.randn(B, H, Lq, Dh, generator=g).to(dtype)
        k = torch.randn(B, H, Lk, Dh, generator=g).to(dtype)
        v = torch.randn(B, H, Lk, Dh, generator=g).to(dtype)
    return [t.requires_grad_(True) for t in (q, k, v)]


def _padding_mask(B, Lk, seed=0):
    mask = torch.rand(B, Lk, generator=torch.Generator().manual_seed(seed)) > 0.3
    mask[0, 0] = True
    mask[-1] = False  # a batch element with no key at all
    return mask


def test_runs_in_the_interpreter():
    assert os.environ["TRITON_INTERPRET"] == "1"
    assert interpreting(), "TRITON_INTERPRET=1 must make the kernels interpreted in this module"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_self_attention_strided(dtype):
    q, k, v = _qkv(2, 2, 21, 21, 32, dtype, strided=True)
    _compare(lambda q, k, v: triton_attention(q, k, v, None, SMALL), attention_ref, [q, k, v], dtype, "self-attn")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cross_attention_padding_mask(dtype):
    q, k, v = _qkv(2, 2, 19, 23, 24, dtype, seed=3)
    mask = _padding_mask(2, 23)
    out, (dq, dk, dv) = _compare(lambda q, k, v, m: triton_attention(q, k, v, m, SMALL),
                                 attention_ref, [q, k, v, mask], dtype, "cross-attn")
    # the batch element without keys attends to nothing: zero output, zero gradients
    assert out[-1].abs().max() == 0 and dq[-1].abs().max() == 0 and dk[-1].abs().max() == 0
    # masked keys get no gradient
    assert dk[0][:, ~mask[0]].abs().max() == 0 and dv[0][:, ~mask[0]].abs().max() == 0


@pytest.mark.parametrize("Dh,Lq,Lk", [(16, 33, 7), (128, 5, 17)])
def test_attention_head_dims(Dh, Lq, Lk):
    q, k, v = _qkv(1, 1, Lq, Lk, Dh, torch.float32, seed=Dh)
    _compare(lambda q, k, v: triton_attention(q, k, v, None, SMALL), attention_ref, [q, k, v], torch.float32,
             f"Dh={Dh}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_rope_qknorm_self_attention(dtype):
    B, H, L, Dh = 2, 2, 20, 32
    q, k, v = _qkv(B, H, L, L, Dh, dtype, seed=5, strided=True)
    cos, sin = rope_cos_sin(torch.arange(L), Dh)
    g = torch.Generator().manual_seed(6)
    qs = (1 + 0.3 * torch.randn(Dh, generator=g)).to(dtype).requires_grad_(True)
    ks = (1 + 0.3 * torch.randn(Dh, generator=g)).to(dtype).requires_grad_(True)

    def kernel(q, k, v, qs, ks):
        return triton_attention_rope_qknorm(q, k, v, cos, sin, qs, ks, None, blocks=SMALL)

    def ref(q, k, v, qs, ks):
        return attention_rope_qknorm_ref(q, k, v, cos.to(q.dtype) if q.dtype == torch.float64 else cos,
                                         sin.to(q.dtype) if q.dtype == torch.float64 else sin, qs, ks)

    _compare(kernel, ref, [q, k, v, qs, ks], dtype, "rope+qknorm")


def test_fused_qknorm_cross_attention_without_rope():
    q, k, v = _qkv(2, 2, 13, 18, 32, torch.float32, seed=7)
    mask = _padding_mask(2, 18, seed=2)
    qs = torch.linspace(0.5, 1.5, 32, requires_grad=True)
    ks = torch.linspace(1.5, 0.5, 32, requires_grad=True)
    out, _ = _compare(lambda q, k, v, qs, ks: triton_attention_rope_qknorm(q, k, v, None, None, qs, ks, mask,
                                                                           blocks=SMALL),
                      lambda q, k, v, qs, ks: attention_rope_qknorm_ref(q, k, v, None, None, qs, ks, mask),
                      [q, k, v, qs, ks], torch.float32, "qknorm cross-attn")
    # the prologue matters: plain attention on the raw q, k gives a different answer
    assert (out - attention_ref(q, k, v, mask)).abs().max() > 1e-2


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kind", ["layer", "rms"])
def test_modulated_norm(kind, dtype):
    g = torch.Generator().manual_seed(8)
    B, L, D = 2, 19, 48  # D is not a power of two; 19 rows at 8 per program leave a ragged tail
    x = (3 + 2 * torch.randn(B, L, D, generator=g)).to(dtype).requires_grad_(True)  # nonzero mean
    shift = torch.randn(B, D, generator=g).to(dtype).requires_grad_(True)
    scale = (0.5 * torch.randn(B, D, generator=g)).to(dtype).requires_grad_(True)
    _compare(lambda x, sh, sc: triton_modulated_norm(x, sh, sc, kind, rows=8),
             lambda x, sh, sc: modulated_norm_ref(x, sh, sc, kind=kind), [x, shift, scale], dtype, f"{kind}norm")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gated_residual(dtype):
    g = torch.Generator().manual_seed(9)
    B, L, D = 3, 11, 40
    x, y = (torch.randn(B, L, D, generator=g).to(dtype).requires_grad_(True) for _ in range(2))
    gate = torch.randn(B, D, generator=g).to(dtype).requires_grad_(True)
    _compare(lambda x, y, gt: triton_gated_residual(x, y, gt, rows=4), gated_residual_ref, [x, y, gate], dtype,
             "gated residual")


def test_env_var_forces_triton_through_the_public_api(monkeypatch):
    monkeypatch.setenv("AUDIOX_KERNELS", "triton")
    q, k, v = _qkv(1, 2, 9, 9, 16, torch.float32, seed=11)
    mask = torch.ones(1, 9, dtype=torch.bool)
    mask[0, 4:] = False
    assert dispatch.resolve_attention_backend(q, k, v, mask) == "triton"
    out = attention(q, k, v, mask=mask)
    torch.testing.assert_close(out, attention_ref(q, k, v, mask), atol=1e-5, rtol=1e-5)
    x = torch.randn(1, 5, 24)
    sh, sc = torch.randn(1, 24), torch.randn(1, 24)
    torch.testing.assert_close(dispatch.modulated_norm(x, sh, sc, kind="rms"),
                               modulated_norm_ref(x, sh, sc, kind="rms"), atol=1e-5, rtol=1e-5)
