"""Latency protocol of the paper's Table II: mean +- std over ``runs`` after ``warmup`` runs, RTF, NFE
counted by instrumenting the model's forward, and peak memory per stage.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` (reset at each stage start); on the CPU the
process's peak resident set size (``VmHWM``, reset per stage through ``/proc/self/clear_refs``; where that is
unavailable, tracemalloc's peak of Python-level allocations is reported instead and labelled so).
"""

from __future__ import annotations

import statistics
import tracemalloc
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from audiox.infer.pipeline import AudioXPipeline, ForwardCounter

__all__ = ["LatencyReport", "MemoryProbe", "bench_latency"]

STAGES = ("load", "encode", "denoise", "decode")


def _read_hwm_kib() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class MemoryProbe:
    """A ``stage_hook`` for :class:`AudioXPipeline` that records the peak memory (MiB) of each stage."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peaks: dict[str, float] = {}
        self._stage: str | None = None
        if device.type == "cuda":
            self.kind = "cuda max_memory_allocated"
        elif _reset_hwm() and _read_hwm_kib() is not None:
            self.kind = "peak RSS (VmHWM)"
        else:
            self.kind = "tracemalloc peak (Python allocations only)"
            tracemalloc.start()

    def _peak(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        if self.kind.startswith("peak RSS"):
            return (_read_hwm_kib() or 0) / 1024
        return tracemalloc.get_traced_memory()[1] / 2**20

    def _reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.kind.startswith("peak RSS"):
            _reset_hwm()
        else:
            tracemalloc.reset_peak()

    def __call__(self, name: str) -> None:
        if self._stage is not None:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.peaks[self._stage] = self._peak()
        self._stage = None if name == "end" else name
        if self._stage is not None:
            self._reset()

    def close(self) -> None:
        if self.kind.startswith("tracemalloc"):
            tracemalloc.stop()


@dataclass
class LatencyReport:
    model: str
    device: str
    dtype: str
    sampler: str
    steps: int
    guidance_scale: float | None
    nfe: int  # counted forwards per sample
    duration: float  # seconds of audio per clip
    batch_size: int
    runs: int
    warmup: int
    latency_mean: float  # seconds, end to end
    latency_std: float
    rtf: float  # latency_mean / duration
    stage_mean: dict[str, float] = field(default_factory=dict)  # seconds per stage
    peak_memory_mib: dict[str, float] = field(default_factory=dict)
    memory_kind: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        cfg = "-" if self.guidance_scale is None else f"{self.guidance_scale:g}"
        head = "| model | device | sampler | steps | CFG | NFE | latency (s) | RTF | encode | denoise | decode |"
        row = (f"| {self.model} | {self.device} {self.dtype} | {self.sampler} | {self.steps} | {cfg} | {self.nfe} | "
               f"{self.latency_mean:.3f} +- {self.latency_std:.3f} | {self.rtf:.3f} | "
               + " | ".join(f"{self.stage_mean.get(s, 0.0):.3f}" for s in ("encode", "denoise", "decode")) + " |")
        mem = ", ".join(f"{k} {v:.1f}" for k, v in self.peak_memory_mib.items())
        sep = "|" + "---|" * (head.count("|") - 1)
        return f"{head}\n{sep}\n{row}\npeak memory per stage, MiB ({self.memory_kind}): {mem}"


def bench_latency(pipe: AudioXPipeline, *, text: str = "a dog barks twice, then rain falls",
                  sampler: str | None = None, steps: int | None = None, guidance_scale: float | None = None,
                  duration: float | None = None, runs: int = 20, warmup: int = 5, batch_size: int = 1,
                  seed: int = 0, model_name: str | None = None, progress: bool = False) -> LatencyReport:
    """Run the Table II protocol on ``pipe`` (text-to-audio, batch ``batch_size``)."""
    if runs < 1 or warmup < 0:
        raise ValueError(f"need runs >= 1 and warmup >= 0, got runs={runs} warmup={warmup}")
    kw = dict(sampler=sampler, steps=steps, guidance_scale=guidance_scale, duration=duration,
              batch_size=batch_size, seed=seed)
    it = range(warmup + runs)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="bench-latency", unit="run")
    totals: list[float] = []
    stages: dict[str, list[float]] = {s: [] for s in ("encode", "denoise", "decode")}
    nfe = -1
    out = None
    for i in it:
        with ForwardCounter(pipe.model) as counter:
            out = pipe(text, **kw)
        nfe = counter.nfe(batch_size)
        if i >= warmup:
            totals.append(out.timings["total"])
            for s in stages:
                stages[s].append(out.timings[s])
    probe = MemoryProbe(pipe.device)  # one extra run, outside the timed ones
    try:
        pipe(text, stage_hook=probe, **kw)
    finally:
        probe.close()
    assert out is not None
    mean = statistics.fmean(totals)
    return LatencyReport(
        model=model_name or pipe.name, device=str(pipe.device), dtype=str(pipe.dtype).removeprefix("torch."),
        sampler=out.sampler, steps=out.steps, guidance_scale=out.guidance_scale, nfe=nfe, duration=out.duration,
        batch_size=batch_size, runs=runs, warmup=warmup, latency_mean=mean,
        latency_std=statistics.stdev(totals) if len(totals) > 1 else 0.0, rtf=mean / out.duration,
        stage_mean={s: statistics.fmean(v) for s, v in stages.items()},
        peak_memory_mib={s: probe.peaks[s] for s in STAGES if s in probe.peaks}, memory_kind=probe.kind,
    )
