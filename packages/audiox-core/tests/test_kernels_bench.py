"""scripts/bench_gpu.py runs end to end on CPU at debug size and writes its report (the GPU run is the same code)."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "bench_gpu.py"


@pytest.fixture(scope="module")
def bench():
    if not SCRIPT.exists():
        pytest.skip("scripts/bench_gpu.py is not part of this checkout")
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_gpu"] = mod  # dataclasses look their module up while the script executes
    spec.loader.exec_module(mod)
    return mod


def test_cpu_debug_run_writes_the_table(bench, tmp_path):
    out = tmp_path / "perf.md"
    rc = bench.main(["--preset", "debug", "--device", "cpu", "--out", str(out), "--iters", "1", "--warmup", "0",
                     "--student-steps", "2", "--teacher-steps", "2", "--long-len", "24", "--train-batch", "1",
                     "--json", str(tmp_path / "perf.json")])
    assert rc == 0
    text = out.read_text()
    assert "| area | what | variant | ms |" in text and "No GPU was used" in text and "CPU" in text
    raw = json.loads((tmp_path / "perf.json").read_text())
    rows = raw["rows"]
    kernels = [r for r in rows if r["area"] == "kernel"]
    assert {r["variant"] for r in kernels} >= {"torch", "sdpa", "unfused"}
    assert all(r["ms"] is not None and r["ms"] > 0 for r in kernels)
    e2e = {r["what"].split()[0]: r for r in rows if r["area"] == "e2e"}
    assert set(e2e) == {"student", "teacher"}
    for r in e2e.values():  # stage split: encoders + denoiser + decoder account for the end-to-end time
        split = r["extra"]["encoders_ms"] + r["extra"]["denoiser_ms"] + r["extra"]["decoder_ms"]
        assert 0 < split <= r["ms"] * 1.05 + 1.0
    (train,) = [r for r in rows if r["area"] == "train"]
    assert train["ms"] > 0 and train["extra"]["step_tflop"] > 0 and train["extra"]["mfu"] is None  # no peak on CPU


def test_flop_count_covers_the_denoiser_matmuls(bench):
    from audiox.core import AudioXModel, get_config

    cfg = get_config("debug", ["text.tokenizer=byt5"])
    torch.manual_seed(0)
    model = AudioXModel(cfg).eval()
    fwd, frozen = bench.forward_flops(model, cfg, torch.device("cpu"), batch=1)
    # every MMDiT block's linear layers see each latent token at least once: 2 FLOPs per weight per token
    dit_linear = sum(m.weight.numel() for m in model.dit.modules() if isinstance(m, torch.nn.Linear))
    assert fwd >= 2 * dit_linear * cfg.latent_length * 0.5
    assert frozen > 0


def test_bad_input_fails_cleanly(bench, tmp_path, capsys):
    out = tmp_path / "perf.md"
    assert bench.main(["--preset", "no-such-preset", "--device", "cpu", "--out", str(out)]) == 2
    assert "bench_gpu: error:" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(SystemExit) as e:
        bench.main(["--iters", "0", "--out", str(out)])
    assert e.value.code == 2
