"""Pieces shared by the encoders and the autoencoder: freezing and safetensors weights (strict load, atomic save)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from audiox.core.io import save_tensors_atomic

__all__ = ["FreezableModule", "load_safetensors_strict", "save_safetensors_atomic"]


class FreezableModule(nn.Module):
    """An ``nn.Module`` that, once frozen, has ``requires_grad=False`` and stays in eval mode.

    ``train(True)`` on a frozen module (directly or through a parent's ``.train()``) leaves it in eval mode,
    so dropout and friends never switch on in a frozen encoder (paper Sec. VI-A: the encoders are frozen).
    """

    frozen: bool = False

    def freeze_(self, frozen: bool = True) -> FreezableModule:
        self.frozen = frozen
        for p in self.parameters():
            p.requires_grad_(not frozen)
        if frozen:
            super().train(False)
        return self

    def train(self, mode: bool = True) -> FreezableModule:
        return super().train(mode and not self.frozen)

    def save_weights(self, path: str | Path) -> None:
        """Write this module's weights (our key names) to a ``.safetensors`` file that ``cfg.pretrained`` loads."""
        save_safetensors_atomic(self, path)


def save_safetensors_atomic(module: nn.Module, path: str | Path) -> None:
    """``module.state_dict()`` to ``path`` via a temp file and ``os.replace`` (no partial files).

    Tied tensors (e.g. T5's shared input embedding) are written once per key as separate copies, so the file
    loads strictly into a freshly built module.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"weights must be written to a .safetensors file, got {path}")
    seen: set[int] = set()
    state: dict[str, torch.Tensor] = {}
    for key, t in module.state_dict().items():
        t = t.detach().cpu().contiguous()
        ptr = t.untyped_storage().data_ptr()
        state[key] = t.clone() if ptr in seen else t
        seen.add(ptr)
    save_tensors_atomic(state, path)


def load_safetensors_strict(module: nn.Module, path: str | Path, what: str, *, prefix: str = "") -> None:
    """Load a local safetensors file into ``module`` with strict key and shape checks.

    ``prefix`` (e.g. ``"visual."``) is stripped from keys that carry it, so a file holding a larger model's
    weights can feed one sub-module. Errors are one line and name the file and the first offending keys.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{what}: weights file not found: {path}")
    if path.suffix != ".safetensors":
        raise ValueError(f"{what}: expected a .safetensors file (never pickle), got {path}")
    state = load_file(str(path), device="cpu")
    if prefix and any(k.startswith(prefix) for k in state):
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"{what}: {path} does not match the configured model: "
            f"missing {len(missing)} keys {missing[:3]}, unexpected {len(unexpected)} keys {unexpected[:3]}"
        )
    bad = [k for k, v in state.items() if tuple(v.shape) != tuple(own[k].shape)]
    if bad:
        k = bad[0]
        raise ValueError(
            f"{what}: {path}: {len(bad)} tensors have the wrong shape, e.g. {k}: "
            f"file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        )
    meta = any(p.is_meta for p in own.values())
    with torch.no_grad():
        module.load_state_dict(state, strict=True, assign=meta)


def unit_float(frames: torch.Tensor) -> torch.Tensor:
    """Video frames as float32 in [0, 1]: uint8 frames (0-255, what loaders ship: 4x fewer bytes to move between
    processes and to the GPU) are scaled here, on the frames' device; float frames are taken as already in [0, 1]."""
    if frames.dtype == torch.uint8:
        return frames.float().div_(255.0)
    return frames.float()
