"""Condition encoders: T5 text, CLIP video frames, Synchformer-style sync features (paper Sec. VI-A).

Each takes its config dataclass from :mod:`audiox.core.config`, exposes ``out_dim`` and is frozen
(``requires_grad=False``, always in eval mode) when ``cfg.freeze``.
"""

from audiox.core.encoders.sync import SyncEncoder
from audiox.core.encoders.text import TextEncoder
from audiox.core.encoders.video import VideoEncoder

__all__ = ["TextEncoder", "VideoEncoder", "SyncEncoder"]
