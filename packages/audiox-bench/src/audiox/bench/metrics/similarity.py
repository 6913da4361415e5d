"""Cosine alignment scores: CLAP score (text-audio) and ImageBind AV score (video-audio).

Both are the mean over id-paired clips of ``cos(e_a, e_b) = <e_a, e_b> / (||e_a|| ||e_b||)`` between the
audio embedding and the prompt's (text or video) embedding, as LAION-CLAP / ImageBind evaluation scripts
compute it (the embeddings are L2-normalised, then dot product; no logit scale, no clipping at 0).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from audiox.bench.metrics.divergence import pair_by_id

__all__ = ["cosine_rows", "paired_cosine_score"]


def cosine_rows(a: np.ndarray, b: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    na = np.maximum(np.linalg.norm(a, axis=-1), eps)
    nb = np.maximum(np.linalg.norm(b, axis=-1), eps)
    return (a * b).sum(-1) / (na * nb)


def paired_cosine_score(audio: Mapping[str, np.ndarray], prompt: Mapping[str, np.ndarray]) -> float:
    """Mean cosine similarity between audio and prompt embeddings paired by id (CLAP / ImageBind score)."""
    _, a, p = pair_by_id(audio, prompt)
    return float(cosine_rows(a, p).mean())
