"""`audiox-bench compare`: paired accuracy differences, Agresti-Min CIs and exact McNemar p, against hand counts."""

import json
import math

import pytest
from scipy.stats import binom

from audiox.bench.cli import main
from audiox.bench.compare import compare_pairs, compare_v2a, load_judgments, load_v2a, pair_rows, pair_v2a


def _row(i: int, cat: int, cnt: int | None = None, prompt: str | None = None) -> dict:
    return {"id": f"T2A_{i:05d}", "type": "category+count" if cnt is not None else "category-only",
            "prompt": prompt or f"prompt {i}", "prediction": {"cat_acc": cat, "cnt_acc": cnt, "ord_acc": None,
                                                              "ts_acc": None}}


def _suite_folder(path, tables: dict) -> str:
    path.mkdir(parents=True)
    body = {"ground truth": [_row(i, 1) for i in range(3)], **tables}
    (path / "judgments.json").write_text(json.dumps(body))
    return str(path)


def test_paired_statistics_match_hand_counts():
    # 20 clips: A meets 10, B meets 14; A-only 2, B-only 6, both 8.
    a_cat = [1] * 8 + [1] * 2 + [0] * 6 + [0] * 4
    b_cat = [1] * 8 + [0] * 2 + [1] * 6 + [0] * 4
    a = [_row(i, x) for i, x in enumerate(a_cat)]
    b = [_row(i, y) for i, y in enumerate(b_cat)]
    s = compare_pairs([pair_rows(a, b)])["cat_acc"]
    assert (s["n"], s["a_better"], s["b_better"]) == (20, 2, 6)
    assert s["a"] == pytest.approx(50.0) and s["b"] == pytest.approx(70.0) and s["diff"] == pytest.approx(20.0)
    # exact two-sided McNemar: 2 * P(X <= 2), X ~ Bin(8, 1/2)
    assert s["p"] == pytest.approx(min(1.0, 2 * binom.cdf(2, 8, 0.5)))
    # Agresti-Min: 1/2 added to each cell -> b' 2.5, c' 6.5, n' 22
    mid, half = 100 * 4 / 22, 1.96 * math.sqrt(9 - 4**2 / 22) / 22 * 100
    assert s["ci95"] == pytest.approx([mid - half, mid + half])
    # no discordant clip: the interval does not collapse to a point
    t = compare_pairs([pair_rows(a, a)])["cat_acc"]
    assert t["diff"] == 0 and t["ci95"] == pytest.approx([-196 / 22, 196 / 22]) and t["p"] == 1.0
    # a metric that does not apply to these prompts has no clips
    assert compare_pairs([pair_rows(a, b)])["ord_acc"] == {"n": 0, "a": None, "b": None, "diff": None,
                                                           "ci95": None, "a_better": 0, "b_better": 0, "p": None}


def test_pooling_keeps_repeated_ids_apart():
    a1, b1 = [_row(0, 1)], [_row(0, 0)]
    a2, b2 = [_row(0, 1, prompt="other")], [_row(0, 0, prompt="other")]  # same id, another prompt set
    s = compare_pairs([pair_rows(a1, b1), pair_rows(a2, b2)])["cat_acc"]
    assert (s["n"], s["a_better"], s["b_better"]) == (2, 2, 0) and s["p"] == pytest.approx(0.5)


def test_different_prompts_are_refused():
    with pytest.raises(ValueError, match="different prompts"):
        pair_rows([_row(0, 1, prompt="x")], [_row(0, 1, prompt="y")])
    with pytest.raises(ValueError, match="share no clip ids"):
        pair_rows([_row(0, 1)], [_row(1, 1)])


def test_load_suite_and_t2a_folders(tmp_path):
    suite = _suite_folder(tmp_path / "suite", {"teacher-50": [_row(0, 1)], "student-4": [_row(0, 0)]})
    with pytest.raises(ValueError, match="several settings"):
        load_judgments(suite)
    with pytest.raises(ValueError, match="no setting 'nope'"):
        load_judgments(suite + "@nope")
    label, rows = load_judgments(suite + "@student-4")
    assert label == "student-4" and rows[0]["prediction"]["cat_acc"] == 0
    t2a = tmp_path / "t2a"
    t2a.mkdir()
    (t2a / "judgments_turbo.json").write_text(json.dumps([_row(0, 1)]))
    assert load_judgments(str(t2a))[0] == "turbo"


def test_cli_writes_results_and_rejects_bad_input(tmp_path, capsys):
    a_cat, b_cat = [1, 1, 0, 0, 1, 0], [1, 0, 1, 1, 1, 1]
    cnt = [None, None, None, 1, 0, 1]
    s1 = _suite_folder(tmp_path / "s1", {"old": [_row(i, x, cnt[i]) for i, x in enumerate(a_cat)],
                                         "new": [_row(i, y, cnt[i] and 1) for i, y in enumerate(b_cat)]})
    out = tmp_path / "cmp"
    assert main(["compare", "--a", s1 + "@old", "--b", s1 + "@new", "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["a"] == "old" and res["b"] == "new" and res["pairs"][0]["clips"] == 6
    assert (res["metrics"]["cat_acc"]["a_better"], res["metrics"]["cat_acc"]["b_better"]) == (1, 3)
    assert res["metrics"]["cnt_acc"]["n"] == 3
    table = (out / "table.md").read_text()
    assert "| Cat-acc | 6 | 50.0 | 83.3 | +33.3" in table
    capsys.readouterr()
    assert main(["compare", "--a", s1 + "@old", "--out", str(tmp_path / "o2"),
                 "--b", s1 + "@new", "--b", s1 + "@old"]) == 2
    assert "give them in pairs" in capsys.readouterr().err
    assert main(["compare", "--a", str(tmp_path / "missing"), "--b", s1 + "@new", "--out", str(tmp_path / "o3")]) == 2
    assert "no such results folder" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()


def _v2a(i: int, found: list[tuple[bool, bool]], fa: int) -> dict:
    return {"id": f"V2A_{i:05d}", "false_alarms": fa,
            "events": [{"name": "clap", "onset": 1.0 + k, "present": p, "aligned": al,
                        "onset_error_ms": 100.0 if p else None} for k, (p, al) in enumerate(found)]}


def test_v2a_pairs_events_and_false_alarms(tmp_path):
    a = [_v2a(0, [(True, True), (True, False)], 3), _v2a(1, [(False, False)], 1), _v2a(2, [(True, True)], 2)]
    b = [_v2a(0, [(True, False), (True, True)], 0), _v2a(1, [(True, True)], 1), _v2a(2, [(True, True)], 0)]
    s = compare_v2a([pair_v2a(a, b)])
    assert (s["v2a_present"]["n"], s["v2a_present"]["a_better"], s["v2a_present"]["b_better"]) == (4, 0, 1)
    assert (s["v2a_aligned"]["a_better"], s["v2a_aligned"]["b_better"]) == (1, 2)
    fa = s["v2a_false_alarms"]
    assert fa["a"] == pytest.approx(2.0) and fa["b"] == pytest.approx(1 / 3) and fa["diff"] == pytest.approx(-5 / 3)
    d = [-3, 0, -2]
    sd = math.sqrt(sum((x + 5 / 3) ** 2 for x in d) / 2)
    assert fa["ci95"] == pytest.approx([-5 / 3 - 1.96 * sd / math.sqrt(3), -5 / 3 + 1.96 * sd / math.sqrt(3)])
    assert (fa["a_better"], fa["b_better"]) == (0, 2) and fa["p"] == pytest.approx(0.5)  # sign test, 2 clips
    with pytest.raises(ValueError, match="different events"):
        pair_v2a([_v2a(0, [(True, True)], 0)], [_v2a(0, [(True, True), (True, True)], 0)])
    (tmp_path / "v2a_judgments.json").write_text(json.dumps({"x": a, "y": b}))
    assert load_v2a(str(tmp_path) + "@y") == b and load_v2a(str(tmp_path)) is None  # two labels, none named
    assert load_v2a(str(tmp_path / "nowhere")) is None
