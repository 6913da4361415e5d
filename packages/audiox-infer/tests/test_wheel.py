"""Packaging: the audiox-infer and audiox-core wheels alone in a fresh virtual environment run
`audiox generate` (no audiox-data/train/distill, no DeepSpeed or webdataset)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, **kw)


@pytest.mark.slow
def test_wheels_install_alone_and_generate(model_dir: Path, tmp_path: Path) -> None:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH: cannot build wheels here")
    dist = tmp_path / "dist"
    for pkg in ("audiox-core", "audiox-infer"):
        r = _run([uv, "build", "--package", pkg, "--wheel", "--out-dir", str(dist)], timeout=300)
        if r.returncode != 0:
            pytest.skip(f"uv build --package {pkg} failed (no build backend reachable?): {r.stderr.strip()[-300:]}")
    wheels = sorted(str(p) for p in dist.glob("*.whl"))
    assert len(wheels) == 2, wheels
    venv = tmp_path / "venv"
    assert _run([uv, "venv", "--python", sys.executable, str(venv)], timeout=120).returncode == 0
    py = venv / "bin" / "python"
    env = {**os.environ, "UV_LINK_MODE": os.environ.get("UV_LINK_MODE", "hardlink")}
    env.pop("VIRTUAL_ENV", None)
    r = _run([uv, "pip", "install", "--offline", "--python", str(py), *wheels], timeout=600, env=env)
    if r.returncode != 0:  # a package missing from uv's cache: let it use the registry
        r = _run([uv, "pip", "install", "--python", str(py), *wheels], timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    listed = _run([uv, "pip", "list", "--python", str(py)], timeout=60, env=env).stdout.lower()
    for absent in ("audiox-data", "audiox-train", "audiox-distill", "audiox-bench", "deepspeed", "webdataset"):
        assert absent not in listed, f"{absent} was installed with audiox-infer"
    out = tmp_path / "rain.wav"
    run_env = {**env, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([str(venv / "bin" / "audiox"), "generate", "rain on a roof", "--model", str(model_dir),
                        "--steps", "2", "--seed", "0", "--out", str(out)], capture_output=True, text=True,
                       cwd=tmp_path, env=run_env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert out.is_file() and out.with_suffix(".json").is_file()
    import soundfile as sf

    assert sf.info(str(out)).frames == 8000
    # the bundled default (AudioX-Mini Turbo) ships inside the wheel: no --model, no download
    import zipfile

    infer_whl = next(w for w in wheels if "audiox_infer" in Path(w).name)
    names = set(zipfile.ZipFile(infer_whl).namelist())
    for need in ("default_model/config.json", "default_model/model.safetensors", "default_model/MODEL_CARD.md",
                 "default_model/teacher/config.json", "default_model/teacher/model.safetensors"):
        assert f"audiox/infer/{need}" in names, need
    out = tmp_path / "bell.wav"
    r = subprocess.run([str(venv / "bin" / "audiox"), "generate", "a bell rings twice", "--seed", "0", "--out", str(out)],
                       capture_output=True, text=True, cwd=tmp_path, env=run_env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert sf.info(str(out)).samplerate == 16000 and sf.info(str(out)).frames == 160000
