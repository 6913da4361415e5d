"""GPU benchmark for audiox: fused kernels, end-to-end latency of a 10 s clip, one training step with MFU.

    uv run python scripts/bench_gpu.py --out docs/perf.md                           # a GPU machine, `paper`
    uv run python scripts/bench_gpu.py --preset debug --device cpu --out /tmp/perf.md   # CPU smoke run

Prints one table and writes it (with the card's name, versions and the formulas) to ``--out`` (atomic), and the
raw rows as JSON to ``--json`` if given. Random weights: the figures are timings, not quality.

Sections of the table:
- ``kernel``: each op at the model's shapes, forward and forward+backward: the PyTorch reference, SDPA, xformers
  (when installed; unmasked only) and our Triton kernels; ``x ref`` = reference time / this time (> 1 = faster),
  ``x best`` = the fastest of SDPA/xformers / this time (attention only).
- ``e2e``: the student (few-step denoise-renoise, no CFG) and the teacher (Euler with CFG, cond and uncond
  batched) for one clip of ``duration`` seconds, split into encoders (text, CLIP, sync; MAF), denoiser loop and
  VAE decoder, eager and under torch.compile (with and without CUDA graphs: ``reduce-overhead``).
- ``train``: one teacher training step (flow matching, AdamW) through audiox.train's engine (DeepSpeed ZeRO when
  available on CUDA, else plain PyTorch), step time and model FLOPs utilisation.

MFU = (3 x forward FLOPs of the trained modules per step) / step time / the card's dense bf16 peak. Forward
FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on the reference kernels (every matmul,
attention included: 2 FLOPs per multiply-add); the backward is counted as twice the forward (the usual 6N rule).
Frozen encoders run under no_grad and are counted once (forward only).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import torch
from audiox.core import AudioXModel, ConditionInputs, flow, get_config
from audiox.core.kernels import dispatch
from audiox.core.kernels.reference import (
    attention_ref,
    attention_rope_qknorm_ref,
    gated_residual_ref,
    modulated_norm_ref,
)
from audiox.core.layers import rope_cos_sin

#: Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) by a substring of torch.cuda.get_device_name().
PEAK_BF16_TFLOPS = {
    "H200": 989.0, "H100 NVL": 835.0, "H100 PCIe": 756.0, "H100": 989.0, "GH200": 989.0, "B200": 2250.0,
    "A100": 312.0, "L40S": 362.0, "RTX 4090": 165.0, "A10G": 70.0, "L4": 121.0,
}


@dataclass
class Row:
    area: str
    what: str
    variant: str
    ms: float | None
    ref_ms: float | None = None
    best_ms: float | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)

    def cells(self) -> list[str]:
        def f(x):
            return "n/a" if x is None else f"{x:.3f}" if x < 10 else f"{x:.1f}"

        xr = f"{self.ref_ms / self.ms:.2f}" if self.ms and self.ref_ms else ""
        xb = f"{self.best_ms / self.ms:.2f}" if self.ms and self.best_ms else ""
        return [self.area, self.what, self.variant, f(self.ms), xr, xb, self.note]


HEADER = ["area", "what", "variant", "ms", "x ref", "x best", "note"]


def markdown(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- timing
class Timer:
    def __init__(self, device: torch.device, warmup: int, iters: int) -> None:
        self.device, self.warmup, self.iters = device, warmup, iters

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def __call__(self, fn: Callable[[], object]) -> float:
        """Median wall milliseconds of ``fn()`` (synchronised)."""
        for _ in range(self.warmup):
            fn()
        self.sync()
        times = []
        for _ in range(self.iters):
            t0 = time.perf_counter()
            fn()
            self.sync()
            times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)


@contextmanager
def kernels_mode(mode: str):
    old = os.environ.get("AUDIOX_KERNELS")
    os.environ["AUDIOX_KERNELS"] = mode
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("AUDIOX_KERNELS", None)
        else:
            os.environ["AUDIOX_KERNELS"] = old


def _try(timer: Timer, fn: Callable[[], object]) -> tuple[float | None, str]:
    try:
        return timer(fn), ""
    except Exception as e:  # noqa: BLE001 - a backend that cannot run this shape shows as n/a with the reason
        return None, f"{type(e).__name__}: {str(e).splitlines()[0][:80]}"


# ----------------------------------------------------------------------------------------------- kernels
def bench_kernels(cfg, device, dtype, timer: Timer, context_len: int, long_len: int) -> list[Row]:
    rows: list[Row] = []
    D, H = cfg.dit.hidden_size, cfg.dit.num_heads
    Dh, T = D // H, cfg.latent_length
    B = 2  # the teacher's CFG batch: cond + uncond
    on_gpu = device.type == "cuda"
    can_triton = dispatch.HAS_TRITON and on_gpu
    g = torch.Generator(device=device).manual_seed(0)

    def rnd(*shape):
        return torch.randn(*shape, device=device, dtype=dtype, generator=g)

    def fwd_bwd(fn, leaves):
        def run():
            xs = [x.detach().requires_grad_(True) if isinstance(x, torch.Tensor) and x.is_floating_point() else x
                  for x in leaves]
            out = fn(*xs)
            out.backward(torch.ones_like(out))
        return run

    def case(what, fns: dict[str, Callable], leaves, ref="torch", rivals=()):
        for mode in ("fwd", "fwd+bwd"):
            times, notes = {}, {}
            for name, fn in fns.items():
                run = (lambda fn=fn: fn(*leaves)) if mode == "fwd" else fwd_bwd(fn, leaves)
                if mode == "fwd":
                    with torch.no_grad():
                        times[name], notes[name] = _try(timer, run)
                else:
                    times[name], notes[name] = _try(timer, run)
            best = min((times[r] for r in rivals if times.get(r)), default=None)
            for name in fns:
                rows.append(Row("kernel", f"{what} {mode}", name, times[name], times.get(ref),
                                best if name not in (*rivals, ref) else None, notes[name]))

    # self-attention at the denoiser's length, and a long sequence where tiling matters
    for L in (T, long_len):
        q, k, v = rnd(B, H, L, Dh), rnd(B, H, L, Dh), rnd(B, H, L, Dh)
        fns = {"torch": lambda q, k, v: attention_ref(q, k, v),
               "sdpa": lambda q, k, v: dispatch.attention(q, k, v, backend="sdpa")}
        if dispatch.HAS_XFORMERS and on_gpu:
            fns["xformers"] = lambda q, k, v: dispatch.attention(q, k, v, backend="xformers")
        if can_triton:
            fns["triton"] = lambda q, k, v: dispatch.attention(q, k, v, backend="triton")
        case(f"self-attn B{B} H{H} L{L} Dh{Dh}", fns, [q, k, v], rivals=("sdpa", "xformers"))

    # cross-attention to H_c with a key-padding mask (xformers takes no mask here)
    q, k, v = rnd(B, H, T, Dh), rnd(B, H, context_len, Dh), rnd(B, H, context_len, Dh)
    mask = torch.ones(B, context_len, dtype=torch.bool, device=device)
    mask[1, context_len // 2:] = False
    fns = {"torch": lambda q, k, v: attention_ref(q, k, v, mask),
           "sdpa": lambda q, k, v: dispatch.attention(q, k, v, mask=mask, backend="sdpa")}
    if can_triton:
        fns["triton"] = lambda q, k, v: dispatch.attention(q, k, v, mask=mask, backend="triton")
    case(f"cross-attn B{B} H{H} Lq{T} Lk{context_len} masked", fns, [q, k, v], rivals=("sdpa",))

    # self-attention with its QK-norm + RoPE prologue: fused kernel vs the prologue in PyTorch + SDPA
    q, k, v = rnd(B, H, T, Dh), rnd(B, H, T, Dh), rnd(B, H, T, Dh)
    cos, sin = rope_cos_sin(torch.arange(T, device=device), Dh)
    qs, ks = rnd(Dh), rnd(Dh)
    fns = {"torch": lambda q, k, v, qs, ks: attention_rope_qknorm_ref(q, k, v, cos, sin, qs, ks),
           "unfused": lambda q, k, v, qs, ks: dispatch.attention_rope_qknorm(q, k, v, cos, sin, qs, ks,
                                                                              backend="unfused")}
    if can_triton:
        fns["triton"] = lambda q, k, v, qs, ks: dispatch.attention_rope_qknorm(q, k, v, cos, sin, qs, ks,
                                                                                backend="triton")
    with kernels_mode("reference" if not can_triton else "auto"):
        case(f"qknorm+rope+attn L{T}", fns, [q, k, v, qs, ks], rivals=("unfused",))

    x, y = rnd(B, T, D), rnd(B, T, D)
    shift, scale, gate = rnd(B, D), rnd(B, D), rnd(B, D)
    for kind in ("layer", "rms"):
        fns = {"torch": lambda x, s, c, kind=kind: modulated_norm_ref(x, s, c, kind=kind)}
        if can_triton:
            from audiox.core.kernels.triton_norm import triton_modulated_norm

            fns["triton"] = lambda x, s, c, kind=kind: triton_modulated_norm(x, s, c, kind=kind)
        case(f"adaLN {kind}norm B{B} L{T} D{D}", fns, [x, shift, scale])
    fns = {"torch": gated_residual_ref}
    if can_triton:
        from audiox.core.kernels.triton_norm import triton_gated_residual

        fns["triton"] = triton_gated_residual
    case(f"gated residual B{B} L{T} D{D}", fns, [x, y, gate])
    return rows


# ----------------------------------------------------------------------------------------------- end to end
def make_inputs(cfg, device, batch: int = 1) -> ConditionInputs:
    g = torch.Generator(device="cpu").manual_seed(1)
    v, s = cfg.video, cfg.sync
    return ConditionInputs(
        text=["a dog barks twice while rain falls on a tin roof"] * batch,
        task=["tv2a"] * batch,
        video=torch.rand(batch, cfg.video_frames, 3, v.image_size, v.image_size, generator=g).to(device),
        sync_video=torch.rand(batch, cfg.sync_frames, 3, s.image_size, s.image_size, generator=g).to(device),
        video_present=torch.ones(batch, dtype=torch.bool, device=device),
        audio_present=torch.zeros(batch, dtype=torch.bool, device=device),
    )


class StageClock:
    """Stage boundaries in one run: CUDA events on GPU (no sync between stages), perf_counter on CPU."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.marks: list[object] = []

    def mark(self) -> None:
        if self.cuda:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            self.marks.append(e)
        else:
            self.marks.append(time.perf_counter())

    def spans(self) -> list[float]:
        if self.cuda:
            self.marks[-1].synchronize()
            return [a.elapsed_time(b) for a, b in zip(self.marks, self.marks[1:])]
        return [(b - a) * 1e3 for a, b in zip(self.marks, self.marks[1:])]


def generate(model: AudioXModel, inputs: ConditionInputs, steps: int, cfg_scale: float | None,
             clock: StageClock) -> torch.Tensor:
    """One clip: encoders + MAF, the sampling loop, the decoder. Teacher: Euler with CFG (cond and uncond in one
    batch, paper Eq. 9's guidance); student (cfg_scale None): denoise-renoise on the few-step grid (paper Sec. V)."""
    c = model.config
    dev, dt = model.device, model.dtype
    gen = torch.Generator(device=dev).manual_seed(0)
    clock.mark()
    feats = model.encode_modalities(inputs)
    cond = model.fuse(feats)
    if cfg_scale is not None:
        cond = type(cond).cat([cond, model.unconditional(feats)])
    clock.mark()
    z = torch.randn(1, c.autoencoder.latent_dim, c.latent_length, device=dev, dtype=dt, generator=gen)
    if cfg_scale is None:
        grid = flow.few_step_grid(c.inference.few_step_times, steps=steps, device=dev, dtype=dt)
        for i in range(len(grid) - 1):
            t, t_next = grid[i], grid[i + 1]
            z0 = flow.clean_from_velocity(z, t, model(z, t.expand(1), cond))
            eps = torch.randn(z.shape, device=dev, dtype=dt, generator=gen)
            z = flow.renoise(z0, t_next, eps) if i < len(grid) - 2 else z0
    else:
        grid = flow.time_grid(steps, device=dev, dtype=dt)
        for i in range(steps):
            t = grid[i]
            v_c, v_u = model(torch.cat([z, z]), t.expand(2), cond).chunk(2)
            z = flow.euler_step(z, v_u + cfg_scale * (v_c - v_u), t, grid[i + 1])
    clock.mark()
    wav = model.autoencoder.decode(z)
    clock.mark()
    return wav


def bench_e2e(model, cfg, device, timer: Timer, student_steps: int, teacher_steps: int, cfg_scale: float,
              compile_modes: list[str]) -> list[Row]:
    rows: list[Row] = []
    inputs = make_inputs(cfg, device)
    eager_dit = model.dit
    for mode in ["eager"] + compile_modes:
        if mode != "eager":
            torch._dynamo.reset()
            model.dit = torch.compile(eager_dit, mode=mode, dynamic=False)
        try:
            for who, steps, scale in (("student", student_steps, None), ("teacher", teacher_steps, cfg_scale)):
                spans: list[list[float]] = []

                def run(steps=steps, scale=scale, spans=spans):
                    clock = StageClock(device)
                    with torch.inference_mode():
                        generate(model, inputs, steps, scale, clock)
                    spans.append(clock.spans())

                try:
                    total = timer(run)
                except Exception as e:  # noqa: BLE001 - e.g. a compile mode failing: report it, keep going
                    rows.append(Row("e2e", f"{who} {steps} steps", mode, None, note=f"{type(e).__name__}: {e}"[:90]))
                    continue
                enc, den, dec = (statistics.median(s[i] for s in spans[timer.warmup:]) for i in range(3))
                what = f"{who} {steps} steps{' CFG ' + str(scale) if scale else ''} {cfg.duration:g} s"
                note = f"encoders {enc:.1f} / denoiser {den:.1f} / decoder {dec:.1f} ms"
                rows.append(Row("e2e", what, mode, total, note=note,
                                extra={"encoders_ms": enc, "denoiser_ms": den, "decoder_ms": dec}))
        finally:
            model.dit = eager_dit
    return rows


# ----------------------------------------------------------------------------------------------- training
def forward_flops(model: AudioXModel, cfg, device, batch: int) -> tuple[float, float]:
    """(trainable forward FLOPs, frozen-encoder FLOPs) of one flow-matching step, counted on the reference ops."""
    from torch.utils.flop_counter import FlopCounterMode

    inputs = make_inputs(cfg, device, batch)
    with kernels_mode("reference"):
        counter = FlopCounterMode(display=False)
        with counter:
            feats = model.encode_modalities(inputs).detach()
        frozen = counter.get_total_flops()
        counter = FlopCounterMode(display=False)
        with counter:
            cond = model.fuse(feats)
            z = torch.randn(batch, cfg.autoencoder.latent_dim, cfg.latent_length, device=device, dtype=model.dtype)
            model(z, torch.rand(batch, device=device, dtype=model.dtype), cond).sum().detach()
        trainable = counter.get_total_flops()
    return float(trainable), float(frozen)


def bench_train(model, cfg, device, timer: Timer, batch: int, zero_stage: int, peak_tflops: float | None) -> list[Row]:
    fwd, frozen = forward_flops(model, cfg, device, batch)
    step_flops = 3 * fwd + frozen
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    engine_name = "plain AdamW"
    try:
        from audiox.train.config import DeepSpeedConfig, OptimConfig, ScheduleConfig
        from audiox.train.engine import Engine

        use_ds = device.type == "cuda"
        if use_ds:
            try:
                import deepspeed  # noqa: F401

                os.environ.setdefault("RANK", "0")
                os.environ.setdefault("LOCAL_RANK", "0")
                os.environ.setdefault("WORLD_SIZE", "1")
                os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
                os.environ.setdefault("MASTER_PORT", "29511")
            except ImportError:
                use_ds = False
        engine = Engine(model, named, OptimConfig(), ScheduleConfig(),
                        DeepSpeedConfig(enabled=use_ds, zero_stage=zero_stage, bf16=True),
                        micro_batch_size=batch, device=device)
        engine_name = f"audiox.train Engine, DeepSpeed ZeRO-{zero_stage}" if use_ds else "audiox.train Engine (plain)"
        module = engine.module
        backward, step = engine.backward, engine.step
    except ImportError:
        opt = torch.optim.AdamW([p for _, p in named], lr=1e-5, weight_decay=1e-3)
        module = model

        def backward(loss):
            loss.backward()

        def step():
            opt.step()
            opt.zero_grad(set_to_none=True)

    module.train()
    inputs = make_inputs(cfg, device, batch)
    gen = torch.Generator(device=device).manual_seed(2)
    dt = next(p for _, p in named).dtype

    def one_step():
        cond = module.prepare_conditions(inputs)
        z0 = torch.randn(batch, cfg.autoencoder.latent_dim, cfg.latent_length, device=device, dtype=dt, generator=gen)
        z1 = torch.randn(z0.shape, device=device, dtype=dt, generator=gen)
        t = torch.rand(batch, device=device, dtype=dt, generator=gen)
        v = module(flow.interpolate(z0, z1, t), t, cond)
        loss = torch.nn.functional.mse_loss(v.float(), flow.velocity_target(z0, z1).float())  # paper Eq. 3
        backward(loss)
        step()

    ms = timer(one_step)
    achieved = step_flops / (ms / 1e3) / 1e12
    note = f"{engine_name}; batch {batch}; {step_flops / 1e9:.4g} GFLOP/step; {achieved:.3g} TFLOP/s"
    mfu = None
    if peak_tflops:
        mfu = achieved / peak_tflops
        note += f"; MFU {100 * mfu:.1f}% of {peak_tflops:g}"
    model.eval()
    return [Row("train", f"{cfg.name} teacher step {cfg.duration:g} s", engine_name.split(",")[-1].strip(), ms,
                note=note, extra={"step_tflop": step_flops / 1e12, "tflops": achieved, "mfu": mfu})]


# ----------------------------------------------------------------------------------------------- report
def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} logical cores)"


def peak_for(name: str) -> float | None:
    for key, tflops in PEAK_BF16_TFLOPS.items():
        if key in name:
            return tflops
    return None


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def versions() -> str:
    parts = [f"torch {torch.__version__}", f"CUDA {torch.version.cuda}"]
    if dispatch.HAS_TRITON:
        import triton

        parts.append(f"triton {triton.__version__}")
    if dispatch.HAS_XFORMERS:
        import xformers

        parts.append(f"xformers {xformers.__version__}")
    return ", ".join(parts)


def report(args, rows: list[Row], name: str, device: torch.device, dtype: torch.dtype, peak: float | None) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    peak_text = f"{peak:g} TFLOP/s dense bf16" if peak else "unknown (pass --peak-tflops)"
    command = " ".join(["python scripts/bench_gpu.py", *args.argv])
    gpu_note = ("" if device.type == "cuda" else
                "\n**No GPU was used for these figures**: this is the CPU smoke run of the script (the Triton "
                "kernels, xformers and torch.compile rows need CUDA and are absent; CPU timings on a shared "
                "machine are noisy and say nothing about the GPU targets). The kernels are tested for correctness "
                "on CPU under `TRITON_INTERPRET=1` (`packages/audiox-core/tests/test_kernels_triton.py`).\n")
    return f"""# audiox performance

Written by `scripts/bench_gpu.py` ({when}). Command: `{command}`

- Device: **{name}**; {versions()}
- Preset `{args.preset}` (random weights), dtype {str(dtype).replace("torch.", "")}, median of {args.iters} runs
  after {args.warmup} warm-up runs; peak used for MFU: {peak_text}
{gpu_note}
{markdown(rows)}

Columns: `ms` median wall time; `x ref` = PyTorch reference time / this row's time (> 1: faster than the
reference); `x best` = fastest of SDPA/xformers (attention) or the unfused prologue + SDPA / this row's time.
End-to-end rows time one {args.duration_note} clip from inputs to waveform; the note splits it into encoders (T5,
CLIP, sync encoder and MAF, run once), the denoiser loop and the VAE decoder. `max-autotune-no-cudagraphs` is
torch.compile without CUDA graphs, `reduce-overhead` is torch.compile with CUDA graphs (the MMDiT only).

MFU = (3 x forward FLOPs of the trained modules + forward FLOPs of the frozen encoders) / step time / peak.
Forward FLOPs are counted with `torch.utils.flop_counter.FlopCounterMode` on the reference kernels (2 FLOPs per
multiply-add, attention's two matmuls included); the backward is counted as twice the forward.

## Reproduce

    uv run python scripts/bench_gpu.py --out docs/perf.md                       # GPU machine, `paper` preset
    uv run python scripts/bench_gpu.py --preset debug --device cpu --out docs/perf.md   # CPU smoke run

Useful switches: `--skip kernels|e2e|train`, `--compile off`, `--train-batch N`, `--zero-stage N`,
`--peak-tflops X`. The ByT5 tokenizer stands in for T5's (random weights; no vocabulary download).

## Kernels and dispatch

`audiox.core.kernels` (Triton 3.x): flash-attention-style forward/backward with key-padding masks and an
optional fused RMS QK-norm + RoPE prologue; adaLN modulated LayerNorm/RMSNorm and the gated residual, forward
and backward. `AUDIOX_KERNELS=reference|triton|auto` forces a backend; `auto` times the candidates once per
shape on CUDA (Triton vs SDPA vs xformers) and caches the winner (`AUDIOX_KERNELS_CACHE=path.json` persists
it). On CPU, SDPA and the references run. Correctness: every kernel is checked against its reference under
`TRITON_INTERPRET=1` (fp32 and bf16, forward and backward, ragged sizes, rows without keys).

Targets (issue 9, one H100): student 4-step 10 s latency <= 60 ms end to end; each fused kernel faster than its
reference; attention within 10% of the fastest of SDPA/xformers (`x best` >= 0.9); training MFU >= 40%.
"""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="paper", help="config preset or JSON (default: paper)")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, repeatable (e.g. dit.depth=4)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cuda, cuda:N or cpu")
    p.add_argument("--dtype", default="auto", choices=["auto", "bf16", "fp16", "fp32"],
                   help="auto: bf16 on CUDA, fp32 on CPU")
    p.add_argument("--out", type=Path, default=Path("docs/perf.md"), help="markdown report (written atomically)")
    p.add_argument("--json", type=Path, default=None, help="also write the raw rows as JSON here")
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--student-steps", type=int, default=4)
    p.add_argument("--teacher-steps", type=int, default=50)
    p.add_argument("--cfg-scale", type=float, default=None, help="default: the preset's inference.guidance_scale")
    p.add_argument("--long-len", type=int, default=4096, help="a long self-attention length for the kernel rows")
    p.add_argument("--compile", choices=["auto", "on", "off"], default="auto",
                   help="torch.compile rows (auto: on CUDA only)")
    p.add_argument("--train-batch", type=int, default=4)
    p.add_argument("--zero-stage", type=int, default=2)
    p.add_argument("--peak-tflops", type=float, default=None, help="override the card's dense bf16 peak")
    p.add_argument("--skip", action="append", default=[], choices=["kernels", "e2e", "train"])
    p.add_argument("--offline-tokenizer", action=argparse.BooleanOptionalAction, default=True,
                   help="use the file-free ByT5 tokenizer (random weights need no T5 vocabulary; default on)")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    for name in ("iters", "student_steps", "teacher_steps", "long_len", "train_batch"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                              "cpu" if args.device == "auto" else args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda but no CUDA device is available")
        overrides = list(args.override) + (["text.tokenizer=byt5"] if args.offline_tokenizer else [])
        cfg = get_config(args.preset, overrides)
    except (ValueError, KeyError, FileNotFoundError, RuntimeError) as e:
        print(f"bench_gpu: error: {e}", file=sys.stderr)
        return 2
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}.get(
        args.dtype, torch.bfloat16 if device.type == "cuda" else torch.float32)
    args.duration_note = f"{cfg.duration:g} s"
    name = device_name(device)
    peak = args.peak_tflops or (peak_for(name) if device.type == "cuda" else None)
    timer = Timer(device, args.warmup, args.iters)
    compile_modes = (["max-autotune-no-cudagraphs", "reduce-overhead"]
                     if args.compile == "on" or (args.compile == "auto" and device.type == "cuda") else [])
    print(f"bench_gpu: {name}; preset {cfg.name}; {dtype}", file=sys.stderr)

    torch.manual_seed(0)
    with torch.device(device):
        model = AudioXModel(cfg)
    model = model.to(dtype).eval()
    rows: list[Row] = []
    with torch.inference_mode():
        cond = model.prepare_conditions(make_inputs(cfg, device))
    context_len = cond.context.shape[1]
    if "kernels" not in args.skip:
        print("bench_gpu: kernels", file=sys.stderr)
        rows += bench_kernels(cfg, device, dtype, timer, context_len, args.long_len)
    if "e2e" not in args.skip:
        print("bench_gpu: end to end", file=sys.stderr)
        scale = cfg.inference.guidance_scale if args.cfg_scale is None else args.cfg_scale
        rows += bench_e2e(model, cfg, device, timer, args.student_steps, args.teacher_steps, scale, compile_modes)
    if "train" not in args.skip:
        print("bench_gpu: training step", file=sys.stderr)
        train_model = model.float() if device.type == "cpu" else model  # DeepSpeed bf16 keeps fp32 masters
        try:
            rows += bench_train(train_model, cfg, device, timer, args.train_batch, args.zero_stage, peak)
        except torch.OutOfMemoryError as e:
            rows.append(Row("train", f"{cfg.name} teacher step", "", None, note=f"OOM: {str(e)[:80]}"))

    table = markdown(rows)
    print(table)
    text = report(args, rows, name, device, dtype, peak)
    write_atomic(args.out, text)
    raw = {"device": name, "preset": cfg.name, "dtype": str(dtype), "versions": versions(),
           "rows": [r.__dict__ for r in rows]}
    if args.json:
        write_atomic(args.json, json.dumps(raw, indent=1))
    print(f"bench_gpu: wrote {args.out}" + (f" and {args.json}" if args.json else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
