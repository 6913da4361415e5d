"""CLAP score with LAION-CLAP through ``transformers.ClapModel`` (paper Sec. VI-B: text-audio alignment).

Audio: mono, resampled to 48 kHz, through ``ClapFeatureExtractor`` (10 s; the checkpoint's truncation mode,
"fusion" for the fused checkpoints); embeddings are ``get_audio_features`` / ``get_text_features`` (the
projected, pre-normalisation vectors); the score is their cosine, averaged over id-paired clips
(:func:`audiox.bench.metrics.paired_cosine_score`). Weights: ``ClapScorer.from_pretrained(local_dir)`` with
the HF-format LAION checkpoint (e.g. ``laion/larger_clap_general`` downloaded beforehand).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from audiox.bench.embeddings.frontend import to_mono_resampled
from audiox.bench.metrics import paired_cosine_score

__all__ = ["ClapScorer", "tiny_clap"]


def _as_tensor(out) -> torch.Tensor:
    """transformers 5 may return a model output instead of a bare tensor; take the pooled embedding."""
    if isinstance(out, torch.Tensor):
        return out
    for name in ("pooler_output", "text_embeds", "audio_embeds"):
        v = getattr(out, name, None)
        if isinstance(v, torch.Tensor):
            return v
    raise TypeError(f"unexpected CLAP output {type(out).__name__}")


class ClapScorer:
    def __init__(self, model, feature_extractor, tokenize: Callable[[Sequence[str]], dict]):
        self.model = model.eval()
        self.fe = feature_extractor
        self.tokenize = tokenize

    @classmethod
    def from_pretrained(cls, path: str, device: str = "cpu") -> ClapScorer:
        from transformers import ClapModel, ClapProcessor

        proc = ClapProcessor.from_pretrained(path, local_files_only=True)
        model = ClapModel.from_pretrained(path, local_files_only=True).to(device)
        return cls(model, proc.feature_extractor,
                   lambda texts: dict(proc.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")))

    @torch.no_grad()
    def audio_embeddings(self, clips: Mapping[str, tuple[np.ndarray, int]]) -> dict[str, np.ndarray]:
        sr = self.fe.sampling_rate
        out = {}
        dev = next(self.model.parameters()).device
        for key, (wav, rate) in clips.items():
            x = to_mono_resampled(wav, rate, sr)
            feats = self.fe([x], sampling_rate=sr, return_tensors="pt")
            kw = {k: v.to(dev) for k, v in feats.items() if k in ("input_features", "is_longer")}
            out[key] = _as_tensor(self.model.get_audio_features(**kw))[0].double().cpu().numpy()
        return out

    @torch.no_grad()
    def text_embeddings(self, texts: Mapping[str, str]) -> dict[str, np.ndarray]:
        keys = list(texts)
        dev = next(self.model.parameters()).device
        tok = {k: v.to(dev) for k, v in self.tokenize([texts[k] for k in keys]).items()}
        emb = _as_tensor(self.model.get_text_features(**tok)).double().cpu().numpy()
        return dict(zip(keys, emb, strict=True))

    def score(self, clips: Mapping[str, tuple[np.ndarray, int]], texts: Mapping[str, str]) -> float:
        """Mean cosine between each clip and its prompt (paired by id)."""
        return paired_cosine_score(self.audio_embeddings(clips), self.text_embeddings(texts))


def tiny_clap() -> ClapScorer:
    """A small random ``ClapModel`` (HTS-AT audio tower, RoBERTa text tower), the real feature extractor at 1 s, and
    a character tokenizer: plumbing checks only (no LAION weights, no BPE vocabulary offline)."""
    from transformers import ClapAudioConfig, ClapConfig, ClapFeatureExtractor, ClapModel, ClapTextConfig

    torch.manual_seed(0)
    cfg = ClapConfig(
        text_config=ClapTextConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=64, max_position_embeddings=40, projection_dim=16),
        audio_config=ClapAudioConfig(depths=(1, 1), num_attention_heads=(2, 2), hidden_size=32,
                                     patch_embeds_hidden_size=16, window_size=4, spec_size=128, projection_dim=16,
                                     num_mel_bins=64),
        projection_dim=16)
    fe = ClapFeatureExtractor(truncation="rand_trunc", max_length_s=1, nb_max_samples=48000)

    def tokenize(texts: Sequence[str]) -> dict:  # <s>=2, pad=1, characters -> 3..42, 20 positions
        ids = torch.tensor([[2] + [3 + (ord(c) % 40) for c in t[:20]] + [1] * (20 - len(t[:20])) for t in texts])
        return {"input_ids": ids, "attention_mask": (ids != 1).long()}

    return ClapScorer(ClapModel(cfg), fe, tokenize)
