"""Paired teacher samples for DMD's regression loss (Yin et al. 2024, "One-step Diffusion with Distribution
Matching Distillation", Sec. 3.3): ``(z1, c) -> y = ODE_teacher(z1, c)`` with the teacher's multi-step sampler and
CFG, stored once and reused, so the student's step from pure noise can be anchored to what the teacher makes from
the same noise (``regression.weight`` in :class:`audiox.distill.config.RegressionConfig`; off = the AudioX-Turbo
paper, which has no such term).

A pair folder holds ``pairs.json`` (how the pairs were made) and one ``pairs-NNNNNN.safetensors`` per batch::

    z1    (B, C, T)  the noise at t = 1
    y     (B, C, T)  the teacher's Euler + CFG sample from it
    feats            the condition features (``feats`` for a tensor, ``feats.<field>`` for ModalityFeatures)

Every shard is written atomically and its noise comes from ``(seed, index)``, so an interrupted ``make_pairs``
resumes where it stopped and a rerun reproduces the same bytes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import safe_open
from torch import Tensor

from audiox.core import flow
from audiox.core.io import save_tensors_atomic

from audiox.distill.dmd import VelocityModel, cfg_velocity, null_drop

__all__ = ["teacher_ode", "make_pairs", "PairSource", "PAIRS_META"]

log = logging.getLogger("audiox.distill")

PAIRS_META = "pairs.json"


@torch.no_grad()
def teacher_ode(model: VelocityModel, feats: Any, z1: Tensor, steps: int, guidance: float,
                shift: float = 1.0) -> Tensor:
    """The teacher's deterministic sample from ``z1`` (B, C, T): Euler on ``flow.time_grid(steps, shift)`` with
    classifier-free guidance ``v_u + s (v_c - v_u)`` (the unconditional branch drops every modality)."""
    b = z1.shape[0]
    device = z1.device
    cond = model.fuse(feats)
    ucond = model.fuse(feats, null_drop(b, device)) if guidance != 1.0 else cond
    grid = flow.time_grid(steps, shift=shift, device=device, dtype=z1.dtype)  # (steps+1,) decreasing 1 -> 0
    z = z1
    for i in range(steps):
        v = cfg_velocity(model, z, grid[i].expand(b), cond, ucond, guidance)
        z = flow.euler_step(z, v, grid[i], grid[i + 1])
    return z


def _feats_to_tensors(feats: Any) -> tuple[dict[str, Tensor], str]:
    if isinstance(feats, Tensor):
        return {"feats": feats}, "tensor"
    if dataclasses.is_dataclass(feats):
        tensors = {f"feats.{f.name}": getattr(feats, f.name) for f in dataclasses.fields(feats)}
        return {k: v for k, v in tensors.items() if v is not None}, type(feats).__name__  # None: an optional field
    raise TypeError(f"cannot store condition features of type {type(feats).__name__}")


def _feats_from_tensors(tensors: dict[str, Tensor], kind: str) -> Any:
    if kind == "tensor":
        return tensors["feats"]
    if kind == "ModalityFeatures":
        from audiox.core.types import ModalityFeatures

        return ModalityFeatures(**{k[len("feats."):]: v for k, v in tensors.items() if k.startswith("feats.")})
    raise ValueError(f"unknown condition feature kind {kind!r} in a pair folder")


def _shard(out: Path, i: int) -> Path:
    return out / f"pairs-{i:06d}.safetensors"


def make_pairs(teacher: VelocityModel, source: Any, prepare: Callable[[Any], tuple[Any, Tensor]], out: str | Path,
               batches: int, *, steps: int, guidance: float, shift: float = 1.0, seed: int = 0,
               info: dict[str, Any] | None = None) -> list[Path]:
    """Write ``batches`` pair shards to ``out`` (one per ``source.next_batch()``); existing shards are kept and their
    batches skipped, so a crashed run resumes. ``info`` (e.g. the teacher's path) is recorded in ``pairs.json``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"steps": steps, "guidance": guidance, "shift": shift, "seed": seed, **(info or {})}
    meta_path = out / PAIRS_META
    if meta_path.is_file():
        old = json.loads(meta_path.read_text())
        # every setting but where the teacher lives: the same teacher moved is fine, other weights are not
        diff = sorted(k for k in {*old, *meta} - {"teacher", "shards", "complete"} if old.get(k) != meta.get(k))
        if diff:
            raise ValueError(f"{out} holds pairs made with other settings ({', '.join(diff)}); use another folder")
    _write_meta(meta_path, {**meta, "complete": False})  # before any shard: a resumed run checks against it
    paths = []
    for i in range(batches):
        batch = source.next_batch()  # consumed even when the shard exists: the same batch lands in the same shard
        path = _shard(out, i)
        paths.append(path)
        if path.is_file():
            continue
        feats, z0 = prepare(batch)
        g = torch.Generator().manual_seed(seed * 1_000_003 + i)
        z1 = torch.randn(tuple(z0.shape), generator=g).to(z0.device, z0.dtype)
        y = teacher_ode(teacher, feats, z1, steps, guidance, shift)
        tensors, kind = _feats_to_tensors(feats)
        tensors = {k: v.detach().cpu().contiguous() for k, v in {**tensors, "z1": z1, "y": y}.items()}
        save_tensors_atomic(tensors, path, metadata={"feats": kind})
        log.info("pairs: wrote %s (%d of %d)", path.name, i + 1, batches)
    _write_meta(meta_path, {**meta, "complete": True, "shards": len(paths)})
    return paths


def _complete_folder(folder: Path) -> tuple[dict[str, Any], list[Path]]:
    """A finished pair folder's ``pairs.json`` and the shards it lists, every one present; else a one-line error."""
    if not (folder / PAIRS_META).is_file():
        raise FileNotFoundError(f"{folder} is not a pair folder (no {PAIRS_META}; make one with `audiox-distill pairs`)")
    meta = json.loads((folder / PAIRS_META).read_text())
    if not meta.get("complete", False):
        raise ValueError(f"{folder} is an unfinished pair folder: rerun `audiox-distill pairs` with the same "
                         "settings (it resumes), or with a smaller --batches to keep what is there")
    paths = [_shard(folder, i) for i in range(int(meta.get("shards", 0)))]  # what the last run made there
    missing = [p.name for p in paths if not p.is_file()]
    if missing or not paths:
        raise FileNotFoundError(f"{folder} lacks {missing[0] if missing else 'any shard'}: rerun `audiox-distill pairs`")
    return meta, paths


def _write_meta(path: Path, meta: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True))
    os.replace(tmp, path)


class PairSource:
    """Serves the stored pairs of one pair folder, or of several in the order given (``"a,b"`` or a list: more pairs
    from the same teacher, e.g. a second ``audiox-distill pairs`` run with another seed):
    ``next_batch() -> (feats, z1, y)`` on ``device``. Folders made from different teacher weights are refused.

    - ``shuffle=False`` (the default) cycles over the shards in order, one shard per batch, as it was written.
    - ``shuffle=True`` draws each batch of ``batch_size`` pairs (0: one shard's) from a fresh permutation of every
      stored pair per pass (``seed``, pass number), so a batch mixes shards and folders and no two passes repeat
      the same batches.

    With ``world_size`` ranks, rank ``r`` takes batches ``r, r + world_size, ...`` of that one sequence, so the ranks
    of a data-parallel run regress on different pairs. The position (``state_dict``) is a batch count, part of the
    distiller's checkpoint: a resumed run draws what the uninterrupted one would have drawn."""

    def __init__(self, folder: str | Path | list[str | Path], device: torch.device | str = "cpu", *,
                 shuffle: bool = False, batch_size: int = 0, seed: int = 0, rank: int = 0,
                 world_size: int = 1) -> None:
        parts = folder if isinstance(folder, (list, tuple)) else [f for f in str(folder).split(",") if f.strip()]
        self.folders = [Path(str(f).strip()) for f in parts]
        if not self.folders:
            raise FileNotFoundError("no pair folder given (regression.pairs)")
        if batch_size < 0:
            raise ValueError(f"pair batch size must be >= 0 (0: one shard's), got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside a world of {world_size}")
        self.metas: list[dict[str, Any]] = []
        self.paths: list[Path] = []
        for f in self.folders:
            meta, paths = _complete_folder(f)
            self.metas.append(meta)
            self.paths += paths
        digests = {m.get("teacher_sha256") for m in self.metas}
        if len(digests) > 1:
            raise ValueError(f"pair folders {', '.join(map(str, self.folders))} come from different teacher weights "
                             f"({', '.join(sorted(str(d)[:12] for d in digests))}): use one teacher's pairs")
        self.device = torch.device(device)
        self.shuffle, self.seed, self.rank, self.world_size = shuffle, seed, rank, world_size
        self.index = 0  # batches this rank has drawn
        if shuffle:
            rows = [_rows(path) for path in self.paths]  # pairs per shard
            self.starts = torch.tensor([0, *rows]).cumsum(0)  # (shards + 1,) first pair of each shard
            self.batch_size = batch_size or rows[0]
            self._perm: tuple[int, Tensor] | None = None  # (pass, its permutation), the one in use
        else:
            rows = _rows(self.paths[0]) if batch_size else 0
            if batch_size and batch_size != rows:
                raise ValueError(f"a pair batch of {batch_size} needs regression.shuffle=true: in order, a batch "
                                 f"is one shard of {rows}")
            self.batch_size = 0

    def __len__(self) -> int:
        """Shards (in order) or pairs (shuffled) in one pass."""
        return int(self.starts[-1]) if self.shuffle else len(self.paths)

    def next_batch(self) -> tuple[Any, Tensor, Tensor]:
        b = self.index * self.world_size + self.rank  # this batch's number in the one sequence all ranks share
        self.index += 1
        if not self.shuffle:
            kind, tensors = _read(self.paths[b % len(self.paths)])
        else:
            kind, tensors = self._gather([self._pair(p) for p in range(b * self.batch_size, (b + 1) * self.batch_size)])
        tensors = {k: v.to(self.device) for k, v in tensors.items()}
        return _feats_from_tensors(tensors, kind), tensors["z1"], tensors["y"]

    def _pair(self, position: int) -> tuple[int, int]:
        """(shard, row) of the pair at ``position`` of the shuffled sequence: pass ``position // n``'s permutation."""
        n = len(self)
        epoch, at = divmod(position, n)
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = (epoch, torch.randperm(n, generator=g))
        flat = int(self._perm[1][at])
        shard = int(torch.searchsorted(self.starts, flat, right=True)) - 1
        return shard, flat - int(self.starts[shard])

    def _gather(self, picks: list[tuple[int, int]]) -> tuple[str, dict[str, Tensor]]:
        """The picked (shard, row) pairs, in order, as one batch: each shard read once."""
        loaded = {s: _read(self.paths[s]) for s in dict.fromkeys(s for s, _ in picks)}
        kinds = {kind for kind, _ in loaded.values()}
        keys = set().union(*(t for _, t in loaded.values()))
        for _, tensors in loaded.values():  # an absent optional field, where its absence has a tensor form
            for k in keys - tensors.keys():
                if k in _ABSENT:
                    tensors[k] = _ABSENT[k](tensors)
        if len(kinds) > 1 or any(t.keys() != keys for _, t in loaded.values()):
            names = ", ".join(self.paths[s].name for s in loaded)
            raise ValueError(f"pair shards {names} hold different condition fields; they cannot share a batch "
                             "(regression.shuffle=false serves them one shard at a time)")
        return kinds.pop(), {k: torch.stack([loaded[s][1][k][r] for s, r in picks]) for k in keys}

    def state_dict(self) -> dict[str, int]:
        return {"index": self.index}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.index = int(state["index"])


# Optional condition fields that a shard omits (None) and that mean the same as a tensor, so shards with and without
# them can share a shuffled batch: ModalityFeatures.audio_known None = no frame of any row is a kept inpainting frame
_ABSENT: dict[str, Callable[[dict[str, Tensor]], Tensor]] = {
    "feats.audio_known": lambda t: t["feats.audio"].new_zeros(t["feats.audio"].shape[:2]),  # (B, L_a)
}


def _read(path: Path) -> tuple[str, dict[str, Tensor]]:
    """One shard's feature kind and tensors, in one open."""
    with safe_open(str(path), "pt") as f:
        kind = (f.metadata() or {}).get("feats", "tensor")
        return kind, {k: f.get_tensor(k) for k in f.keys()}


def _rows(path: Path) -> int:
    """Pairs in one shard (the batch it was made from), from its header alone."""
    with safe_open(str(path), "pt") as f:
        return int(f.get_slice("z1").get_shape()[0])
