"""``audiox-bench judge-validate --task v2a|t2m``: results folder on good input, one-line error and nothing
written on bad input."""

import json

from audiox.bench.cli import main
from audiox.data.synth import SynthConfig
from audiox.data.synth.prompts import make_t2a_bench, make_v2a_prompts


def test_judge_validate_v2a_writes_results(tmp_path, capsys):
    out = tmp_path / "v2a"
    assert main(["judge-validate", "--task", "v2a", "--n", "3", "--out", str(out), "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    judged = json.loads((out / "judgments.json").read_text())
    recs = make_v2a_prompts(1234, 3, SynthConfig(video=False))  # the default held-out seed
    assert res["task"] == "v2a" and res["clips"] == 3 and res["seed"] == 1234
    assert [j["id"] for j in judged] == [r["id"] for r in recs]
    events = sum(len(r["spec"]["events"]) for r in recs)
    assert res["summary"]["events"] == events
    found = sum(e["present"] for j in judged for e in j["events"])
    assert res["accuracy"]["presence"] == 100 * found / events
    table = (out / "table.md").read_text()
    assert "| v2a | presence |" in table and "per 2,000 clips" in table
    assert "| v2a | presence |" in capsys.readouterr().out


def test_judge_validate_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    t2a = tmp_path / "t2a.json"
    t2a.write_text(json.dumps(make_t2a_bench(3, 4)))
    for argv in (["--task", "t2m", "--prompts", str(t2a)],  # T2A records hold no music
                 ["--task", "v2a", "--prompts", str(tmp_path / "missing.json")],
                 ["--task", "t2m", "--n", "0"]):
        out = tmp_path / "out"
        assert main(["judge-validate", *argv, "--out", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("audiox-bench: error:") and "\n" not in err, err
        assert not out.exists()
