"""Pieces shared by the encoders and the autoencoder: freezing and strict safetensors loading."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

__all__ = ["FreezableModule", "load_safetensors_strict"]


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
