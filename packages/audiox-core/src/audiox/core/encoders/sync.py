"""Synchformer-style synchronisation encoder (paper Sec. VI-A: sync features at 25 fps, ref. [76]).

Written here from the Synchformer / TimeSformer recipe, random init unless ``cfg.pretrained`` names a local
safetensors file with this module's key names:

1. the 25 fps frames ``(B, F, 3, H, W)`` are cut into segments of ``S = cfg.segment_frames`` frames with
   stride ``cfg.segment_stride``; the clip is padded at the end by repeating its last frame so the segments
   cover it (``n = ceil(max(F - S, 0) / stride) + 1`` segments);
2. each segment goes through a ViT with a space-time (tubelet) patch embedding (``tubelet`` frames x
   ``patch x patch`` pixels per token) and divided space-time attention: in every block, attention over time
   at each spatial position, then attention over space within each time step, then an MLP (pre-LN);
3. the tokens are averaged over space: one feature per tubelet time step, given to each of its ``tubelet``
   frames, so every segment yields one feature per frame it covers;
4. overlap-averaging back onto the frame grid: frame ``f``'s feature is the mean of the features that the
   segments covering ``f`` gave it (like overlap-add with a rectangular window, normalised by the count).

A frame therefore only influences frames that share a segment with it (at most ``S - 1`` frames away).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from audiox.core.config import SyncEncoderConfig
from audiox.core.encoders.common import FreezableModule, load_safetensors_strict, unit_float

__all__ = ["SyncEncoder", "segment_starts"]

# Synchformer / ImageNet normalisation of RGB frames in [0, 1]
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def segment_starts(num_frames: int, segment_frames: int, stride: int) -> list[int]:
    """Start frame of each segment; the last segment may run past ``num_frames`` (padded)."""
    n = math.ceil(max(num_frames - segment_frames, 0) / stride) + 1
    return [i * stride for i in range(n)]


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, L, D)
        q, k, v = rearrange(self.qkv(x), "N L (K H D) -> K N H L D", K=3, H=self.heads)
        y = F.scaled_dot_product_attention(q, k, v)  # (N, H, L, D)
        return self.proj(rearrange(y, "N H L D -> N L (H D)"))


class _DividedBlock(nn.Module):
    """TimeSformer's divided space-time block: time attention, space attention, MLP (each pre-LN residual)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm_t = nn.LayerNorm(dim)
        self.attn_t = _Attention(dim, heads)
        self.norm_s = nn.LayerNorm(dim)
        self.attn_s = _Attention(dim, heads)
        self.norm_mlp = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, T, P, D): segments, time steps, patches
        n, t = x.shape[:2]
        xt = rearrange(x, "N T P D -> (N P) T D")
        xt = xt + self.attn_t(self.norm_t(xt))  # attention over time at each spatial position
        xs = rearrange(xt, "(N P) T D -> (N T) P D", N=n)
        xs = xs + self.attn_s(self.norm_s(xs))  # attention over space within each time step
        xs = xs + self.mlp(self.norm_mlp(xs))
        return rearrange(xs, "(N T) P D -> N T P D", N=n, T=t)


class SyncEncoder(FreezableModule):
    """25 fps frames ``(B, F, 3, H, W)`` in [0, 1] -> one sync feature per frame ``(B, F, D_s)``."""

    def __init__(self, cfg: SyncEncoderConfig) -> None:
        super().__init__()
        if cfg.width % cfg.heads:
            raise ValueError(f"sync encoder: width {cfg.width} is not divisible by heads {cfg.heads}")
        if cfg.segment_stride < 1 or cfg.segment_stride > cfg.segment_frames:
            raise ValueError(f"sync encoder: need 1 <= segment_stride <= segment_frames, got {cfg.segment_stride}")
        self.cfg = cfg
        self.out_dim: int = cfg.out_dim
        t = cfg.segment_frames // cfg.tubelet
        p = (cfg.image_size // cfg.patch_size) ** 2
        self.patch_embed = nn.Conv3d(
            3, cfg.width, kernel_size=(cfg.tubelet, cfg.patch_size, cfg.patch_size),
            stride=(cfg.tubelet, cfg.patch_size, cfg.patch_size),
        )
        self.pos_space = nn.Parameter(torch.zeros(1, 1, p, cfg.width))  # (1, 1, P, D)
        self.pos_time = nn.Parameter(torch.zeros(1, t, 1, cfg.width))  # (1, T, 1, D)
        self.blocks = nn.ModuleList([_DividedBlock(cfg.width, cfg.heads) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(cfg.width)
        self.proj = nn.Linear(cfg.width, cfg.out_dim)
        self.initialize_weights()
        if cfg.pretrained:
            load_safetensors_strict(self, cfg.pretrained, "sync encoder")
        self.freeze_(cfg.freeze)

    def initialize_weights(self) -> None:
        """ViT / TimeSformer init: truncated-normal(0.02) linear weights and position embeddings, zero biases."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.pos_space, std=0.02)
        nn.init.trunc_normal_(self.pos_time, std=0.02)

    def encode_segments(self, seg: torch.Tensor) -> torch.Tensor:
        """Segments ``(N, S, 3, H, W)`` (already resized) -> per-frame features ``(N, S, D_s)``."""
        x = rearrange(seg, "N S C H W -> N C S H W")
        mean = torch.tensor(_MEAN, device=x.device, dtype=torch.float32).view(1, 3, 1, 1, 1)  # not buffers: meta-safe
        std = torch.tensor(_STD, device=x.device, dtype=torch.float32).view(1, 3, 1, 1, 1)
        x = ((x.float() - mean) / std).to(self.proj.weight.dtype)
        x = self.patch_embed(x)  # (N, D, T, h, w), T = S / tubelet
        x = rearrange(x, "N D T h w -> N T (h w) D") + self.pos_time + self.pos_space
        for block in self.blocks:
            x = block(x)
        x = self.proj(self.norm(x).mean(dim=2))  # (N, T, D_s): spatial mean pool per tubelet time step
        return x.repeat_interleave(self.cfg.tubelet, dim=1)  # (N, S, D_s): each frame of a tubelet shares it

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.ndim != 5 or frames.shape[2] != 3:
            raise ValueError(f"sync encoder expects frames (B, F, 3, H, W), got {tuple(frames.shape)}")
        cfg = self.cfg
        b, f = frames.shape[:2]
        if f < 1:
            raise ValueError("sync encoder: got zero frames")
        dtype = self.proj.weight.dtype
        x = unit_float(frames)  # resize in float32 (no bf16 antialias on CPU), then the model dtype
        if x.shape[-2:] != (cfg.image_size, cfg.image_size):
            x = F.interpolate(
                rearrange(x, "B F C H W -> (B F) C H W"), size=(cfg.image_size, cfg.image_size),
                mode="bicubic", align_corners=False, antialias=True,
            )
            x = rearrange(x, "(B F) C H W -> B F C H W", B=b)
        x = x.to(dtype)  # segments are stacked in the model dtype (they repeat frames: keep them small)
        starts = segment_starts(f, cfg.segment_frames, cfg.segment_stride)
        padded = starts[-1] + cfg.segment_frames
        if padded > f:  # repeat the last frame so the final segment is full
            x = torch.cat([x, x[:, -1:].expand(-1, padded - f, -1, -1, -1)], dim=1)
        segs = torch.stack([x[:, s : s + cfg.segment_frames] for s in starts], dim=1)  # (B, n, S, 3, H, W)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            feats = self.encode_segments(rearrange(segs, "B n S C H W -> (B n) S C H W"))
        feats = rearrange(feats, "(B n) S D -> B n S D", B=b)
        # overlap-average onto the (padded) frame grid, then drop the padding
        out = feats.new_zeros(b, padded, cfg.out_dim)
        count = feats.new_zeros(1, padded, 1)
        for i, s in enumerate(starts):
            out[:, s : s + cfg.segment_frames] += feats[:, i]
            count[:, s : s + cfg.segment_frames] += 1
        return (out / count)[:, :f]  # (B, F, D_s)
