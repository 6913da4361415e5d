"""Training objectives: flow matching (paper Eq. 4) and the autoencoder's reconstruction losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from transformers.audio_utils import mel_filter_bank

from audiox.core import flow
from audiox.core.types import Conditions

__all__ = ["flow_matching_loss", "stft_loss", "MultiResolutionSTFTLoss", "MultiScaleMelLoss"]


def flow_matching_loss(model, z0: Tensor, cond: Conditions, t: Tensor, z1: Tensor) -> Tensor:
    """Eq. 4: ``|| v_theta(z_t, t, H_c) - (z1 - z0) ||^2`` with ``z_t = t z1 + (1 - t) z0`` (mean over all)."""
    z_t = flow.interpolate(z0, z1, t)
    v = model(z_t, t, cond)
    return F.mse_loss(v.float(), flow.velocity_target(z0, z1).float())


def _magnitudes(x: Tensor, y: Tensor, n_fft: int, hop: int) -> tuple[Tensor, Tensor, Tensor]:
    """|STFT| of (B, C, S) ``x`` and ``y`` with a Hann window, each (B*C, n_fft // 2 + 1, frames), and the window."""
    win = torch.hann_window(n_fft, device=x.device, dtype=torch.float32)
    xs = torch.stft(x.float().flatten(0, 1), n_fft, hop, window=win, return_complex=True).abs()
    ys = torch.stft(y.float().flatten(0, 1), n_fft, hop, window=win, return_complex=True).abs()
    return xs, ys, win


def _noise_floor(floor_db: float, win: Tensor) -> float:
    """The expected STFT bin magnitude of white noise at ``floor_db`` dBFS: ``10^(floor_db/20) * ||window||_2``."""
    return 10 ** (floor_db / 20) * float(win.square().sum().sqrt())


def stft_loss(x: Tensor, y: Tensor, n_fft: int, hop: int, eps: float = 1e-7, floor_db: float | None = None) -> Tensor:
    """Spectral convergence + log-magnitude L1 at one resolution (Parallel WaveGAN / stable-audio-tools).

    ``floor_db`` adds a magnitude floor inside the log: the STFT magnitude of white noise at ``floor_db`` dBFS
    (``10^(floor_db/20) * ||window||_2``), so ``log(|X| + floor)``. Without it (``eps`` only), digital silence sits
    at ``log(1e-7)`` and inaudible noise on it costs more than losing the sound altogether: on synthetic-world
    clips, the truth plus noise at -80 dBFS scores 8-9 and an all-zero output 1-2, which teaches a decoder to
    output silence. With a -70 dBFS floor the ranking is truth+noise < 0.3 x truth < zeros.
    """
    xs, ys, win = _magnitudes(x, y, n_fft, hop)
    sc = torch.linalg.norm(ys - xs) / torch.linalg.norm(ys).clamp(min=eps)
    floor = eps if floor_db is None else _noise_floor(floor_db, win)
    mag = F.l1_loss(torch.log(xs + floor), torch.log(ys + floor))
    return sc + mag


class MultiResolutionSTFTLoss(torch.nn.Module):
    def __init__(self, resolutions: tuple[tuple[int, int], ...] = ((2048, 512), (1024, 256), (512, 128), (256, 64)),
                 floor_db: float | None = None) -> None:
        super().__init__()
        self.resolutions = resolutions
        self.floor_db = floor_db

    def forward(self, x: Tensor, y: Tensor) -> Tensor:  # (B, C, S) each
        usable = [(n, h) for n, h in self.resolutions if n <= x.shape[-1]] or [(min(self.resolutions)[0] // 4, min(self.resolutions)[1] // 4)]
        return sum(stft_loss(x, y, n, h, floor_db=self.floor_db) for n, h in usable) / len(usable)


class MultiScaleMelLoss(torch.nn.Module):
    """Log-mel L1 at several (n_fft, hop, n_mels) scales, with the same white-noise floor as :func:`stft_loss`.

    Coarse mel bands tolerate small pitch errors that a linear-frequency loss punishes as hard as silence: on a
    synthetic bell, a copy 5 % sharp costs 1.39 under the floored MR-STFT loss against 1.50 for an all-zero
    output, and 0.33 against 1.12 here. A decoder that cannot read the exact pitch from its latent then still
    learns to sound the event (as DAC's and Vocos's mel losses intend) instead of falling back to silence.
    """

    def __init__(self, sample_rate: int, scales: tuple[tuple[int, int, int], ...] = ((512, 128, 16), (1024, 256, 32),
                 (2048, 512, 64)), floor_db: float | None = -70.0) -> None:
        super().__init__()
        self.scales = scales
        self.floor_db = floor_db
        for i, (n_fft, _, n_mels) in enumerate(scales):
            fb = mel_filter_bank(num_frequency_bins=n_fft // 2 + 1, num_mel_filters=n_mels, min_frequency=0.0,
                                 max_frequency=sample_rate / 2, sampling_rate=sample_rate, norm="slaney",
                                 mel_scale="slaney")  # (F, M)
            self.register_buffer(f"fb{i}", torch.from_numpy(fb).float(), persistent=False)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:  # (B, C, S) each
        total, used = x.new_zeros((), dtype=torch.float32), 0
        for i, (n_fft, hop, _) in enumerate(self.scales):
            if n_fft > x.shape[-1]:
                continue
            fb = getattr(self, f"fb{i}")
            xs, ys, win = _magnitudes(x, y, n_fft, hop)  # (BC, F, T) each
            xm, ym = torch.einsum("bft,fm->bmt", xs, fb), torch.einsum("bft,fm->bmt", ys, fb)
            # white noise at floor_db dBFS through the mean mel filter (None: the bare eps of stft_loss)
            floor = 1e-7 if self.floor_db is None else _noise_floor(self.floor_db, win) * float(fb.sum(0).mean())
            total = total + F.l1_loss(torch.log(xm + floor), torch.log(ym + floor))
            used += 1
        if used == 0:
            raise ValueError(f"audio of {x.shape[-1]} samples is shorter than every mel scale's window")
        return total / used
