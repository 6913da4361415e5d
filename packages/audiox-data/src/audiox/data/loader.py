"""The training loader: WebDataset shards -> :class:`~audiox.data.batch.TrainBatch` for every task.

Per sample (paper Sec. IV-B): a task is drawn from the task weights among those the sample supports
(sound events: t2a, v2a, tv2a, i2a, inpaint; music: t2m, v2m, tv2m, complete); text is one of the
sample's captions, chosen per epoch, for the text tasks (others get ``None`` -> the task sentence);
video is resampled to ``cfg.video.fps`` / ``cfg.sync.fps`` and resized to the encoders' image sizes
(i2a: one still frame repeated, a static video); inpainting masks spans of ``A`` to make ``X_a``
(``inpaint_mask`` True = to generate) and, with the chances ``inpaint_text`` / ``inpaint_video``, also carries one of
the sample's captions / its video (guided inpainting, paper Appendix D1); completion uses the preceding segment
as ``X_a``.

Determinism: the shard order and the order within a shard are permutations drawn from
``(seed, epoch)``; task, caption, crop and mask from ``(seed, epoch, key)``. ``state_dict()`` is the
position (epoch, raw samples consumed): resuming skips that many raw samples without decoding them.
Every sample is validated; a bad one is logged, skipped and counted (``stats["skipped"]``).
"""

from __future__ import annotations

import itertools
import json
import logging
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
import webdataset as wds

from audiox.core.config import TASKS, AudioXConfig
from audiox.core.types import ConditionInputs
from audiox.data.batch import TrainBatch
from audiox.data.latents import load_sidecar
from audiox.data.media import decode_audio, decode_video, resample
from audiox.data.schema import validate_annotation
from audiox.data.shards import list_shards

__all__ = ["DEFAULT_TASK_WEIGHTS", "MUSIC_TASKS", "SFX_TASKS", "LoaderConfig", "ShardLoader"]

log = logging.getLogger(__name__)

SFX_TASKS = ("t2a", "v2a", "tv2a", "i2a", "inpaint")
MUSIC_TASKS = ("t2m", "v2m", "tv2m", "complete")
TEXT_TASKS = {"t2a", "t2m", "tv2a", "tv2m"}
VIDEO_TASKS = {"v2a", "tv2a", "v2m", "tv2m", "i2a"}
DEFAULT_TASK_WEIGHTS = {
    "t2a": 2.0,
    "t2m": 2.0,
    "v2a": 1.0,
    "v2m": 1.0,
    "tv2a": 1.0,
    "tv2m": 1.0,
    "i2a": 0.5,
    "inpaint": 0.5,
    "complete": 0.5,
}


@dataclass
class LoaderConfig:
    batch_size: int = 8
    seed: int = 0
    task_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TASK_WEIGHTS))
    random_crop: bool = True  # clips longer than cfg.duration: random (deterministic) window, else the start
    inpaint_spans: tuple[int, int] = (1, 3)  # number of masked spans (inclusive)
    inpaint_fraction: tuple[float, float] = (0.1, 0.5)  # share of the clip masked in total
    # guided inpainting (paper Appendix D1, Table A.6: A, A+T, A+V, A+T+V): the chance that an inpainting sample
    # also carries one of its captions / its video (when the clip has one); without them the task's default text
    inpaint_text: float = 0.5
    inpaint_video: float = 0.5
    rank: int = 0  # data-parallel split by shard: rank r takes shards r, r + world_size, ...
    world_size: int = 1
    drop_last: bool = True
    decode_threads: int = 0  # >0: decode samples in a thread pool (PyAV / soundfile release the GIL); same batches
    latents: str = ""  # tag of cached target latents beside the shards (audiox.data.latents); "" = none

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        bad = set(self.task_weights) - set(TASKS)
        if bad:
            raise ValueError(f"unknown tasks in task_weights: {sorted(bad)} (known: {TASKS})")
        if not any(w > 0 for w in self.task_weights.values()):
            raise ValueError("task_weights: at least one task needs a positive weight")
        for name in ("inpaint_text", "inpaint_video"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} not in [0, {self.world_size})")


@dataclass
class _Item:
    key: str
    task: str
    audio: torch.Tensor  # (C_a, S)
    text: str | None
    video: torch.Tensor | None = None  # (F_v, 3, H, W)
    sync: torch.Tensor | None = None  # (F_s, 3, H_s, W_s)
    prompt: torch.Tensor | None = None  # (C_a, S)
    mask: torch.Tensor | None = None  # (S,) bool
    latent: torch.Tensor | None = None  # (C, T) cached latent of ``audio``


class ShardLoader:
    """Iterable of :class:`TrainBatch` over shards, endless across epochs (``epoch_batches`` for one)."""

    def __init__(self, shards: str | Iterable[str], model_cfg: AudioXConfig, cfg: LoaderConfig = LoaderConfig()):
        self.urls = list_shards(shards)
        if not self.urls:
            raise ValueError(f"no shards found in {shards!r}")
        self.model_cfg, self.cfg = model_cfg, cfg
        self.sr = model_cfg.autoencoder.sample_rate
        self.channels = model_cfg.autoencoder.audio_channels
        self.S = model_cfg.num_samples
        self.epoch, self.position = 0, 0
        self.stats = {"samples": 0, "skipped": 0, "batches": 0}

    # Resumable position ---------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "seed": self.cfg.seed, **self.stats}

    def load_state_dict(self, state: dict) -> None:
        if int(state.get("seed", self.cfg.seed)) != self.cfg.seed:
            raise ValueError(f"loader state is for seed {state['seed']}, this loader has seed {self.cfg.seed}")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self.stats.update({k: int(state[k]) for k in ("samples", "skipped", "batches") if k in state})

    # Raw samples ----------------------------------------------------------------------------------
    def _raw(self, epoch: int) -> Iterator[dict]:
        rng = np.random.default_rng([self.cfg.seed, epoch])
        order = [self.urls[i] for i in rng.permutation(len(self.urls))]
        mine = order[self.cfg.rank :: self.cfg.world_size]
        for url in mine:
            samples = list(self._samples(url))
            if self.cfg.latents:
                cache = load_sidecar(url, self.cfg.latents)
                for raw in samples:
                    raw["__latent__"] = cache.get(raw["__key__"])
            perm = np.random.default_rng([self.cfg.seed, epoch, zlib.crc32(url.encode())]).permutation(len(samples))
            for i in perm:
                yield samples[i]

    def _samples(self, url: str) -> Iterator[dict]:
        """The raw samples of one shard, in file order (unreadable members are logged and skipped)."""
        return iter(wds.DataPipeline(wds.SimpleShardList([url]), wds.tarfile_to_samples(handler=self._bad_shard)))

    def _bad_shard(self, exn: Exception) -> bool:
        log.warning("skipping unreadable shard data: %s", exn)
        self.stats["skipped"] += 1
        return True

    # One sample -----------------------------------------------------------------------------------
    def _audio(self, data: bytes) -> torch.Tensor:
        x, sr = decode_audio(data)
        if x.shape[1] == 0 or not np.isfinite(x).all():
            raise ValueError("empty or non-finite audio")
        x = resample(x, sr, self.sr)
        if x.shape[0] != self.channels:
            x = np.repeat(x.mean(0, keepdims=True), self.channels, 0)
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).clamp(-1, 1)

    def _frames(
        self, frames: np.ndarray, src_fps: float, t0: float, fps: float, n: int, size: int, still: float | None
    ) -> torch.Tensor:
        times = np.full(n, still) if still is not None else t0 + np.arange(n) / fps
        idx = np.clip(np.round(times * src_fps).astype(int), 0, len(frames) - 1)
        x = torch.from_numpy(np.ascontiguousarray(frames[idx])).permute(0, 3, 1, 2)  # (F, 3, H, W) uint8
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
            x = x.round_().clamp_(0, 255).to(torch.uint8)
        # uint8 0-255: a quarter of float32's bytes through worker processes and to the GPU; the encoders scale it
        return x.contiguous()

    def _target(self, audio: torch.Tensor, start: int) -> torch.Tensor:
        """``(C_a, S)``: the model's duration from ``start``, zero-padded at the end."""
        target = torch.zeros(self.channels, self.S)
        seg = audio[:, start : start + self.S]
        target[:, : seg.shape[1]] = seg
        return target

    def clip_targets(self, url: str) -> Iterator[tuple[str, torch.Tensor | Exception]]:
        """``(key, target from the clip's start)`` for every sample of one shard, in file order: what the cached
        latents encode (``audiox-train encode-latents``). A sample that does not decode gives its error."""
        for raw in self._samples(url):
            try:
                yield raw["__key__"], self._target(self._clip_audio(raw), 0)
            except Exception as e:  # noqa: BLE001
                yield raw["__key__"], e

    def _clip_audio(self, raw: dict) -> torch.Tensor:
        """``(C_a, L)``: the sample's whole target audio at the model's rate and channel count."""
        if "flac" not in raw and "wav" not in raw:
            raise ValueError("no target audio")
        return self._audio(raw.get("flac") or raw["wav"])

    def _item(self, raw: dict, epoch: int) -> _Item:
        key = raw["__key__"]
        ann = validate_annotation(json.loads(raw["json"]))
        rng = np.random.default_rng([self.cfg.seed, epoch, zlib.crc32(key.encode())])
        music = ann.get("kind") == "music" or "genre" in ann
        has_video, has_prompt = "mp4" in raw, "prompt.flac" in raw
        allowed = [
            t
            for t in (MUSIC_TASKS if music else SFX_TASKS)
            if self.cfg.task_weights.get(t, 0) > 0
            and (t not in VIDEO_TASKS or has_video)
            and (t != "complete" or has_prompt)
        ]
        if not allowed:
            raise ValueError("no enabled task fits this sample")
        w = np.array([self.cfg.task_weights[t] for t in allowed])
        task = allowed[int(rng.choice(len(allowed), p=w / w.sum()))]
        audio = self._clip_audio(raw)
        length = audio.shape[1]
        start = int(rng.integers(0, length - self.S + 1)) if self.cfg.random_crop and length > self.S else 0
        target = self._target(audio, start)
        t0 = start / self.sr
        item = _Item(key, task, target, self._caption(ann, rng) if task in TEXT_TASKS else None)
        if start == 0 and raw.get("__latent__") is not None:  # the cache holds the clip from its start
            item.latent = raw["__latent__"]
        if task in VIDEO_TASKS:
            self._add_video(item, raw, t0, rng, still=task == "i2a")
        if task == "inpaint":
            mask = torch.zeros(self.S, dtype=torch.bool)
            k = int(rng.integers(self.cfg.inpaint_spans[0], self.cfg.inpaint_spans[1] + 1))
            total = rng.uniform(*self.cfg.inpaint_fraction) * self.S
            for _ in range(k):
                span = max(1, int(total / k))
                s = int(rng.integers(0, self.S - span + 1))
                mask[s : s + span] = True
            item.mask = mask
            item.prompt = target.masked_fill(mask[None], 0.0)
            # guidance, drawn after the mask so that the masks of a seed stay what they were without it
            if rng.random() < self.cfg.inpaint_text:
                item.text = self._caption(ann, rng)
            if has_video and rng.random() < self.cfg.inpaint_video:
                self._add_video(item, raw, t0, rng, still=False)
        if task == "complete":
            full = torch.cat([self._audio(raw["prompt.flac"]), audio], dim=1)
            begin = full.shape[1] - length + start  # where A starts inside prompt + target
            prev = full[:, max(0, begin - self.S) : begin]
            item.prompt = torch.zeros(self.channels, self.S)
            item.prompt[:, self.S - prev.shape[1] :] = prev  # right-aligned: X_a ends where A begins
        return item

    @staticmethod
    def _caption(ann: dict, rng: np.random.Generator) -> str:
        """One of the sample's captions (the main one or any perspective's), drawn uniformly."""
        caps = [ann["caption"]] + [c for v in ann.get("captions", {}).values() for c in v]
        return caps[int(rng.integers(len(caps)))]

    def _add_video(self, item: _Item, raw: dict, t0: float, rng: np.random.Generator, still: bool) -> None:
        """The clip's CLIP-rate and sync-rate frames from ``t0`` (``still``: one frame held, a static video)."""
        frames, src_fps = decode_video(raw["mp4"])
        at = (t0 + self.model_cfg.duration * rng.uniform(0.2, 0.8)) if still else None
        vc, sc = self.model_cfg.video, self.model_cfg.sync
        item.video = self._frames(frames, src_fps, t0, vc.fps, self.model_cfg.video_frames, vc.image_size, at)
        item.sync = self._frames(frames, src_fps, t0, sc.fps, self.model_cfg.sync_frames, sc.image_size, at)

    # Batches --------------------------------------------------------------------------------------
    def _collate(self, items: list[_Item]) -> TrainBatch:
        B = len(items)
        video = sync = vp = prompt = ap = None
        if any(it.video is not None for it in items):
            ref_v = next(it.video for it in items if it.video is not None)
            ref_s = next(it.sync for it in items if it.sync is not None)
            video = torch.zeros(B, *ref_v.shape, dtype=ref_v.dtype)
            sync = torch.zeros(B, *ref_s.shape, dtype=ref_s.dtype)
            vp = torch.zeros(B, dtype=torch.bool)
            for b, it in enumerate(items):
                if it.video is not None:
                    video[b], sync[b], vp[b] = it.video, it.sync, True
        if any(it.prompt is not None for it in items):
            prompt = torch.zeros(B, self.channels, self.S)
            ap = torch.zeros(B, dtype=torch.bool)
            for b, it in enumerate(items):
                if it.prompt is not None:
                    prompt[b], ap[b] = it.prompt, True
        mask = torch.zeros(B, self.S, dtype=torch.bool)
        for b, it in enumerate(items):
            if it.mask is not None:
                mask[b] = it.mask
        inputs = ConditionInputs(
            text=[it.text for it in items],
            task=[it.task for it in items],
            video=video,
            sync_video=sync,
            video_present=vp,
            audio=prompt,
            audio_present=ap,
            inpaint_mask=mask if prompt is not None else None,  # the model reads it on inpainting rows only
        )
        cached = all(it.latent is not None for it in items)
        return TrainBatch(
            audio=torch.stack([it.audio for it in items]),
            inputs=inputs,
            keys=[it.key for it in items],
            inpaint_mask=mask,
            latents=torch.stack([it.latent for it in items]) if cached else None,
        )

    def _try_item(self, raw: dict, epoch: int) -> _Item | Exception:
        try:
            return self._item(raw, epoch)
        except Exception as e:  # noqa: BLE001
            return e

    def _decoded(self, epoch: int, skip: int) -> Iterator[tuple[int, dict, _Item | Exception]]:
        """(raw index, raw sample, item or the error) in epoch order, from raw index ``skip`` on."""
        raws = ((i, raw) for i, raw in enumerate(self._raw(epoch)) if i >= skip)
        if self.cfg.decode_threads <= 0:
            for i, raw in raws:
                yield i, raw, self._try_item(raw, epoch)
            return
        chunk = max(1, 2 * self.cfg.batch_size)
        with ThreadPoolExecutor(self.cfg.decode_threads) as pool:
            while True:
                block = list(itertools.islice(raws, chunk))
                if not block:
                    return
                results = pool.map(lambda r: self._try_item(r[1], epoch), block)  # ordered
                for (i, raw), res in zip(block, results, strict=True):
                    yield i, raw, res

    def epoch_batches(self, epoch: int | None = None) -> Iterator[TrainBatch]:
        """Batches of one epoch from the current position; the position advances as batches are yielded."""
        if epoch is not None and epoch != self.epoch:
            self.epoch, self.position = epoch, 0
        epoch, skip = self.epoch, self.position
        items: list[_Item] = []
        consumed = skip
        for i, raw, result in self._decoded(epoch, skip):
            consumed = i + 1
            if isinstance(result, Exception):  # any bad sample is skipped, never fatal
                self.stats["skipped"] += 1
                log.warning("skipping sample %s: %s: %s", raw.get("__key__", "?"), type(result).__name__, result)
                continue
            items.append(result)
            self.stats["samples"] += 1
            if len(items) == self.cfg.batch_size:
                self.position = consumed
                self.stats["batches"] += 1
                yield self._collate(items)
                items = []
        if items and not self.cfg.drop_last:
            self.position = consumed
            self.stats["batches"] += 1
            yield self._collate(items)
        self.epoch, self.position = epoch + 1, 0

    def __iter__(self) -> Iterator[TrainBatch]:
        while True:
            produced = False
            for batch in self.epoch_batches():
                produced = True
                yield batch
            if not produced:
                raise RuntimeError(
                    f"an epoch of {len(self.urls)} shards produced no batch (skipped {self.stats['skipped']} samples)"
                )
