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

from audiox.infer import media
from audiox.infer.media import MediaError
from audiox.infer.pipeline import (
    DEFAULT_MODEL_DIR,
    AudioXOutput,
    AudioXPipeline,
    ForwardCounter,
    infer_task,
    parse_spans,
)
from audiox.infer.samplers import (
    SAMPLERS,
    EulerSampler,
    GuidedVelocity,
    HeunSampler,
    KnownRegion,
    Sampler,
    TurboSampler,
    get_sampler,
)

__all__ = [
    "AudioXPipeline",
    "AudioXOutput",
    "ForwardCounter",
    "DEFAULT_MODEL_DIR",
    "infer_task",
    "parse_spans",
    "Sampler",
    "EulerSampler",
    "HeunSampler",
    "TurboSampler",
    "GuidedVelocity",
    "KnownRegion",
    "SAMPLERS",
    "get_sampler",
    "media",
    "MediaError",
]
