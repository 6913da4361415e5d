"""Training checkpoints: atomic, keep-last-k, no pickle for the plain-PyTorch engine.

Layout of one checkpoint folder ``<dir>/step-00001234/``::

    tensors.safetensors   model + EMA + optimiser tensors + torch RNG states (flat names)
    state.json            step, scheduler, optimiser param groups/structure, python/numpy RNG, data position, extras
    COMPLETE              written last: a folder without it is ignored (and cleaned up)

The folder is assembled under a temporary name and renamed into place, so a crash (even SIGKILL) mid-write
leaves the previous checkpoint intact. With DeepSpeed, the engine's own checkpoint (DeepSpeed's format) is
written into the same temporary folder before the rename.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

__all__ = ["CheckpointManager", "flatten_optimizer_state", "unflatten_optimizer_state", "capture_rng", "restore_rng"]

_STEP_RE = re.compile(r"^step-(\d{8})$")


def flatten_optimizer_state(sd: dict[str, Any], prefix: str = "optim") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into flat tensors and a JSON-able skeleton."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton: dict[str, Any] = {"param_groups": sd["param_groups"], "state": {}}
    for pid, st in sd["state"].items():
        entry: dict[str, Any] = {}
        for name, value in st.items():
            if isinstance(value, torch.Tensor):
                key = f"{prefix}.{pid}.{name}"
                tensors[key] = value.detach().cpu().contiguous().clone()
                entry[name] = {"tensor": key}
            else:
                entry[name] = {"value": value}
        skeleton["state"][str(pid)] = entry
    return tensors, skeleton


def unflatten_optimizer_state(tensors: dict[str, torch.Tensor], skeleton: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for pid, entry in skeleton["state"].items():
        state[int(pid)] = {
            name: (tensors[v["tensor"]] if "tensor" in v else v["value"]) for name, v in entry.items()
        }
    return {"state": state, "param_groups": skeleton["param_groups"]}


def capture_rng(generators: dict[str, torch.Generator] | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    for name, g in (generators or {}).items():
        tensors[f"rng.gen.{name}"] = g.get_state()
    py = random.getstate()
    np_state = np.random.get_state()
    meta = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }
    return tensors, meta


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict[str, Any], generators: dict[str, torch.Generator] | None = None) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
        if states:
            torch.cuda.set_rng_state_all(states)
    for name, g in (generators or {}).items():
        key = f"rng.gen.{name}"
        if key in tensors:
            g.set_state(tensors[key])
    py = meta["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = meta["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), n[2], n[3], n[4]))


class CheckpointManager:
    """Write / find / load checkpoints under one directory, keeping the newest ``keep_last``."""

    def __init__(self, directory: str | Path, keep_last: int = 3) -> None:
        self.dir = Path(directory)
        self.keep_last = max(1, keep_last)

    def list(self) -> list[Path]:
        if not self.dir.is_dir():
            return []
        out = [p for p in self.dir.iterdir() if _STEP_RE.match(p.name) and (p / "COMPLETE").is_file()]
        return sorted(out, key=lambda p: p.name)

    def latest(self) -> Path | None:
        found = self.list()
        return found[-1] if found else None

    def save(
        self,
        step: int,
        tensors: dict[str, torch.Tensor],
        state: dict[str, Any],
        write_extra: Any = None,
        tmp: Path | None = None,
    ) -> Path:
        """Atomically write ``step-XXXXXXXX``. ``write_extra(tmp_dir)`` may add files; ``tmp`` is a staging folder
        that other processes already wrote into (DeepSpeed's partitioned state: see :meth:`staging_dir`)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        final = self.dir / f"step-{step:08d}"
        if tmp is None:
            tmp = Path(tempfile.mkdtemp(prefix=f".step-{step:08d}.tmp-", dir=self.dir))
        try:
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / "tensors.safetensors"))
            (tmp / "state.json").write_text(json.dumps({"step": step, **state}))
            if write_extra is not None:
                write_extra(tmp)
            for f in tmp.rglob("*"):
                if f.is_file():
                    with open(f, "rb") as fh:
                        os.fsync(fh.fileno())
            (tmp / "COMPLETE").write_text(str(step))
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._prune()
        return final

    def resume(self, load, enabled: bool = True) -> bool:
        """Call ``load(path)`` with the newest complete checkpoint, if any (and ``enabled``); True if it did."""
        latest = self.latest() if enabled else None
        if latest is None:
            return False
        load(latest)
        return True

    def staging_dir(self, step: int) -> Path:
        """A staging folder with a name every rank agrees on (for multi-process checkpoints)."""
        path = self.dir / f".step-{step:08d}.tmp-shared"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _prune(self) -> None:
        for old in self.list()[: -self.keep_last]:
            shutil.rmtree(old, ignore_errors=True)
        for junk in self.dir.glob(".step-*.tmp-*"):  # leftovers of a crash mid-write
            shutil.rmtree(junk, ignore_errors=True)

    @staticmethod
    def load(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        path = Path(path)
        if not (path / "COMPLETE").is_file():
            raise FileNotFoundError(f"{path} is not a complete checkpoint")
        tensors = load_file(str(path / "tensors.safetensors"))
        state = json.loads((path / "state.json").read_text())
        return tensors, state
