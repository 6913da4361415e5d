"""Clip specs, rendering and exact annotations for the synthetic world.

A clip is fully determined by ``(seed, stream, index)``: ``sample_clip_spec`` draws a :class:`ClipSpec`
(event list or music spec) from ``numpy.random.default_rng([seed, stream, index])``, and ``render_clip``
turns a spec into waveform, video frames and an IF-caps-Pro annotation. Streams separate the training
clips from each held-out evaluation set (``TRAIN``, ``EVAL_T2A``, ``EVAL_V2A``, ``EVAL_T2M``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from audiox.data.schema import format_span
from audiox.data.synth.captions import audio_captions, music_captions, phrase
from audiox.data.synth.events import CONTINUOUS, COUNTABLE, EVENTS
from audiox.data.synth.music import INSTRUMENTS, MusicSpec, make_midi, music_labels, render_midi, sample_music_spec
from audiox.data.synth.video import render_frames

__all__ = [
    "EVAL_T2A",
    "EVAL_T2M",
    "EVAL_V2A",
    "TRAIN",
    "ClipSpec",
    "Event",
    "RenderedClip",
    "SynthConfig",
    "annotate_spec",
    "clip_events",
    "place_events",
    "render_clip",
    "sample_clip_spec",
    "time_relation",
]

TRAIN, EVAL_T2A, EVAL_V2A, EVAL_T2M = 0, 1, 2, 3
MIN_GAP = 0.3  # seconds of silence between countable occurrences (so counts are unambiguous)


@dataclass(frozen=True)
class SynthConfig:
    sample_rate: int = 16000  # canonical rate of the synthetic world (mini model rate)
    duration: float = 10.0  # seconds per clip (paper: 10 s clips)
    fps: float = 25.0  # video frame rate (the sync encoder's rate; CLIP frames are subsampled)
    image_size: int = 64  # square frames
    music_fraction: float = 0.3  # share of music clips among training clips
    prompt_duration: float = 5.0  # music: seconds of preceding audio kept as the completion prompt
    video: bool = True

    def __post_init__(self) -> None:
        if self.sample_rate < 8000 or self.duration < 2.0 or self.fps <= 0 or self.image_size < 16:
            raise ValueError(f"bad SynthConfig {self}")
        if not 0 <= self.music_fraction <= 1:
            raise ValueError(f"music_fraction must be in [0, 1], got {self.music_fraction}")


@dataclass(frozen=True)
class Event:
    name: str
    onset: float  # seconds (ms precision)
    offset: float
    x: float = 0.5  # centre of the visual counterpart, fraction of the frame
    y: float = 0.5


@dataclass(frozen=True)
class ClipSpec:
    key: str
    seed: int  # renderer randomness
    events: tuple[Event, ...] = ()
    music: MusicSpec | None = None
    scenario: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def kind(self) -> str:
        return "music" if self.music is not None else "sfx"


@dataclass
class RenderedClip:
    spec: ClipSpec
    audio: np.ndarray  # (S,) float32 in [-1, 1]
    frames: np.ndarray | None  # (F, H, W, 3) uint8
    annotation: dict
    prompt_audio: np.ndarray | None = None  # music: the preceding segment (completion prompt)


def _ms(x: float) -> float:
    return round(float(x), 3)


def place_events(
    names: list[str], durations: list[float], total: float, rng: np.random.Generator, min_gap: float = MIN_GAP
) -> list[Event]:
    """Non-overlapping occurrences in the given order with random gaps (>= ``min_gap``, also at the ends)."""
    need = sum(durations) + min_gap * (len(durations) + 1)
    if need > total:
        raise ValueError(f"{len(durations)} events of {sum(durations):.2f} s do not fit in {total} s")
    slack = total - need
    w = rng.dirichlet(np.ones(len(durations) + 1))
    t, out = 0.0, []
    for name, dur, gap in zip(names, durations, w[:-1], strict=True):
        t += min_gap + gap * slack
        on = _ms(t)
        out.append(Event(name, on, _ms(on + dur), *_pos(rng)))
        t = on + dur
    return out


def _pos(rng: np.random.Generator) -> tuple[float, float]:
    return round(float(rng.uniform(0.25, 0.75)), 3), round(float(rng.uniform(0.25, 0.75)), 3)


def _dur(rng: np.random.Generator, name: str, cap: float | None = None) -> float:
    lo, hi = EVENTS[name].duration
    if cap is not None:
        lo, hi = min(lo, cap), min(hi, cap)
    return _ms(rng.uniform(lo, hi))


def _fit(rng: np.random.Generator, names: list[str], total: float) -> list[Event]:
    """Place ``names`` in order, dropping trailing occurrences until they fit."""
    while names:
        durs = [_dur(rng, n, cap=total - 2 * MIN_GAP) for n in names]
        try:
            return place_events(names, durs, total, rng)
        except ValueError:
            names = names[:-1]
    raise ValueError("no event fits")


def _sfx_events(rng: np.random.Generator, total: float) -> tuple[str, list[Event]]:
    scenario = str(
        rng.choice(["count", "order", "interleave", "background", "continuous"], p=[0.3, 0.25, 0.15, 0.2, 0.1])
    )
    if scenario == "count":
        name = str(rng.choice(COUNTABLE))
        return scenario, _fit(rng, [name] * int(rng.integers(1, 6)), total)
    if scenario in ("order", "interleave"):
        k = int(rng.integers(2, 4)) if scenario == "order" else 2
        cats = [str(c) for c in rng.choice(COUNTABLE, size=k, replace=False)]
        if scenario == "order":
            names = [c for c in cats for _ in range(int(rng.integers(1, 3)))]
        else:
            names = [cats[i % 2] for i in range(int(rng.integers(3, 6)))]
        return scenario, _fit(rng, names, total)
    if scenario == "background":
        bg = str(rng.choice(CONTINUOUS))
        dur = _dur(rng, bg, cap=total - 0.6)
        on = _ms(rng.uniform(0, total - dur))
        back = Event(bg, on, _ms(on + dur), *_pos(rng))
        name = str(rng.choice(COUNTABLE))
        fg = _fit(rng, [name] * int(rng.integers(1, 4)), total)
        return scenario, sorted([back, *fg], key=lambda e: e.onset)
    name = str(rng.choice(CONTINUOUS))
    dur = _dur(rng, name, cap=total - 0.6)
    on = _ms(rng.uniform(0.3, total - dur - 0.3))
    return scenario, [Event(name, on, _ms(on + dur), *_pos(rng))]


def sample_clip_spec(seed: int, index: int, cfg: SynthConfig = SynthConfig(), stream: int = TRAIN) -> ClipSpec:
    """The ``index``-th clip of ``stream`` for ``seed`` (training clips: sfx or music)."""
    rng = np.random.default_rng([seed, stream, index])
    key = f"s{stream}-{index:08d}"
    if rng.random() < cfg.music_fraction:
        return ClipSpec(key=key, seed=int(rng.integers(2**31)), music=sample_music_spec(rng), scenario="music")
    scenario, events = _sfx_events(rng, cfg.duration)
    return ClipSpec(key=key, seed=int(rng.integers(2**31)), events=tuple(events), scenario=scenario)


def clip_events(spec: ClipSpec) -> list[dict]:
    """The exact event list of a clip: ``[{"name", "onset", "offset", "continuous"}]`` sorted by onset."""
    return [
        {"name": e.name, "onset": e.onset, "offset": e.offset, "continuous": EVENTS[e.name].continuous}
        for e in sorted(spec.events, key=lambda e: (e.onset, e.name))
    ]


def time_relation(events: list[dict]) -> str:
    """Ordered distinct names by first onset, or ``"interleave"`` if categories overlap or alternate."""
    names = [e["name"] for e in events]
    for a in events:
        for b in events:
            if a["name"] != b["name"] and a["onset"] < b["offset"] and b["onset"] < a["offset"]:
                return "interleave"
    runs = [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n]
    if len(runs) != len(set(runs)):
        return "interleave"
    return ", ".join(runs)


def annotate_spec(spec: ClipSpec, cfg: SynthConfig = SynthConfig()) -> dict:
    """The exact IF-caps-Pro annotation (plus ``captions`` per perspective and ``meta``) of a spec."""
    rng = np.random.default_rng([spec.seed, 7])  # caption choices: independent of the audio randomness
    if spec.music is not None:
        labels = music_labels(spec.music)
        caps = music_captions(labels, rng)
        return {
            "kind": "music",
            "audio_id": spec.key,
            "caption": caps["rephrase"][0],
            **labels,
            "captions": caps,
            "meta": {
                "bpm": spec.music.bpm,
                "mode": spec.music.mode,
                "root": spec.music.root,
                "prompt_duration": cfg.prompt_duration,
                "duration": cfg.duration,
            },
        }
    events = clip_events(spec)
    category: dict[str, int | None] = {}
    for e in events:
        category[e["name"]] = None if e["continuous"] else (category.get(e["name"]) or 0) + 1
    rel = time_relation(events)
    sed = [{format_span(e["onset"], e["offset"]): phrase(e["name"], 1, rng)} for e in events]
    caps = audio_captions(category, events, rel, rng)
    return {
        "kind": "sfx",
        "audio_id": spec.key,
        "caption": caps["rephrase"][0],
        "category": category,
        "SED": sed,
        "time_relation": rel,
        "captions": caps,
        "meta": {"events": events, "scenario": spec.scenario, "duration": cfg.duration},
    }


def render_audio(spec: ClipSpec, cfg: SynthConfig = SynthConfig()) -> tuple[np.ndarray, np.ndarray | None]:
    """(target waveform (S,), music completion prompt (S_p,) or None), float32."""
    sr = cfg.sample_rate
    n = int(round(cfg.duration * sr))
    if spec.music is not None:
        total = cfg.prompt_duration + cfg.duration
        wav = render_midi(make_midi(spec.music, total), total, sr, spec.seed)
        cut = int(round(cfg.prompt_duration * sr))
        return wav[cut : cut + n], wav[:cut]
    out = np.zeros(n)
    for i, e in enumerate(spec.events):
        s, t = int(round(e.onset * sr)), min(n, int(round(e.offset * sr)))
        if t > s:
            out[s:t] += EVENTS[e.name].render(np.random.default_rng([spec.seed, i]), t - s, sr)
    return np.clip(out, -1, 1).astype(np.float32), None


def render_clip(spec: ClipSpec, cfg: SynthConfig = SynthConfig()) -> RenderedClip:
    audio, prompt = render_audio(spec, cfg)
    frames = render_frames(spec, audio, cfg) if cfg.video else None
    return RenderedClip(spec, audio, frames, annotate_spec(spec, cfg), prompt)


def spec_to_dict(spec: ClipSpec) -> dict:
    d = asdict(spec)
    d.pop("extra", None)
    return d


def spec_from_dict(d: dict) -> ClipSpec:
    music = MusicSpec(**d["music"]) if d.get("music") else None
    return ClipSpec(
        key=d["key"],
        seed=int(d["seed"]),
        events=tuple(Event(**e) for e in d.get("events", ())),
        music=music,
        scenario=d.get("scenario", ""),
    )


_ = INSTRUMENTS  # re-exported through audiox.data.synth
