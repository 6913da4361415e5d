"""``audiox-bench suite``: every task family of the synthetic world, several models and settings, one run.

Like the paper's Tables II/III: each *setting* is ``label=model@sampler:steps[:cfg]`` (e.g.
``teacher-50=teacher@euler:50:6``, ``student-4=student@turbo:4``), and every setting is measured on the same
held-out prompts, on the same machine, in the same process:

- **T2A** (T2A-bench, Appendix C): the offline judge's Cat-/Cnt-/Ord-/TS-acc on held-out synthetic-world
  prompts (``make_t2a_bench``: the EVAL_T2A stream, disjoint from every training corpus), with the prompt-following
  check (Cat-acc's chance level) and a per-category breakdown (asked and heard, heard unasked).
- **V2A**: held-out clips (EVAL_V2A stream) rendered with their video, written as MP4 and given to the pipeline
  as a file (video only, task ``v2a``); the V2A judge reports the share of annotated events found within 0.5 s of
  their visual onset (presence), the share within 0.2 s (aligned), the onset error of those found (median, mean,
  ms) and the detections that match no event (false alarms per clip).
- **T2M**: held-out music prompts (EVAL_T2M stream); tempo within 5 %, instrument and mode (major/minor) accuracy
  by the T2M judge.
- **Inpainting**: held-out sound-event clips with one event's span (+-0.25 s) masked; the regenerated span is
  compared with the ground truth by log-mel L1 and by an energy-weighted log-mel L1 (each bin weighted by the
  truth's power there, so a silent span is not favoured; lower is better; the distances of a silent span are
  printed as a reference), the share of spans the model left silent (:func:`span_level_db` under
  ``SILENT_SPAN_DB``: both L1s score such a span exactly as an empty one, so this count tells "filled it with
  nothing" from "filled it badly"), the share of spans where the offline judge's detector hears the masked event's
  category again (onset inside the span, 0.1 s slack before it), and the V2A judge's event presence on the whole
  repaired clip. ``inpaint_guides`` adds guided rows as in the paper's Table A.6: ``A`` (audio alone, the default),
  ``A+T`` (plus the clip's caption), ``A+V`` (plus its video), ``A+T+V``; every guide fills the same spans.
- **Music completion**: the 5 s that precede a held-out music clip as the prompt; the continuation is judged for
  keeping the tempo and the instrument of the ground truth (T2M judge), plus its log-mel L1 to the ground truth.
- **Efficiency**: NFE (counted), end-to-end latency (mean +- std over ``runs`` after ``warmup``, batch 1, one clip of
  the model's duration), RTF, and speed-up against the slowest setting.

Outputs: ``results.json``, the per-clip T2A judgments (``judgments`` in the returned dict, which the CLI writes to
``judgments.json``), ``table.md`` and, with ``markdown=``, a self-contained page (machine, versions,
command line). Random-weight presets (``--model t=debug``) exercise the plumbing only.
"""

from __future__ import annotations

import math
import os
import platform
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from audiox.bench.judges.av_music import T2MJudge, V2AJudge
from audiox.bench.judges.offline import OfflineJudge
from audiox.bench.judges.rules import aggregate, category_recall, prompt_following
from audiox.core.io import file_sha256

__all__ = ["INPAINT_GUIDES", "SILENT_SPAN_DB", "SuiteSetting", "parse_suite_setting", "log_mel_l1", "inpaint_span",
           "run_suite", "span_level_db", "suite_markdown", "suite_plots"]

#: A regenerated span this far (dB) or more under the true span's level counts as left silent.
SILENT_SPAN_DB = -40.0

_SETTING = re.compile(r"^(?:(?P<label>[^=]+)=)?(?P<model>[^@=]+)@(?P<sampler>[a-z]+)(?::(?P<steps>\d*))?(?::(?P<cfg>[-+0-9.eE]*))?$")


@dataclass(frozen=True)
class SuiteSetting:
    label: str
    model: str
    sampler: str
    steps: int | None = None
    guidance_scale: float | None = None


def parse_suite_setting(text: str) -> SuiteSetting:
    """``[label=]model@sampler[:steps[:cfg]]``, e.g. ``teacher-50=teacher@euler:50:6`` or ``student@turbo:4``."""
    m = _SETTING.match(text.strip())
    if m is None:
        raise ValueError(f"bad setting {text!r}: expected [label=]model@sampler[:steps[:cfg]]")
    steps = int(m["steps"]) if m["steps"] else None
    try:
        cfg = float(m["cfg"]) if m["cfg"] else None
    except ValueError:
        raise ValueError(f"bad setting {text!r}: cfg must be a number") from None
    label = m["label"] or f"{m['model']}@{m['sampler']}" + (f":{steps}" if steps else "") + (f":{m['cfg']}" if cfg is not None else "")
    return SuiteSetting(label, m["model"], m["sampler"], steps, cfg)


def log_mel_l1(a: np.ndarray, b: np.ndarray, sample_rate: int, n_mels: int = 64, weighted: bool = False) -> float:
    """Mean |log10 mel(a) - log10 mel(b)| (1024-point STFT, hop 256, power, floor 1e-5) of two equal-length clips.

    ``weighted=True``: each mel bin's difference is weighted by the *reference* ``b``'s mel power there (weights
    summing to 1), so the bins where the reference has its sound count and its silent bins do not. The plain
    mean favours silence on sparse clips (most bins of a sound-event span are near the floor); the weighted one
    does not. It is not symmetric: ``b`` is the reference.
    """
    from audiox.bench.embeddings.frontend import mel_filterbank, power_spectrogram

    fb = mel_filterbank(sample_rate, 1024, n_mels, 0.0, sample_rate / 2)
    def mel_power(x: np.ndarray) -> torch.Tensor:
        p = power_spectrogram(torch.as_tensor(np.asarray(x, dtype=np.float32))[None], 1024, 256)  # (1, T, F)
        return torch.einsum("mf,btf->bmt", fb, p)  # (1, M, T)
    pa, pb = mel_power(a), mel_power(b)
    diff = (torch.log10(pa.clamp(min=1e-5)) - torch.log10(pb.clamp(min=1e-5))).abs()
    if not weighted:
        return float(diff.mean())
    w = pb.double()
    total = float(w.sum())
    if total <= 0:
        return float(diff.mean())  # a silent reference: every bin counts alike
    return float((diff.double() * w).sum() / total)


def span_level_db(gen: np.ndarray, ref: np.ndarray) -> float:
    """RMS level of ``gen`` relative to ``ref`` in dB (``-inf`` for an all-zero ``gen``; ``ref`` must not be silent)."""
    g = float(np.sqrt(np.mean(np.square(np.asarray(gen, dtype=np.float64)))))
    r = float(np.sqrt(np.mean(np.square(np.asarray(ref, dtype=np.float64)))))
    if r <= 0:
        raise ValueError("span_level_db: the reference span is silent")
    return 20 * math.log10(g / r) if g > 0 else -math.inf


#: inpainting guides (paper Table A.6): audio alone, plus the caption, plus the video, plus both
INPAINT_GUIDES = ("A", "A+T", "A+V", "A+T+V")


def _masked_event(record: dict) -> dict:
    """The event whose span the suite masks: the record's first."""
    return min(record["spec"]["events"], key=lambda e: e["onset"])


def inpaint_span(record: dict, duration: float) -> tuple[float, float]:
    """The span the suite masks and asks to regenerate: the record's first event +- 0.25 s, inside the clip."""
    ev = _masked_event(record)
    return max(0.0, ev["onset"] - 0.25), min(duration, ev["offset"] + 0.25)


def _balanced(records: list[dict], n: int) -> list[dict]:
    by: dict[str, list[dict]] = {}
    for r in records:
        by.setdefault(r["type"], []).append(r)
    out, i = [], 0
    while len(out) < n and any(i < len(v) for v in by.values()):
        for t in sorted(by):
            if i < len(by[t]) and len(out) < n:
                out.append(by[t][i])
        i += 1
    return out


def _wav(res) -> np.ndarray:
    a = res.audio
    a = a.detach().float().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, dtype=np.float32)
    return a.reshape(-1, a.shape[-1]).mean(0)  # mono (S,)


def _gen(pipe, s: SuiteSetting, seed: int, **kw) -> np.ndarray:
    """One clip of the synthetic world's length (10 s), whatever the model's default duration."""
    kw.setdefault("duration", 10.0)
    return _wav(pipe(sampler=s.sampler, steps=s.steps, guidance_scale=s.guidance_scale, seed=seed, **kw))


def _mean(xs) -> float | None:
    xs = [x for x in xs if x is not None]
    return float(np.mean(xs)) if xs else None


def _pct(xs) -> float | None:
    m = _mean(xs)
    return None if m is None else 100 * m


def _t2m_summary(music: list[dict]) -> dict:
    return {"tempo_acc": _pct(m["tempo_acc"] for m in music), "instrument_acc": _pct(m["instrument_acc"] for m in music),
            "mode_acc": _pct(m.get("mode_acc") for m in music), "n": len(music)}


def _inpaint(pipe, s: SuiteSetting, seed: int, cases: list, guide: str, sr: int, v2a_judge: V2AJudge,
             offline: OfflineJudge, bar) -> dict:
    """Inpainting under one guide: every case's span regenerated and measured (see the module docstring)."""
    l1, l1_silent, wl1, wl1_silent, present, silent, again = [], [], [], [], [], [], []
    for i, (r, wav, (a, b), caption, video) in enumerate(cases):
        prompt = torch.from_numpy(wav)[None]
        text = caption if "T" in guide else None
        vid = str(video) if "V" in guide else None
        gen = _gen(pipe, s, seed + i, text=text, video=vid, audio=prompt, inpaint_spans=[(a, b)], task="inpaint")
        lo, hi = int(a * sr), int(b * sr)
        l1.append(log_mel_l1(gen[lo:hi], wav[lo:hi], sr))
        l1_silent.append(log_mel_l1(np.zeros(hi - lo, np.float32), wav[lo:hi], sr))
        wl1.append(log_mel_l1(gen[lo:hi], wav[lo:hi], sr, weighted=True))
        wl1_silent.append(log_mel_l1(np.zeros(hi - lo, np.float32), wav[lo:hi], sr, weighted=True))
        present.append(v2a_judge.judge(r, gen, sr)["present"])
        silent.append(span_level_db(gen[lo:hi], wav[lo:hi]) < SILENT_SPAN_DB)
        masked = _masked_event(r)
        again.append(any(d.name == masked["name"] and a - 0.1 <= d.onset <= b
                         for d in offline.detector.detect(gen, sr)))
        bar.update(1)
    return {"guide": guide, "span_log_mel_l1": _mean(l1), "silent_span_log_mel_l1": _mean(l1_silent),
            "span_weighted_l1": _mean(wl1), "silent_span_weighted_l1": _mean(wl1_silent),
            "event_presence": 100 * _mean(present), "silent_spans": 100 * _mean(silent),
            "span_event": 100 * _mean(again), "n": len(l1)}


def run_suite(pipes: dict, settings: list[SuiteSetting], *, n_t2a: int = 40, n_v2a: int = 16, n_t2m: int = 16,
              n_inpaint: int = 8, n_complete: int = 8, seed: int = 1234, runs: int = 3, warmup: int = 1,
              references: bool = True, progress: bool = True, paired_ref: str | None = None,
              inpaint_guides: tuple[str, ...] = ("A",)) -> dict:
    """Measure every setting on every task (see the module docstring). ``pipes``: model name -> AudioXPipeline.

    ``inpaint_guides``: which of :data:`INPAINT_GUIDES` to judge inpainting under; ``A`` goes to ``res["inpaint"]``,
    the others to ``res["inpaint_guided"][guide]``.

    ``paired_ref``: a setting label; every other setting is then compared with it clip by clip (``out["paired"]``:
    the reference minus the setting per T2A accuracy and V2A measure, 95% CI and exact p; see ``bench.compare``)."""
    from audiox.data.media import encode_mp4
    from audiox.data.synth import SynthConfig, render_audio, render_clip, spec_from_dict
    from audiox.data.synth.prompts import make_t2a_bench, make_t2m_prompts, make_v2a_prompts
    from audiox.data.synth.world import annotate_spec
    from audiox.infer.latency import bench_latency

    bad = [g for g in inpaint_guides if g not in INPAINT_GUIDES]
    if bad or not inpaint_guides or len(set(inpaint_guides)) != len(inpaint_guides):
        raise ValueError(f"inpaint guides {list(inpaint_guides)}: give each of {', '.join(INPAINT_GUIDES)} "
                         "at most once")
    for s in settings:
        if s.model not in pipes:
            raise ValueError(f"setting {s.label!r} names model {s.model!r}; models: {', '.join(pipes)}")
    if paired_ref is not None and paired_ref not in [s.label for s in settings]:
        raise ValueError(f"--paired-ref {paired_ref!r} is not a setting label: {', '.join(s.label for s in settings)}")
    sr_of = {name: p.model.sample_rate for name, p in pipes.items()}
    if len(set(sr_of.values())) != 1:
        raise ValueError(f"the models run at different sample rates {sr_of}: compare models of one rate")
    rate = next(iter(sr_of.values()))
    t2a = _balanced(make_t2a_bench(seed, max(2000, 4 * n_t2a)), n_t2a) if n_t2a else []
    v2a = make_v2a_prompts(seed, n_v2a) if n_v2a else []
    t2m = make_t2m_prompts(seed, n_t2m) if n_t2m else []
    inp = make_v2a_prompts(seed + 1, n_inpaint) if n_inpaint else []
    comp = make_t2m_prompts(seed + 1, n_complete) if n_complete else []
    offline, v2a_judge, t2m_judge = OfflineJudge(), V2AJudge(), T2MJudge()
    out: dict = {"seed": seed, "settings": [s.__dict__ for s in settings], "inpaint_guides": list(inpaint_guides),
                 "results": {}, "references": {}, "judgments": {}, "v2a_judgments": {}}

    with tempfile.TemporaryDirectory() as tmp:
        # ground truth once, shared by all settings
        cfg = SynthConfig(sample_rate=rate)  # ground truth at the models' rate; clips of cfg.duration (10 s)
        audio_cfg = SynthConfig(sample_rate=rate, video=False)
        videos = []
        for r in v2a:
            clip = render_clip(spec_from_dict(r["spec"]), cfg)
            path = Path(tmp) / f"{r['id']}.mp4"
            path.write_bytes(encode_mp4(clip.frames, cfg.fps))
            videos.append(path)
        inpaint_cases = []  # (record, true audio, masked span, caption, video file or None)
        want_video = any("V" in g for g in inpaint_guides)
        for r in inp:
            spec = spec_from_dict(r["spec"])
            wav, _ = render_audio(spec, audio_cfg)
            video = None
            if want_video:
                video = Path(tmp) / f"inpaint-{r['id']}.mp4"
                video.write_bytes(encode_mp4(render_clip(spec, cfg).frames, cfg.fps))
            inpaint_cases.append((r, wav, inpaint_span(r, cfg.duration), annotate_spec(spec)["caption"], video))
        completions = [(r, *render_audio(spec_from_dict(r["spec"]), audio_cfg)) for r in comp]

        if references:  # the judges on the truth, and on the truth through the first model's autoencoder
            ae = next(iter(pipes.values())).model.autoencoder

            @torch.no_grad()
            def roundtrip(wav: np.ndarray) -> np.ndarray:
                x = torch.from_numpy(wav).float().to(ae_device(ae))[None, None]
                y = ae.decode(ae.encode(ae.pad_to_hop(x)))[..., : x.shape[-1]].clamp(-1, 1)
                return y[0, 0].float().cpu().numpy()

            truth = {r["id"]: render_audio(spec_from_dict(r["spec"]), audio_cfg)[0] for r in t2a + v2a + t2m}
            for name, fn in (("ground truth", lambda w: w), ("autoencoder round trip", roundtrip)):
                ref: dict = {}
                if t2a:
                    judged_ref = [offline.judge(r, fn(truth[r["id"]]), rate) for r in t2a]
                    ref["t2a"] = _t2a_result(t2a, judged_ref)
                    out["judgments"][name] = _clip_rows(t2a, judged_ref)
                if v2a:
                    ref["v2a"] = V2AJudge.summary([v2a_judge.judge(r, fn(truth[r["id"]]), rate) for r in v2a])
                if t2m:
                    music = [t2m_judge.judge(r, fn(truth[r["id"]]), rate) for r in t2m]
                    ref["t2m"] = _t2m_summary(music)
                out["references"][name] = ref

        for s in settings:
            pipe, sr = pipes[s.model], rate
            res: dict = {}
            n_clips = len(t2a) + len(v2a) + len(t2m) + len(inpaint_cases) * len(inpaint_guides) + len(completions)
            bar = tqdm(total=n_clips, desc=s.label, unit="clip", disable=not progress)
            judged_t2a = []
            for i, r in enumerate(t2a):
                judged_t2a.append(offline.judge(r, _gen(pipe, s, seed + i, text=r["prompt"], task="t2a"), sr))
                bar.update(1)
            if t2a:
                res["t2a"] = _t2a_result(t2a, judged_t2a)
                out["judgments"][s.label] = _clip_rows(t2a, judged_t2a)
            judged = []
            for i, (r, path) in enumerate(zip(v2a, videos, strict=True)):
                judged.append(v2a_judge.judge(r, _gen(pipe, s, seed + i, video=str(path), task="v2a"), sr))
                bar.update(1)
            if v2a:
                res["v2a"] = V2AJudge.summary(judged)
                out["v2a_judgments"][s.label] = judged  # per clip: each event found / aligned, onset error, false alarms
            music = []
            for i, r in enumerate(t2m):
                music.append(t2m_judge.judge(r, _gen(pipe, s, seed + i, text=r["prompt"], task="t2m"), sr))
                bar.update(1)
            if t2m:
                res["t2m"] = _t2m_summary(music)
            for guide in inpaint_guides if inpaint_cases else ():
                summary = _inpaint(pipe, s, seed, inpaint_cases, guide, sr, v2a_judge, offline, bar)
                if guide == "A":
                    res["inpaint"] = summary
                else:
                    res.setdefault("inpaint_guided", {})[guide] = summary
            kept, c_l1 = [], []
            for i, (r, target, prompt) in enumerate(completions):
                gen = _gen(pipe, s, seed + i, audio=torch.from_numpy(prompt)[None], task="complete")
                kept.append(t2m_judge.judge(r, gen, sr))
                c_l1.append(log_mel_l1(gen[: len(target)], target[: len(gen)], sr))
                bar.update(1)
            if completions:
                res["complete"] = {"tempo_kept": 100 * _mean(k["tempo_acc"] for k in kept),
                                   "instrument_kept": 100 * _mean(k["instrument_acc"] for k in kept),
                                   "log_mel_l1": _mean(c_l1), "n": len(kept)}
            bar.close()
            rep = bench_latency(pipe, sampler=s.sampler, steps=s.steps, guidance_scale=s.guidance_scale, runs=runs,
                                warmup=warmup, model_name=s.model)
            res["efficiency"] = {"nfe": rep.nfe, "latency_mean": rep.latency_mean, "latency_std": rep.latency_std,
                                 "rtf": rep.rtf, "duration": float(pipe.config.duration)}
            out["results"][s.label] = res
    if paired_ref is not None and len(settings) > 1 and (t2a or v2a):
        out["paired"] = {"ref": paired_ref, "rows": {s.label: paired_stats(out, s.label, paired_ref)
                                                     for s in settings if s.label != paired_ref}}
    slowest = max(r["efficiency"]["latency_mean"] for r in out["results"].values())
    for r in out["results"].values():
        r["efficiency"]["speedup_vs_slowest"] = slowest / r["efficiency"]["latency_mean"]
    return out


def paired_stats(out: dict, label: str, ref: str) -> dict:
    """``ref`` minus ``label`` on the same clips: T2A accuracies and V2A measures (``bench.compare``)."""
    from audiox.bench.compare import compare_pairs, compare_v2a, pair_rows, pair_v2a

    stats: dict = {}
    if label in out["judgments"]:
        stats.update(compare_pairs([pair_rows(out["judgments"][label], out["judgments"][ref])]))
    if label in out["v2a_judgments"]:
        stats.update(compare_v2a([pair_v2a(out["v2a_judgments"][label], out["v2a_judgments"][ref])]))
    return stats


def _t2a_result(records: list[dict], judged: list[dict]) -> dict:
    """T2A-bench accuracies plus the prompt-following check (Cat-acc's chance level on the same clips)."""
    res = aggregate([j["prediction"] for j in judged], [r["type"] for r in records])
    annotations = [j.get("annotation") or {} for j in judged]
    res["following"] = prompt_following(records, annotations)
    res["categories"] = category_recall(records, annotations)
    return res


def _clip_rows(records: list[dict], judged: list[dict]) -> list[dict]:
    """Per clip: the prompt, what it asked for, the judgment and the detected events (``judgments.json``)."""
    rows = []
    for r, j in zip(records, judged, strict=True):
        events = [{"name": e["name"], "onset": round(float(e["onset"]), 3), "offset": round(float(e["offset"]), 3)}
                  for e in (j.get("annotation") or {}).get("SED") or []]
        rows.append({"id": r["id"], "type": r["type"], "prompt": r["prompt"], "category": r.get("category"),
                     "count": r.get("count"), "time_relation": r.get("time_relation"),
                     "timestamp": r.get("timestamp"), "prediction": j["prediction"], "events": events})
    return rows


def ae_device(ae: torch.nn.Module) -> torch.device:
    return next(ae.parameters()).device


def _f(v, nd: int = 1) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def margin(following: dict) -> str:
    """``+12.5 (p 0.11)``: Cat-acc's margin over its chance level and the margin's one-sided p-value."""
    m, p = following.get("cat_acc_margin"), following.get("cat_acc_margin_p")
    if m is None:
        return "-"
    return f"{m:+.1f}" + ("" if p is None else f" (p {p:.2g})")


def suite_tables(res: dict) -> str:
    rows = res["results"]
    labels = list(rows)
    refs = res.get("references", {})
    parts = []
    if any("t2a" in rows[k] for k in labels):
        t = ["| Setting | NFE | Cat-acc | Cnt-acc | Ord-acc | TS-acc | Cat-acc vs another prompt (chance) | margin "
             "(p) | extra categories per clip |", "|---|---|---|---|---|---|---|---|---|"]

        def t2a_row(k: str, nfe, r: dict) -> str:
            o, fo = r["overall"], r.get("following") or {}
            return (f"| {k} | {nfe} | {_f(o['cat_acc'])} | {_f(o['cnt_acc'])} | {_f(o['ord_acc'])} | {_f(o['ts_acc'])} "
                    f"| {_f(fo.get('cat_acc_other_prompt'))} | {margin(fo)} | {_f(fo.get('extra_categories_per_clip'), 2)} |")

        t += [t2a_row(k, rows[k]["efficiency"]["nfe"], rows[k]["t2a"]) for k in labels]
        t += [t2a_row(f"*{k}*", "-", ref["t2a"]) for k, ref in refs.items() if "t2a" in ref]
        parts.append("### Text-to-audio (T2A-bench, offline judge, %)\n\n" + "\n".join(t) + "\n\n"
                     "Cat-acc counts a clip when every category of its prompt is detected; extra sounds cost nothing. "
                     "The chance column judges the same clips against another prompt's categories (one sharing none "
                     "with their own): a model follows its prompts only as far as its Cat-acc exceeds that. The margin "
                     "is Cat-acc minus chance, and p the exact one-sided McNemar test on the clips where the two "
                     "disagree: how often a margin this large comes from clips that do not follow their prompts.")
    cats = {k: rows[k]["t2a"]["categories"] for k in labels if "categories" in rows[k].get("t2a", {})}
    cats.update({f"*{k}*": ref["t2a"]["categories"] for k, ref in refs.items() if "categories" in ref.get("t2a", {})})
    if cats:
        names = sorted(set().union(*cats.values()))
        t = ["| Category | " + " | ".join(cats) + " |", "|---" * (len(cats) + 1) + "|"]
        cell = lambda c: "-" if not c or not c["asked"] else f"{c['heard']}/{c['asked']} ({_f(c['unasked_rate'], 0)})"  # noqa: E731
        for name in names:
            t.append(f"| {name} | " + " | ".join(cell(c.get(name)) for c in cats.values()) + " |")
        parts.append("### Text-to-audio per category\n\n" + "\n".join(t) + "\n\n"
                     "Each cell: the clips whose prompt names the category in which it was detected, of those clips; in "
                     "brackets, % of the other clips in which it was detected although not asked for. Cat-acc needs "
                     "every named category of a prompt, so one category that a model (or its autoencoder) cannot make "
                     "costs every prompt that names it.")
    if any("v2a" in rows[k] for k in labels):
        t = ["| Setting | events found (%) | aligned within 0.2 s (%) | onset error median (ms) | onset error mean (ms) "
             "| false alarms per clip |", "|---|---|---|---|---|---|"]
        pc = lambda x: _f(None if x is None else 100 * x)  # noqa: E731
        row = lambda k, v: (f"| {k} | {pc(v['presence'])} | {pc(v.get('aligned'))} | {_f(v['onset_error_ms_median'], 0)} | "  # noqa: E731
                            f"{_f(v['onset_error_ms_mean'], 0)} | {_f(v.get('false_alarms_per_clip'), 2)} |")
        t += [row(k, rows[k]["v2a"]) for k in labels]
        t += [row(f"*{k}*", ref["v2a"]) for k, ref in refs.items() if "v2a" in ref]
        parts.append("### Video-to-audio (V2A judge)\n\n" + "\n".join(t))
    if any("t2m" in rows[k] for k in labels):
        t = ["| Setting | tempo within 5% (%) | instrument (%) | mode (%) |", "|---|---|---|---|"]
        row = lambda k, m: f"| {k} | {_f(m['tempo_acc'])} | {_f(m['instrument_acc'])} | {_f(m.get('mode_acc'))} |"  # noqa: E731
        t += [row(k, rows[k]["t2m"]) for k in labels]
        t += [row(f"*{k}*", ref["t2m"]) for k, ref in refs.items() if "t2m" in ref]
        parts.append("### Text-to-music (T2M judge)\n\n" + "\n".join(t))
    if any(key in rows[k] for k in labels for key in ("inpaint", "inpaint_guided", "complete")):
        t = ["| Setting | guide | inpaint: span log-mel L1 (silent span) | inpaint: energy-weighted L1 (silent span) "
             "| inpaint: spans left silent (%) | inpaint: masked event heard again (%) | inpaint: events found (%) "
             "| completion: tempo kept (%) | completion: instrument kept (%) | completion: log-mel L1 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
        for k in labels:
            guided = [rows[k]["inpaint"]] if "inpaint" in rows[k] else []
            guided += list(rows[k].get("inpaint_guided", {}).values())
            c = rows[k].get("complete", {})
            for j, i in enumerate(guided or [{}]):
                cc = c if j == 0 else {}  # completion has no guide: on the setting's first row only
                t.append(f"| {k} | {i.get('guide', 'A') if i else '-'} | {_f(i.get('span_log_mel_l1'), 3)} "
                         f"({_f(i.get('silent_span_log_mel_l1'), 3)}) | "
                         f"{_f(i.get('span_weighted_l1'), 3)} ({_f(i.get('silent_span_weighted_l1'), 3)}) | "
                         f"{_f(i.get('silent_spans'))} | {_f(i.get('span_event'))} | {_f(i.get('event_presence'))} | "
                         f"{_f(cc.get('tempo_kept'))} | {_f(cc.get('instrument_kept'))} | "
                         f"{_f(cc.get('log_mel_l1'), 3)} |")
        parts.append("### Audio inpainting and music completion\n\n" + "\n".join(t))
    if res.get("paired"):
        from audiox.bench.compare import METRICS, NAMES

        ref, prow = res["paired"]["ref"], res["paired"]["rows"]
        metrics = [m for m in (*METRICS, "v2a_aligned", "v2a_false_alarms") if any(m in v for v in prow.values())]

        def cell(st: dict | None, nd: int) -> str:
            if not st or st.get("diff") is None:
                return "-"
            lo, hi = st["ci95"]
            return f"{st['diff']:+.{nd}f} ({lo:+.{nd}f} to {hi:+.{nd}f}), p {st['p']:.2g}"

        t = [f"| {ref} minus | " + " | ".join(NAMES[m] for m in metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
        for k, st in prow.items():
            t.append(f"| {k} | " + " | ".join(cell(st.get(m), 2 if m == "v2a_false_alarms" else 1) for m in metrics)
                     + " |")
        parts.append(f"### Paired differences: {ref} against each setting, clip by clip\n\n" + "\n".join(t) + "\n\n"
                     f"Each cell: {ref}'s figure minus the row's on the same clips (points; false alarms in clips), "
                     "its 95% interval and the exact two-sided p (McNemar on the clips where exactly one of the two "
                     "meets the prompt or finds the event; the sign test for false alarms). An interval that holds "
                     "0 is a difference these prompts cannot tell from chance (docs/metrics.md, `audiox-bench "
                     "compare`).")
    t = ["| Setting | NFE | latency (s) | RTF | speed-up vs slowest |", "|---|---|---|---|---|"]
    for k in labels:
        e = rows[k]["efficiency"]
        t.append(f"| {k} | {e['nfe']} | {e['latency_mean']:.3f} ± {e['latency_std']:.3f} | {e['rtf']:.3f} | "
                 f"{e['speedup_vs_slowest']:.1f}x |")
    parts.append(f"### Efficiency (batch 1, one {rows[labels[0]]['efficiency']['duration']:.0f} s clip, end to end)\n\n" + "\n".join(t))
    return "\n\n".join(parts)


def suite_plots(res: dict, out: Path) -> list[Path]:
    """``accuracy_bars.png`` (T2A-bench per task type, one bar per setting) and ``quality_vs_latency.png`` (each
    task's headline accuracy against end-to-end latency, log x: the speed-quality trade-off of Fig. 1c)."""
    from audiox.bench.report import _plt, _save, plot_accuracy_bars

    rows, written = res["results"], []
    t2a = [{"label": k, "accuracy": r["t2a"]} for k, r in rows.items() if "t2a" in r]
    if t2a:
        plot_accuracy_bars(t2a, out / "accuracy_bars.png")
        written.append(out / "accuracy_bars.png")
    series = {
        "T2A mean acc": lambda r: _mean(v for k, v in r["t2a"]["overall"].items() if k != "n") if "t2a" in r else None,
        "V2A events found": lambda r: None if r.get("v2a", {}).get("presence") is None else 100 * r["v2a"]["presence"],
        "T2M tempo acc": lambda r: r.get("t2m", {}).get("tempo_acc"),
        "T2M instrument acc": lambda r: r.get("t2m", {}).get("instrument_acc"),
        "T2M mode acc": lambda r: r.get("t2m", {}).get("mode_acc"),
    }
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, get in series.items():
        pts = [(r["efficiency"]["latency_mean"], get(r), k) for k, r in rows.items() if get(r) is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o", label=name)
            for x, y, k in pts:
                ax.annotate(k, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("latency per clip (s, log)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=7)
    ax.set_title("quality vs latency")
    _save(fig, out / "quality_vs_latency.png")
    plt.close(fig)
    return [*written, out / "quality_vs_latency.png"]


def _machine() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}"
    return f"CPU only ({platform.machine()}, {os.cpu_count()} logical cores, {torch.get_num_threads()} torch threads)"


def _commit() -> str:
    """The source's commit, with `` + uncommitted changes`` when tracked files differ from it; ``unknown`` outside git."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        return commit + (" + uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def weights_digest(folder: str | Path) -> str | None:
    """The first 12 hex digits of the sha256 of a model folder's ``model.safetensors`` (None if it has none)."""
    path = Path(folder) / "model.safetensors"
    return file_sha256(path)[:12] if path.is_file() else None


def provenance(folders: dict[str, str | Path]) -> dict:
    """What a results page must pin, taken when the run starts: the source commit and each model's weights digest."""
    return {"commit": _commit(), "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "weights": {k: weights_digest(v) for k, v in folders.items()}}


def suite_markdown(res: dict, models: dict[str, str], wall_seconds: float, argv: list[str] | None = None) -> str:
    argv = sys.argv if argv is None else argv
    n = res.get("counts", {})
    prov = res.get("provenance") or {}
    digests = prov.get("weights", {})

    def model(k: str, v: str) -> str:
        return f"`{k}` = `{v}`" + (f" (weights sha256 `{digests[k]}`)" if digests.get(k) else "")

    head = [
        "# Results: the bundled models on the synthetic world",
        "",
        f"Written by `audiox-bench suite` on {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, commit "
        f"`{prov.get('commit') or _commit()}`" + (f" (at the start, {prov['started']})" if prov.get("started") else "")
        + f", in {wall_seconds / 60:.1f} min. Every row was measured in this one run, on the same machine.",
        "",
        f"- command: `audiox-bench {' '.join(argv[1:])}`",
        f"- machine: {_machine()}; torch {torch.__version__}",
        "- models: " + ", ".join(model(k, v) for k, v in models.items()),
        f"- held-out prompts (seed {res['seed']}): " + ", ".join(f"{k} {v}" for k, v in n.items()),
        "",
        "Judges: the deterministic offline judges of audiox-bench (docs/metrics.md). Accuracies in %, higher is",
        "better; log-mel L1, latency and RTF: lower is better. Rows in *italics* are references, not models: the",
        "judges on the ground-truth renderings, and on those renderings passed through the first model's",
        "autoencoder (encode + decode): no generator that decodes with that autoencoder can be expected above it.",
        "",
    ]
    return "\n".join(head) + "\n" + suite_tables(res) + "\n"
