"""Metric math on embeddings / classifier outputs / event lists (no networks here): see docs/metrics.md."""

from audiox.bench.metrics.divergence import inception_score, kl_sigmoid, kl_softmax, pair_by_id
from audiox.bench.metrics.frechet import GaussianStats, frechet_distance, frechet_distance_from_embeddings, gaussian_stats
from audiox.bench.metrics.similarity import cosine_rows, paired_cosine_score
from audiox.bench.metrics.steam import duration_l1, frequency_l1, ordering_error, segment_f1, steam

__all__ = [
    "GaussianStats", "gaussian_stats", "frechet_distance", "frechet_distance_from_embeddings", "kl_softmax",
    "kl_sigmoid", "inception_score", "pair_by_id", "cosine_rows", "paired_cosine_score", "ordering_error",
    "duration_l1", "frequency_l1", "segment_f1", "steam",
]
