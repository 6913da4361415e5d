"""Media in and out: video / image / audio files -> model tensors, and generated audio -> files.

- Video (mp4, mov, mkv, webm, ...; any frame rate, size, length) is decoded once with PyAV and sampled
  (sample-and-hold in time: the frame on screen at ``k / fps``) at every rate the model needs, each frame
  resized (shorter side) and centre-cropped to the encoder's square size: ``(F, 3, H, W)`` float in [0, 1].
- Images (png, jpg, ...) become a static video (the frame repeated).
- Audio (wav, flac, ogg, mp3 via soundfile; anything else with an audio stream via PyAV) is resampled
  with ``scipy.signal.resample_poly`` and mixed to the model's channel count: ``(C_a, S)`` float32.
- Lengths are fitted to the requested duration; a trim or a pad is logged as a warning that says so.
- Outputs are written atomically (a temporary file in the target folder, then ``os.replace``): WAV/FLAC,
  a copy of a video with the generated audio muxed in (AAC), and JSON sidecars.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import av
from av.video.reformatter import VideoReformatter
import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
from scipy.signal import resample_poly
from torch import Tensor

__all__ = [
    "MediaError",
    "FrameSpec",
    "VIDEO_SUFFIXES",
    "IMAGE_SUFFIXES",
    "AUDIO_SUFFIXES",
    "load_audio",
    "resample",
    "mix_channels",
    "fit_length",
    "load_video",
    "load_image",
    "resize_frames",
    "save_audio",
    "mux_audio",
    "write_json",
    "atomic_path",
]

log = logging.getLogger("audiox.infer")

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aac", ".opus")
OUTPUT_AUDIO_FORMATS = {".wav": "WAV", ".flac": "FLAC"}


class MediaError(ValueError):
    """A media file that cannot be used (unreadable, no stream of the needed kind, empty, ...)."""


@dataclass(frozen=True)
class FrameSpec:
    """One frame stream the model needs: ``fps`` frames per second, ``size`` x ``size`` pixels."""

    fps: float
    size: int


def _check_file(path: str | Path, what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise MediaError(f"{what} file not found: {p}")
    if p.stat().st_size == 0:
        raise MediaError(f"{what} file is empty (zero bytes): {p}")
    return p


# Audio -------------------------------------------------------------------------------------------------


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Polyphase resampling along the last axis (``resample_poly`` with the reduced ratio)."""
    if sr_in == sr_out:
        return x
    g = math.gcd(int(sr_in), int(sr_out))
    return resample_poly(x, sr_out // g, sr_in // g, axis=-1)


def mix_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """(C_in, S) -> (channels, S): average to mono, repeat mono, or keep/repeat the first channels."""
    c = x.shape[0]
    if c == channels:
        return x
    if channels == 1:
        return x.mean(axis=0, keepdims=True)
    if c == 1:
        return np.repeat(x, channels, axis=0)
    if c > channels:
        return x[:channels]
    return x[np.arange(channels) % c]


def _decode_audio_pyav(p: Path) -> tuple[np.ndarray, int]:
    try:
        container = av.open(str(p))
    except av.error.FFmpegError as exc:
        raise MediaError(f"cannot read audio from {p}: {exc.__class__.__name__}: {exc}") from None
    with container:
        if not container.streams.audio:
            raise MediaError(f"{p} has no audio stream")
        stream = container.streams.audio[0]
        sr = stream.codec_context.sample_rate or stream.rate
        chunks: list[np.ndarray] = []
        resampler = av.AudioResampler(format="fltp", rate=sr)  # planar float, native layout
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())  # (C, n)
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray())
        except av.error.FFmpegError as exc:
            raise MediaError(f"cannot decode audio in {p}: {exc}") from None
    if not chunks:
        raise MediaError(f"audio in {p} has no samples (zero length)")
    return np.concatenate(chunks, axis=1).astype(np.float64), int(sr)


def load_audio(path: str | Path, sample_rate: int, channels: int) -> Tensor:
    """Read an audio file (or a video's audio stream) as ``(channels, S)`` float32 at ``sample_rate``."""
    p = _check_file(path, "audio")
    try:
        data, sr = sf.read(str(p), dtype="float64", always_2d=True)  # (S, C)
        x = data.T
    except (sf.LibsndfileError, RuntimeError, TypeError):
        x, sr = _decode_audio_pyav(p)
    if x.shape[-1] == 0:
        raise MediaError(f"audio in {p} has no samples (zero length)")
    if not np.isfinite(x).all():
        raise MediaError(f"audio in {p} contains NaN or infinite samples")
    if sr != sample_rate:
        log.info("resampling %s from %d Hz to %d Hz", p.name, sr, sample_rate)
    x = mix_channels(resample(x, sr, sample_rate), channels)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def fit_length(wav: Tensor, num_samples: int, *, what: str, sample_rate: int, align: str = "left") -> Tensor:
    """Trim or zero-pad ``(C, S)`` to ``num_samples``, warning when it does. ``align="right"`` keeps the
    END of a long clip and pads at the start (a music-completion prompt ends where the output begins)."""
    s = wav.shape[-1]
    if s == num_samples:
        return wav
    have, want = s / sample_rate, num_samples / sample_rate
    if s > num_samples:
        log.warning("%s is %.2f s long: trimmed to %s %.2f s", what, have, "the last" if align == "right" else "the first", want)
        return wav[..., s - num_samples:] if align == "right" else wav[..., :num_samples]
    log.warning("%s is %.2f s long: zero-padded to %.2f s (at the %s)", what, have, want,
                "start" if align == "right" else "end")
    pad = (num_samples - s, 0) if align == "right" else (0, num_samples - s)
    return F.pad(wav, pad)


# Video and images ---------------------------------------------------------------------------------------


def resize_frames(frames: Tensor, size: int) -> Tensor:
    """(N, 3, H, W) float -> (N, 3, size, size): shorter side to ``size`` (antialiased), centre crop."""
    n, _, h, w = frames.shape
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    if (nh, nw) != (h, w):
        frames = F.interpolate(frames, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    top, left = (nh - size) // 2, (nw - size) // 2
    return frames[:, :, top: top + size, left: left + size].clamp_(0.0, 1.0)


def _to_tensor(rgb: np.ndarray) -> Tensor:  # (H, W, 3) uint8 -> (1, 3, H, W) float in [0, 1]
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float().div_(255.0)


def load_video(path: str | Path, specs: list[FrameSpec], duration: float) -> list[Tensor]:
    """Decode a video once and sample it at each spec's rate for ``duration`` seconds.

    Returns one ``(round(duration * fps), 3, size, size)`` tensor per spec. A shorter video is padded by
    holding its last frame and a longer one is trimmed; both are logged as warnings.
    """
    p = _check_file(path, "video")
    targets = [[k / s.fps for k in range(max(1, round(duration * s.fps)))] for s in specs]
    out: list[list[Tensor | None]] = [[None] * len(t) for t in targets]
    cursor = [0] * len(specs)
    resized: dict[tuple[int, int], Tensor] = {}  # (frame index, size) -> (3, size, size)

    def frame_at(idx: int, rgb: np.ndarray, size: int) -> Tensor:
        key = (idx, size)
        if key not in resized:
            resized[key] = resize_frames(_to_tensor(rgb), size)[0]
        return resized[key]

    def assign_before(time: float | None, idx: int, rgb: np.ndarray) -> None:
        """Give frame ``idx`` to every pending target earlier than ``time`` (None: all)."""
        for j, spec in enumerate(specs):
            while cursor[j] < len(targets[j]) and (time is None or targets[j][cursor[j]] < time):
                out[j][cursor[j]] = frame_at(idx, rgb, spec.size)
                cursor[j] += 1

    try:
        container = av.open(str(p))
    except av.error.FFmpegError as exc:
        raise MediaError(f"cannot read video {p}: {exc.__class__.__name__}: {exc}") from None
    with container:
        if not container.streams.video:
            raise MediaError(f"{p} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        to_rgb = VideoReformatter()  # one conversion context for the stream (per-frame ones dominate decode time)
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        prev: tuple[int, np.ndarray] | None = None
        t_first: float | None = None
        last_time = 0.0
        longer = False
        try:
            for i, frame in enumerate(container.decode(stream)):
                ft = frame.time if frame.time is not None else i / rate
                t_first = ft if t_first is None else t_first
                ft -= t_first
                rgb = to_rgb.reformat(frame, format="rgb24").to_ndarray()  # (H, W, 3) uint8
                if prev is not None:
                    assign_before(ft, *prev)
                prev, last_time = (i, rgb), ft
                if ft >= duration:
                    longer = True
                    break
                if len(resized) > 64:  # only the held frame can be needed again; it is recomputed if so
                    resized.clear()
        except av.error.FFmpegError as exc:
            raise MediaError(f"cannot decode video {p}: {exc}") from None
    if prev is None:
        raise MediaError(f"video {p} has no frames (zero length)")
    video_len = last_time + 1.0 / rate
    if longer:
        log.warning("video %s is longer than %.2f s: trimmed to the first %.2f s", p.name, duration, duration)
    elif video_len + 1e-6 < duration:
        log.warning("video %s is %.2f s long: padded to %.2f s by holding its last frame", p.name, video_len, duration)
    assign_before(None, *prev)
    return [torch.stack(frames) for frames in out]  # type: ignore[arg-type]


def load_image(path: str | Path, specs: list[FrameSpec], duration: float) -> list[Tensor]:
    """A still image as a static video: the frame repeated ``round(duration * fps)`` times per spec."""
    from PIL import Image, UnidentifiedImageError

    p = _check_file(path, "image")
    try:
        with Image.open(p) as im:
            rgb = np.array(im.convert("RGB"))  # a writable copy
    except (UnidentifiedImageError, OSError) as exc:
        raise MediaError(f"cannot read image {p}: {exc}") from None
    frame = _to_tensor(rgb)
    return [resize_frames(frame, s.size).expand(max(1, round(duration * s.fps)), -1, -1, -1).clone() for s in specs]


# Outputs ------------------------------------------------------------------------------------------------


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` (same suffix); it replaces ``target`` only on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600 files; outputs get the usual permissions
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def save_audio(path: str | Path, wav: Tensor, sample_rate: int) -> Path:
    """Write ``(C, S)`` audio (clipped to [-1, 1]) as 16-bit PCM WAV or FLAC (by suffix), atomically."""
    path = Path(path)
    fmt = OUTPUT_AUDIO_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise MediaError(f"output must end in .wav or .flac, got {path.name}")
    x = wav.detach().double().clamp(-1.0, 1.0).cpu().numpy().T  # (S, C)
    data = np.round(x * 32767.0).astype(np.int16)  # our own rounding: libsndfile's differs between WAV and FLAC
    with atomic_path(path) as tmp:
        sf.write(str(tmp), data, sample_rate, format=fmt, subtype="PCM_16")
    return path


def mux_audio(video_path: str | Path, wav: Tensor, sample_rate: int, out_path: str | Path) -> Path:
    """Copy the video stream of ``video_path`` (no re-encode) and add ``wav`` (C, S) as an AAC track."""
    vp = _check_file(video_path, "video")
    out_path = Path(out_path)
    x = wav.detach().float().clamp(-1.0, 1.0).cpu().numpy().astype(np.float32)  # (C, S)
    layout = "mono" if x.shape[0] == 1 else "stereo"
    x = x[:2]
    with atomic_path(out_path) as tmp:
        with av.open(str(vp)) as src, av.open(str(tmp), mode="w") as dst:
            if not src.streams.video:
                raise MediaError(f"{vp} has no video stream to mux into")
            v_in = src.streams.video[0]
            v_out = dst.add_stream_from_template(v_in)
            a_out = dst.add_stream("aac", rate=sample_rate, layout=layout)
            for packet in src.demux(v_in):
                if packet.dts is None:
                    continue
                packet.stream = v_out
                dst.mux(packet)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x), format="fltp", layout=layout)
            frame.sample_rate = sample_rate
            frame.pts = 0
            for packet in a_out.encode(frame):
                dst.mux(packet)
            for packet in a_out.encode(None):
                dst.mux(packet)
    return out_path


def write_json(path: str | Path, data: dict[str, Any]) -> Path:
    """Write a JSON sidecar atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    return path
