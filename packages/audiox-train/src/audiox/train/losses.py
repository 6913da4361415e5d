"""Training objectives: flow matching (paper Eq. 4) and the autoencoder's reconstruction losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from audiox.core import flow
from audiox.core.types import Conditions

__all__ = ["flow_matching_loss", "stft_loss", "MultiResolutionSTFTLoss"]


def flow_matching_loss(model, z0: Tensor, cond: Conditions, t: Tensor, z1: Tensor) -> Tensor:
    """Eq. 4: ``|| v_theta(z_t, t, H_c) - (z1 - z0) ||^2`` with ``z_t = t z1 + (1 - t) z0`` (mean over all)."""
    z_t = flow.interpolate(z0, z1, t)
    v = model(z_t, t, cond)
    return F.mse_loss(v.float(), flow.velocity_target(z0, z1).float())


def stft_loss(x: Tensor, y: Tensor, n_fft: int, hop: int, eps: float = 1e-7, floor_db: float | None = None) -> Tensor:
    """Spectral convergence + log-magnitude L1 at one resolution (Parallel WaveGAN / stable-audio-tools).

    ``floor_db`` adds a magnitude floor inside the log: the STFT magnitude of white noise at ``floor_db`` dBFS
    (``10^(floor_db/20) * ||window||_2``), so ``log(|X| + floor)``. Without it (``eps`` only), digital silence sits
    at ``log(1e-7)`` and inaudible noise on it costs more than losing the sound altogether: on synthetic-world
    clips, the truth plus noise at -80 dBFS scores 8-9 and an all-zero output 1-2, which teaches a decoder to
    output silence. With a -70 dBFS floor the ranking is truth+noise < 0.3 x truth < zeros.
    """
    win = torch.hann_window(n_fft, device=x.device, dtype=torch.float32)
    xs = torch.stft(x.float().flatten(0, 1), n_fft, hop, window=win, return_complex=True).abs()
    ys = torch.stft(y.float().flatten(0, 1), n_fft, hop, window=win, return_complex=True).abs()
    sc = torch.linalg.norm(ys - xs) / torch.linalg.norm(ys).clamp(min=eps)
    floor = eps if floor_db is None else 10 ** (floor_db / 20) * float(win.square().sum().sqrt())
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
