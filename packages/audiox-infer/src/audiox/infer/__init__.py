"""audiox.infer: generate audio and music from text, video, images and audio with a trained AudioX model.

Public API::

    from audiox.infer import AudioXPipeline

    pipe = AudioXPipeline.from_pretrained("path/to/model")      # config.json + model.safetensors
    out = pipe("rain on a tin roof", video="clip.mp4", seed=0)    # task inferred: tv2a
    out.audio, out.sample_rate, out.nfe, out.timings              # (B, C_a, S) float32

Samplers (:mod:`audiox.infer.samplers`): ``EulerSampler`` (teacher, CFG batched, NFE = 2 x steps),
``HeunSampler`` (2nd order), ``TurboSampler`` (the student's denoise-renoise, NFE = steps). Media I/O in
:mod:`audiox.infer.media`; the ``audiox`` command in :mod:`audiox.infer.cli`.
"""

import importlib
from typing import Any

# Names resolve lazily (PEP 562): `audiox --help` and argument errors answer without importing torch.
_EXPORTS = {
    "AudioXPipeline": "audiox.infer.pipeline",
    "AudioXOutput": "audiox.infer.pipeline",
    "ForwardCounter": "audiox.infer.pipeline",
    "infer_task": "audiox.infer.pipeline",
    "parse_spans": "audiox.infer.pipeline",
    "DEFAULT_MODEL_DIR": "audiox.infer.defaults",
    "Sampler": "audiox.infer.samplers",
    "EulerSampler": "audiox.infer.samplers",
    "HeunSampler": "audiox.infer.samplers",
    "TurboSampler": "audiox.infer.samplers",
    "GuidedVelocity": "audiox.infer.samplers",
    "KnownRegion": "audiox.infer.samplers",
    "SAMPLERS": "audiox.infer.samplers",
    "get_sampler": "audiox.infer.samplers",
    "MediaError": "audiox.infer.media",
    "LatencyReport": "audiox.infer.latency",
    "bench_latency": "audiox.infer.latency",
}

__all__ = [*_EXPORTS, "media"]


def __getattr__(name: str) -> Any:
    if name == "media":
        return importlib.import_module("audiox.infer.media")
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'audiox.infer' has no attribute {name!r}")
