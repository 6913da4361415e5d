"""Multimodal Adaptive Fusion (MAF): modality tokens -> the conditioning sequence ``H_c``.

The paper (Sec. I, IV, Table V) describes MAF as a lightweight module (~60M parameters at paper scale) that
"adaptively weights and aligns conditioning modalities before fusion", with two removable parts: a gate and a
query-based attention. It gives no equations, so this is our design, chosen to match that description:

1. Projection and alignment. Each stream is projected to the model width D. The two video streams are aligned
   in time (CLIP's 5 fps features repeated onto the 25 fps sync grid, nearest frame) and added (Sec. VI-A: "The
   CLIP and Synchformer features are fused via addition"). A learned type embedding marks each modality.
2. Missing / dropped modalities. Zero-padding (paper Sec. IV-B); with ``learned_null`` a learned null token is
   added to the zeroed tokens so the unconditional branch of classifier-free guidance is a learned state. With
   ``single_null`` only the first of those identical tokens stays valid (a -log L logit bias), and the columns that
   no sample of the batch attends to are dropped from ``H_c``: the same result, with a shorter context.
3. Adaptive gate (``use_gate``). From the pooled tokens of all three modalities together, an MLP predicts a
   per-sample, per-channel sigmoid gate for each modality (B, 3, D): the model can up-weight video for a V2A
   sample and text for a T2A sample, conditioned on what is present. The gate is centred so that it starts at 1.
4. Query-based attention fusion (``use_query``). ``num_queries`` learned queries cross-attend over the gated,
   concatenated modality tokens (then an MLP), producing fused tokens that summarise all modalities jointly.

With ``frame_aligned`` the gated video stream is also returned as it is (``Conditions.extras``), for the MMDiT to
add frame by frame to its latent tokens: ``H_c`` has no time position, so cross-attention alone cannot place an onset
under its video frame. The audio prompt is not added: an inpainting prompt's masked span is zeros, which the model
cannot tell from a silent stretch without the mask, and a run that added it learned to copy the silence into the
span (docs/results.md, session 26); a completion prompt precedes the clip and is not on its time axis at all.
``frame_inpaint`` is the way to add it: the inpainting prompt's latents where they are kept, with the kept share of
each frame as one more channel (``Conditions.extras["frames_prompt"]``, (B, L_a, C + 1); zeros on rows that are not
inpainting or whose audio is absent or dropped), so that a span to generate is marked as such and not as silence.

``H_c = LayerNorm(concat(gated modality tokens, fused query tokens))``; the global vector for adaLN is a
projection of the mean of the query tokens (or of all tokens without queries). With ``global_text`` a second,
zero-initialised projection of the caption's mean token after the gate (its valid tokens; the null tokens when
text is dropped) is added, so that the adaLN modulation sees the text directly (MMAudio's global condition includes
pooled text). With ``enabled=False`` MAF is a plain concatenation of the projected tokens ("w/o MAF" in Table V).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from audiox.core.config import MAFConfig
from audiox.core.layers import MLP, CrossAttention
from audiox.core.types import Conditions, ModalityFeatures

__all__ = ["MAF", "align_frames", "inpaint_frames", "resample_frames"]

TEXT, VIDEO, AUDIO = 0, 1, 2


def align_frames(x: Tensor, length: int) -> Tensor:
    """Nearest-frame resampling along axis 1: (B, F, D) -> (B, length, D)."""
    f = x.shape[1]
    if f == length:
        return x
    idx = torch.div(torch.arange(length, device=x.device) * f, length, rounding_mode="floor").clamp_(max=f - 1)
    return x[:, idx]


def resample_frames(x: Tensor, length: int) -> Tensor:
    """(B, F, D) -> (B, length, D) on the same time span: the mean over each output frame's window when shortening
    (a one-frame event survives), the nearest frame when lengthening."""
    f = x.shape[1]
    if f == length:
        return x
    if f > length:
        return nn.functional.adaptive_avg_pool1d(x.transpose(1, 2), length).transpose(1, 2)
    return align_frames(x, length)


def inpaint_frames(feats: ModalityFeatures, keep: Tensor) -> Tensor:
    """``frame_inpaint``'s stream: (B, L_a, C + 1) = [prompt latents * known, known], known = the kept share of each
    prompt frame on inpainting rows whose audio prompt is ``keep`` (B,) (present and not dropped), else 0."""
    audio = feats.audio  # (B, L_a, C)
    known = feats.audio_known
    if known is None:
        known = audio.new_zeros(audio.shape[:2])
    known = (known.to(audio.dtype) * keep.to(audio.dtype)[:, None])[..., None]  # (B, L_a, 1)
    return torch.cat([audio * known, known], dim=-1)


def _masked_mean(x: Tensor, mask: Tensor) -> Tensor:  # (B, L, D), (B, L) -> (B, D)
    w = mask.to(x.dtype)[..., None]
    return (x * w).sum(1) / w.sum(1).clamp(min=1.0)


class QueryFusionLayer(nn.Module):
    """Learned queries attend over the modality tokens, then an MLP (pre-norm residual)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = CrossAttention(dim, heads)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_ratio)

    def forward(self, q: Tensor, tokens: Tensor, mask: Tensor) -> Tensor:
        q = q + self.attn(self.norm_q(q), self.norm_kv(tokens), mask)
        return q + self.mlp(self.norm_mlp(q))


class MAF(nn.Module):
    def __init__(
        self,
        cfg: MAFConfig,
        dim: int,
        text_dim: int,
        video_dim: int,
        sync_dim: int,
        audio_dim: int,
        learned_null: bool = True,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.dim = dim
        self.proj_text = nn.Linear(text_dim, dim)
        self.proj_video = nn.Linear(video_dim, dim)
        self.proj_sync = nn.Linear(sync_dim, dim)
        self.proj_audio = nn.Linear(audio_dim, dim)
        self.type_embed = nn.Parameter(torch.zeros(3, dim))
        self.null_embed = nn.Parameter(torch.zeros(3, dim)) if learned_null else None
        self.use_gate = cfg.enabled and cfg.use_gate
        self.use_query = cfg.enabled and cfg.use_query
        if self.use_gate:
            self.gate = nn.Sequential(nn.Linear(3 * dim, cfg.gate_hidden), nn.SiLU(), nn.Linear(cfg.gate_hidden, 3 * dim))
        if self.use_query:
            self.queries = nn.Parameter(torch.randn(cfg.num_queries, dim) * 0.02)
            self.fusion = nn.ModuleList(QueryFusionLayer(dim, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.out_norm = nn.LayerNorm(dim)
        self.global_proj = nn.Linear(dim, dim)
        self.global_text = nn.Linear(dim, dim) if cfg.global_text else None
        self.initialize_weights()

    def initialize_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.type_embed, std=0.02)
        if self.null_embed is not None:
            nn.init.normal_(self.null_embed, std=0.02)
        if self.global_text is not None:  # starts as the query-only global vector (fine-tuning changes nothing at step 0)
            nn.init.zeros_(self.global_text.weight)
        if self.use_gate:  # gate starts at sigmoid(0) * 2 = 1: the identity
            nn.init.zeros_(self.gate[-1].weight)
            nn.init.zeros_(self.gate[-1].bias)

    @property
    def num_context_tokens_extra(self) -> int:
        return self.cfg.num_queries if self.use_query else 0

    def forward(self, feats: ModalityFeatures, drop: Tensor | None = None) -> Conditions:
        """``feats`` -> :class:`Conditions`. ``drop`` (B, 3) bool [text, video, audio]: True = use the null."""
        b = feats.text.shape[0]
        dev = feats.text.device
        keep = torch.stack([torch.ones(b, dtype=torch.bool, device=dev), feats.video_present, feats.audio_present], 1)
        if drop is not None:
            assert drop.shape == (b, 3), f"{drop.shape=} must be (B, 3)"
            keep = keep & ~drop.to(dev)

        text = self.proj_text(feats.text)  # (B, L_t, D)
        sync = self.proj_sync(feats.sync)  # (B, F_s, D)
        video = align_frames(self.proj_video(feats.video), sync.shape[1]) + sync  # (B, F_s, D)
        audio = self.proj_audio(feats.audio)  # (B, L_a, D)
        streams = [text, video, audio]
        masks = [
            feats.text_mask,
            torch.ones(video.shape[:2], dtype=torch.bool, device=dev),
            torch.ones(audio.shape[:2], dtype=torch.bool, device=dev),
        ]
        for m in range(3):
            k = keep[:, m, None, None].to(streams[m].dtype)
            x = streams[m] * k  # zero-padding of missing / dropped modalities
            if self.null_embed is not None:
                x = x + (1 - k) * self.null_embed[m]
            if self.cfg.single_null:  # an absent stream: its first (null) token alone is valid
                first = torch.zeros_like(masks[m])
                first[:, 0] = True
                masks[m] = torch.where(keep[:, m, None], masks[m], first)
            else:  # a dropped text keeps its mask shape but attends everywhere (to the null tokens)
                masks[m] = masks[m] | ~keep[:, m, None]
            streams[m] = x + self.type_embed[m]

        if self.use_gate:
            pooled = torch.cat([_masked_mean(s, mk) for s, mk in zip(streams, masks)], dim=-1)  # (B, 3D)
            g = 2 * torch.sigmoid(self.gate(pooled)).view(b, 3, self.dim)  # (B, 3, D), 1 at init
            streams = [s * g[:, m, None, :] for m, s in enumerate(streams)]

        text_pooled = _masked_mean(streams[0], masks[0]) if self.global_text is not None else None  # (B, D)
        tokens = torch.cat(streams, dim=1)  # (B, L, D)
        mask = torch.cat(masks, dim=1)  # (B, L)
        if self.use_query:
            q = self.queries[None].expand(b, -1, -1).to(tokens.dtype)
            for layer in self.fusion:
                q = layer(q, tokens, mask)
            pooled = q.mean(1)
            tokens = torch.cat([tokens, q], dim=1)
            mask = torch.cat([mask, torch.ones(q.shape[:2], dtype=torch.bool, device=dev)], dim=1)
        else:
            pooled = _masked_mean(tokens, mask)
        if self.cfg.single_null:  # drop the columns no sample attends to: a T2A batch's H_c shrinks ~10x
            cols = mask.any(0)
            tokens, mask = tokens[:, cols], mask[:, cols]
        context = self.out_norm(tokens)
        global_cond = self.global_proj(pooled)
        if text_pooled is not None:
            global_cond = global_cond + self.global_text(text_pooled)
        extras = {}
        if self.cfg.frame_aligned:  # the video stream as it is (null when dropped), for the DiT's frames (B, F_s, D)
            extras["frames_video"] = streams[VIDEO]
        if self.cfg.frame_inpaint:
            extras["frames_prompt"] = inpaint_frames(feats, keep[:, AUDIO])
        return Conditions(context=context, context_mask=mask, global_cond=global_cond, extras=extras)
