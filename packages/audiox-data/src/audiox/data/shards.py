"""Writing the synthetic world to WebDataset tar shards (the layout ``webdataset.TarWriter`` writes):
shard by shard, in parallel processes,
atomically (temp name, then ``os.replace``), idempotent and resumable after a kill.

Shard ``j`` holds clips ``[j*K, (j+1)*K)`` of the training stream, so a shard's content depends only on
``(seed, j, K, SynthConfig)``: a rerun skips finished shards and re-renders unfinished ones, which
loses and duplicates nothing. One sample::

    __key__       clip id ("s0-00000042")
    flac          target audio A (16-bit FLAC, mono, cfg.sample_rate)
    mp4           video (H.264, cfg.fps, cfg.image_size^2), when cfg.video
    prompt.flac   music only: the preceding segment (completion prompt X_a)
    json          IF-caps-Pro annotation + ``captions`` per perspective + ``spec`` (exact clip spec)
"""

from __future__ import annotations

import dataclasses
import glob
import io
import json
import os
import tarfile
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from braceexpand import braceexpand
from tqdm import tqdm

from audiox.data.media import encode_flac, encode_mp4
from audiox.data.synth.prompts import make_prompt_sets
from audiox.data.synth.world import SynthConfig, render_clip, sample_clip_spec, spec_to_dict

__all__ = ["atomic_write_text", "clip_sample", "list_shards", "shard_keys", "synth_shards", "write_shard"]

MANIFEST = "synth.json"


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def clip_sample(seed: int, index: int, cfg: SynthConfig) -> dict:
    """The WebDataset sample (key -> bytes) of training clip ``index``."""
    clip = render_clip(sample_clip_spec(seed, index, cfg), cfg)
    ann = dict(clip.annotation, spec=spec_to_dict(clip.spec))
    sample = {
        "__key__": clip.spec.key,
        "flac": encode_flac(clip.audio, cfg.sample_rate),
        "json": json.dumps(ann, sort_keys=True).encode(),
    }
    if clip.frames is not None:
        sample["mp4"] = encode_mp4(clip.frames, cfg.fps)
    if clip.prompt_audio is not None:
        sample["prompt.flac"] = encode_flac(clip.prompt_audio, cfg.sample_rate)
    return sample


def _shard_name(j: int) -> str:
    return f"synth-{j:06d}.tar"


def _add_sample(tf: tarfile.TarFile, sample: dict) -> None:
    """Append one sample in WebDataset's layout (``key.ext`` members, consecutive, extensions sorted), as
    ``webdataset.TarWriter`` writes it but with a fixed mtime and owner (same seed -> same shard bytes) and
    without importing torch (so shard workers start fast)."""
    key = sample["__key__"]
    for ext in sorted(k for k in sample if k != "__key__"):
        data = sample[ext]
        ti = tarfile.TarInfo(f"{key}.{ext}")
        ti.size, ti.mtime, ti.mode, ti.uname, ti.gname = len(data), 0, 0o444, "audiox", "audiox"
        tf.addfile(ti, io.BytesIO(data))


def write_shard(out: Path, j: int, start: int, stop: int, seed: int, cfg: SynthConfig) -> tuple[int, int]:
    """Render clips [start, stop) into shard ``j`` (temp file, then rename). Returns (j, samples)."""
    final = out / _shard_name(j)
    tmp = out / f".{final.name}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        with tarfile.open(fileobj=f, mode="w", format=tarfile.USTAR_FORMAT) as tf:
            for i in range(start, stop):
                _add_sample(tf, clip_sample(seed, i, cfg))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    return j, stop - start


def _job(args: tuple) -> tuple[int, int]:
    return write_shard(*args)


def synth_shards(
    out: str | Path,
    clips: int,
    seed: int,
    shard_size: int = 100,
    workers: int = 1,
    cfg: SynthConfig = SynthConfig(),
    prompts: dict[str, int] | None = None,
    progress: bool = True,
) -> dict:
    """Render ``clips`` training clips into ``out`` plus the held-out prompt files; resumable.

    ``prompts``: sizes of the evaluation sets (``{"t2a_bench": 2000, "v2a": 200, "t2m": 200}`` by default).
    Returns the manifest (also written to ``out/synth.json``).
    """
    if clips < 1 or shard_size < 1 or workers < 1:
        raise ValueError("clips, shard_size and workers must be >= 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    run = {"seed": seed, "clips": clips, "shard_size": shard_size, "config": dataclasses.asdict(cfg)}
    manifest_path = out / MANIFEST
    if manifest_path.exists():
        old = json.loads(manifest_path.read_text())
        if {k: old.get(k) for k in run} != run:
            raise ValueError(f"{out} holds a different synth run ({manifest_path}); use a new --out")
    for stale in out.glob(".*.tmp.*"):  # leftovers of a killed run
        stale.unlink()
    n_shards = (clips + shard_size - 1) // shard_size
    jobs = [
        (out, j, j * shard_size, min(clips, (j + 1) * shard_size), seed, cfg)
        for j in range(n_shards)
        if not (out / _shard_name(j)).exists()
    ]
    bar = tqdm(total=n_shards, initial=n_shards - len(jobs), desc="shards", unit="shard", disable=not progress)
    if workers == 1 or len(jobs) <= 1:
        for job in jobs:
            _job(job)
            bar.update(1)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(_job, jobs):
                bar.update(1)
    bar.close()
    sizes = {"t2a_bench": 2000, "v2a": 200, "t2m": 200, **(prompts or {})}
    pdir = out / "prompts"
    pdir.mkdir(exist_ok=True)
    sets = make_prompt_sets(seed, cfg, sizes["t2a_bench"], sizes["v2a"], sizes["t2m"])
    for name, records in sets.items():
        atomic_write_text(pdir / f"{name}.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    manifest = dict(run, shards=[_shard_name(j) for j in range(n_shards)], prompts={k: len(v) for k, v in sets.items()})
    atomic_write_text(manifest_path, json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


def list_shards(source: str | Path | Iterable[str]) -> list[str]:
    """A directory (its ``*.tar``), a glob and/or webdataset brace pattern (``data/train-{000000..000099}.tar``),
    or a list of paths -> sorted shard paths (a brace pattern names files; those that do not exist are left out)."""
    if isinstance(source, str | Path) and Path(source).is_dir():
        return sorted(str(p) for p in Path(source).glob("*.tar"))
    if isinstance(source, str | Path):
        return sorted({p for pattern in braceexpand(str(source)) for p in glob.glob(pattern)})
    return [str(s) for s in source]


def shard_keys(path: str | Path) -> list[str]:
    """Sample keys in a shard, in file order (members grouped by the part before the first dot)."""
    keys: list[str] = []
    with tarfile.open(path) as tf:
        for m in tf.getmembers():
            base = os.path.basename(m.name).split(".", 1)[0]
            if not keys or keys[-1] != base:
                keys.append(base)
    return keys
