"""Small deterministic batches for tests and benchmarks (no shards needed)."""

from __future__ import annotations

import math

import torch

from audiox.core.config import AudioXConfig
from audiox.core.types import ConditionInputs
from audiox.data.batch import TrainBatch

__all__ = ["synthetic_batch"]


def synthetic_batch(cfg: AudioXConfig, batch_size: int = 4, seed: int = 0, with_video: bool = True,
                    with_audio_prompt: bool = False) -> TrainBatch:
    """Tones at per-sample frequencies with matching captions: a learnable text -> audio mapping."""
    g = torch.Generator().manual_seed(seed)
    sr, n = cfg.autoencoder.sample_rate, cfg.num_samples
    t = torch.arange(n) / sr
    freqs = [220.0 * 2 ** (i / 3) for i in range(batch_size)]
    audio = torch.stack([0.5 * torch.sin(2 * math.pi * f * t) for f in freqs])[:, None].repeat(1, cfg.autoencoder.audio_channels, 1)
    video = torch.rand(batch_size, cfg.video_frames, 3, cfg.video.image_size, cfg.video.image_size, generator=g) if with_video else None
    inputs = ConditionInputs(
        text=[f"a steady tone at {f:.0f} hertz" for f in freqs],
        task=["tv2a" if with_video else "t2a"] * batch_size,
        video=video,
        audio=(0.1 * torch.randn(batch_size, cfg.autoencoder.audio_channels, n, generator=g)) if with_audio_prompt else None,
    )
    return TrainBatch(audio=audio, inputs=inputs, keys=[f"tone-{i}" for i in range(batch_size)])
