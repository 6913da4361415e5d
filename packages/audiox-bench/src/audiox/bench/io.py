"""Results-folder I/O: atomic JSON / text / WAV writes, prompt files (JSON list or JSON lines)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

__all__ = ["atomic_write_text", "write_json", "write_wav", "read_wav", "load_prompts"]


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=float) + "\n")


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """(S,) or (C, S) float audio -> 16-bit WAV, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.asarray(audio, np.float32)
    x = x.T if x.ndim == 2 else x
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".wav")
    os.close(fd)
    try:
        sf.write(tmp, np.clip(x, -1, 1), sample_rate, subtype="PCM_16")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """(C, S) float32 and the sample rate."""
    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return x.T, int(sr)


def _read_records(path: str | Path) -> list:
    """A JSON list of records, JSON lines, or one JSON object holding them (``t2a_bench`` / ``records``)."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not JSON or JSON lines ({e.msg}, line {e.lineno})") from None
    if isinstance(data, dict):
        data = data.get("t2a_bench") or data.get("records") or [data]
    return data if isinstance(data, list) else []


def load_prompts(path: str | Path) -> list[dict]:
    """A T2A-bench prompt file: a JSON list of records or JSON lines (Appendix C format)."""
    data = _read_records(path)
    if not data or not all(isinstance(r, dict) and "id" in r and "type" in r for r in data):
        raise ValueError(f"{path}: expected records with 'id' and 'type' fields")
    return data


def load_captions(path: str | Path) -> dict[str, str]:
    """id -> text from a JSON list or JSON lines of records with ``id`` and ``prompt`` (or ``caption`` / ``text``):
    a T2A-bench prompt file works as is."""
    out: dict[str, str] = {}
    for r in _read_records(path):
        field = next((f for f in ("prompt", "caption", "text") if isinstance(r, dict) and isinstance(r.get(f), str)), None)
        if field is None or "id" not in r:
            raise ValueError(f"{path}: every record needs 'id' and one of 'prompt', 'caption', 'text'")
        out[str(r["id"])] = r[field]
    if not out:
        raise ValueError(f"{path}: no captions")
    return out
