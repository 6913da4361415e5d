"""Data passed between the encoders, MAF, the MMDiT and the packages above core.

Shapes (capital axes): B batch, C_a audio channels, S audio samples, C latent channels, T latent frames,
F video frames, H/W pixels, L tokens, D widths.

- Waveforms are ``(B, C_a, S)`` float in [-1, 1] at the autoencoder's sample rate.
- Latents are ``(B, C, T)`` (channels first, as the autoencoder produces them) everywhere outside the MMDiT.
- Video is ``(B, F, 3, H, W)`` float in [0, 1]; frames are already at the rate the encoder wants
  (``config.video.fps`` for CLIP, ``config.sync.fps`` for the sync encoder).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ConditionInputs", "ModalityFeatures", "Conditions"]


@dataclass
class ConditionInputs:
    """Raw conditioning for a batch, as the data loader or the pipeline hands it to the model.

    A modality that no sample has is ``None``; a modality that only some samples have carries a ``(B,)``
    bool ``*_present`` mask (absent samples hold zeros there). Missing text is replaced by the task
    sentence of :data:`audiox.core.config.TASK_SENTENCES` by :func:`audiox.core.conditioning.fill_text`.
    """

    text: list[str | None]  # B captions (None -> task sentence)
    task: list[str]  # B task names from audiox.core.config.TASKS
    video: Tensor | None = None  # (B, F_v, 3, H, W) frames at config.video.fps: float in [0, 1] or uint8 0-255
    sync_video: Tensor | None = None  # (B, F_s, 3, H_s, W_s) frames at config.sync.fps: float [0, 1] or uint8
    video_present: Tensor | None = None  # (B,) bool
    audio: Tensor | None = None  # (B, C_a, S) audio prompt X_a (masked audio for inpainting; preceding clip for completion)
    audio_present: Tensor | None = None  # (B,) bool
    # (B, S) bool, True = to generate: the spans zeroed out of ``audio``; read only on rows whose task is "inpaint"
    inpaint_mask: Tensor | None = None

    @property
    def batch_size(self) -> int:
        return len(self.text)

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> ConditionInputs:
        def mv(x: Tensor | None) -> Tensor | None:
            if x is None:
                return None
            if dtype is not None and x.is_floating_point():
                return x.to(device=device, dtype=dtype)
            return x.to(device=device)

        return replace(
            self,
            video=mv(self.video),
            sync_video=mv(self.sync_video),
            video_present=mv(self.video_present),
            audio=mv(self.audio),
            audio_present=mv(self.audio_present),
            inpaint_mask=None if self.inpaint_mask is None else self.inpaint_mask.to(device),
        )


@dataclass
class ModalityFeatures:
    """Outputs of the (usually frozen) encoders, before MAF. Cacheable: no step dependence.

    The two video streams stay separate here; MAF projects both to the model width, aligns CLIP's 5 fps
    features to the 25 fps sync grid (nearest repeat) and adds them (paper Sec. VI-A: "fused via addition").

    Each stream is ``(B, L_m, D_m)`` with a ``(B, L_m)`` bool token mask (True = real token) and a ``(B,)``
    bool presence flag (False = the sample lacks this modality: its tokens are zeros).

    ``audio_known`` is, for inpainting, the share of each audio-prompt frame that the prompt really holds (1 = kept,
    0 = inside a span to generate, or not an inpainting prompt); None when no inpainting mask was given.
    """

    text: Tensor  # (B, L_t, D_t)
    text_mask: Tensor  # (B, L_t) bool
    video: Tensor  # (B, F_v, D_v): CLIP frame features at config.video.fps
    sync: Tensor  # (B, F_s, D_s): synchronisation features at config.sync.fps
    video_present: Tensor  # (B,) bool (covers both video streams)
    audio: Tensor  # (B, L_a, D_a): audio-prompt latents as tokens
    audio_present: Tensor  # (B,) bool
    audio_known: Tensor | None = None  # (B, L_a) float in [0, 1]

    def detach(self) -> ModalityFeatures:
        return ModalityFeatures(**{f.name: _map(getattr(self, f.name), lambda x: x.detach()) for f in fields(self)})

    def index(self, idx: Tensor | slice) -> ModalityFeatures:
        return ModalityFeatures(**{f.name: _map(getattr(self, f.name), lambda x: x[idx]) for f in fields(self)})


def _map(x: Tensor | None, fn) -> Tensor | None:
    return None if x is None else fn(x)


@dataclass
class Conditions:
    """What the MMDiT consumes at every step (computed once per sample, reused across steps).

    ``context`` is ``H_c`` from MAF; ``global_cond`` is a pooled vector added to the timestep embedding
    for adaLN modulation.
    """

    context: Tensor  # (B, L_c, D) H_c
    context_mask: Tensor  # (B, L_c) bool, True = attend
    global_cond: Tensor  # (B, D)
    extras: dict[str, Tensor] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return self.context.shape[0]

    @staticmethod
    def cat(items: list[Conditions]) -> Conditions:
        """Concatenate along the batch axis (for batching conditional and unconditional CFG passes). Contexts of
        different lengths (``maf.single_null`` drops unattended columns) are padded with masked zeros."""
        keys = set(items[0].extras)
        n = max(c.context.shape[1] for c in items)
        return Conditions(
            context=torch.cat([F.pad(c.context, (0, 0, 0, n - c.context.shape[1])) for c in items]),
            context_mask=torch.cat([F.pad(c.context_mask, (0, n - c.context_mask.shape[1])) for c in items]),
            global_cond=torch.cat([c.global_cond for c in items]),
            extras={k: torch.cat([c.extras[k] for c in items]) for k in keys},
        )

    def repeat(self, n: int) -> Conditions:
        return Conditions(
            context=self.context.repeat_interleave(n, 0),
            context_mask=self.context_mask.repeat_interleave(n, 0),
            global_cond=self.global_cond.repeat_interleave(n, 0),
            extras={k: v.repeat_interleave(n, 0) for k, v in self.extras.items()},
        )
