"""PANNs CNN14 (Kong et al., 2020): the classifier behind KL, IS and FD in audioldm_eval / AudioLDM / AudioX.

Input: mono 32 kHz; log-mel with n_fft 1024, hop 320, 64 Slaney mel bins 50-14000 Hz, ``10 log10(max(mel,
1e-10))``; BatchNorm over mel bins; six conv blocks (64..2048 channels, two 3x3 conv + BN + ReLU, 2x2 average
pooling except the last); mean over frequency; max + mean over time; ``fc1`` (2048, ReLU) = the embedding
(FD); ``fc_audioset`` (527 AudioSet classes) = logits (KL / IS; sigmoid gives the tagging probabilities).
Parameter names follow the published checkpoint (``Cnn14_mAP=0.431.pth``), so its tensors, converted to
safetensors, load with :meth:`Cnn14.load_weights` (the torchlibrosa STFT/mel buffers are recomputed here).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from audiox.bench.embeddings.frontend import mel_filterbank, power_spectrogram, to_mono_resampled

__all__ = ["Cnn14Config", "Cnn14", "Cnn14Output"]


@dataclass(frozen=True)
class Cnn14Config:
    sample_rate: int = 32000
    n_fft: int = 1024
    hop: int = 320
    n_mels: int = 64
    fmin: float = 50.0
    fmax: float = 14000.0
    channels: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048)  # the published CNN14; tests use smaller
    classes: int = 527  # AudioSet ontology


@dataclass
class Cnn14Output:
    logits: torch.Tensor  # (B, classes) pre-sigmoid
    embedding: torch.Tensor  # (B, channels[-1]) fc1 output


class _ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn1, self.bn2 = nn.BatchNorm2d(cout), nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor, pool: int) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, pool) if pool > 1 else x


class Cnn14(nn.Module):
    def __init__(self, cfg: Cnn14Config = Cnn14Config()):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("melW", mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax), persistent=False)
        self.bn0 = nn.BatchNorm2d(cfg.n_mels)
        chans = (1, *cfg.channels)
        for i in range(len(cfg.channels)):
            self.add_module(f"conv_block{i + 1}", _ConvBlock(chans[i], chans[i + 1]))
        self.fc1 = nn.Linear(cfg.channels[-1], cfg.channels[-1])
        self.fc_audioset = nn.Linear(cfg.channels[-1], cfg.classes)
        self.eval()

    def log_mel(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, S) at 32 kHz -> (B, 1, T, n_mels) in dB."""
        mel = power_spectrogram(wav, self.cfg.n_fft, self.cfg.hop) @ self.melW.T
        return (10 * torch.log10(mel.clamp_min(1e-10))).unsqueeze(1)

    def forward(self, wav: torch.Tensor) -> Cnn14Output:
        x = self.log_mel(wav)  # (B, 1, T, M)
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)  # BN over mel bins
        n = len(self.cfg.channels)
        for i in range(n):
            x = getattr(self, f"conv_block{i + 1}")(x, pool=2 if i < n - 1 else 1)  # (B, C, T', M')
        x = x.mean(dim=3)  # over frequency -> (B, C, T')
        x = x.max(dim=2).values + x.mean(dim=2)  # (B, C)
        emb = F.relu(self.fc1(x))
        return Cnn14Output(self.fc_audioset(emb), emb)

    @torch.no_grad()
    def embed(self, audio: np.ndarray | torch.Tensor, sample_rate: int) -> Cnn14Output:
        """One clip (S,) / (C, S) at any rate -> outputs for a batch of 1 (mono, resampled to 32 kHz)."""
        x = to_mono_resampled(audio, sample_rate, self.cfg.sample_rate)
        min_len = self.cfg.hop * 2 ** (len(self.cfg.channels) - 1)  # enough frames for the five poolings
        if len(x) < min_len:
            x = np.pad(x, (0, min_len - len(x)))
        dev = self.fc1.weight.device
        return self.forward(torch.from_numpy(x)[None].to(dev))

    def load_weights(self, path: str | Path) -> Cnn14:
        """Load a safetensors file with the published parameter names (extra torchlibrosa buffers ignored)."""
        sd = {k: v for k, v in load_file(str(path)).items()
              if not k.startswith(("spectrogram_extractor.", "logmel_extractor.", "spec_augmenter."))}
        missing, unexpected = self.load_state_dict(sd, strict=False)
        if missing or unexpected:
            raise ValueError(f"{path}: not a CNN14 checkpoint (missing {missing[:4]}, unexpected {unexpected[:4]})")
        return self.eval()
