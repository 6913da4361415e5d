"""Strict renaming of a published state dict to ours (the loaders of the networks with published weights)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

__all__ = ["rename_strict"]


def rename_strict(sd: Mapping[str, torch.Tensor], ours: Mapping[str, torch.Tensor],
                  rename: Callable[[str], str | None], what: str) -> dict[str, torch.Tensor]:
    """``rename(published name)`` -> our name, None for a known tensor we skip, KeyError when unknown. Every
    published tensor must map to one of ours with the same shape and every one of ours must be covered; otherwise a
    one-line ``ValueError`` naming the first offenders ("not a {what} checkpoint for this config: ...")."""
    out, unknown, bad_shape = {}, [], []
    for k, v in sd.items():
        try:
            name = rename(k)
        except KeyError:
            unknown.append(k)
            continue
        if name is None:
            continue
        if name not in ours:
            unknown.append(k)
        elif tuple(ours[name].shape) != tuple(v.shape):
            bad_shape.append(f"{k} {tuple(v.shape)} vs {tuple(ours[name].shape)}")
        else:
            out[name] = v
    missing = sorted(set(ours) - set(out))
    if unknown or missing or bad_shape:
        raise ValueError(f"not {what} checkpoint for this config: "
                         f"unknown {unknown[:3]}, missing {missing[:3]}, shape {bad_shape[:2]}")
    return out
