"""The MMDiT: a diffusion transformer over the latent sequence, conditioned on ``H_c`` by cross-attention.

Each block (paper Fig. 4): adaLN-Zero-modulated self-attention with RMS QK-norm and RoPE over latent frames,
cross-attention to ``H_c`` (pre-norm; output projection zero-initialised), and an adaLN-Zero-modulated MLP. The
modulation vector is the timestep embedding plus MAF's pooled global condition. ``initialize_weights`` zeroes
every modulation and the output layer, so each block is the identity at initialisation (DiT's adaLN-Zero).
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from audiox.core.config import MMDiTConfig
from audiox.core.kernels import gated_residual, modulated_norm
from audiox.core.layers import (
    MLP,
    CrossAttention,
    Modulation,
    SelfAttention,
    TimestepEmbedder,
    rope_cos_sin,
    timestep_embedding,
)

__all__ = ["MMDiTBlock", "MMDiT"]


class MMDiTBlock(nn.Module):
    def __init__(self, cfg: MMDiTConfig) -> None:
        super().__init__()
        d = cfg.hidden_size
        self.mod = Modulation(d, 2)  # (self-attention, MLP)
        self.attn = SelfAttention(d, cfg.num_heads, cfg.qk_norm, cfg.attn_backend)
        self.norm_cross = nn.LayerNorm(d, eps=1e-6)
        self.cross = CrossAttention(d, cfg.num_heads, qk_norm=cfg.qk_norm, backend=cfg.attn_backend)
        self.mlp = MLP(d, cfg.mlp_ratio)

    def forward(self, x: Tensor, c: Tensor, context: Tensor, context_mask: Tensor,
                rope: tuple[Tensor, Tensor]) -> Tensor:
        m_attn, m_mlp = self.mod(c)
        h = modulated_norm(x, m_attn.shift, m_attn.scale)
        x = gated_residual(x, self.attn(h, rope), m_attn.gate)  # (B, T, D)
        x = x + self.cross(self.norm_cross(x), context, context_mask)
        h = modulated_norm(x, m_mlp.shift, m_mlp.scale)
        return gated_residual(x, self.mlp(h), m_mlp.gate)


class FinalLayer(nn.Module):
    def __init__(self, d: int, out_channels: int) -> None:
        super().__init__()
        self.mod = nn.Linear(d, 2 * d)
        self.linear = nn.Linear(d, out_channels)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.mod(nn.functional.silu(c)).chunk(2, dim=-1)
        return self.linear(modulated_norm(x, shift, scale))


class MMDiT(nn.Module):
    """``v(z_t, t, H_c)``: latents (B, C, T) -> velocity (B, C, T).

    ``frame_channels`` > 0 (``maf.frame_aligned``): ``frames`` (B, T, frame_channels), the conditioning streams
    resampled onto the latent frames, are added to the latent tokens through ``frame_proj``. ``cfg.abs_time``: so are
    sinusoidal features of the frame index, through ``time_proj``. ``prompt_channels`` > 0 (``maf.frame_inpaint``):
    ``prompt`` (B, T, prompt_channels), the inpainting prompt's kept latents and mask, through ``prompt_proj``. The
    projections start at zero (a switched-on continuation starts as the model it continues).
    """

    def __init__(self, cfg: MMDiTConfig, latent_channels: int, frame_channels: int = 0,
                 prompt_channels: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.hidden_size
        self.latent_channels = latent_channels
        self.x_embed = nn.Linear(latent_channels, d)
        self.frame_proj = nn.Linear(frame_channels, d) if frame_channels > 0 else None
        self.time_proj = nn.Linear(cfg.time_embed_dim, d) if cfg.abs_time else None
        self.prompt_proj = nn.Linear(prompt_channels, d) if prompt_channels > 0 else None
        self.t_embed = TimestepEmbedder(d, cfg.time_embed_dim)
        self.blocks = nn.ModuleList(MMDiTBlock(cfg) for _ in range(cfg.depth))
        self.final = FinalLayer(d, latent_channels)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        def _basic(m: nn.Module) -> None:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

        self.apply(_basic)
        nn.init.normal_(self.t_embed.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embed.mlp[2].weight, std=0.02)
        for block in self.blocks:  # adaLN-Zero: every block starts as the identity
            nn.init.zeros_(block.mod.lin.weight)
            nn.init.zeros_(block.mod.lin.bias)
            nn.init.zeros_(block.cross.proj.weight)
            nn.init.zeros_(block.cross.proj.bias)
        nn.init.zeros_(self.final.mod.weight)
        nn.init.zeros_(self.final.mod.bias)
        nn.init.zeros_(self.final.linear.weight)
        nn.init.zeros_(self.final.linear.bias)
        for proj in (self.frame_proj, self.time_proj, self.prompt_proj):  # added paths start silent
            if proj is not None:
                nn.init.zeros_(proj.weight)
                nn.init.zeros_(proj.bias)

    def _prepare(self, z_t: Tensor, t: Tensor, global_cond: Tensor, frames: Tensor | None = None,
                 prompt: Tensor | None = None) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor]]:
        assert z_t.ndim == 3 and z_t.shape[1] == self.latent_channels, f"{z_t.shape=} {self.latent_channels=}"
        b, _, length = z_t.shape
        if t.ndim == 0:
            t = t.expand(b)
        assert t.shape == (b,), f"{t.shape=} must be (B,) with B={b}"
        x = self.x_embed(rearrange(z_t, "B C T -> B T C").to(self.x_embed.weight.dtype))  # (B, T, D)
        if self.frame_proj is not None:
            if frames is None:
                raise ValueError("this MMDiT adds frame-aligned conditioning (maf.frame_aligned): pass frames")
            assert frames.shape[:2] == (b, length), f"{frames.shape=} must be (B, T, F) with {(b, length)=}"
            x = x + self.frame_proj(frames.to(x.dtype))
        if self.prompt_proj is not None:
            if prompt is None:
                raise ValueError("this MMDiT adds the inpainting prompt frame by frame (maf.frame_inpaint): pass prompt")
            assert prompt.shape[:2] == (b, length), f"{prompt.shape=} must be (B, T, C + 1) with {(b, length)=}"
            x = x + self.prompt_proj(prompt.to(x.dtype))
        pos = torch.arange(length, device=z_t.device)
        if self.time_proj is not None:  # (T, D), the same for every sample
            x = x + self.time_proj(timestep_embedding(pos, self.cfg.time_embed_dim, time_factor=1.0).to(x.dtype))
        c = self.t_embed(t) + global_cond.to(x.dtype)  # (B, D)
        cos, sin = rope_cos_sin(pos, self.cfg.hidden_size // self.cfg.num_heads, self.cfg.rope_theta)
        return x, c, (cos, sin)

    def forward(self, z_t: Tensor, t: Tensor, context: Tensor, context_mask: Tensor, global_cond: Tensor,
                frames: Tensor | None = None, prompt: Tensor | None = None) -> Tensor:
        x, c, rope = self._prepare(z_t, t, global_cond, frames, prompt)
        for block in self.blocks:
            x = block(x, c, context, context_mask, rope)
        out = self.final(x, c)  # (B, T, C)
        return rearrange(out, "B T C -> B C T").to(z_t.dtype)

    def forward_features(self, z_t: Tensor, t: Tensor, context: Tensor, context_mask: Tensor,
                         global_cond: Tensor, num_blocks: int, frames: Tensor | None = None,
                         prompt: Tensor | None = None) -> list[Tensor]:
        """Hidden states (B, T, D) after each of the first ``num_blocks`` blocks (distillation discriminator)."""
        if not 1 <= num_blocks <= len(self.blocks):
            raise ValueError(f"num_blocks must be in [1, {len(self.blocks)}], got {num_blocks}")
        x, c, rope = self._prepare(z_t, t, global_cond, frames, prompt)
        feats = []
        for block in self.blocks[:num_blocks]:
            x = block(x, c, context, context_mask, rope)
            feats.append(x)
        return feats
