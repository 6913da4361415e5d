"""Efficiency comparison (NFE, latency, RTF, peak memory) of several models / sampler settings in one run.

The protocol is audiox-infer's (:func:`audiox.infer.latency.bench_latency`, paper Table II / Appendix B:
mean +- std over ``runs`` after ``warmup``, batch size 1, NFE counted by hooking the model's forward, so a
CFG step counts 2). Ratios are against the first setting: ``speedup = latency_0 / latency_i``,
``nfe_ratio = NFE_0 / NFE_i``.
"""

from __future__ import annotations

from dataclasses import dataclass

from audiox.infer import AudioXPipeline
from audiox.infer.latency import LatencyReport, bench_latency

__all__ = ["Setting", "parse_setting", "compare_efficiency", "efficiency_table"]


@dataclass(frozen=True)
class Setting:
    label: str
    sampler: str | None = None
    steps: int | None = None
    guidance_scale: float | None = None


def parse_setting(text: str) -> Setting:
    """``sampler:steps[:cfg]`` e.g. ``euler:50:6`` or ``turbo:4``; an optional ``label=`` prefix."""
    label, _, spec = text.rpartition("=")
    parts = spec.split(":")
    if not 1 <= len(parts) <= 3 or not parts[0]:
        raise ValueError(f"bad setting {text!r}: expected [label=]sampler[:steps[:cfg]]")
    try:
        steps = int(parts[1]) if len(parts) > 1 and parts[1] else None
        cfg = float(parts[2]) if len(parts) > 2 and parts[2] else None
    except ValueError:
        raise ValueError(f"bad setting {text!r}: steps must be an int and cfg a float") from None
    return Setting(label or spec, parts[0], steps, cfg)


def compare_efficiency(pipes: dict[str, AudioXPipeline], settings: list[Setting], *, runs: int = 20, warmup: int = 5,
                       duration: float | None = None, progress: bool = False) -> list[dict]:
    """One row per (model, setting), with ratios against the first row."""
    rows = []
    for model_name, pipe in pipes.items():
        for s in settings:
            rep: LatencyReport = bench_latency(pipe, sampler=s.sampler, steps=s.steps, guidance_scale=s.guidance_scale,
                                               duration=duration, runs=runs, warmup=warmup, model_name=model_name,
                                               progress=progress)
            rows.append({"model": model_name, "setting": s.label, **rep.to_dict()})
    base = rows[0]
    for r in rows:
        r["speedup"] = base["latency_mean"] / r["latency_mean"] if r["latency_mean"] > 0 else float("inf")
        r["nfe_ratio"] = base["nfe"] / r["nfe"]
    return rows


def efficiency_table(rows: list[dict]) -> str:
    head = "| Model | Setting | NFE | Latency (s) | RTF | Peak mem (MiB) | Speedup | NFE ratio |\n|---|---|---|---|---|---|---|---|"
    lines = [head]
    for r in rows:
        mem = max(r["peak_memory_mib"].values()) if r["peak_memory_mib"] else float("nan")
        lines.append(f"| {r['model']} | {r['setting']} | {r['nfe']} | {r['latency_mean']:.3f} ± {r['latency_std']:.3f} | "
                     f"{r['rtf']:.3f} | {mem:.0f} | {r['speedup']:.2f}x | {r['nfe_ratio']:.2f}x |")
    return "\n".join(lines)
