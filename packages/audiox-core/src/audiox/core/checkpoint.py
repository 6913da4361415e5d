"""``save_pretrained`` / ``from_pretrained``: a folder with ``config.json`` + ``model.safetensors``.

- Written atomically: everything goes to a temporary sibling folder that replaces the target in one rename,
  so a crash mid-write leaves the previous folder (or nothing) behind, never a half-written one.
- Exact round trip: every tensor is stored as is (tied tensors are stored once per name).
- Loading never unpickles: safetensors only. Errors are one line and name what is wrong: a missing folder or
  file, weights that do not match the config (missing / unexpected keys, wrong shapes), or a config written by a
  newer format version.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from audiox.core.config import FORMAT_VERSION, AudioXConfig

if TYPE_CHECKING:
    from audiox.core.model import AudioXModel

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "save_pretrained", "cast_pretrained", "from_pretrained", "resolve_model_path", "atomic_dir"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class atomic_dir:
    """Context manager yielding a temp folder that atomically becomes ``target`` on success."""

    def __init__(self, target: str | Path) -> None:
        self.target = Path(target)

    def __enter__(self) -> Path:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.tmp-", dir=self.target.parent))
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        for f in self.tmp.iterdir():  # flush file contents before the rename makes them visible
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        old = None
        if self.target.exists():
            old = self.target.parent / f".{self.target.name}.old-{os.getpid()}"
            os.replace(self.target, old)
        os.replace(self.tmp, self.target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _config_for_saving(config: AudioXConfig) -> AudioXConfig:
    # the folder holds every weight: the encoders' source checkpoints (often machine-local paths) are not kept
    cfg = _without_pretrained_paths(config)
    cfg.format_version = FORMAT_VERSION
    return cfg


def save_pretrained(
    model: AudioXModel, path: str | Path, *, state_dict: dict[str, torch.Tensor] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write ``config.json`` and ``model.safetensors`` to ``path`` atomically. ``state_dict`` overrides the
    model's own weights (e.g. EMA weights at export); ``dtype`` stores floating-point tensors in that type
    (``torch.float16`` halves a shipped model; ``from_pretrained`` casts back to the model's type)."""
    path = Path(path)
    sd = model.state_dict() if state_dict is None else state_dict
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in sd.items()}
    if dtype is not None:
        tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    cfg = _config_for_saving(model.config)
    with atomic_dir(path) as tmp:
        (tmp / CONFIG_NAME).write_text(cfg.to_json() + "\n")
        save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"format": "pt", "audiox_format_version": str(FORMAT_VERSION)})
    return path


def cast_pretrained(src: str | Path, dst: str | Path, dtype: torch.dtype) -> Path:
    """Rewrite a model folder with its floating-point weights stored as ``dtype`` (atomically, ``dst`` may be
    ``src``). Refuses a cast that overflows: every weight must stay finite."""
    model = from_pretrained(src)
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor.to(dtype)).all():
            raise ValueError(f"{name} does not fit in {dtype}: casting it gives inf/nan")
    return save_pretrained(model, dst, dtype=dtype)


def resolve_model_path(path_or_id: str | Path) -> Path:
    """A local folder, or a hub id (``org/name``) fetched with ``huggingface_hub`` when online."""
    p = Path(path_or_id).expanduser()
    if p.exists():
        if not p.is_dir():
            raise FileNotFoundError(f"model path {p} is a file; expected a folder with {CONFIG_NAME} and {WEIGHTS_NAME}")
        return p
    text = str(path_or_id)
    if text.count("/") == 1 and not text.startswith((".", "/", "~")):
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(repo_id=text, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME]))
        except Exception as exc:  # offline, unknown repo, no access
            raise FileNotFoundError(f"model {text!r} is not a local folder and could not be fetched from the hub: {exc.__class__.__name__}") from None
    raise FileNotFoundError(f"no model folder at {p}")


def load_config(path: Path) -> AudioXConfig:
    cfg_path = path / CONFIG_NAME
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path} is missing: not an audiox model folder")
    try:
        data = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{cfg_path} is not valid JSON: {exc}") from None
    return AudioXConfig.from_dict(data)


def _without_pretrained_paths(cfg: AudioXConfig) -> AudioXConfig:
    """The folder holds every weight: build the encoders from the config, not from their source checkpoints."""
    cfg = copy.deepcopy(cfg)
    cfg.text.pretrained = None
    cfg.video.pretrained = None
    cfg.sync.pretrained = None
    cfg.autoencoder.pretrained = None
    return cfg


def from_pretrained(
    path: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype | None = None
) -> AudioXModel:
    from audiox.core.model import AudioXModel

    folder = resolve_model_path(path)
    config = load_config(folder)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} is missing: not an audiox model folder")
    saved_cfg = config
    model = AudioXModel(_without_pretrained_paths(config))
    model.config = saved_cfg
    own = model.state_dict()
    with safe_open(str(weights), framework="pt", device="cpu") as f:
        meta = f.metadata() or {}
        version = int(meta.get("audiox_format_version", FORMAT_VERSION))
        if version > FORMAT_VERSION:
            raise ValueError(f"{weights} was written by format version {version}, newer than {FORMAT_VERSION}; upgrade audiox")
        keys = set(f.keys())
        missing = sorted(set(own) - keys)
        unexpected = sorted(keys - set(own))
        if missing or unexpected:
            raise ValueError(
                f"{weights} does not match {CONFIG_NAME}: missing {len(missing)} keys {missing[:3]}, "
                f"unexpected {len(unexpected)} keys {unexpected[:3]}"
            )
        state = {}
        for k in own:
            shape = tuple(f.get_slice(k).get_shape())
            if shape != tuple(own[k].shape):
                raise ValueError(f"{weights} does not match {CONFIG_NAME}: {k} has shape {shape}, config gives {tuple(own[k].shape)}")
            state[k] = f.get_tensor(k)
    model.load_state_dict(state, strict=True)
    model.to(device=device)
    if dtype is not None:
        model.to(dtype=dtype)
    model.eval()
    return model
