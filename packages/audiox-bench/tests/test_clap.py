"""CLAP score plumbing with a tiny random transformers.ClapModel (offline)."""

import numpy as np
import pytest
import torch

from audiox.bench.embeddings.clap import ClapScorer


@pytest.fixture(scope="module")
def scorer():
    from transformers import ClapAudioConfig, ClapConfig, ClapFeatureExtractor, ClapModel, ClapTextConfig

    torch.manual_seed(0)
    cfg = ClapConfig(
        text_config=ClapTextConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=64, max_position_embeddings=40, projection_dim=16),
        audio_config=ClapAudioConfig(depths=(1, 1), num_attention_heads=(2, 2), hidden_size=32, patch_embeds_hidden_size=16,
                                     window_size=4, spec_size=128, projection_dim=16, num_mel_bins=64),
        projection_dim=16)
    fe = ClapFeatureExtractor(truncation="rand_trunc", max_length_s=1, nb_max_samples=48000)

    def tokenize(texts):
        ids = torch.tensor([[2] + [3 + (ord(c) % 40) for c in t[:20]] + [1] * (20 - len(t[:20])) for t in texts])
        return {"input_ids": ids, "attention_mask": (ids != 1).long()}

    return ClapScorer(ClapModel(cfg), fe, tokenize)


def test_clap_score_pairs_by_id_and_equals_manual_cosine(scorer):
    sr = 16000
    t = np.arange(sr) / sr
    clips = {"a": (np.sin(2 * np.pi * 440 * t).astype(np.float32), sr), "b": (0.1 * np.random.default_rng(0).standard_normal(sr).astype(np.float32), sr)}
    texts = {"b": "rain on a roof", "a": "a pure tone"}
    ea, et = scorer.audio_embeddings(clips), scorer.text_embeddings(texts)
    assert ea["a"].shape == (16,) and et["a"].shape == (16,)
    manual = np.mean([ea[k] @ et[k] / np.linalg.norm(ea[k]) / np.linalg.norm(et[k]) for k in ("a", "b")])
    assert scorer.score(clips, texts) == pytest.approx(manual, rel=1e-9)
    swapped = {"a": texts["b"], "b": texts["a"]}
    assert scorer.score(clips, swapped) != pytest.approx(manual, rel=1e-6)
