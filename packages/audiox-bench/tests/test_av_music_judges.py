"""V2A judge (presence + onset error vs the visual counterparts) and T2M tempo / instrument judge."""

from dataclasses import replace

import numpy as np
import pytest

from audiox.bench.judges.av_music import T2MJudge, V2AJudge, estimate_tempo
from audiox.data.synth import SynthConfig, render_audio, spec_from_dict
from audiox.data.synth.prompts import make_t2m_prompts, make_v2a_prompts

CFG = SynthConfig(video=False)


def test_v2a_ground_truth_aligned_and_shift_detected():
    judge = V2AJudge()
    recs = make_v2a_prompts(3, 12, CFG)
    truth = [judge.judge(r, render_audio(spec_from_dict(r["spec"]), CFG)[0], 16000) for r in recs]
    s = V2AJudge.summary(truth)
    assert s["presence"] >= 0.75 and s["onset_error_ms_median"] < 30
    shifted = []
    for r in recs:
        spec = spec_from_dict(r["spec"])
        ev = tuple(replace(e, onset=min(e.onset + 0.3, 9.5), offset=min(e.offset + 0.3, 10.0)) for e in spec.events)
        shifted.append(judge.judge(r, render_audio(replace(spec, events=ev), CFG)[0], 16000))
    s2 = V2AJudge.summary(shifted)
    assert 250 < s2["onset_error_ms_median"] < 350  # audio 300 ms late relative to the visuals
    silent = judge.judge(recs[0], np.zeros(160000, np.float32), 16000)
    assert silent["present"] == 0.0


@pytest.mark.parametrize("bpm", [72.0, 100.0, 128.0])
def test_tempo_of_a_click_track(bpm):
    sr = 16000
    x = np.zeros(10 * sr)
    for t in np.arange(0, 10, 60 / bpm):
        i = int(t * sr)
        x[i : i + 200] += np.hanning(200) * np.sin(np.arange(200) * 0.9)
    assert estimate_tempo(x, sr) == pytest.approx(bpm, rel=0.05)


def test_t2m_judge_fields_and_tempo_on_rendered_music():
    judge = T2MJudge(templates_per_instrument=2)
    rec = next(r for r in make_t2m_prompts(0, 40, CFG) if 80 <= r["bpm"] <= 120)
    out = judge.judge(rec, render_audio(spec_from_dict(rec["spec"]), CFG)[0], 16000)
    assert set(out) == {"id", "bpm_est", "tempo_acc", "instrument_est", "instrument_acc"}
    assert out["tempo_acc"] == int(abs(out["bpm_est"] - rec["bpm"]) <= 0.05 * rec["bpm"])
    assert out["instrument_est"] in ("piano", "guitar", "organ", "flute", "synth")
