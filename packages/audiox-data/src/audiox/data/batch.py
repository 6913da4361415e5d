"""The training batch the loader yields (consumed by audiox-train and audiox-distill)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from audiox.core.types import ConditionInputs

__all__ = ["TrainBatch"]


@dataclass
class TrainBatch:
    """One batch of one or more tasks.

    ``audio`` is the target ``A`` at the model's sample rate and duration; ``inputs`` carries the
    conditioning (text / video / audio prompt ``X_a`` with presence masks) exactly as the model takes it.
    ``inpaint_mask`` marks, for inpainting samples, the audio samples that were masked out of ``X_a``
    (True = to be generated); it is all False for other tasks.
    """

    audio: Tensor  # (B, C_a, S) target waveform in [-1, 1]
    inputs: ConditionInputs
    keys: list[str] = field(default_factory=list)  # sample ids (shard key), for logging and pairing
    inpaint_mask: Tensor | None = None  # (B, S) bool
    latents: Tensor | None = None  # (B, C, T) cached E(audio) (audiox.data.latents); None = encode ``audio``

    @property
    def batch_size(self) -> int:
        return self.audio.shape[0]

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> TrainBatch:
        return replace(
            self,
            audio=self.audio.to(device=device, dtype=dtype) if dtype is not None else self.audio.to(device),
            inputs=self.inputs.to(device, dtype),
            inpaint_mask=None if self.inpaint_mask is None else self.inpaint_mask.to(device),
            latents=None if self.latents is None else self.latents.to(device),
        )
