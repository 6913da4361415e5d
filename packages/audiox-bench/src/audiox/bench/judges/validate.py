"""Validity of the V2A and T2M judges on ground truth: judge the exact renderings of held-out prompts.

A judge's scores on generated audio mean something only if it scores the ground truth (near) perfectly: the
issue's floor is 98% on every attribute. ``validate_v2a`` / ``validate_t2m`` render each record's spec with
``audiox.data.synth.render_audio`` (at the world's 16 kHz) and time the judge alone (rendering excluded).
The T2A judge's validation is :func:`audiox.bench.t2a.judge_validate`.
"""

from __future__ import annotations

import time

import numpy as np
from tqdm import tqdm

__all__ = ["validate_v2a", "validate_t2m", "validity_table"]


def _run(judge, records: list[dict], progress: bool, desc: str) -> tuple[list[dict], float, float]:
    from audiox.data.synth import SynthConfig, render_audio, spec_from_dict

    cfg = SynthConfig(video=False)
    rows, wall, cpu = [], 0.0, 0.0
    for r in tqdm(records, desc=desc, unit="clip", disable=not progress):
        wav, _ = render_audio(spec_from_dict(r["spec"]), cfg)
        t0, c0 = time.perf_counter(), time.process_time()
        rows.append(judge(r, wav, cfg.sample_rate))
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
    return rows, wall, cpu


def _timing(n: int, wall: float, cpu: float) -> dict:
    return {"clips": n, "judge_seconds": wall, "judge_cpu_seconds": cpu,
            "seconds_per_2000_clips": wall / max(1, n) * 2000}


def validate_v2a(records: list[dict], judge=None, progress: bool = True) -> dict:
    """Presence / aligned (%) over all annotated events of the ground-truth clips, onset errors, false alarms."""
    from audiox.bench.judges.av_music import V2AJudge

    judge = judge or V2AJudge()
    rows, wall, cpu = _run(judge.judge, records, progress, "judge-validate v2a")
    s = V2AJudge.summary(rows)
    acc = {"presence": 100 * s["presence"], "aligned": 100 * s["aligned"]}
    return {"task": "v2a", "accuracy": acc, "summary": s, **_timing(len(rows), wall, cpu), "judgments": rows}


def validate_t2m(records: list[dict], judge=None, progress: bool = True) -> dict:
    """Tempo (within 5%), instrument and mode accuracy (%) on the ground-truth clips."""
    from audiox.bench.judges.av_music import T2MJudge

    t0 = time.perf_counter()
    judge = judge or T2MJudge()
    fit = time.perf_counter() - t0
    rows, wall, cpu = _run(judge.judge, records, progress, "judge-validate t2m")
    acc = {k: 100 * float(np.mean([r[k] for r in rows])) for k in ("tempo_acc", "instrument_acc", "mode_acc")}
    return {"task": "t2m", "accuracy": acc, "fit_seconds": fit, **_timing(len(rows), wall, cpu), "judgments": rows}


def validity_table(res: dict) -> str:
    """Markdown: attribute, accuracy on N ground-truth clips, then the judging time."""
    lines = ["| judge | attribute | accuracy on ground truth (%) | clips |", "| --- | --- | --- | --- |"]
    for k, v in res["accuracy"].items():
        lines.append(f"| {res['task']} | {k} | {v:.1f} | {res['clips']} |")
    how = "measured" if res["clips"] >= 2000 else "extrapolated linearly"
    lines.append("")
    lines.append(f"Judging time: {res['judge_seconds']:.1f} s wall, {res['judge_cpu_seconds']:.1f} s CPU for {res['clips']} "
                 f"clips ({res['seconds_per_2000_clips']:.0f} s wall per 2,000 clips, {how}; rendering excluded).")
    return "\n".join(lines)
