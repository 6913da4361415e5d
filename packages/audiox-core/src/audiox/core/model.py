"""``AudioXModel``: encoders -> MAF -> MMDiT, plus the audio autoencoder (paper Fig. 4).

Usage (docs/architecture.md)::

    model = AudioXModel(get_config("debug"))
    cond = model.prepare_conditions(ConditionInputs(text=["a bell rings twice"], task=["t2a"]))
    v = model(z_t, t, cond)              # (B, C, T) velocity; cond is reused at every sampling step
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import torch
from einops import rearrange
from torch import Tensor, nn

from audiox.core.autoencoder import AudioAutoencoder
from audiox.core.conditioning import fill_text
from audiox.core.config import AudioXConfig
from audiox.core.encoders import SyncEncoder, TextEncoder, VideoEncoder
from audiox.core.maf import MAF, align_frames, resample_frames
from audiox.core.mmdit import MMDiT
from audiox.core.types import ConditionInputs, Conditions, ModalityFeatures

__all__ = ["AudioXModel"]


def _grad_ctx(module: nn.Module) -> contextlib.AbstractContextManager:
    """No autograd through frozen encoders (cheaper, and they never receive gradients)."""
    frozen = getattr(module, "frozen", False)
    return torch.no_grad() if frozen else contextlib.nullcontext()


class AudioXModel(nn.Module):
    def __init__(self, config: AudioXConfig) -> None:
        super().__init__()
        self.config = config
        self.text_encoder = TextEncoder(config.text)
        self.video_encoder = VideoEncoder(config.video)
        self.sync_encoder = SyncEncoder(config.sync)
        self.autoencoder = AudioAutoencoder(config.autoencoder)
        self.maf = MAF(
            config.maf,
            dim=config.dit.hidden_size,
            text_dim=self.text_encoder.out_dim,
            video_dim=self.video_encoder.out_dim,
            sync_dim=self.sync_encoder.out_dim,
            audio_dim=config.autoencoder.latent_dim,
            learned_null=config.dit.learned_null,
        )
        frame_channels = config.dit.hidden_size if config.maf.frame_aligned else 0  # the video stream
        prompt_channels = config.autoencoder.latent_dim + 1 if config.maf.frame_inpaint else 0  # latents + known
        self.dit = MMDiT(config.dit, latent_channels=config.autoencoder.latent_dim, frame_channels=frame_channels,
                         prompt_channels=prompt_channels)

    # ---------------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.dit.x_embed.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.dit.x_embed.weight.dtype

    @property
    def sample_rate(self) -> int:
        return self.config.autoencoder.sample_rate

    def encoders(self) -> dict[str, nn.Module]:
        return {
            "text_encoder": self.text_encoder,
            "video_encoder": self.video_encoder,
            "sync_encoder": self.sync_encoder,
            "autoencoder": self.autoencoder,
        }

    def denoiser_parameters(self) -> Iterator[nn.Parameter]:
        """What trains in the teacher: MAF + MMDiT + any encoder built with ``freeze=False``.

        The autoencoder is never trained here (it has its own trainer), whatever its ``freeze`` flag says.
        """
        yield from self.maf.parameters()
        yield from self.dit.parameters()
        for name, enc in self.encoders().items():
            if name != "autoencoder" and not getattr(enc, "frozen", False):
                yield from enc.parameters()

    def num_parameters(self) -> dict[str, int]:
        """Parameter counts per module plus ``trainable`` (denoiser) and ``total``; works on the meta device."""
        counts = {name: sum(p.numel() for p in m.parameters()) for name, m in self.named_children()}
        counts["trainable"] = sum(p.numel() for p in self.denoiser_parameters())
        counts["total"] = sum(p.numel() for p in self.parameters())
        return counts

    # Conditioning (computed once per sample) ---------------------------------------------------------
    def encode_modalities(self, inputs: ConditionInputs) -> ModalityFeatures:
        """Run the encoders. Absent modalities become zeros with a False presence flag (zero-padding)."""
        cfg = self.config
        b = inputs.batch_size
        dev = self.device
        texts = fill_text(list(inputs.text), list(inputs.task))
        with _grad_ctx(self.text_encoder):
            text, text_mask = self.text_encoder(texts)
        text, text_mask = text.to(dev, self.dtype), text_mask.to(dev)

        if inputs.video is not None:
            video_frames = inputs.video.to(dev)
            present = inputs.video_present
            present = torch.ones(b, dtype=torch.bool, device=dev) if present is None else present.to(dev)
            sync_frames = inputs.sync_video
            if sync_frames is None:  # derive the 25 fps stream from the given frames (nearest frame in time)
                n = max(1, round(video_frames.shape[1] * cfg.sync.fps / cfg.video.fps))
                sync_frames = align_frames(video_frames, n)
            with _grad_ctx(self.video_encoder):
                video = self.video_encoder(video_frames)  # (B, F_v, D_v)
            with _grad_ctx(self.sync_encoder):
                sync = self.sync_encoder(sync_frames.to(dev))  # (B, F_s, D_s)
            w = present.to(self.dtype)[:, None, None]
            video, sync = video.to(self.dtype) * w, sync.to(self.dtype) * w
        else:
            present = torch.zeros(b, dtype=torch.bool, device=dev)
            video = torch.zeros(b, cfg.video_frames, self.video_encoder.out_dim, device=dev, dtype=self.dtype)
            sync = torch.zeros(b, cfg.sync_frames, self.sync_encoder.out_dim, device=dev, dtype=self.dtype)

        if inputs.audio is not None:
            a_present = inputs.audio_present
            a_present = torch.ones(b, dtype=torch.bool, device=dev) if a_present is None else a_present.to(dev)
            wav = self.autoencoder.pad_to_hop(inputs.audio.to(dev))
            with torch.no_grad():  # the autoencoder never trains with the denoiser
                # only the prompts that are there: the encoder runs at the audio rate
                ae = self.autoencoder
                lat = torch.zeros(b, ae.latent_dim, wav.shape[-1] // ae.hop_length, device=dev, dtype=self.dtype)
                if bool(a_present.any()):
                    lat[a_present] = ae.encode(wav[a_present]).to(self.dtype)  # (B, C, T_a)
            audio = rearrange(lat, "B C T -> B T C").to(self.dtype) * a_present.to(self.dtype)[:, None, None]
            known = self._audio_known(inputs, a_present, wav.shape[-1])
        else:
            a_present = torch.zeros(b, dtype=torch.bool, device=dev)
            audio = torch.zeros(b, cfg.latent_length, cfg.autoencoder.latent_dim, device=dev, dtype=self.dtype)
            known = None

        return ModalityFeatures(
            text=text, text_mask=text_mask, video=video, sync=sync, video_present=present,
            audio=audio, audio_present=a_present, audio_known=known,
        )

    def _audio_known(self, inputs: ConditionInputs, present: Tensor, padded: int) -> Tensor | None:
        """The kept share of each audio-prompt latent frame (B, T_a) on inpainting rows (0 elsewhere), from
        ``inputs.inpaint_mask`` (B, S), True = to generate; None without a mask."""
        mask = inputs.inpaint_mask
        if mask is None:
            return None
        b, s = inputs.audio.shape[0], inputs.audio.shape[-1]
        if mask.shape != (b, s):
            raise ValueError(f"inpaint_mask must be (B, S) = {(b, s)} like the audio prompt, got {tuple(mask.shape)}")
        hop = self.autoencoder.hop_length
        gen = nn.functional.pad(mask.to(self.device, torch.float32), (0, padded - s), value=1.0)  # padding: not kept
        known = 1.0 - gen.view(b, padded // hop, hop).mean(-1)  # (B, T_a)
        rows = torch.tensor([t == "inpaint" for t in inputs.task], device=self.device) & present
        return (known * rows[:, None]).to(self.dtype)

    def fuse(self, feats: ModalityFeatures, drop: Tensor | None = None) -> Conditions:
        """MAF: features -> ``H_c``. ``drop`` (B, 3) bool [text, video, audio], True = null (CFG)."""
        return self.maf(feats, drop)

    def prepare_conditions(self, inputs: ConditionInputs, drop: Tensor | None = None) -> Conditions:
        return self.fuse(self.encode_modalities(inputs), drop)

    def unconditional(self, feats: ModalityFeatures) -> Conditions:
        """All modalities dropped: the unconditional branch of classifier-free guidance."""
        b = feats.text.shape[0]
        return self.fuse(feats, torch.ones(b, 3, dtype=torch.bool, device=feats.text.device))

    # Denoiser ---------------------------------------------------------------------------------------
    def frames(self, cond: Conditions, length: int) -> Tensor | None:
        """``maf.frame_aligned``: the video stream on the ``length`` latent frames, layer-normed (no affine)
        -> (B, T, D); None otherwise."""
        if not self.config.maf.frame_aligned:
            return None
        if "frames_video" not in cond.extras:
            raise ValueError("maf.frame_aligned: these conditions carry no frame stream (made by another model?)")
        video = resample_frames(cond.extras["frames_video"], length)  # (B, T, D)
        return nn.functional.layer_norm(video, video.shape[-1:])

    def prompt_frames(self, cond: Conditions, length: int) -> Tensor | None:
        """``maf.frame_inpaint``: the inpainting prompt's kept latents and kept share on the ``length`` latent
        frames -> (B, T, C + 1); None otherwise."""
        if not self.config.maf.frame_inpaint:
            return None
        if "frames_prompt" not in cond.extras:
            raise ValueError("maf.frame_inpaint: these conditions carry no prompt frames (made by another model?)")
        return resample_frames(cond.extras["frames_prompt"], length)

    def forward(self, z_t: Tensor, t: Tensor, cond: Conditions) -> Tensor:
        """Velocity ``v(z_t, t, H_c)``: (B, C, T) -> (B, C, T); ``t`` (B,) in [0, 1]."""
        n = z_t.shape[-1]
        return self.dit(z_t, t, cond.context, cond.context_mask, cond.global_cond, self.frames(cond, n),
                        self.prompt_frames(cond, n))

    def forward_features(self, z_t: Tensor, t: Tensor, cond: Conditions, num_blocks: int) -> list[Tensor]:
        n = z_t.shape[-1]
        return self.dit.forward_features(z_t, t, cond.context, cond.context_mask, cond.global_cond, num_blocks,
                                         self.frames(cond, n), self.prompt_frames(cond, n))

    # Weights ----------------------------------------------------------------------------------------
    def save_pretrained(self, path: str | Path) -> Path:
        from audiox.core.checkpoint import save_pretrained

        return save_pretrained(self, path)

    @classmethod
    def from_pretrained(
        cls, path: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype | None = None,
        overrides: list[str] | tuple[str, ...] = (),
    ) -> AudioXModel:
        from audiox.core.checkpoint import from_pretrained

        return from_pretrained(path, device=device, dtype=dtype, overrides=overrides)
