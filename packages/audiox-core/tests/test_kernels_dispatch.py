"""Backend choice (AUDIOX_KERNELS, per-shape measurement, cache) and the CPU paths of the dispatching ops."""

import json

import pytest
import torch
from audiox.core.kernels import (
    attention,
    attention_rope_qknorm,
    dispatch,
    gated_residual,
    modulated_norm,
)
from audiox.core.kernels.reference import (
    attention_ref,
    attention_rope_qknorm_ref,
    modulated_norm_ref,
    rope_qknorm_ref,
)
from audiox.core.layers import RMSNorm, apply_rope, rope_cos_sin


def _qkv(B=2, H=2, Lq=7, Lk=9, Dh=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, H, n, Dh, generator=g, requires_grad=True) for n in (Lq, Lk, Lk)]


def test_env_var_modes(monkeypatch):
    q, k, v = _qkv()
    monkeypatch.delenv("AUDIOX_KERNELS", raising=False)
    assert dispatch.kernel_mode() == "auto"
    assert dispatch.resolve_attention_backend(q, k, v) == "sdpa"  # CPU: SDPA, no measurement
    monkeypatch.setenv("AUDIOX_KERNELS", "reference")
    assert dispatch.resolve_attention_backend(q, k, v) == "torch"
    assert dispatch.resolve_attention_backend(q, k, v, backend="sdpa") == "sdpa"  # explicit argument wins
    monkeypatch.setenv("AUDIOX_KERNELS", "fastest")
    with pytest.raises(ValueError, match="AUDIOX_KERNELS"):
        attention(q, k, v)
    with pytest.raises(ValueError, match="unknown attention backend"):
        dispatch.resolve_attention_backend(q, k, v, backend="flash")


def test_sdpa_rows_without_keys_match_reference_without_nan():
    q, k, v = _qkv(B=3)
    mask = torch.rand(3, 9, generator=torch.Generator().manual_seed(1)) > 0.4
    mask[0, 0] = mask[1, 1] = True
    mask[2] = False  # no key: the reference gives 0 (plain SDPA gives NaN here)
    out = attention(q, k, v, mask=mask, backend="sdpa")
    ref = attention_ref(q, k, v, mask)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert out[2].abs().max() == 0
    dout = torch.randn_like(out)
    g = torch.autograd.grad(out, (q, k, v), dout)
    gr = torch.autograd.grad(ref, (q, k, v), dout)
    for a, b in zip(g, gr):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_triton_or_xformers_requested_where_they_cannot_run(monkeypatch):
    q, k, v = _qkv()
    monkeypatch.setattr(dispatch, "HAS_TRITON", False)  # a machine without Triton
    with pytest.raises(RuntimeError, match="audiox-core\\[triton\\]"):
        attention(q, k, v, backend="triton")
    monkeypatch.setenv("AUDIOX_KERNELS", "triton")
    with pytest.raises(RuntimeError, match="triton backend was requested"):
        modulated_norm(torch.randn(1, 3, 8), torch.zeros(1, 8), torch.zeros(1, 8))
    with pytest.raises(RuntimeError, match="xformers"):
        attention(q, k, v, backend="xformers")


def test_cpu_dispatch_matches_references(monkeypatch):
    monkeypatch.delenv("AUDIOX_KERNELS", raising=False)
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(2, 5, 12, generator=g), torch.randn(2, 5, 12, generator=g)
    shift, scale, gate = (torch.randn(2, 12, generator=g) for _ in range(3))
    for kind in ("layer", "rms"):
        torch.testing.assert_close(modulated_norm(x, shift, scale, kind=kind),
                                   modulated_norm_ref(x, shift, scale, kind=kind))
    # the formula itself: LayerNorm without affine, then (1 + scale) and shift (adaLN)
    mu, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
    hand = (x - mu) / torch.sqrt(var + 1e-6) * (1 + scale[:, None]) + shift[:, None]
    torch.testing.assert_close(modulated_norm(x, shift, scale), hand, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gated_residual(x, y, gate), x + gate[:, None] * y)
    with pytest.raises(ValueError, match="unknown norm kind"):
        modulated_norm(x, shift, scale, kind="batch")


def test_prologue_reference_is_the_layers_computation():
    """rope_qknorm_ref must stay what audiox.core.layers does (RMSNorm with weight, then RoPE)."""
    torch.manual_seed(3)
    B, H, L, Dh = 2, 2, 6, 16
    q, k = torch.randn(B, H, L, Dh), torch.randn(B, H, L, Dh)
    qn, kn = RMSNorm(Dh), RMSNorm(Dh)
    with torch.no_grad():
        qn.weight.uniform_(0.5, 1.5)
        kn.weight.uniform_(0.5, 1.5)
    cos, sin = rope_cos_sin(torch.arange(L), Dh)
    qr, kr = rope_qknorm_ref(q, k, cos, sin, qn.weight, kn.weight)
    torch.testing.assert_close(qr, apply_rope(qn(q), cos, sin))
    torch.testing.assert_close(kr, apply_rope(kn(k), cos, sin))
    v = torch.randn(B, H, L, Dh)
    out = attention_rope_qknorm(q, k, v, cos, sin, qn.weight, kn.weight)
    torch.testing.assert_close(out, attention_rope_qknorm_ref(q, k, v, cos, sin, qn.weight, kn.weight),
                               atol=1e-5, rtol=1e-5)


def test_autotune_picks_fastest_once_and_persists(monkeypatch, tmp_path):
    cache = tmp_path / "tune.json"
    monkeypatch.setenv("AUDIOX_KERNELS_CACHE", str(cache))
    monkeypatch.setattr(dispatch, "TUNE_TABLE", {})
    monkeypatch.setattr(dispatch, "_can_measure", lambda t: True)
    fake_ms = {"slow": 3.0, "fast": 1.0}
    measured = []

    def fake_time(fn, warmup=2, iters=5):
        fn()
        return fake_ms[measured[-1]]

    def make(name):
        def run(x):
            measured.append(name)
            return x * 2

        return run

    def broken(x):
        raise RuntimeError("unsupported shape")

    monkeypatch.setattr(dispatch, "time_cuda", fake_time)
    x = torch.randn(3, 4, requires_grad=True)
    key = dispatch._shape_key("op", [x])
    assert key.endswith("grad=True")
    cands = {"slow": make("slow"), "broken": broken, "fast": make("fast")}
    assert dispatch._pick(key, cands, [x], "slow") == "fast"
    assert dispatch.TUNE_TABLE[key] == "fast"
    assert json.loads(cache.read_text()) == {key: "fast"}
    n = len(measured)
    assert dispatch._pick(key, cands, [x], "slow") == "fast" and len(measured) == n  # cached: no re-measure
    monkeypatch.setattr(dispatch, "TUNE_TABLE", {})
    monkeypatch.setattr(dispatch, "_cache_loaded", False)
    monkeypatch.setattr(dispatch, "_can_measure", lambda t: False)
    assert dispatch._pick(key, cands, [x], "slow") == "fast"  # reloaded from AUDIOX_KERNELS_CACHE
    assert dispatch._pick("other", cands, [x], "slow") == "slow"  # cannot measure (graph capture): fallback
