"""Shared fixtures: one random-weight ``debug`` AudioXModel and media files written in the test (PyAV,
soundfile, PIL)."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import av
import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from audiox.core import AudioXModel, get_config
from audiox.infer import AudioXPipeline

torch.set_num_threads(1)


def _write_video(path: Path, *, fps: int = 12, frames: int = 24, size: tuple[int, int] = (48, 40),
                codec: str = "libx264", audio_sr: int | None = None) -> Path:
    """Frame i is a flat grey of level 10*i (so the decoded frame index can be read back)."""
    w, h = size
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        a = None
        if audio_sr:
            a = c.add_stream("aac", rate=audio_sr, layout="mono")
        for i in range(frames):
            rgb = np.full((h, w, 3), min(255, 10 * i), np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
        if a is not None:
            n = int(audio_sr * frames / fps)
            x = (0.3 * np.sin(2 * np.pi * 300 * np.arange(n) / audio_sr)).astype(np.float32)[None]
            fr = av.AudioFrame.from_ndarray(x, format="fltp", layout="mono")
            fr.sample_rate, fr.pts = audio_sr, 0
            for p in a.encode(fr):
                c.mux(p)
            for p in a.encode(None):
                c.mux(p)
    return path


def _sine(freq: float, sr: int, seconds: float, channels: int = 1) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    x = 0.5 * np.sin(2 * np.pi * freq * t)
    return np.stack([x * (1.0 - 0.3 * c) for c in range(channels)], axis=1)  # (S, C)


@pytest.fixture(scope="session")
def write_video():
    return _write_video


@pytest.fixture(scope="session")
def sine():
    return _sine


@pytest.fixture(scope="session")
def model() -> AudioXModel:
    """Random ``debug`` model whose zero-initialised parts (adaLN-Zero gates, output layer, MAF gates) get
    small random values, so that the velocity depends on z, t and every condition as a trained one does."""
    torch.manual_seed(0)
    m = AudioXModel(get_config("debug")).eval()
    with torch.no_grad():
        for p in [*m.dit.parameters(), *m.maf.parameters()]:
            if p.abs().max() == 0:
                p.normal_(0.0, 0.05)
    return m


@pytest.fixture(scope="session")
def pipe(model: AudioXModel) -> AudioXPipeline:
    return AudioXPipeline(model)


@pytest.fixture(scope="session")
def model_dir(model: AudioXModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "debug"
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    out = {"video": _write_video(d / "clip.mp4"), "video_av": _write_video(d / "clip_av.mp4", audio_sr=16000)}
    sf.write(d / "tone.wav", _sine(440, 22050, 1.5, channels=2), 22050)
    out["audio"] = d / "tone.wav"
    sf.write(d / "tone.flac", _sine(440, 16000, 0.7), 16000)
    out["flac"] = d / "tone.flac"
    img = np.zeros((48, 64, 3), np.uint8)
    img[:, :32] = (255, 0, 0)
    Image.fromarray(img).save(d / "still.png")
    out["image"] = d / "still.png"
    (d / "empty.wav").write_bytes(b"")
    out["empty"] = d / "empty.wav"
    (d / "garbage.mp4").write_bytes(b"this is not a video at all" * 40)
    out["garbage"] = d / "garbage.mp4"
    return out
