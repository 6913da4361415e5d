"""T2A-bench runs: generate every prompt with a pipeline, judge, aggregate (paper Appendix C).

``judge_validate`` renders each record's ground-truth clip (``audiox.data.synth.clip_for_prompt``) and judges
it: the offline judge's scores mean something only if these are >= 98% on every metric.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from audiox.bench.io import write_json, write_wav
from audiox.bench.judges.rules import aggregate, prompt_following

__all__ = ["generate_t2a", "judge_clips", "judge_validate", "run_t2a"]

Judge = Callable[[dict, np.ndarray, int], dict]  # (record, audio, sample_rate) -> {"prediction": ...}


def generate_t2a(pipe, records: list[dict], audio_dir: str | Path, *, sampler: str | None = None,
                 steps: int | None = None, guidance_scale: float | None = None, seed: int = 0,
                 progress: bool = True) -> dict[str, tuple[np.ndarray, int]]:
    """Generate one clip per record (seed ``seed + index``), written to ``audio_dir/<id>.wav``."""
    out, nfe = {}, None
    for i, r in enumerate(tqdm(records, desc="generate", unit="clip", disable=not progress)):
        res = pipe(r["prompt"], task="t2a", sampler=sampler, steps=steps, guidance_scale=guidance_scale, seed=seed + i)
        wav = res.audio[0].float().cpu().numpy()  # (C_a, S)
        write_wav(Path(audio_dir) / f"{r['id']}.wav", wav, res.sample_rate)
        out[r["id"]] = (wav, res.sample_rate)
        nfe = res.nfe
    out["__nfe__"] = nfe  # type: ignore[assignment]
    return out


def judge_clips(judge: Judge, records: list[dict], clips: dict[str, tuple[np.ndarray, int]],
                progress: bool = True) -> tuple[list[dict], dict]:
    rows = []
    for r in tqdm(records, desc="judge", unit="clip", disable=not progress):
        wav, sr = clips[r["id"]]
        res = judge(r, wav, sr)
        rows.append({"id": r["id"], "type": r["type"], "prediction": res["prediction"], "annotation": res.get("annotation")})
    return rows, aggregate([x["prediction"] for x in rows], [x["type"] for x in rows])


def judge_validate(judge: Judge, records: list[dict], sample_rate: int = 16000, progress: bool = True) -> dict:
    """Judge the ground-truth renderings of ``records``; returns accuracy per type and the judging time."""
    from audiox.data.synth import SynthConfig, render_audio, spec_from_dict

    cfg = SynthConfig(sample_rate=sample_rate, video=False)
    rows, t_judge, cpu_judge = [], 0.0, 0.0
    for r in tqdm(records, desc="judge-validate", unit="clip", disable=not progress):
        wav, _ = render_audio(spec_from_dict(r["spec"]), cfg)
        t0, c0 = time.perf_counter(), time.process_time()
        res = judge(r, wav, cfg.sample_rate)
        t_judge += time.perf_counter() - t0
        cpu_judge += time.process_time() - c0
        rows.append({"id": r["id"], "type": r["type"], "prediction": res["prediction"]})
    acc = aggregate([x["prediction"] for x in rows], [x["type"] for x in rows])
    return {"accuracy": acc, "judge_seconds": t_judge, "judge_cpu_seconds": cpu_judge, "clips": len(records),
            "seconds_per_2000_clips": t_judge / max(1, len(records)) * 2000, "judgments": rows}


def run_t2a(pipe, records: list[dict], out_dir: str | Path, judge: Judge, *, label: str = "default",
            sampler: str | None = None, steps: int | None = None, guidance_scale: float | None = None,
            seed: int = 0, progress: bool = True) -> dict:
    out_dir = Path(out_dir)
    clips = generate_t2a(pipe, records, out_dir / "audio" / label, sampler=sampler, steps=steps,
                         guidance_scale=guidance_scale, seed=seed, progress=progress)
    nfe = clips.pop("__nfe__")
    rows, acc = judge_clips(judge, records, clips, progress=progress)  # type: ignore[arg-type]
    write_json(out_dir / f"judgments_{label}.json", rows)
    following = prompt_following(records, [x.get("annotation") or {} for x in rows])
    return {"label": label, "nfe": nfe, "accuracy": acc, "following": following}
