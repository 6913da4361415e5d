"""ImageBind audio and vision towers in a reduced, configurable form (the ImageBind AV score).

Follows ImageBind's (Girdhar et al., 2023) conventions: audio at 16 kHz, ``clips`` (3) windows of 2 s spread
uniformly over the clip, 128-bin log-mel (25 ms / 10 ms; Kaldi-fbank-like: DC removal, pre-emphasis 0.97,
HTK mel, ``log(mel + 1e-6)``, no dither), 204 frames, normalised with ImageBind's mean -4.268 / std 9.138,
16x16 patches with stride 10, a pre-norm ViT with a CLS token, head = LayerNorm -> CLS -> Linear (no bias),
then L2 normalisation; the clip embedding is the mean over windows. Vision: 224 px frames normalised with
CLIP's mean/std, 14 px patches (the published tower inflates them to 2-frame tubelets), the same ViT/head; a
video's embedding is the mean over its frames. The AV score is the cosine of the two, averaged over
id-paired clips (:func:`audiox.bench.metrics.paired_cosine_score`).

Widths and depths are configurable (the published model: audio 768 x 12, vision 1280 x 32, embed 1024).
Loading the published checkpoint needs a key map from its ``modality_trunks.*`` names that is not written
yet: with this module, the AV score is plumbing-tested only (see docs/metrics.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from audiox.bench.embeddings.frontend import mel_filterbank, to_mono_resampled

__all__ = ["ImageBindConfig", "ImageBindAV"]


@dataclass(frozen=True)
class ImageBindConfig:
    embed_dim: int = 1024
    audio_width: int = 768
    audio_depth: int = 12
    audio_heads: int = 12
    vision_width: int = 1280
    vision_depth: int = 32
    vision_heads: int = 16
    image_size: int = 224
    patch: int = 14
    sample_rate: int = 16000
    clip_seconds: float = 2.0
    clips: int = 3
    n_mels: int = 128
    frames: int = 204
    audio_patch: int = 16
    audio_stride: int = 10


class _Tower(nn.Module):
    def __init__(self, width: int, depth: int, heads: int, n_tokens: int, embed_dim: int):
        super().__init__()
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.pos = nn.Parameter(torch.randn(1, n_tokens + 1, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, embed_dim, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (B, L, W) -> (B, E) unit norm
        x = torch.cat([self.cls.expand(tokens.shape[0], -1, -1), tokens], dim=1) + self.pos
        x = self.norm(self.blocks(x))
        return F.normalize(self.head(x[:, 0]), dim=-1)


class ImageBindAV(nn.Module):
    def __init__(self, cfg: ImageBindConfig = ImageBindConfig()):
        super().__init__()
        self.cfg = cfg
        c = cfg
        self.audio_stem = nn.Conv2d(1, c.audio_width, c.audio_patch, stride=c.audio_stride, bias=False)
        na = ((c.n_mels - c.audio_patch) // c.audio_stride + 1) * ((c.frames - c.audio_patch) // c.audio_stride + 1)
        self.audio = _Tower(c.audio_width, c.audio_depth, c.audio_heads, na, c.embed_dim)
        self.vision_stem = nn.Conv2d(3, c.vision_width, c.patch, stride=c.patch, bias=False)
        self.vision = _Tower(c.vision_width, c.vision_depth, c.vision_heads, (c.image_size // c.patch) ** 2, c.embed_dim)
        self.register_buffer("melW", mel_filterbank(c.sample_rate, 512, c.n_mels, 20.0, c.sample_rate / 2, htk=True), persistent=False)
        self.register_buffer("img_mean", torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("img_std", torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1), persistent=False)
        self.eval()

    def fbank(self, wav: torch.Tensor) -> torch.Tensor:
        """(S,) 16 kHz -> (frames, n_mels) normalised log-mel, padded / cropped to ``frames``."""
        frames = wav.unfold(0, 400, 160)  # 25 ms / 10 ms
        frames = frames - frames.mean(1, keepdim=True)
        frames = torch.cat([frames[:, :1], frames[:, 1:] - 0.97 * frames[:, :-1]], 1)
        win = torch.hann_window(400, periodic=False, device=wav.device) ** 0.85  # Povey window
        power = torch.fft.rfft(frames * win, n=512).abs() ** 2
        logmel = torch.log(power @ self.melW.T + 1e-6)
        logmel = F.pad(logmel, (0, 0, 0, max(0, self.cfg.frames - logmel.shape[0])))[: self.cfg.frames]
        return (logmel - (-4.268)) / (9.138 * 2)  # AudioSet statistics, as ImageBind's data.py

    @torch.no_grad()
    def embed_audio(self, audio: np.ndarray | torch.Tensor, sample_rate: int) -> torch.Tensor:
        c = self.cfg
        x = torch.from_numpy(to_mono_resampled(audio, sample_rate, c.sample_rate)).to(self.melW.device)
        n = int(c.clip_seconds * c.sample_rate)
        if x.numel() < n:
            x = F.pad(x, (0, n - x.numel()))
        starts = np.linspace(0, x.numel() - n, c.clips).astype(int)
        mels = torch.stack([self.fbank(x[s : s + n]).T for s in starts]).unsqueeze(1)  # (K, 1, M, T)
        tok = rearrange(self.audio_stem(mels), "K W H T -> K (H T) W")
        return F.normalize(self.audio(tok).mean(0), dim=-1)  # (E,)

    @torch.no_grad()
    def embed_video(self, frames: torch.Tensor) -> torch.Tensor:
        """(F, 3, H, W) in [0, 1] -> (E,) mean of per-frame embeddings."""
        x = F.interpolate(frames.float().to(self.img_mean.device), size=(self.cfg.image_size,) * 2, mode="bilinear",
                          align_corners=False, antialias=True)
        tok = rearrange(self.vision_stem((x - self.img_mean) / self.img_std), "F W H X -> F (H X) W")
        return F.normalize(self.vision(tok).mean(0), dim=-1)
