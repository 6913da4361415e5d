"""Audio front ends shared by the embedding networks: mono mixing, polyphase resampling, log-mel.

* Mono: mean over channels (audioldm_eval / FAD load with ``mono=True``, which averages).
* Resampling: ``scipy.signal.resample_poly`` (polyphase, Kaiser window): audioldm_eval uses torchaudio's
  sinc resampler and VGGish resampy; all three are band-limited, differences are far below metric noise.
* Mel filterbanks: Slaney-normalised (librosa default, PANNs/torchlibrosa) or HTK (VGGish's mel_features).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.signal import resample_poly

__all__ = ["to_mono_resampled", "mel_filterbank", "power_spectrogram"]


def to_mono_resampled(audio: np.ndarray | torch.Tensor, sample_rate: int, target_rate: int) -> np.ndarray:
    """``(S,)`` or ``(C, S)`` -> mono ``(S',)`` float32 at ``target_rate``."""
    x = audio.detach().float().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio, np.float32)
    if x.ndim == 2:
        x = x.mean(axis=0)
    if x.ndim != 1:
        raise ValueError(f"audio must be (S,) or (C, S), got {x.shape}")
    if sample_rate != target_rate:
        g = np.gcd(int(sample_rate), int(target_rate))
        x = resample_poly(x, target_rate // g, int(sample_rate) // g)
    return x.astype(np.float32)


def _hz_to_mel(f: np.ndarray, htk: bool) -> np.ndarray:
    f = np.asarray(f, np.float64)
    if htk:
        return 1127.0 * np.log1p(f / 700.0)
    lin = f / (200.0 / 3)
    return np.where(f >= 1000, 15 + np.log(np.maximum(f, 1e-9) / 1000) / (np.log(6.4) / 27), lin)


def _mel_to_hz(m: np.ndarray, htk: bool) -> np.ndarray:
    m = np.asarray(m, np.float64)
    if htk:
        return 700.0 * np.expm1(m / 1127.0)
    return np.where(m >= 15, 1000 * np.exp((m - 15) * np.log(6.4) / 27), m * 200.0 / 3)


def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float, htk: bool = False) -> torch.Tensor:
    """``(n_mels, n_fft // 2 + 1)`` triangular filters (Slaney area-normalised unless ``htk``)."""
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    pts = _mel_to_hz(np.linspace(_hz_to_mel(fmin, htk), _hz_to_mel(fmax, htk), n_mels + 2), htk)
    lo, ce, hi = pts[:-2, None], pts[1:-1, None], pts[2:, None]
    w = np.maximum(0, np.minimum((freqs - lo) / (ce - lo), (hi - freqs) / (hi - ce)))
    if not htk:
        w *= 2.0 / (hi - lo)
    return torch.from_numpy(w.astype(np.float32))


def power_spectrogram(x: torch.Tensor, n_fft: int, hop: int, win_length: int | None = None, center: bool = True) -> torch.Tensor:
    """``(B, S)`` -> ``(B, T, n_fft // 2 + 1)`` power with a periodic Hann window."""
    win = torch.hann_window(win_length or n_fft, periodic=True, device=x.device)
    spec = torch.stft(x, n_fft, hop, win_length or n_fft, win, center=center, pad_mode="reflect", return_complex=True)
    return spec.abs().pow(2).transpose(1, 2)
