"""Video for the synthetic world: each event occurrence is a per-category shape and colour drawn
while it sounds (so a video-to-audio model can learn *what* and *when*); music shows its instrument's
shape, with brightness following the loudness of the music."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from audiox.data.synth.events import EVENTS
from audiox.data.synth.music import INSTRUMENTS

if TYPE_CHECKING:
    from audiox.data.synth.world import ClipSpec, SynthConfig

__all__ = ["BACKGROUND", "render_frames", "shape_mask"]

BACKGROUND = (24, 24, 32)


@lru_cache(maxsize=64)
def shape_mask(shape: str, size: int) -> np.ndarray:
    """(size, size) bool mask of a named shape on a [-1, 1]^2 grid."""
    g = (np.arange(size) + 0.5) / size * 2 - 1
    v, u = np.meshgrid(g, g, indexing="ij")  # v: rows (down), u: columns
    r = np.hypot(u, v)
    masks = {
        "square": (np.abs(u) < 0.8) & (np.abs(v) < 0.8),
        "square_outline": (np.maximum(np.abs(u), np.abs(v)) < 0.9) & (np.maximum(np.abs(u), np.abs(v)) > 0.55),
        "circle": r < 0.85,
        "ring": (r > 0.5) & (r < 0.9),
        "dot": r < 0.4,
        "triangle": (v < 0.8) & (np.abs(u) < (v + 0.9) / 1.7 * 0.9),
        "bar_h": np.abs(v) < 0.3,
        "bar_v": np.abs(u) < 0.3,
        "cross": (np.abs(u) < 0.22) | (np.abs(v) < 0.22),
        "diamond": np.abs(u) + np.abs(v) < 0.9,
        "stripes": (np.floor((v + 1) * 4) % 2 == 0),
        "rain": (np.abs(((u + 1) * 3) % 1 - 0.5) < 0.15) & (np.abs(((v + 1) * 2 + (u > 0) * 0.5) % 1 - 0.5) < 0.3),
        "wave": np.abs(v - 0.4 * np.sin(np.pi * 1.5 * u)) < 0.2,
    }
    if shape not in masks:
        raise ValueError(f"unknown shape {shape!r}")
    return masks[shape]


def _draw(
    frame: np.ndarray, shape: str, colour: tuple[int, int, int], x: float, y: float, size: int, gain: float = 1.0
) -> None:
    h, w, _ = frame.shape
    m = shape_mask(shape, size)
    top = int(round(y * h - size / 2))
    left = int(round(x * w - size / 2))
    top, left = max(0, min(h - size, top)), max(0, min(w - size, left))
    region = frame[top : top + size, left : left + size]
    region[m] = (np.asarray(colour, dtype=np.float32) * gain + np.asarray(BACKGROUND) * (1 - gain)).astype(np.uint8)


def render_frames(spec: ClipSpec, audio: np.ndarray, cfg: SynthConfig) -> np.ndarray:
    """(F, H, W, 3) uint8 frames at ``cfg.fps`` covering ``cfg.duration``; frame k shows time k / fps."""
    n_frames = int(round(cfg.duration * cfg.fps))
    size = cfg.image_size
    frames = np.empty((n_frames, size, size, 3), dtype=np.uint8)
    frames[:] = BACKGROUND
    shape_px = max(4, size * 3 // 8)
    if spec.music is not None:
        _, shape, colour, _ = INSTRUMENTS[spec.music.instrument]
        hop = cfg.sample_rate / cfg.fps
        rms = np.array(
            [np.sqrt(np.mean(audio[int(k * hop) : int((k + 1) * hop)] ** 2) + 1e-12) for k in range(n_frames)]
        )
        gain = np.clip(rms / (rms.max() + 1e-9), 0.15, 1.0)
        for k in range(n_frames):
            _draw(frames[k], shape, colour, 0.5, 0.5, int(shape_px * (1 + 0.5 * gain[k])) // 1, float(gain[k]))
        return frames
    times = np.arange(n_frames) / cfg.fps
    for e in spec.events:
        cat = EVENTS[e.name]
        active = np.nonzero((times >= e.onset - 0.5 / cfg.fps) & (times < e.offset))[0]
        if len(active) == 0:  # very short events still show on the frame nearest their onset
            active = [min(n_frames - 1, int(round(e.onset * cfg.fps)))]
        for k in active:
            _draw(frames[k], cat.shape, cat.colour, e.x, e.y, shape_px)
    return frames
