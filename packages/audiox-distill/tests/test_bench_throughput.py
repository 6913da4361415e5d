"""The throughput benchmark command: it runs the real debug distiller and rejects bad input."""

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_throughput.py"


def _load():
    spec = importlib.util.spec_from_file_location("bench_throughput", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_prints_positive_rate(capsys):
    assert _load().main(["--ratios", "1:1", "--iters", "1", "--warmup", "0"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["iters_per_s"]["1:1"] > 0


def test_bench_rejects_bad_ratio(capsys):
    assert _load().main(["--ratios", "1-5"]) == 2
    assert "error" in capsys.readouterr().err
