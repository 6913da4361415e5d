"""The offline T2A-bench judge: >= 98% on ground-truth renderings, and it fails on wrong audio."""

from dataclasses import replace

import numpy as np
import pytest

from audiox.bench.judges.offline import OfflineJudge
from audiox.bench.judges.rules import aggregate, judge_record, prompt_following
from audiox.data.synth import SynthConfig, render_audio, spec_from_dict
from audiox.data.synth.prompts import make_t2a_bench

CFG = SynthConfig(video=False)
SR = CFG.sample_rate


@pytest.fixture(scope="module")
def judge():
    return OfflineJudge()


@pytest.fixture(scope="module")
def records():
    return make_t2a_bench(seed=11, n=80, cfg=CFG)  # 20 per type, all levels


def _audio(spec):
    return render_audio(spec, CFG)[0]


def test_ground_truth_accuracy_floor(judge, records):
    preds = [judge.judge(r, _audio(spec_from_dict(r["spec"])), SR)["prediction"] for r in records]
    acc = aggregate(preds, [r["type"] for r in records])["overall"]
    for m in ("cat_acc", "cnt_acc", "ord_acc", "ts_acc"):
        assert acc[m] >= 98.0, (m, acc)


def test_swapped_events_score_zero_on_ordering(judge, records):
    ordering = [r for r in records if r["type"] == "category+ordering"]
    for r in ordering:
        spec = spec_from_dict(r["spec"])
        ev = spec.events
        # the same events in reverse order, each keeping its own duration, placed 0.5 s apart from 0.3 s
        t, swapped = 0.3, []
        for e in reversed(ev):
            swapped.append(replace(e, onset=round(t, 3), offset=round(t + e.offset - e.onset, 3)))
            t += e.offset - e.onset + 0.5
        assert t < CFG.duration
        swapped = tuple(swapped)
        out = judge.judge(r, _audio(replace(spec, events=swapped)), SR)["prediction"]
        assert out["ord_acc"] == 0, (r["time_relation"], out)
        assert out["cat_acc"] == 1  # the categories are all there, only the order is wrong


def test_wrong_count_timestamp_and_category_fail(judge, records):
    counted = next(r for r in records if r["type"] == "category+count" and next(iter(r["count"].values())) >= 2)
    spec = spec_from_dict(counted["spec"])
    fewer = replace(spec, events=spec.events[:-1])
    assert judge.judge(counted, _audio(fewer), SR)["prediction"]["cnt_acc"] == 0

    ts = next(r for r in records if r["type"] == "category+timestamp")
    spec = spec_from_dict(ts["spec"])
    (e,) = spec.events
    shift = 1.6 if e.offset + 1.6 <= CFG.duration else -1.6
    moved = replace(spec, events=(replace(e, onset=e.onset + shift, offset=e.offset + shift),))
    assert judge.judge(ts, _audio(moved), SR)["prediction"]["ts_acc"] == 0

    silence = np.zeros(int(CFG.duration * SR), np.float32)
    for r in records[:4]:
        assert judge.judge(r, silence, SR)["prediction"]["cat_acc"] == 0


def test_resampled_stereo_input_is_judged_the_same(judge, records):
    from scipy.signal import resample_poly

    r = next(r for r in records if r["type"] == "category+ordering")
    wav = _audio(spec_from_dict(r["spec"]))
    stereo44 = np.stack([resample_poly(wav, 441, 160)] * 2)  # (2, S) at 44.1 kHz
    a = judge.judge(r, wav, SR)["annotation"]
    b = judge.judge(r, stereo44, 44100)["annotation"]
    assert a["time_relation"] == b["time_relation"] and a["category"] == b["category"]


def test_rules_by_hand():
    rec = {"type": "category+timestamp", "category": "rain", "timestamp": {"rain": {"start": 2.0, "end": 6.0}}}
    ann = {"category": {"rain": None}, "SED": [{"name": "rain", "onset": 2.9, "offset": 5.2}]}
    assert judge_record(rec, ann) == {"cat_acc": 1, "cnt_acc": None, "ord_acc": None, "ts_acc": 1}  # 0.9 and 0.8 s off
    ann["SED"][0]["onset"] = 3.1  # 1.1 s late
    assert judge_record(rec, ann)["ts_acc"] == 0
    rec = {"type": "category+ordering", "category": "bell, beep", "time_relation": "bell, beep"}
    ann = {"category": {"beep": 1, "bell": 1, "clap": 1}, "SED": [{"name": "clap", "onset": 0.1, "offset": 0.2},
           {"name": "bell", "onset": 1, "offset": 2}, {"name": "beep", "onset": 3, "offset": 3.3}]}
    assert judge_record(rec, ann)["ord_acc"] == 1
    ann["SED"][1]["onset"] = 3.5
    assert judge_record(rec, ann)["ord_acc"] == 0


def _rec(cats: str) -> dict:
    return {"type": "category-only", "category": cats, "count": None, "time_relation": None, "timestamp": None}


def test_prompt_following_measures_chance_on_the_same_clips():
    recs = [_rec("bell"), _rec("chirp, knock"), _rec("siren"), _rec("bell, siren")]
    # a prompt follower: each clip holds exactly its prompt's categories
    exact = [{"category": {n.strip(): 1 for n in r["category"].split(",")}} for r in recs]
    f = prompt_following(recs, exact)
    assert f["cat_acc_other_prompt"] == 0.0 and f["cat_acc_margin"] == 100.0 and f["extra_categories_per_clip"] == 0.0
    # a prompt ignorer that fills every clip with every sound: perfect Cat-acc, and just as perfect by chance
    spray = [{"category": {n: 1 for n in ("bell", "chirp", "knock", "siren", "whistle")}} for _ in recs]
    f = prompt_following(recs, spray)
    assert f["cat_acc_other_prompt"] == 100.0 and f["cat_acc_margin"] == 0.0
    assert f["extra_categories_per_clip"] == (4 + 3 + 4 + 3) / 4
    # the partner is the next record (cyclically) sharing no category with the clip's own prompt:
    # clip 0 (bell) -> "chirp, knock"; 1 -> "siren"; 2 (siren) skips "bell, siren" -> "bell"; 3 skips "bell" -> "chirp, knock"
    only_chirp_knock = [{"category": {"chirp": 1, "knock": 1}}] * 4
    f = prompt_following(recs, only_chirp_knock)
    assert f["n"] == 4 and f["cat_acc_other_prompt"] == 50.0  # clips 0 and 3
    assert f["cat_acc_margin"] == 25.0 - 50.0  # only clip 1 asked for what every clip holds
    assert f["discordant"] == [1, 2] and f["cat_acc_margin_p"] == 7 / 8  # P(X >= 1), X ~ Bin(3, 1/2)


def test_prompt_following_margin_p_is_the_exact_one_sided_mcnemar_test():
    from math import comb

    # 10 single-category prompts over 10 categories, so every clip's partner is the next one
    names = [f"cat{i}" for i in range(10)]
    recs = [_rec(n) for n in names]
    # clips 0-5 hold their own category only, clip 6 its partner's only, clips 7-9 neither: 6 against 1 discordant
    anns = [{"category": {names[i]: 1}} for i in range(6)] + [{"category": {names[7]: 1}}] + [{"category": {}}] * 3
    f = prompt_following(recs, anns)
    assert f["discordant"] == [6, 1] and f["cat_acc_margin"] == 60.0 - 10.0
    assert f["cat_acc_margin_p"] == pytest.approx(sum(comb(7, k) for k in range(6, 8)) / 2**7)  # 8/128
    # no discordant clip: nothing to tell apart
    f = prompt_following(recs, [{"category": {}}] * 10)
    assert f["discordant"] == [0, 0] and f["cat_acc_margin_p"] == 1.0


def test_category_recall_by_hand():
    from audiox.bench.judges.rules import category_recall

    recs = [_rec("bell"), _rec("chirp, knock"), _rec("chirp"), _rec("bell, siren")]
    # a model that never makes a chirp and always adds a buzz
    anns = [{"category": {"bell": 1, "buzz": 1}}, {"category": {"knock": 1, "buzz": 1}}, {"category": {"buzz": 1}},
            {"category": {"siren": 2, "buzz": 1}}]
    r = category_recall(recs, anns)
    assert list(r) == ["bell", "buzz", "chirp", "knock", "siren"]
    assert r["chirp"] == {"asked": 2, "heard": 0, "recall": 0.0, "unasked": 2, "heard_unasked": 0, "unasked_rate": 0.0}
    assert r["bell"] == {"asked": 2, "heard": 1, "recall": 50.0, "unasked": 2, "heard_unasked": 0, "unasked_rate": 0.0}
    # never asked for, heard in every clip
    assert r["buzz"] == {"asked": 0, "heard": 0, "recall": None, "unasked": 4, "heard_unasked": 4,
                         "unasked_rate": 100.0}
    assert r["knock"]["recall"] == 100.0 and r["siren"]["recall"] == 100.0
    with pytest.raises(ValueError, match="records for"):
        category_recall(recs, anns[:2])


def test_prompt_following_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="records for"):
        prompt_following([_rec("bell")], [])
