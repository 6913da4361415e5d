"""Frechet distance between Gaussians fitted to embeddings (FD with PANNs, FAD with VGGish).

    d^2 = ||mu_1 - mu_2||^2 + Tr(S_1) + Tr(S_2) - 2 Tr((S_1 S_2)^{1/2})            (Frechet / FID formula)

The reference implementations (FAD of Kilgour et al., audioldm_eval, pytorch-fid) call
``scipy.linalg.sqrtm(S_1 @ S_2)``, add ``eps * I`` when the result is not finite, and drop an imaginary part
below a tolerance. ``sqrtm`` of a non-symmetric product is fragile (complex output for near-singular
covariances; scipy 1.12-1.13 changed its return/``disp`` behaviour). We compute the same trace without it:
``Tr((S_1 S_2)^{1/2}) = Tr((A S_2 A)^{1/2})`` with ``A = S_1^{1/2}`` (same eigenvalues, as ``S_1 S_2`` is
similar to ``A S_2 A``), and ``A S_2 A`` is symmetric PSD, so ``eigh`` gives real eigenvalues; negative
round-off is clipped to zero. Everything is float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["GaussianStats", "gaussian_stats", "frechet_distance", "frechet_distance_from_embeddings"]


@dataclass(frozen=True)
class GaussianStats:
    mu: np.ndarray  # (D,) float64
    sigma: np.ndarray  # (D, D) float64, unbiased (ddof=1) as np.cov / the reference implementations
    n: int


def gaussian_stats(emb: np.ndarray) -> GaussianStats:
    """Mean and unbiased covariance of embeddings ``(N, D)`` (N >= 2), in float64."""
    x = np.asarray(emb, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need embeddings of shape (N >= 2, D), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("embeddings contain NaN or inf")
    return GaussianStats(x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1]), x.shape[0])


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix via eigh (negative round-off clipped)."""
    s = (s + s.T) / 2
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Squared Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (float64, eigen-based)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}")
    a = _psd_sqrt(s1)
    m = a @ ((s2 + s2.T) / 2) @ a
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(ev, 0.0, None)).sum())
    diff = mu1 - mu2
    d = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)
    return max(d, 0.0)  # round-off can make identical distributions slightly negative


def frechet_distance_from_embeddings(emb1: np.ndarray, emb2: np.ndarray) -> float:
    a, b = gaussian_stats(emb1), gaussian_stats(emb2)
    return frechet_distance(a.mu, a.sigma, b.mu, b.sigma)
