"""V2A judge (presence, alignment vs the visual counterparts) and T2M judge (tempo, instrument, mode): valid on
ground-truth renderings of held-out prompts, and failing on wrong audio."""

from dataclasses import replace

import numpy as np
import pytest
from scipy.signal import resample_poly

from audiox.bench.judges.av_music import T2MJudge, V2AJudge, estimate_tempo
from audiox.data.synth import ClipSpec, Event, SynthConfig, render_audio, spec_from_dict, spec_to_dict
from audiox.data.synth.prompts import make_t2m_prompts, make_v2a_prompts

CFG = SynthConfig(video=False)
SR = CFG.sample_rate
HELD_OUT = 1234  # the suite's held-out prompt seed


def _render(spec) -> np.ndarray:
    return render_audio(spec, CFG)[0]


@pytest.fixture(scope="module")
def v2a_judge():
    return V2AJudge()


@pytest.fixture(scope="module")
def t2m_judge():
    # a smaller fit than the default (24 x 6 s per instrument) to keep the suite fast; it too scores 100% on
    # instrument and mode on the 200 held-out clips of seed 1234
    return T2MJudge(templates_per_instrument=12, seconds=4.0)


@pytest.fixture(scope="module")
def v2a_truth(v2a_judge):
    recs = make_v2a_prompts(HELD_OUT, 10, CFG)
    return recs, [v2a_judge.judge(r, _render(spec_from_dict(r["spec"])), SR) for r in recs]


def test_v2a_ground_truth_present_and_aligned(v2a_truth):
    recs, judged = v2a_truth
    s = V2AJudge.summary(judged)
    assert s["events"] == sum(len(r["spec"]["events"]) for r in recs)
    assert s["presence"] >= 0.97 and s["aligned"] >= 0.95
    assert s["onset_error_ms_median"] < 30


def test_v2a_one_shots_on_a_background_are_found():
    """Events over rain / wind / hum (the V2A set's "background" scenario): found, with their own onsets. (A click on rain is
    the known weak case: its 4 ms burst is below the rain level in a 32 ms frame; docs/metrics.md.)"""
    judge = V2AJudge()
    cases = {"rain": (Event("rain", 1.0, 8.5), Event("clap", 3.0, 3.1), Event("beep", 6.0, 6.3)),
             "wind": (Event("wind", 1.0, 8.5), Event("whistle", 3.0, 3.6), Event("knock", 6.0, 6.15)),
             "hum": (Event("hum", 1.0, 7.0), Event("knock", 3.0, 3.15), Event("chirp", 5.0, 5.4))}
    for bg, events in cases.items():
        spec = ClipSpec(key=f"bg-{bg}", seed=5, events=events)
        rec = {"id": spec.key, "spec": spec_to_dict(spec)}
        out = judge.judge(rec, _render(spec), SR)
        assert [e["present"] for e in out["events"]] == [True, True, True], (bg, out)
        # one-shots within 100 ms (a chirp fades in over its sin^2 envelope); the background fades in over 0.3-0.4 s (its renderer's attack), so later
        assert out["events"][0]["onset_error_ms"] < 250 and all(e["onset_error_ms"] < 100 for e in out["events"][1:]), out


def test_v2a_fails_on_shifted_and_on_wrong_audio(v2a_judge, v2a_truth):
    recs, _ = v2a_truth
    shifted = []
    for r in recs:  # audio 0.5 s late relative to the visuals
        spec = spec_from_dict(r["spec"])
        ev = tuple(replace(e, onset=min(e.onset + 0.5, 9.5), offset=min(e.offset + 0.5, 10.0)) for e in spec.events)
        shifted.append(v2a_judge.judge(r, _render(replace(spec, events=ev)), SR))
    s = V2AJudge.summary(shifted)
    assert s["aligned"] < 0.15  # nothing within 0.2 s of its visual onset (bar an event clipped at the end)
    assert s["onset_error_ms_median"] is None or s["onset_error_ms_median"] > 400
    # another clip's audio: the categories and times do not match the video
    wrong = [v2a_judge.judge(r, _render(spec_from_dict(recs[(i + 1) % len(recs)]["spec"])), SR)
             for i, r in enumerate(recs)]
    assert V2AJudge.summary(wrong)["presence"] < 0.3
    silent = v2a_judge.judge(recs[0], np.zeros(10 * SR, np.float32), SR)
    assert silent["present"] == 0.0 and silent["aligned"] == 0.0


@pytest.mark.parametrize("bpm", [61.0, 97.0, 128.0, 159.0])
def test_tempo_of_an_eighth_note_click_track(bpm):
    """Clicks on every eighth note, accents on the beats: tempo = 60 / beat (hand computation), not 2x or 1/2x."""
    x = np.zeros(10 * SR)
    for i, t in enumerate(np.arange(0, 10, 30 / bpm)):
        j = int(round(t * SR))
        x[j : j + 200] += (1.0 if i % 2 == 0 else 0.6) * np.hanning(200) * np.sin(np.arange(200) * 0.9)
    assert estimate_tempo(x, SR) == pytest.approx(bpm, rel=0.01)
    assert estimate_tempo(resample_poly(x, 3, 1), 3 * SR) == pytest.approx(bpm, rel=0.01)  # any input rate


@pytest.fixture(scope="module")
def t2m_records():
    recs = make_t2m_prompts(HELD_OUT, 10, CFG)
    return recs, [_render(spec_from_dict(r["spec"])) for r in recs]


def test_t2m_ground_truth_tempo_instrument_mode(t2m_judge, t2m_records):
    recs, wavs = t2m_records
    out = [t2m_judge.judge(r, w, SR) for r, w in zip(recs, wavs, strict=True)]
    assert set(out[0]) == {"id", "bpm_est", "tempo_acc", "instrument_est", "instrument_acc", "mode_est", "mode_acc",
                           "tonic_est"}
    for r, o in zip(recs, out, strict=True):
        assert o["bpm_est"] == pytest.approx(r["bpm"], rel=0.01), (r["bpm"], o)
        assert (o["tempo_acc"], o["instrument_acc"], o["mode_acc"]) == (1, 1, 1), (r["instrument"], r["mode"], o)
        assert o["tonic_est"] == r["spec"]["music"]["root"] % 12


def test_t2m_fails_on_wrong_tempo_instrument_and_mode(t2m_judge, t2m_records):
    recs, wavs = t2m_records
    others = {"piano": "organ", "guitar": "synth", "organ": "flute", "flute": "piano", "synth": "guitar"}
    for r, w in list(zip(recs, wavs, strict=True))[:4]:
        spec = spec_from_dict(r["spec"])
        m = spec.music
        faster = t2m_judge.judge(r, _render(replace(spec, music=replace(m, bpm=round(m.bpm * 1.2)))), SR)
        assert faster["tempo_acc"] == 0 and faster["bpm_est"] == pytest.approx(round(m.bpm * 1.2), rel=0.01)
        sped_up = t2m_judge.judge(r, resample_poly(w, 5, 6), SR)  # played 20% fast (pitch up too)
        assert sped_up["tempo_acc"] == 0
        other = t2m_judge.judge(r, _render(replace(spec, music=replace(m, instrument=others[m.instrument]))), SR)
        assert other["instrument_acc"] == 0 and other["tempo_acc"] == 1
        flipped = t2m_judge.judge(r, _render(replace(spec, music=replace(m, mode="minor" if m.mode == "major"
                                                                             else "major"))), SR)
        assert flipped["mode_acc"] == 0 and flipped["instrument_acc"] == 1


def test_t2m_judge_on_silence_scores_zero(t2m_judge, t2m_records):
    recs, _ = t2m_records
    out = t2m_judge.judge(recs[0], np.zeros(10 * SR, np.float32), SR)
    assert (out["tempo_acc"], out["instrument_acc"], out["mode_acc"]) == (0, 0, 0)
    assert out["instrument_est"] == "none" and out["mode_est"] == "none"
