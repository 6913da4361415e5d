"""Stage 1 curation of real media (paper Sec. III-A), item by item, resumable.

Drops, with the reason recorded in ``OUT/report.jsonl``:

- ``broken_container`` / ``broken_audio`` / ``broken_video``: the file or a track fails to decode;
  ``no_audio``: no audio track;
- ``too_short`` / ``too_long``: duration outside ``[min_duration, max_duration]``;
- ``silent``: audio RMS below ``silence_db`` dBFS;
- ``static_video``: mean absolute difference between frames sampled through the clip (0-255 grey
  levels, 64x64) below ``static_threshold`` (the paper's "visually static" filter);
- ``not_enough_music`` (``music=True``, video-music sources): the music detector finds music in less
  than ``min_music_fraction`` of the clip. The detector is pluggable (any ``(audio, sr) -> fraction``,
  e.g. a PANNs tagger as in the paper); the offline default :class:`TonalityMusicDetector` counts 1 s
  windows whose spectrum is tonal (low spectral flatness) and sustained (stable dominant peaks across
  frames): noise and most ambience fail it; it cannot tell music from steady humming or sirens.

Kept items are cut into ``window``-second windows (silent windows skipped) written as FLAC (+ MP4 when
the source has video). A music-separation hook (:class:`Separator`) runs on music sources when a
separator is installed (``demucs``); otherwise audio is kept as is. Outputs are written atomically;
finished items are skipped on a rerun (resume after a kill).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import av
from av.video.reformatter import VideoReformatter
import numpy as np

from audiox.data.media import encode_flac, encode_mp4

__all__ = ["CurateConfig", "Separator", "TonalityMusicDetector", "add_cli", "curate", "curate_item", "get_separator"]

MEDIA_EXT = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".wav", ".flac", ".mp3", ".ogg", ".m4a"}


@dataclass
class CurateConfig:
    min_duration: float = 5.0  # seconds; shorter clips cannot give a useful window
    max_duration: float = 1800.0  # seconds; long streams are usually not clip material
    window: float = 10.0  # seconds per output window (paper: 10 s clips)
    sample_rate: int = 16000  # analysis and output rate
    silence_db: float = -50.0  # dBFS RMS below which audio counts as silent
    static_threshold: float = 1.0  # mean |frame difference| in grey levels below which video is static
    music: bool = False  # video-music source: require music content
    min_music_fraction: float = 0.5
    max_side: int = 256  # output video is downscaled to this longest side


class Separator(Protocol):
    def __call__(self, audio: np.ndarray, sr: int) -> np.ndarray:
        """(S,) mixture -> (S,) music stem."""


class TonalityMusicDetector:
    """Offline default music detector: the fraction of 1 s windows that are tonal and sustained."""

    def __init__(self, flatness: float = 0.25, stability: float = 0.5, silence_db: float = -50.0):
        self.flatness, self.stability, self.silence_db = flatness, stability, silence_db

    def __call__(self, audio: np.ndarray, sr: int) -> float:
        n_fft, hop = 1024, 512
        windows = [audio[i : i + sr] for i in range(0, len(audio) - sr + 1, sr)]
        if not windows:
            return 0.0
        music = 0
        for w in windows:
            if 20 * np.log10(np.sqrt(np.mean(w**2)) + 1e-12) < self.silence_db:
                continue
            frames = np.lib.stride_tricks.sliding_window_view(w, n_fft)[::hop] * np.hanning(n_fft)
            mag = np.abs(np.fft.rfft(frames, axis=1)) + 1e-10
            flat = np.exp(np.mean(np.log(mag), axis=1)) / np.mean(mag, axis=1)  # geometric / arithmetic mean
            peaks = mag.argmax(1)
            stable = np.mean(np.abs(np.diff(peaks)) <= 2) if len(peaks) > 1 else 0.0
            if np.median(flat) < self.flatness and stable >= self.stability:
                music += 1
        return music / len(windows)


class _DemucsSeparator:
    def __init__(self) -> None:
        import torch
        from demucs.apply import apply_model
        from demucs.pretrained import get_model

        self._torch, self._apply, self.model = torch, apply_model, get_model("htdemucs")

    def __call__(self, audio: np.ndarray, sr: int) -> np.ndarray:
        from audiox.data.media import resample

        x = resample(audio[None], sr, self.model.samplerate)
        wav = self._torch.from_numpy(np.repeat(x, 2, 0))[None].float()
        stems = self._apply(self.model, wav)[0]  # (sources, 2, S)
        keep = [i for i, s in enumerate(self.model.sources) if s != "vocals"]
        music = stems[keep].sum(0).mean(0).numpy()
        return resample(music[None], self.model.samplerate, sr)[0][: len(audio)]


def get_separator(name: str = "auto") -> Separator | None:
    """``"auto"``: Demucs (htdemucs, vocals removed) when ``demucs`` is installed, else None; ``"none"``."""
    if name == "none":
        return None
    try:
        return _DemucsSeparator()
    except ImportError:
        if name == "demucs":
            raise ImportError("music separation needs demucs: pip install demucs") from None
        return None


def _decode_audio(path: str, sr: int) -> np.ndarray:
    with av.open(path) as f:
        if not f.streams.audio:
            raise LookupError("no_audio")
        res = av.AudioResampler(format="flt", layout="mono", rate=sr)
        chunks = []
        for frame in f.decode(audio=0):
            for out in res.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in res.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    if not chunks:
        raise ValueError("audio track has no decodable frames")
    return np.concatenate(chunks).astype(np.float32)


def _decode_frames(path: str, max_side: int) -> tuple[np.ndarray, float] | None:
    with av.open(path) as f:
        if not f.streams.video:
            return None
        vs = f.streams.video[0]
        fps = float(vs.average_rate or vs.guessed_rate or 25)
        w, h = vs.codec_context.width, vs.codec_context.height
        scale = min(1.0, max_side / max(w, h))
        w2, h2 = max(2, int(w * scale) // 2 * 2), max(2, int(h * scale) // 2 * 2)
        rgb = VideoReformatter()  # one conversion context for the stream (not one per frame)
        frames = [rgb.reformat(fr, format="rgb24", width=w2, height=h2).to_ndarray() for fr in f.decode(video=0)]
    if not frames:
        raise ValueError("video track has no decodable frames")
    return np.stack(frames), fps


def _motion(frames: np.ndarray) -> float:
    idx = np.linspace(0, len(frames) - 1, min(len(frames), 32)).astype(int)
    grey = frames[idx].mean(-1)
    return float(np.abs(np.diff(grey, axis=0)).mean()) if len(idx) > 1 else 0.0


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def curate_item(
    path: str,
    out: Path,
    cfg: CurateConfig,
    detector: Callable[[np.ndarray, int], float] | None = None,
    separator: Separator | None = None,
) -> dict:
    """Curate one file; returns its report record (``status`` kept/dropped, ``reason``, ``windows``)."""
    rec: dict = {"path": path, "status": "dropped", "reason": None, "windows": []}
    try:
        av.open(path).close()
    except Exception as e:  # noqa: BLE001 - any container error is a broken item
        rec["reason"], rec["detail"] = "broken_container", f"{type(e).__name__}: {e}"[:200]
        return rec
    try:
        audio = _decode_audio(path, cfg.sample_rate)
    except LookupError:
        rec["reason"] = "no_audio"
        return rec
    except Exception as e:  # noqa: BLE001
        rec["reason"], rec["detail"] = "broken_audio", f"{type(e).__name__}: {e}"[:200]
        return rec
    try:
        video = _decode_frames(path, cfg.max_side)
    except Exception as e:  # noqa: BLE001
        rec["reason"], rec["detail"] = "broken_video", f"{type(e).__name__}: {e}"[:200]
        return rec
    duration = len(audio) / cfg.sample_rate
    rec["duration"] = round(duration, 3)
    if duration < cfg.min_duration or duration < cfg.window:
        rec["reason"] = "too_short"
        return rec
    if duration > cfg.max_duration:
        rec["reason"] = "too_long"
        return rec
    db = 20 * np.log10(np.sqrt(np.mean(audio**2)) + 1e-12)
    rec["rms_db"] = round(float(db), 1)
    if db < cfg.silence_db:
        rec["reason"] = "silent"
        return rec
    if video is not None:
        rec["motion"] = round(_motion(video[0]), 3)
        if rec["motion"] < cfg.static_threshold:
            rec["reason"] = "static_video"
            return rec
    if cfg.music:
        frac = (detector or TonalityMusicDetector(silence_db=cfg.silence_db))(audio, cfg.sample_rate)
        rec["music_fraction"] = round(float(frac), 3)
        if frac < cfg.min_music_fraction:
            rec["reason"] = "not_enough_music"
            return rec
        if separator is not None:
            audio = separator(audio, cfg.sample_rate).astype(np.float32)
            rec["separated"] = True
    stem = Path(path).stem
    n = int(cfg.window * cfg.sample_rate)
    for k in range(int(duration // cfg.window)):
        seg = audio[k * n : (k + 1) * n]
        if 20 * np.log10(np.sqrt(np.mean(seg**2)) + 1e-12) < cfg.silence_db:
            continue
        name = f"{stem}_{k:03d}"
        _write_atomic(out / f"{name}.flac", encode_flac(seg, cfg.sample_rate))
        if video is not None:
            frames, fps = video
            a, b = int(round(k * cfg.window * fps)), int(round((k + 1) * cfg.window * fps))
            _write_atomic(out / f"{name}.mp4", encode_mp4(frames[a:b], fps))
        rec["windows"].append({"name": name, "start": k * cfg.window, "end": (k + 1) * cfg.window})
    if not rec["windows"]:
        rec["reason"] = "silent"
        return rec
    rec["status"] = "kept"
    return rec


def _inputs(src: str) -> list[str]:
    p = Path(src)
    if p.is_dir():
        return sorted(str(f) for f in p.rglob("*") if f.suffix.lower() in MEDIA_EXT)
    if p.is_file() and p.suffix == ".txt":
        return [line.strip() for line in p.read_text().splitlines() if line.strip()]
    raise FileNotFoundError(f"{src}: not a folder of media or a .txt list of paths")


def curate(
    src: str, out: str | Path, cfg: CurateConfig = CurateConfig(), detector=None, separator=None, progress: bool = True
) -> dict[str, int]:
    """Curate every item of ``src`` into ``out``; returns counts per status / reason. Resumable."""
    from tqdm import tqdm

    items = _inputs(src)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = out / "report.jsonl"
    done = set()
    if report.exists():
        for line in report.read_text().splitlines():
            try:
                done.add(json.loads(line)["path"])
            except (json.JSONDecodeError, KeyError):
                continue  # a line cut by a kill: that item is redone
    with open(report, "a") as rep:
        for path in tqdm(items, desc="curate", unit="item", disable=not progress):
            if path in done:
                continue
            rec = curate_item(path, out, cfg, detector, separator)
            rep.write(json.dumps(rec) + "\n")
            rep.flush()
    counts: dict[str, int] = {}
    for line in report.read_text().splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        key = "kept" if r["status"] == "kept" else f"dropped:{r['reason']}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def _run(a: argparse.Namespace) -> None:
    cfg = CurateConfig(
        min_duration=a.min_duration,
        max_duration=a.max_duration,
        window=a.window,
        silence_db=a.silence_db,
        static_threshold=a.static_threshold,
        music=a.music,
    )
    sep = get_separator(a.separator) if a.music else None
    counts = curate(a.input, a.out, cfg, separator=sep, progress=not a.quiet)
    print(json.dumps({"config": asdict(cfg), "counts": counts}))


def add_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "curate",
        help="stage-1 curation: filter media and cut 10 s windows",
        description=__doc__.split("\n\n")[0] + " Report: OUT/report.jsonl.",
    )
    p.add_argument("input", help="folder of media files or a .txt list of paths")
    p.add_argument("--out", required=True)
    p.add_argument("--min-duration", type=float, default=5.0)
    p.add_argument("--max-duration", type=float, default=1800.0)
    p.add_argument("--window", type=float, default=10.0)
    p.add_argument("--silence-db", type=float, default=-50.0)
    p.add_argument("--static-threshold", type=float, default=1.0)
    p.add_argument("--music", action="store_true", help="video-music source: require music, separate if possible")
    p.add_argument("--separator", default="auto", choices=["auto", "demucs", "none"])
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_run)
