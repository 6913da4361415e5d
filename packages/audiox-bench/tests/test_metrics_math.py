"""Metric math against independent computations (closed forms, hand-made distributions, scipy)."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from audiox.bench.metrics import (
    duration_l1, frechet_distance, frequency_l1, gaussian_stats, inception_score, kl_sigmoid, kl_softmax,
    ordering_error, paired_cosine_score, segment_f1,
)


def _rand_spd(rng, d, scale=1.0):
    a = rng.standard_normal((d, d))
    return scale * (a @ a.T / d + 0.1 * np.eye(d))


def test_frechet_commuting_closed_form():
    # Commuting covariances S1 = Q diag(a) Q^T, S2 = Q diag(b) Q^T: Tr sqrt(S1 S2) = sum sqrt(a b),
    # so d^2 = |mu1-mu2|^2 + sum (sqrt a - sqrt b)^2.
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    a, b = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    d = frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
    want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert d == pytest.approx(want, rel=1e-10)


def test_frechet_general_matches_scipy_sqrtm_and_is_zero_on_self():
    rng = np.random.default_rng(1)
    s1, s2 = _rand_spd(rng, 8), _rand_spd(rng, 8, 2.0)
    mu1, mu2 = rng.standard_normal(8), rng.standard_normal(8)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    want = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(np.real(covmean))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-8)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-9)
    # 1-D: (mu1-mu2)^2 + (sigma1 - sigma2)^2
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4 + 1)


def test_frechet_singular_covariances_are_finite_and_real():
    # Fewer samples than dimensions: rank-deficient covariances, where sqrtm(S1 S2) goes complex / non-finite.
    rng = np.random.default_rng(2)
    e1, e2 = rng.standard_normal((5, 32)), rng.standard_normal((5, 32)) + 1.0
    a, b = gaussian_stats(e1), gaussian_stats(e2)
    d = frechet_distance(a.mu, a.sigma, b.mu, b.sigma)
    assert np.isfinite(d) and d > np.sum((a.mu - b.mu) ** 2) * 0.5
    assert frechet_distance(a.mu, a.sigma, a.mu, a.sigma) == pytest.approx(0.0, abs=1e-8)


def test_frechet_of_sampled_gaussians_converges_to_truth():
    rng = np.random.default_rng(3)
    s1, s2 = _rand_spd(rng, 4), _rand_spd(rng, 4)
    mu1, mu2 = np.zeros(4), np.ones(4)
    x1 = rng.multivariate_normal(mu1, s1, 20000)
    x2 = rng.multivariate_normal(mu2, s2, 20000)
    a, b = gaussian_stats(x1), gaussian_stats(x2)
    assert frechet_distance(a.mu, a.sigma, b.mu, b.sigma) == pytest.approx(frechet_distance(mu1, s1, mu2, s2), rel=0.05)


def test_kl_softmax_hand_made_and_direction():
    ref = {"a": np.log([0.5, 0.25, 0.25]), "b": np.log([0.1, 0.1, 0.8])}
    gen = {"b": np.log([1 / 3, 1 / 3, 1 / 3]), "a": np.log([0.25, 0.5, 0.25])}
    kl_a = 0.5 * math.log(0.5 / (0.25 + 1e-6)) + 0.25 * math.log(0.25 / (0.5 + 1e-6)) + 0.25 * math.log(0.25 / (0.25 + 1e-6))
    kl_b = sum(p * math.log(p / (1 / 3 + 1e-6)) for p in (0.1, 0.1, 0.8))
    assert kl_softmax(ref, gen) == pytest.approx((kl_a + kl_b) / 2, rel=1e-9)
    # KL(ref || gen) != KL(gen || ref): the direction matters
    assert kl_softmax(gen, ref) != pytest.approx(kl_softmax(ref, gen), rel=1e-3)


def test_kl_matches_torch_kl_div_convention_both_variants():
    rng = np.random.default_rng(4)
    r, g = rng.standard_normal((7, 527)), rng.standard_normal((7, 527))
    ids = [f"clip{i}" for i in range(7)]
    ref, gen = dict(zip(ids, r)), dict(zip(reversed(ids), g[::-1]))  # different insertion order: paired by id
    tr, tg = torch.tensor(r), torch.tensor(g)
    want_sm = torch.nn.functional.kl_div((tg.softmax(1) + 1e-6).log(), tr.softmax(1), reduction="sum") / 7
    want_sg = torch.nn.functional.kl_div((tg.sigmoid() + 1e-6).log(), tr.sigmoid(), reduction="sum") / 7
    assert kl_softmax(ref, gen) == pytest.approx(want_sm.item(), rel=1e-9)
    assert kl_sigmoid(ref, gen) == pytest.approx(want_sg.item(), rel=1e-9)


def test_kl_requires_pairing_by_id():
    with pytest.raises(ValueError, match="not paired"):
        kl_softmax({"a": np.zeros(3)}, {"b": np.zeros(3)})


def test_inception_score_extremes_and_hand_value():
    # confident, uniformly spread over C classes -> IS = C; identical predictions -> IS = 1
    c = 5
    confident = np.tile(np.eye(c) * 60.0, (20, 1))  # 100 rows, one-hot-like
    assert inception_score(confident, splits=1)[0] == pytest.approx(c, rel=1e-6)
    # 10 splits of the seed-2020 permutation: per split, exp(entropy of the class histogram)
    perm = np.random.RandomState(2020).permutation(100)
    per_split = []
    for chunk in np.array_split(perm % c, 10):
        h = np.bincount(chunk, minlength=c) / len(chunk)
        per_split.append(math.exp(-sum(x * math.log(x) for x in h if x > 0)))
    mean, std = inception_score(confident, splits=10)
    assert mean == pytest.approx(np.mean(per_split), rel=1e-6) and std == pytest.approx(np.std(per_split), rel=1e-5)
    assert inception_score(np.zeros((50, c)), splits=10)[0] == pytest.approx(1.0)
    # hand value with one split: rows p1=[.9,.1], p2=[.1,.9] -> py=[.5,.5], KL = .9 ln 1.8 + .1 ln .2
    logits = np.log(np.array([[0.9, 0.1], [0.1, 0.9]]))
    want = math.exp(0.9 * math.log(1.8) + 0.1 * math.log(0.2))
    assert inception_score(logits, splits=1)[0] == pytest.approx(want, rel=1e-9)


def test_paired_cosine():
    a = {"x": np.array([1.0, 0.0]), "y": np.array([1.0, 1.0])}
    p = {"x": np.array([0.0, 2.0]), "y": np.array([3.0, 3.0])}
    assert paired_cosine_score(a, p) == pytest.approx(0.5)


def _ev(name, on, off):
    return {"name": name, "onset": on, "offset": off}


def test_steam_hand_made():
    spec = [[_ev("bell", 1, 2), _ev("beep", 3, 3.5)], [_ev("clap", 1, 1.1), _ev("clap", 2, 2.1), _ev("clap", 3, 3.1)]]
    good = [[_ev("bell", 1.1, 2.0), _ev("beep", 3.0, 3.5)], [_ev("clap", 1, 1.1), _ev("clap", 2, 2.1)]]
    swapped = [[_ev("beep", 1, 1.5), _ev("bell", 3, 4)], spec[1]]
    assert ordering_error(spec, good) == 0.0
    assert ordering_error(spec, swapped) == 0.5
    assert duration_l1(spec, good) == pytest.approx((0.1 / 2 + 0.1) / 2)  # clip 1: bell 0.1 off; clip 2: 0.3 vs 0.2
    assert frequency_l1(spec, good) == pytest.approx(0.5)  # clip 2 misses one clap
    # 1 s segments: clip 1 ref {(1,bell),(3,beep)}, est same -> TP 2; clip 2 ref {1,2,3} est {1,2} -> TP 2 FN 1
    assert segment_f1(spec, good, duration=10.0) == pytest.approx(2 * 4 / (2 * 4 + 0 + 1))
    assert segment_f1(spec, spec, duration=10.0) == 1.0
