"""Synthetic world: determinism, truth of annotations measured from the waveform, held-out prompts."""

import json

import numpy as np
import pytest

from audiox.data.schema import parse_span, validate_annotation
from audiox.data.shards import clip_sample
from audiox.data.synth import (
    CONTINUOUS,
    EVENTS,
    INSTRUMENTS,
    SynthConfig,
    annotate_spec,
    clip_events,
    clip_for_prompt,
    make_prompt_sets,
    render_clip,
    sample_clip_spec,
    time_relation,
)
from audiox.data.synth.captions import EVAL_OPENINGS
from audiox.data.synth.music import make_midi

AUDIO_ONLY = SynthConfig(video=False)
FRAME = 0.005  # seconds per envelope frame
THRESH = 1e-3  # RMS counted as sound (-60 dBFS); the synthetic world has no background noise


def envelope(x: np.ndarray, sr: int) -> np.ndarray:
    hop = int(FRAME * sr)
    n = len(x) // hop
    return np.sqrt((x[: n * hop].reshape(n, hop) ** 2).mean(1))


def sounding_segments(x: np.ndarray, sr: int, min_gap: float = 0.15) -> list[tuple[float, float]]:
    """(onset, offset) of regions above THRESH, merging gaps shorter than ``min_gap``."""
    on = envelope(x, sr) > THRESH
    segs: list[list[float]] = []
    for i in np.flatnonzero(on):
        t = i * FRAME
        if segs and t - segs[-1][1] <= min_gap:
            segs[-1][1] = t + FRAME
        else:
            segs.append([t, t + FRAME])
    return [tuple(s) for s in segs]


def test_vocabulary():
    assert len(EVENTS) >= 10
    assert len({(c.shape, c.colour) for c in EVENTS.values()}) == len(EVENTS)  # each has its own look
    assert set(CONTINUOUS) == {"hum", "rain", "wind"}
    assert len(INSTRUMENTS) >= 4


def test_same_seed_same_bytes_other_seed_differs():
    cfg = SynthConfig(duration=3.0, image_size=32)
    for i in range(4):
        a, b = clip_sample(5, i, cfg), clip_sample(5, i, cfg)
        assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)
    assert clip_sample(5, 0, cfg)["flac"] != clip_sample(6, 0, cfg)["flac"]


def test_annotations_are_valid_and_exact():
    kinds = set()
    for i in range(60):
        spec = sample_clip_spec(1, i, AUDIO_ONLY)
        ann = json.loads(json.dumps(annotate_spec(spec, AUDIO_ONLY)))
        validate_annotation(ann)
        kinds.add(ann["kind"])
        if ann["kind"] == "music":
            assert ann["instrument"] == [spec.music.instrument] and f"{spec.music.bpm} BPM" in ann["tempo"]
            continue
        events = clip_events(spec)
        assert [parse_span(next(iter(s))) for s in ann["SED"]] == [(e["onset"], e["offset"]) for e in events]
        for name, count in ann["category"].items():
            n = sum(e["name"] == name for e in events)
            assert count == (None if EVENTS[name].continuous else n)
        assert ann["time_relation"] == time_relation(events)
    assert kinds == {"sfx", "music"}


def test_time_relation_rules():
    def ev(n, a, b):
        return {"name": n, "onset": a, "offset": b}

    assert time_relation([ev("beep", 0, 1), ev("beep", 2, 3), ev("bell", 4, 5)]) == "beep, bell"
    assert time_relation([ev("beep", 0, 1), ev("bell", 2, 3), ev("beep", 4, 5)]) == "interleave"
    assert time_relation([ev("rain", 0, 5), ev("bell", 2, 3)]) == "interleave"


def test_events_are_where_the_annotation_says():
    """Onsets, offsets and counts measured from the waveform's energy envelope match the SED spans."""
    checked = 0
    for i in range(80):
        spec = sample_clip_spec(2, i, AUDIO_ONLY)
        if spec.music is not None or any(EVENTS[e.name].continuous for e in spec.events):
            continue
        clip = render_clip(spec, AUDIO_ONLY)
        spans = [parse_span(next(iter(s))) for s in clip.annotation["SED"]]
        segs = sounding_segments(clip.audio, AUDIO_ONLY.sample_rate)
        assert len(segs) == sum(c for c in clip.annotation["category"].values()), (spec, segs, spans)
        for (on, off), (s_on, s_off) in zip(spans, segs, strict=True):
            assert abs(s_on - on) <= 0.05, (spec.key, on, s_on)  # fade-ins (whoosh) stay < -60 dB for ~30 ms
            assert on - 0.02 <= s_off <= off + 0.02, (spec.key, off, s_off)
        checked += 1
    assert checked >= 20


def test_continuous_event_span_from_waveform():
    rec = next(r for r in make_prompt_sets(3, AUDIO_ONLY, 8, 0, 0)["t2a_bench"] if r["type"] == "category+timestamp")
    clip = clip_for_prompt(rec, AUDIO_ONLY)
    ((_, ts),) = rec["timestamp"].items()
    segs = sounding_segments(clip.audio, AUDIO_ONLY.sample_rate, min_gap=0.5)
    assert len(segs) == 1
    assert abs(segs[0][0] - ts["start"]) < 0.05 and abs(segs[0][1] - ts["end"]) < 0.05


def test_video_shows_events_while_they_sound():
    cfg = SynthConfig(duration=4.0)
    spec = next(s for s in (sample_clip_spec(4, i, cfg) for i in range(50)) if s.music is None and len(s.events) >= 2)
    clip = render_clip(spec, cfg)
    lit = (clip.frames.astype(int) - clip.frames[0, 0, 0].astype(int)).any(axis=(1, 2, 3))
    t = np.arange(len(clip.frames)) / cfg.fps
    active = np.zeros(len(t), bool)
    for e in spec.events:
        active |= (t >= e.onset - 0.5 / cfg.fps) & (t < e.offset)
    assert (lit[active]).all()
    assert not lit[~active].any() or active.sum() == 0


def test_music_tempo_in_midi():
    spec = next(s for s in (sample_clip_spec(0, i) for i in range(40)) if s.music is not None)
    pm = make_midi(spec.music, 8.0)
    onsets = sorted({round(n.start, 6) for n in pm.instruments[0].notes})
    beat = 60.0 / spec.music.bpm
    assert all(abs(o / (beat / 2) - round(o / (beat / 2))) < 1e-4 for o in onsets)  # on the eighth-note grid
    assert pm.estimate_tempo() > 0


def test_prompts_are_never_training_captions_and_are_renderable():
    sets = make_prompt_sets(0, AUDIO_ONLY, n_t2a=80, n_v2a=10, n_t2m=20)
    bench = sets["t2a_bench"]
    assert {r["type"] for r in bench} == {"category-only", "category+count", "category+ordering", "category+timestamp"}
    for r in bench:
        assert set(r) >= {"id", "type", "prompt", "category", "count", "time_relation", "timestamp"}
    training = set()
    for i in range(300):
        ann = annotate_spec(sample_clip_spec(0, i, AUDIO_ONLY), AUDIO_ONLY)
        training.update(c for v in ann["captions"].values() for c in v)
        training.add(ann["caption"])
    assert not any(c.startswith(EVAL_OPENINGS) for c in training)
    prompts = [r["prompt"] for r in bench + sets["t2m"]]
    assert all(p.startswith(EVAL_OPENINGS) for p in prompts)
    assert not set(prompts) & training
    for r in bench[:8]:  # each record's ground-truth clip satisfies it
        clip = clip_for_prompt(r, AUDIO_ONLY)
        ann = clip.annotation
        assert set(ann["category"]) == {c.strip() for c in r["category"].split(",")}
        if r["count"]:
            assert ann["category"] == r["count"]
        if r["time_relation"]:
            assert ann["time_relation"] == r["time_relation"]


@pytest.mark.parametrize("seed", [0, 1])
def test_prompt_sets_deterministic(seed):
    a = make_prompt_sets(seed, AUDIO_ONLY, 12, 3, 3)
    assert a == make_prompt_sets(seed, AUDIO_ONLY, 12, 3, 3)
