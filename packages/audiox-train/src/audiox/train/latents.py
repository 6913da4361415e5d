"""Pre-encode the target latents of a corpus once (``audiox-train encode-latents``), for every later epoch.

The frozen autoencoder's encoder runs at the audio rate and dominated a CPU training step of the mini teacher
(about 70 % of it, docs/perf.md). Its output for a clip never changes while the teacher or the student trains, so
it is computed once per shard and stored beside it (:mod:`audiox.data.latents`). ``data.latents=true`` then makes
the teacher and the distillation read it instead of encoding; the tag (:func:`latent_tag`) ties a cache to the
exact encoder weights, so a run with another autoencoder refuses it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

import torch

from audiox.core.model import AudioXModel

__all__ = ["latent_tag", "encode_shards", "EncodeReport"]

log = logging.getLogger("audiox.train")


def latent_tag(model: AudioXModel) -> str:
    """12 hex digits of sha256 over the encoder's float32 weights (sorted by name), the latent scale, the sample
    rate and the clip length: what the cached latent of a clip depends on."""
    ae = model.autoencoder
    h = hashlib.sha256()
    h.update(f"{ae.sample_rate}|{model.config.num_samples}|{float(ae.latent_scale)!r}|{ae.hop_length}".encode())
    for name, t in sorted(ae.encoder.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


@dataclass
class EncodeReport:
    tag: str
    shards: int  # shards encoded by this call
    skipped_shards: int  # already cached (same tag): a rerun continues where a crash stopped
    clips: int
    bad_clips: int
    seconds: float


@torch.no_grad()
def encode_shards(model: AudioXModel, shards: str, *, batch_size: int = 16, device: torch.device | str = "cpu",
                  progress: bool = False) -> EncodeReport:
    """Write ``<shard>.latents-<tag>.safetensors`` for every shard of ``shards`` that lacks one."""
    from audiox.data.latents import save_sidecar, sidecar_path
    from audiox.data.loader import LoaderConfig, ShardLoader

    t0 = time.perf_counter()
    model = model.to(device).eval()
    ae = model.autoencoder
    tag = latent_tag(model)
    loader = ShardLoader(shards, model.config, LoaderConfig(batch_size=1))
    done = skipped = clips = bad = 0
    for url in loader.urls:
        if sidecar_path(url, tag).is_file():
            skipped += 1
            continue
        keys: list[str] = []
        waves: list[torch.Tensor] = []
        out: dict[str, torch.Tensor] = {}

        def flush() -> None:
            if waves:
                wav = ae.pad_to_hop(torch.stack(waves).to(device))  # (B, C_a, S')
                z = ae.encode(wav).float().cpu()  # (B, C, T): the posterior mean, as the trainers take it
                out.update(zip(keys, z.unbind(0), strict=True))
                keys.clear()
                waves.clear()

        for key, target in loader.clip_targets(url):
            if isinstance(target, Exception):
                bad += 1
                log.warning("encode-latents: skipping %s in %s: %s", key, url, target)
                continue
            keys.append(key)
            waves.append(target)
            if len(waves) == batch_size:
                flush()
        flush()
        save_sidecar(url, tag, out, meta={"clips": str(len(out))})
        done += 1
        clips += len(out)
        if progress:
            rate = clips / max(time.perf_counter() - t0, 1e-9)
            print(f"encode-latents: {done + skipped}/{len(loader.urls)} shards, {clips} clips ({rate:.1f} clips/s)", flush=True)
    return EncodeReport(tag, done, skipped, clips, bad, time.perf_counter() - t0)
