"""VGGish (Hershey et al., 2017): the embedding of the Frechet Audio Distance (Kilgour et al., 2019).

Input: mono 16 kHz; STFT window 400 (25 ms), hop 160 (10 ms), n_fft 512, |X| magnitude, 64 HTK mel bins
125-7500 Hz, ``log(mel + 0.01)``; non-overlapping examples of 96 frames (0.96 s; a trailing partial example is
dropped, as ``vggish_input``). Network: conv64-pool-conv128-pool-conv256x2-pool-conv512x2-pool (3x3, ReLU,
2x2 max pool) then fc 4096-4096-128 (ReLU after each, as torchvggish). One 128-d embedding per 0.96 s frame;
FAD's Gaussians are fitted on all frames of all clips ("per-frame statistics"). Parameter names follow
torchvggish (``features.N``, ``embeddings.N``); the optional PCA post-processing is not applied (FAD's
reference implementation uses the raw embeddings).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from safetensors.torch import load_file
from torch import nn

from audiox.bench.embeddings.frontend import mel_filterbank, to_mono_resampled

__all__ = ["VGGishConfig", "VGGish"]


@dataclass(frozen=True)
class VGGishConfig:
    sample_rate: int = 16000
    win: int = 400
    hop: int = 160
    n_fft: int = 512
    n_mels: int = 64
    fmin: float = 125.0
    fmax: float = 7500.0
    frames: int = 96  # 0.96 s examples
    widths: tuple[int, ...] = (64, 128, 256, 512)  # conv widths; tests use smaller
    hidden: int = 4096
    dim: int = 128


class VGGish(nn.Module):
    def __init__(self, cfg: VGGishConfig = VGGishConfig()):
        super().__init__()
        self.cfg = cfg
        w = cfg.widths
        layers: list[nn.Module] = []
        cin = 1
        for i, c in enumerate(w):
            for _ in range(1 if i < 2 else 2):
                layers += [nn.Conv2d(cin, c, 3, padding=1), nn.ReLU(inplace=True)]
                cin = c
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        flat = w[-1] * (cfg.frames // 16) * (cfg.n_mels // 16)
        self.embeddings = nn.Sequential(nn.Linear(flat, cfg.hidden), nn.ReLU(True), nn.Linear(cfg.hidden, cfg.hidden),
                                        nn.ReLU(True), nn.Linear(cfg.hidden, cfg.dim), nn.ReLU(True))
        self.register_buffer("melW", mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax, htk=True), persistent=False)
        self.eval()

    def examples(self, wav: torch.Tensor) -> torch.Tensor:
        """(S,) at 16 kHz -> (N, 1, 96, 64) log-mel examples (N >= 1: short clips are zero-padded)."""
        c = self.cfg
        need = c.win + c.hop * (c.frames - 1)
        if wav.numel() < need:
            wav = torch.nn.functional.pad(wav, (0, need - wav.numel()))
        frames = wav.unfold(0, c.win, c.hop)  # (T, win), no centre padding (vggish_input)
        win = torch.hann_window(c.win, periodic=True, device=wav.device)
        mag = torch.fft.rfft(frames * win, n=c.n_fft).abs()  # (T, K)
        logmel = torch.log(mag @ self.melW.T + 0.01)  # (T, 64)
        n = logmel.shape[0] // c.frames
        return rearrange(logmel[: n * c.frames], "(N F) M -> N 1 F M", F=c.frames)

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        x = self.features(examples)  # (N, C, 6, 4)
        x = rearrange(x, "N C F M -> N (F M C)")  # channels last, as the TF model's flatten (torchvggish)
        return self.embeddings(x)  # (N, 128)

    @torch.no_grad()
    def embed(self, audio: np.ndarray | torch.Tensor, sample_rate: int) -> torch.Tensor:
        """One clip -> (N, 128) per-0.96 s embeddings."""
        x = torch.from_numpy(to_mono_resampled(audio, sample_rate, self.cfg.sample_rate)).to(self.melW.device)
        return self.forward(self.examples(x))

    def load_weights(self, path: str | Path) -> VGGish:
        missing, unexpected = self.load_state_dict(load_file(str(path)), strict=False)
        if missing or unexpected:
            raise ValueError(f"{path}: not a VGGish checkpoint (missing {missing[:4]}, unexpected {unexpected[:4]})")
        return self.eval()
