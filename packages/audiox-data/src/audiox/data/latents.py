"""Cached target latents next to the shards (the pre-encoding of MMAudio and stable-audio-tools).

The autoencoder is frozen while the teacher and the student train, so the latent of each clip's target audio is
the same at every epoch. ``audiox-train encode-latents`` computes it once per shard and writes
``<shard>.latents-<tag>.safetensors`` beside ``<shard>.tar``: one float32 ``(C, T)`` tensor per sample key.
``<tag>`` fingerprints the encoder weights, the latent scale, the sample rate and the clip length, so a cache made
with another autoencoder (or for another duration) is never read by mistake.

With ``LoaderConfig.latents=<tag>`` the loader attaches each sample's cached latent to its batch
(``TrainBatch.latents``) whenever the target is the clip from its start (every clip no longer than the model's
duration); a batch with any other sample has ``latents=None`` and the trainer encodes it as before.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open

from audiox.core.io import save_tensors_atomic

__all__ = ["sidecar_path", "load_sidecar", "save_sidecar", "missing_sidecars"]

SUFFIX = ".latents-{tag}.safetensors"


def sidecar_path(shard: str | Path, tag: str) -> Path:
    """``dir/name.tar`` -> ``dir/name.latents-<tag>.safetensors``."""
    p = Path(shard)
    stem = p.name[: -len(".tar")] if p.name.endswith(".tar") else p.name
    return p.with_name(stem + SUFFIX.format(tag=tag))


def missing_sidecars(shards: list[str], tag: str) -> list[str]:
    return [s for s in shards if not sidecar_path(s, tag).is_file()]


def load_sidecar(shard: str | Path, tag: str) -> dict[str, torch.Tensor]:
    """``{sample key: (C, T) float32}`` of one shard; a clear error when it is missing or for another tag."""
    path = sidecar_path(shard, tag)
    if not path.is_file():
        raise FileNotFoundError(
            f"no cached latents {path.name} beside {shard}: run `audiox-train encode-latents` with this model first"
        )
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
        if meta.get("audiox_latent_tag") != tag:
            raise ValueError(f"{path} holds latents for tag {meta.get('audiox_latent_tag')!r}, not {tag!r}")
        return {k: f.get_tensor(k) for k in f.keys()}


def save_sidecar(shard: str | Path, tag: str, latents: dict[str, torch.Tensor], meta: dict[str, str] | None = None) -> Path:
    """Write one shard's latents atomically (a temporary file renamed into place, with the umask's mode)."""
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in latents.items()}
    return save_tensors_atomic(tensors, sidecar_path(shard, tag), metadata={**(meta or {}), "audiox_latent_tag": tag})
