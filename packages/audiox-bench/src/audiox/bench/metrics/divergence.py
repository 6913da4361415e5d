"""KL divergence (paired by id) and Inception Score on classifier outputs (PANNs CNN14 logits).

Conventions follow audioldm_eval (used by AudioLDM, Make-An-Audio, AudioX):

* KL, softmax variant: ``p = softmax(logits_ref)``, ``q = softmax(logits_gen)``,
  ``KL = mean_pairs sum_c p_c (log p_c - log(q_c + eps))`` with ``eps = 1e-6``: KL(reference || generated),
  computed by ``torch.nn.functional.kl_div((q + eps).log(), p, reduction="sum") / N`` there.
* KL, sigmoid variant: the same sum with ``p = sigmoid(logits_ref)``, ``q = sigmoid(logits_gen)`` (the 527
  multi-label probabilities, not renormalised; AudioSet tagging is multi-label).
* Pairing: a generated clip is compared with the reference clip that has the same id (file stem); ids
  present on only one side are an error (audioldm_eval falls back to "unpaired" mode and reports -1).
* IS: ``exp(E_x KL(p(y|x) || p(y)))`` on softmax of the logits, over 10 splits after a fixed permutation
  (seed 2020, as torch-fidelity / audioldm_eval); reports mean and std over splits.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["pair_by_id", "kl_softmax", "kl_sigmoid", "inception_score", "softmax", "sigmoid", "EPS"]

EPS = 1e-6


def softmax(logits: np.ndarray) -> np.ndarray:
    x = np.asarray(logits, np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64)))


def pair_by_id(ref: Mapping[str, np.ndarray], gen: Mapping[str, np.ndarray]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Stack ``ref`` and ``gen`` rows in the same (sorted) id order; ids must match exactly."""
    missing_gen, missing_ref = sorted(set(ref) - set(gen)), sorted(set(gen) - set(ref))
    if missing_gen or missing_ref:
        raise ValueError(f"ids not paired: missing in generated {missing_gen[:5]}, missing in reference {missing_ref[:5]}")
    ids = sorted(ref)
    if not ids:
        raise ValueError("no ids to pair")
    return ids, np.stack([np.asarray(ref[i], np.float64) for i in ids]), np.stack([np.asarray(gen[i], np.float64) for i in ids])


def _kl_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per-row sum_c p (log p - log(q + eps)), with 0 log 0 = 0 (as torch's kl_div)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return (plogp - p * np.log(q + EPS)).sum(axis=-1)


def kl_softmax(ref_logits: Mapping[str, np.ndarray], gen_logits: Mapping[str, np.ndarray]) -> float:
    """KL(reference || generated) of softmax class distributions, mean over id-paired clips."""
    _, r, g = pair_by_id(ref_logits, gen_logits)
    return float(_kl_rows(softmax(r), softmax(g)).mean())


def kl_sigmoid(ref_logits: Mapping[str, np.ndarray], gen_logits: Mapping[str, np.ndarray]) -> float:
    """The audioldm_eval "KL_Sigmoid": the same sum on per-class sigmoid probabilities."""
    _, r, g = pair_by_id(ref_logits, gen_logits)
    return float(_kl_rows(sigmoid(r), sigmoid(g)).mean())


def inception_score(logits: np.ndarray, splits: int = 10, seed: int = 2020) -> tuple[float, float]:
    """(mean, std) of exp(E_x KL(p(y|x) || p(y))) over ``splits`` chunks of a seeded permutation."""
    x = np.asarray(logits, np.float64)
    if x.ndim != 2 or x.shape[0] < splits:
        raise ValueError(f"need logits (N >= splits={splits}, C), got {x.shape}")
    x = x[np.random.RandomState(seed).permutation(x.shape[0])]
    p = softmax(x)
    log_p = np.log(np.clip(p, 1e-300, None))
    scores = []
    for chunk, logc in zip(np.array_split(p, splits), np.array_split(log_p, splits), strict=True):
        py = chunk.mean(axis=0, keepdims=True)
        kl = (chunk * (logc - np.log(py))).sum(axis=1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))
