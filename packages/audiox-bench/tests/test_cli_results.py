"""`audiox-bench run` on a debug model (random weights) writes a complete results folder; bad input exits 2."""

import json

import pytest

from audiox.bench.cli import main
from audiox.bench.efficiency import parse_setting


def test_run_debug_model_results_folder(tmp_path):
    out = tmp_path / "res"
    rc = main(["run", "--model", "debug", "--n", "4", "--setting", "base=euler:2:3", "--setting", "turbo=turbo:1",
               "--runs", "1", "--warmup", "0", "--out", str(out), "--no-progress"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert [r["label"] for r in res["runs"]] == ["base", "turbo"]
    assert [r["nfe"] for r in res["runs"]] == [4, 1]  # counted: CFG doubles the Euler passes
    eff = {r["setting"]: r for r in res["efficiency"]}
    assert eff["base"]["nfe"] == 4 and eff["turbo"]["nfe"] == 1 and eff["turbo"]["nfe_ratio"] == pytest.approx(4.0)
    assert eff["base"]["speedup"] == pytest.approx(1.0) and eff["turbo"]["rtf"] > 0
    for r in res["runs"]:
        acc = r["accuracy"]["overall"]
        assert acc["n"] == 4 and all(acc[m] is not None for m in ("cat_acc", "cnt_acc", "ord_acc", "ts_acc"))
    table = (out / "table.md").read_text()
    assert "| Method | NFE | Cat-acc" in table and "| base | 4 |" in table and "Speedup" in table
    for f in ("accuracy_bars.png", "quality_vs_nfe.png", "judgments_base.json"):
        assert (out / f).stat().st_size > 0
    wavs = sorted(p.name for p in (out / "audio" / "turbo").iterdir())
    assert wavs == [f"T2A_{i:05d}.wav" for i in range(4)]
    assert not list(out.rglob("*.tmp"))


def test_bad_input_exits_nonzero(tmp_path, capsys):
    assert main(["t2a", "--prompts", str(tmp_path / "missing.json"), "--out", str(tmp_path / "o")]) == 2
    assert "no such prompt file" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('[{"prompt": "x"}]')
    assert main(["judge-validate", "--prompts", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()
    with pytest.raises(ValueError):
        parse_setting("euler:four")
    assert parse_setting("fast=turbo:4") == parse_setting("fast=turbo:4:")
