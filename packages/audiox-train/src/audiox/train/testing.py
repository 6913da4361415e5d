"""Small deterministic batches for tests and benchmarks (no shards needed)."""

from __future__ import annotations

import math
import os
import shutil
import sys
from pathlib import Path

import torch

from audiox.core.config import AudioXConfig
from audiox.core.types import ConditionInputs
from audiox.data.batch import TrainBatch

__all__ = ["synthetic_batch", "deepspeed_cpu_env", "deepspeed_cpu_missing"]


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


def deepspeed_cpu_missing() -> str | None:
    """Why DeepSpeed cannot run on this CPU (its comm op JIT-compiles with g++ and ninja), or None."""
    has_ninja = shutil.which("ninja") or Path(sys.executable).with_name("ninja").exists()
    if not shutil.which("g++") or not has_ninja:
        return "DeepSpeed's CPU comm op needs g++ and ninja to JIT-compile"
    return None


def deepspeed_cpu_env() -> dict[str, str]:
    """The environment for a DeepSpeed run on CPU over gloo (one extension cache per torch build: a stale lock
    from another build can hang the JIT)."""
    return {
        **os.environ,
        "DS_ACCELERATOR": "cpu",
        "OMP_NUM_THREADS": "1",
        "TORCH_EXTENSIONS_DIR": os.environ.get(
            "TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache" / f"audiox-torch-ext-{torch.__version__.split('+')[0]}")
        ),
    }
