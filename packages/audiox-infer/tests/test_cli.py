"""The ``audiox`` command: outputs and sidecars, JSONL batches, info, bench-latency, and every bad input
giving one line on stderr, a nonzero exit and no output file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from audiox.infer import cli, defaults


def run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    rc = cli.main(argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_generate_writes_audio_and_sidecar_and_reproduces(model_dir: Path, tmp_path: Path, capsys) -> None:
    base = ["generate", "a bell rings", "--model", str(model_dir), "--steps", "2", "--seed", "5"]
    rc, out, err = run([*base, "--out", str(tmp_path / "a.wav")], capsys)
    assert rc == 0, err
    meta = json.loads((tmp_path / "a.json").read_text())
    assert (meta["prompt"], meta["seed"], meta["sampler"], meta["steps"], meta["nfe"]) == ("a bell rings", 5, "euler", 2, 4)
    assert meta["model"] == str(model_dir) and set(meta["timings"]) >= {"encode", "denoise", "decode"}
    rc, _, err = run([*base, "--out", str(tmp_path / "b.flac")], capsys)
    assert rc == 0, err
    a, sr = sf.read(tmp_path / "a.wav")
    b, _ = sf.read(tmp_path / "b.flac")
    assert sr == 8000 and a.shape == (8000,) and (a == b).all()  # same seed, same audio
    # refuses to overwrite, then --force does
    rc, _, err = run([*base, "--out", str(tmp_path / "a.wav")], capsys)
    assert rc == 1 and "exists; pass --force" in err
    rc, _, err = run([*base, "--out", str(tmp_path / "a.wav"), "--force", "--seed", "6"], capsys)
    assert rc == 0 and not (sf.read(tmp_path / "a.wav")[0] == a).all()


def test_generate_video_with_mux_and_turbo(model_dir: Path, files: dict[str, Path], tmp_path: Path, capsys,
                                           caplog: pytest.LogCaptureFixture) -> None:
    rc, _, err = run(["generate", "--video", str(files["video"]), "--model", str(model_dir), "--sampler", "turbo",
                      "--steps", "3", "--out", str(tmp_path / "v.wav"), "--mux", str(tmp_path / "v.mp4")], capsys)
    assert rc == 0, err
    meta = json.loads((tmp_path / "v.json").read_text())
    assert meta["tasks"] == ["v2a"] and meta["nfe"] == 3 and meta["mux"] == str(tmp_path / "v.mp4")
    assert "trimmed to the first 1.00 s" in caplog.text  # the 2 s video is fitted to the 1 s model, with a warning
    import av

    with av.open(str(tmp_path / "v.mp4")) as c:
        assert sorted(s.type for s in c.streams) == ["audio", "video"]


def test_generate_jsonl_batch(model_dir: Path, files: dict[str, Path], tmp_path: Path, capsys) -> None:
    jobs = tmp_path / "jobs.jsonl"
    lines = [{"prompt": "a dog", "out": "dog.wav", "seed": 1},
             {"image": str(files["image"]), "out": "img.flac"},
             {"audio": str(files["audio"]), "inpaint": "0.2-0.4", "out": "fix.wav"}]
    jobs.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    rc, _, err = run(["generate", "--batch-file", str(jobs), "--out", str(tmp_path / "o"), "--model", str(model_dir),
                      "--steps", "1", "--seed", "0"], capsys)
    assert rc == 0, err
    names = sorted(p.name for p in (tmp_path / "o").iterdir())
    assert names == ["dog.json", "dog.wav", "fix.json", "fix.wav", "img.flac", "img.json"]
    assert json.loads((tmp_path / "o" / "img.json").read_text())["tasks"] == ["i2a"]
    assert json.loads((tmp_path / "o" / "dog.json").read_text())["seed"] == 1


def test_info_and_bench_latency(model_dir: Path, tmp_path: Path, capsys) -> None:
    rc, out, err = run(["info", str(model_dir)], capsys)
    assert rc == 0 and "preset       debug" in out and "euler, 4 steps, CFG 3" in out
    rc, out, err = run(["bench-latency", "--preset", "debug", "--runs", "2", "--warmup", "1", "--steps", "2",
                        "--json", str(tmp_path / "lat.json")], capsys)
    assert rc == 0, err
    rep = json.loads((tmp_path / "lat.json").read_text())
    assert rep["nfe"] == 4 and rep["runs"] == 2 and rep["latency_mean"] > 0
    assert rep["rtf"] == pytest.approx(rep["latency_mean"] / rep["duration"])
    assert set(rep["peak_memory_mib"]) == {"load", "encode", "denoise", "decode"}
    assert "| debug (random weights) |" in out
    rc, out, err = run(["bench-latency", "--preset", "debug", "--runs", "1", "--warmup", "0", "--sampler", "turbo",
                        "--steps", "3"], capsys)
    assert rc == 0 and "| turbo | 3 | - | 3 |" in out


def _bad_cases(files: dict[str, Path], model_dir: Path, tmp: Path) -> list[tuple[list[str], str]]:
    m = ["--model", str(model_dir), "--steps", "1"]
    return [
        (["generate", "x", "--model", str(tmp / "no_such_model")], "model folder not found"),
        (["generate", "--video", str(files["garbage"]), *m], "cannot read video"),
        (["generate", "--video", str(files["audio"]), *m], "has no video stream"),
        (["generate", "--audio", str(files["video"]), "--task", "complete", *m], "has no audio stream"),
        (["generate", "--audio", str(files["empty"]), "--inpaint", "0-0.5", *m], "empty (zero bytes)"),
        (["generate", "--audio", str(tmp / "nope.wav"), "--inpaint", "0-0.5", *m], "file not found"),
        (["generate", "--audio", str(files["audio"]), "--inpaint", "0.5-0.2", *m], "START < END"),
        (["generate", "--audio", str(files["audio"]), "--inpaint", "3-4", *m], "after the end"),
        (["generate", "--audio", str(files["audio"]), "--inpaint", "1.0", *m], "bad inpaint span"),
        (["generate", "x", "--inpaint", "0-1", *m], "--inpaint needs --audio"),
        (["generate", "x", "--task", "v2a", *m], "needs a video"),
        (["generate", "x", "--task", "bogus", *m], "unknown task"),
        (["generate", "x", "--duration", "0", *m], "--duration must be > 0"),
        (["generate", "x", "--mux", str(tmp / "o.mp4"), *m], "--mux needs a --video"),
        (["generate", *m], "nothing to condition on"),
        (["generate", "x", "--dtype", "int3", *m], "unknown dtype"),
        (["generate", "--batch-file", str(files["garbage"]), *m], "not valid JSON"),
    ]


def test_bad_inputs_one_line_nonzero_no_output(files: dict[str, Path], model_dir: Path, tmp_path: Path, capsys) -> None:
    for i, (argv, match) in enumerate(_bad_cases(files, model_dir, tmp_path)):
        out_dir = tmp_path / f"case{i}"
        out_dir.mkdir()
        rc, _, err = run([*argv, "--out", str(out_dir / "o.wav")], capsys)
        lines = [ln for ln in err.splitlines() if ln.startswith("audiox: error:")]
        assert rc == 1, (argv, err)
        assert len(lines) == 1 and match in lines[0], (argv, err)
        assert not any("Traceback" in ln for ln in err.splitlines())
        assert list(out_dir.iterdir()) == [], argv


def test_no_default_model(monkeypatch, tmp_path: Path, capsys) -> None:
    monkeypatch.setattr(defaults, "BUNDLED_MODELS", {"default": tmp_path / "default_model",
                                                     "default-teacher": tmp_path / "default_model" / "teacher"})
    rc, _, err = run(["generate", "x", "--out", str(tmp_path / "o.wav")], capsys)
    assert rc == 1 and "no default model is bundled" in err and "--model" in err
    rc, _, err = run(["generate", "x", "--model", "default-teacher", "--out", str(tmp_path / "o.wav")], capsys)
    assert rc == 1 and "'default-teacher' is not installed" in err
    assert not (tmp_path / "o.wav").exists()


def test_subprocess_exit_status(tmp_path: Path) -> None:
    """The real process: exit status 1, exactly one line on stderr, no output (a successful run in a
    subprocess is the wheel test's job, test_wheel.py)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    bad = subprocess.run([sys.executable, "-m", "audiox.infer.cli", "generate", "rain", "--model",
                          str(tmp_path / "missing"), "--out", str(tmp_path / "o.wav")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 1 and bad.stderr.endswith("\n") and bad.stderr.count("\n") == 1, bad.stderr
    assert bad.stderr.startswith("audiox: error: model folder not found") and list(tmp_path.iterdir()) == []


def test_help_has_examples(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(["generate", "--help"])
    assert e.value.code == 0 and "examples:" in capsys.readouterr().out
