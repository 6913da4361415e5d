"""1-D convolutional waveform VAE of Stable Audio Open's "Oobleck" kind (paper Sec. VI-A, ref. [10]).

Encoder: conv-in (k=7) -> per stride one block [3 residual units (dilations 1, 3, 9; Snake; weight-normalised
convs) -> Snake -> strided conv (kernel 2*stride)] -> Snake -> conv-out to ``2 * latent_dim`` channels (mean and
a pre-softplus scale). Decoder mirrors it with transposed convs; the output has no tanh (clamp when saving).
With the ``paper`` config (128 base channels, mults 1-2-4-8-16, strides 2-4-4-8-8, 64-channel latent) this is
the 44.1 kHz stereo, 2048x-downsampling layout of Stable Audio Open's VAE (~157M parameters).

``decoder="istft"`` replaces the decoder with a Vocos-style one (Siuzdak, 2023): ConvNeXt blocks at the latent
rate, a transposed conv up to the STFT frame rate (``hop_length / istft_hop`` x), more ConvNeXt blocks, then a
linear head giving each frame's log-magnitude and phase, and ``torch.istft``. Everything runs at 25-100 frames/s
instead of the sample rate, so it costs a fraction of the Oobleck decoder; the encoder is the same.

Posterior: ``sigma = softplus(scale) + 1e-4``, ``logvar = 2 log sigma``; ``encode(sample=True)`` draws
``z = mean + sigma * eps`` (reparameterisation) with an optional ``torch.Generator``; the latent handed to the
diffusion model is ``z * latent_scale`` and ``decode`` divides by it first.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from audiox.core.config import AutoencoderConfig
from audiox.core.encoders.common import FreezableModule, load_safetensors_strict

__all__ = ["AudioAutoencoder", "ISTFTDecoder", "Snake", "kl_divergence"]


def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) = 0.5 * sum_c (mean^2 + exp(logvar) - logvar - 1).

    Inputs ``(B, C, T)``; the sum runs over latent channels, the result is averaged over batch and latent
    frames (a scalar: nats per latent frame).
    """
    kl = 0.5 * (mean.pow(2) + logvar.exp() - logvar - 1.0)
    return kl.sum(dim=1).mean()


class Snake(nn.Module):
    """Snake activation ``x + sin(alpha x)^2 / alpha`` with a learned per-channel alpha (log-scale, init 1)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.log_alpha = nn.Parameter(torch.zeros(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T)
        alpha = self.log_alpha.exp()
        inv = (alpha + 1e-9).reciprocal()  # (1, C, 1)
        if torch.is_grad_enabled() and (x.requires_grad or alpha.requires_grad):
            return torch.addcmul(x, torch.sin(alpha * x).square(), inv)
        # inference: one temporary, updated in place (the decoder's Snakes are half its CPU time)
        s = alpha * x
        return s.sin_().square_().mul_(inv).add_(x)


def _conv(c_in: int, c_out: int, k: int, **kw) -> nn.Module:
    return weight_norm(nn.Conv1d(c_in, c_out, k, **kw))


class ResidualUnit(nn.Module):
    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            Snake(channels),
            _conv(channels, channels, 7, dilation=dilation, padding=3 * dilation),
            Snake(channels),
            _conv(channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class EncoderBlock(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__(
            ResidualUnit(c_in, 1), ResidualUnit(c_in, 3), ResidualUnit(c_in, 9), Snake(c_in),
            _conv(c_in, c_out, 2 * stride, stride=stride, padding=math.ceil(stride / 2)),  # T -> T / stride
        )


class DecoderBlock(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        up = nn.ConvTranspose1d(
            c_in, c_out, 2 * stride, stride=stride, padding=math.ceil(stride / 2), output_padding=stride % 2
        )  # T -> T * stride exactly (output_padding fixes odd strides)
        super().__init__(
            Snake(c_in), weight_norm(up), ResidualUnit(c_out, 1), ResidualUnit(c_out, 3), ResidualUnit(c_out, 9)
        )


class OobleckEncoder(nn.Sequential):
    def __init__(self, cfg: AutoencoderConfig) -> None:
        ch = [cfg.base_channels * m for m in (1, *cfg.channel_mults)]
        layers: list[nn.Module] = [_conv(cfg.audio_channels, ch[0], 7, padding=3)]
        for i, stride in enumerate(cfg.strides):
            layers.append(EncoderBlock(ch[i], ch[i + 1], stride))
        layers += [Snake(ch[-1]), _conv(ch[-1], 2 * cfg.latent_dim, 3, padding=1)]
        super().__init__(*layers)


class OobleckDecoder(nn.Sequential):
    def __init__(self, cfg: AutoencoderConfig) -> None:
        ch = [cfg.base_channels * m for m in (1, *cfg.channel_mults)]
        layers: list[nn.Module] = [_conv(cfg.latent_dim, ch[-1], 7, padding=3)]
        for i in reversed(range(len(cfg.strides))):
            layers.append(DecoderBlock(ch[i + 1], ch[i], cfg.strides[i]))
        layers += [Snake(ch[0]), _conv(ch[0], cfg.audio_channels, 7, padding=3, bias=False)]
        super().__init__(*layers)


class ConvNeXtBlock(nn.Module):
    """Depthwise conv (k=7) -> LayerNorm -> MLP (x3, GELU) -> layer scale, residual (Vocos's 1-D block)."""

    def __init__(self, dim: int, layer_scale: float) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, 3 * dim)
        self.fc2 = nn.Linear(3 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, D, T)
        h = self.dwconv(x).transpose(1, 2)  # (B, T, D)
        h = self.fc2(F.gelu(self.fc1(self.norm(h)))) * self.gamma
        return x + h.transpose(1, 2)


class ISTFTDecoder(nn.Module):
    """Latent ``(B, C, T)`` -> waveform ``(B, C_a, T * hop_length)`` through an inverse STFT (see module doc)."""

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        d, (n_lo, n_hi) = cfg.istft_dim, cfg.istft_blocks
        self.up = cfg.hop_length // cfg.istft_hop
        self.n_fft, self.hop, self.channels = cfg.istft_n_fft, cfg.istft_hop, cfg.audio_channels
        scale = 1.0 / max(1, n_lo + n_hi)
        self.conv_in = nn.Conv1d(cfg.latent_dim, d, 7, padding=3)
        self.low = nn.ModuleList(ConvNeXtBlock(d, scale) for _ in range(n_lo))
        # exact x`up` length: (T - 1) * up - 2 * (up // 2) + 2 * up  = T * up  (even up); odd up: kernel up, no pad
        k, pad = (2 * self.up, self.up // 2) if self.up % 2 == 0 else (self.up, 0)
        self.upsample = nn.ConvTranspose1d(d, d, k, stride=self.up, padding=pad) if self.up > 1 else nn.Identity()
        self.high = nn.ModuleList(ConvNeXtBlock(d, scale) for _ in range(n_hi))
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.bins = self.n_fft // 2 + 1
        self.head = nn.Linear(d, 2 * self.bins * self.channels)  # per channel: log-magnitude, phase
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        b, _, t = z.shape
        h = self.conv_in(z)
        for blk in self.low:
            h = blk(h)
        h = self.upsample(h)  # (B, D, T * up)
        for blk in self.high:
            h = blk(h)
        h = self.head(self.norm(h.transpose(1, 2))).float()  # (B, F', 2 * bins * C_a); the STFT in float32
        h = h.view(b, -1, self.channels, 2, self.bins)
        mag = h[..., 0, :].clamp(max=12.0).exp()  # Vocos clips the magnitude (here exp(12) ~ 1.6e5)
        phase = h[..., 1, :]
        spec = torch.polar(mag, phase).permute(0, 2, 3, 1).reshape(b * self.channels, self.bins, -1)  # (BC, F, F')
        n = t * self.up * self.hop
        wav = torch.istft(spec, self.n_fft, self.hop, window=self.window.float(), center=True, length=n)
        return wav.view(b, self.channels, n)


class AudioAutoencoder(FreezableModule):
    """Waveform ``(B, C_a, S)`` <-> latent ``(B, C, T)``, ``T = S / hop_length``."""

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.sample_rate: int = cfg.sample_rate
        self.hop_length: int = cfg.hop_length
        self.latent_dim: int = cfg.latent_dim
        self.audio_channels: int = cfg.audio_channels
        self.latent_scale: float = float(cfg.latent_scale)
        self.encoder = OobleckEncoder(cfg)
        self.decoder = OobleckDecoder(cfg) if cfg.decoder == "oobleck" else ISTFTDecoder(cfg)
        if cfg.pretrained:
            load_safetensors_strict(self, cfg.pretrained, "autoencoder")
        self.freeze_(cfg.freeze)

    @staticmethod
    def kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """See :func:`kl_divergence` (the VAE's KL term, used by audiox-train)."""
        return kl_divergence(mean, logvar)

    def encode_posterior(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, logvar)``, each ``(B, latent_dim, S / hop)``, unscaled."""
        if wav.ndim != 3 or wav.shape[1] != self.audio_channels:
            raise ValueError(f"autoencoder expects audio (B, {self.audio_channels}, S), got {tuple(wav.shape)}")
        if wav.shape[-1] % self.hop_length or wav.shape[-1] == 0:
            raise ValueError(
                f"autoencoder: audio length {wav.shape[-1]} is not a positive multiple of hop_length "
                f"{self.hop_length}; pad it (e.g. with AudioAutoencoder.pad_to_hop)"
            )
        h = self.encoder(wav.to(self.dtype))  # (B, 2C, T)
        mean, scale = h.chunk(2, dim=1)
        sigma = F.softplus(scale) + 1e-4
        return mean, 2.0 * torch.log(sigma)

    def encode(self, wav: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(B, C_a, S) -> (B, C, S / hop)`` latent times ``latent_scale`` (posterior mean unless ``sample``)."""
        mean, logvar = self.encode_posterior(wav)
        z = mean
        if sample:
            eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            z = mean + torch.exp(0.5 * logvar) * eps
        return z * self.latent_scale

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, C, T) -> (B, C_a, T * hop)``; no output squashing (clamp to [-1, 1] when saving)."""
        if z.ndim != 3 or z.shape[1] != self.latent_dim:
            raise ValueError(f"autoencoder expects latents (B, {self.latent_dim}, T), got {tuple(z.shape)}")
        return self.decoder(z.to(self.dtype) / self.latent_scale)

    def pad_to_hop(self, wav: torch.Tensor) -> torch.Tensor:
        """Right-pad with zeros to the next multiple of ``hop_length`` (at least one hop)."""
        s = wav.shape[-1]
        target = max(1, math.ceil(s / self.hop_length)) * self.hop_length
        return F.pad(wav, (0, target - s))

    @property
    def dtype(self) -> torch.dtype:
        return self.encoder[0].bias.dtype
