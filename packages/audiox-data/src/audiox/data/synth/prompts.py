"""Evaluation prompt sets from held-out seed streams: T2A-bench (paper Appendix C), V2A and T2M.

Every record carries ``spec`` (the ground-truth clip); :func:`clip_for_prompt` renders it, so a judge can
be validated on clips that satisfy the prompt exactly. Prompts use held-out phrasings
(:data:`~audiox.data.synth.captions.EVAL_OPENINGS`) and seed streams distinct from training clips.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from audiox.data.synth.captions import EVAL_OPENINGS, NUMBERS, phrase
from audiox.data.synth.events import CONTINUOUS, COUNTABLE, EVENTS
from audiox.data.synth.music import music_labels, sample_music_spec
from audiox.data.synth.world import (
    EVAL_T2A,
    EVAL_T2M,
    EVAL_V2A,
    MIN_GAP,
    ClipSpec,
    Event,
    RenderedClip,
    SynthConfig,
    annotate_spec,
    place_events,
    render_clip,
    sample_clip_spec,
    spec_from_dict,
    spec_to_dict,
)

__all__ = ["T2A_TYPES", "clip_for_prompt", "make_prompt_sets", "make_t2a_bench", "make_t2m_prompts", "make_v2a_prompts"]

T2A_TYPES = ("category-only", "category+count", "category+ordering", "category+timestamp")


def _open(rng: np.random.Generator) -> str:
    return EVAL_OPENINGS[int(rng.integers(len(EVAL_OPENINGS)))]


def _pos(rng: np.random.Generator) -> tuple[float, float]:
    return round(float(rng.uniform(0.25, 0.75)), 3), round(float(rng.uniform(0.25, 0.75)), 3)


def _durations(rng: np.random.Generator, names: list[str], total: float) -> list[float]:
    out = []
    for n in names:
        lo, hi = EVENTS[n].duration
        hi = min(hi, 2.5) if EVENTS[n].continuous else hi
        hi = min(hi, total - 2 * MIN_GAP)
        out.append(round(float(rng.uniform(min(lo, hi), hi)), 3))
    return out


def _t2a_record(seed: int, i: int, cfg: SynthConfig) -> dict:
    rng = np.random.default_rng([seed, EVAL_T2A, i])
    kind = T2A_TYPES[i % 4]
    level = (i // 4) % 5 + 1  # 1..5 categories (category-only) or occurrences (category+count)
    rec: dict = {"id": f"T2A_{i:05d}", "type": kind, "count": None, "time_relation": None, "timestamp": None}
    dur = cfg.duration
    if kind == "category-only":
        names = [str(n) for n in rng.choice(COUNTABLE, size=level, replace=False)]
        if rng.random() < 0.3:
            names[-1] = str(rng.choice(CONTINUOUS))
        order = [names[j] for j in rng.permutation(len(names))]
        while True:  # short clips: drop categories until they fit
            try:
                events = place_events(order, _durations(rng, order, dur), dur, rng)
                break
            except ValueError:
                if len(order) == 1:
                    raise
                order = order[:-1]
        names = [n for n in names if n in order]
        items = [phrase(n, None if EVENTS[n].continuous else 1, rng) for n in names]
        rec["category"] = ", ".join(names)
        rec["prompt"] = _open(rng) + rng.choice(["a scene containing ", "audio with ", "a mix of "]) + _and(items) + "."
    elif kind == "category+count":

        def fits_for(k: int) -> list[str]:
            return [n for n in COUNTABLE if k * EVENTS[n].duration[1] + (k + 1) * MIN_GAP <= dur]

        while not fits_for(level):  # short clips: fewer occurrences
            level -= 1
        fits = fits_for(level)
        name = str(rng.choice(fits))
        while True:
            try:
                events = place_events([name] * level, _durations(rng, [name] * level, dur), dur, rng)
                break
            except ValueError:
                continue
        rec["category"] = name
        rec["count"] = {name: level}
        noun = phrase(name, level, rng) if level > 1 else "exactly one " + phrase(name, 1, rng).split(" ", 1)[-1]
        rec["prompt"] = _open(rng) + rng.choice(["the sound of ", "a recording with ", "audio of "]) + noun + "."
    elif kind == "category+ordering":
        k = 2 + int(rng.integers(2))
        for attempt in range(200):  # short clips: redraw (then use two categories) until they fit
            names = [str(n) for n in rng.choice(COUNTABLE, size=k if attempt < 100 else 2, replace=False)]
            try:
                events = place_events(names, _durations(rng, names, dur), dur, rng)
                break
            except ValueError:
                continue
        else:
            raise ValueError(f"clips of {dur} s are too short for ordering prompts")
        items = [phrase(n, 1, rng) for n in names]
        rec["category"] = rec["time_relation"] = ", ".join(names)
        rec["prompt"] = _open(rng) + items[0] + "".join(f", and after that {x}" for x in items[1:]) + "."
    else:
        name = str(rng.choice(CONTINUOUS))
        max_start = max(0.5, dur - 2.5)
        start = float(rng.integers(1, int(2 * max_start) + 1)) / 2  # 0.5 s grid
        end = min(dur - 0.5, start + float(rng.integers(4, 13)) / 2)
        events = [Event(name, start, end, *_pos(rng))]
        rec["category"] = name
        rec["timestamp"] = {name: {"start": start, "end": end}}
        rec["prompt"] = (
            _open(rng) + phrase(name, None, rng) + f" lasting from {start:.1f} seconds until {end:.1f} seconds,"
            " silence otherwise."
        )
    rec["spec"] = spec_to_dict(
        ClipSpec(key=rec["id"], seed=int(rng.integers(2**31)), events=tuple(events), scenario=kind)
    )
    return rec


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def make_t2a_bench(seed: int, n: int = 2000, cfg: SynthConfig = SynthConfig()) -> list[dict]:
    """``n`` T2A-bench records (types balanced, levels 1..5 balanced within each type)."""
    return [_t2a_record(seed, i, cfg) for i in range(n)]


def make_v2a_prompts(seed: int, n: int = 200, cfg: SynthConfig = SynthConfig()) -> list[dict]:
    """V2A set: held-out sound-event clips; the model gets the rendered video, the judge the annotation."""
    sfx = replace(cfg, music_fraction=0.0)
    out = []
    for i in range(n):
        spec = sample_clip_spec(seed, i, sfx, stream=EVAL_V2A)
        spec = replace(spec, key=f"V2A_{i:05d}")
        ann = annotate_spec(spec, sfx)
        out.append(
            {
                "id": spec.key,
                "type": "v2a",
                "category": ", ".join(ann["category"]),
                "count": {k: v for k, v in ann["category"].items() if v is not None} or None,
                "time_relation": ann["time_relation"],
                "SED": ann["SED"],
                "spec": spec_to_dict(spec),
            }
        )
    return out


def make_t2m_prompts(seed: int, n: int = 200, cfg: SynthConfig = SynthConfig()) -> list[dict]:
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, EVAL_T2M, i])
        m = sample_music_spec(rng)
        lab = music_labels(m)
        prompt = (
            _open(rng) + f"{lab['mood'].split(', ')[0]} {lab['genre']} music for {m.instrument}, "
            f"{m.mode} key, around {m.bpm} beats per minute."
        )
        spec = ClipSpec(key=f"T2M_{i:05d}", seed=int(rng.integers(2**31)), music=m, scenario="music")
        out.append(
            {
                "id": spec.key,
                "type": "t2m",
                "prompt": prompt,
                **lab,
                "bpm": m.bpm,
                "mode": m.mode,
                "spec": spec_to_dict(spec),
            }
        )
    return out


def make_prompt_sets(
    seed: int, cfg: SynthConfig = SynthConfig(), n_t2a: int = 2000, n_v2a: int = 200, n_t2m: int = 200
) -> dict[str, list[dict]]:
    return {
        "t2a_bench": make_t2a_bench(seed, n_t2a, cfg),
        "v2a": make_v2a_prompts(seed, n_v2a, cfg),
        "t2m": make_t2m_prompts(seed, n_t2m, cfg),
    }


def clip_for_prompt(record: dict, cfg: SynthConfig = SynthConfig()) -> RenderedClip:
    """Render the ground-truth clip of an evaluation record."""
    return render_clip(spec_from_dict(record["spec"]), cfg)


_ = NUMBERS
