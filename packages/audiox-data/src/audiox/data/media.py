"""Media bytes in and out: FLAC (soundfile) and H.264 MP4 (PyAV), plus resampling and frame sampling."""

from __future__ import annotations

import io
from fractions import Fraction

import av
from av.video.reformatter import VideoReformatter
import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

__all__ = ["decode_audio", "decode_video", "encode_flac", "encode_mp4", "probe_duration", "resample"]


def encode_flac(audio: np.ndarray, sample_rate: int) -> bytes:
    """(S,) or (S, C) float in [-1, 1] -> 16-bit FLAC bytes (deterministic)."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(audio, -1, 1), sample_rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def decode_audio(data: bytes) -> tuple[np.ndarray, int]:
    """Audio bytes (FLAC/WAV/OGG) -> ((C, S) float32, sample rate)."""
    x, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return np.ascontiguousarray(x.T), int(sr)


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Polyphase resampling along the last axis."""
    if sr_in == sr_out:
        return x
    f = Fraction(sr_out, sr_in)
    return resample_poly(x, f.numerator, f.denominator, axis=-1).astype(np.float32)


def encode_mp4(frames: np.ndarray, fps: float, crf: int = 23) -> bytes:
    """(F, H, W, 3) uint8 -> H.264 MP4 bytes (single-threaded encoder: same frames give the same bytes)."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        stream.options = {"crf": str(crf), "preset": "veryfast", "threads": "1"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def decode_video(data: bytes | str, max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """MP4 bytes or path -> ((F, H, W, 3) uint8, fps). Raises on a missing or broken video stream."""
    src = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    with av.open(src) as f:
        if not f.streams.video:
            raise ValueError("no video stream")
        vs = f.streams.video[0]
        fps = float(vs.average_rate or vs.guessed_rate or 25)
        frames = []
        # one reformatter for the whole stream: its conversion context is built once, not per frame (the same
        # swscale output, bit for bit, 5-8x faster on the small synthetic-world frames)
        rgb = VideoReformatter()
        for frame in f.decode(video=0):
            frames.append(rgb.reformat(frame, format="rgb24").to_ndarray())
            if max_frames is not None and len(frames) >= max_frames:
                break
    if not frames:
        raise ValueError("video stream has no decodable frames")
    return np.stack(frames), fps


def probe_duration(path: str) -> float | None:
    """Container duration in seconds, or None if unknown."""
    with av.open(path) as f:
        if f.duration is not None:
            return f.duration / 1e6
    return None
