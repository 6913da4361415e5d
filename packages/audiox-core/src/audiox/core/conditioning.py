"""Conditioning helpers: task sentences for missing text, presence masks, CFG drop masks."""

from __future__ import annotations

import torch
from torch import Tensor

from audiox.core.config import TASK_SENTENCES, TASKS

__all__ = ["fill_text", "sample_drop_mask", "check_tasks"]


def check_tasks(tasks: list[str]) -> None:
    for task in tasks:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")


def fill_text(texts: list[str | None], tasks: list[str]) -> list[str]:
    """Replace missing / empty captions with the task sentence (paper Sec. IV-B)."""
    if len(texts) != len(tasks):
        raise ValueError(f"{len(texts)} captions for {len(tasks)} tasks")
    check_tasks(tasks)
    return [t if (t is not None and t.strip()) else TASK_SENTENCES[task] for t, task in zip(texts, tasks)]


def sample_drop_mask(
    batch_size: int,
    *,
    p_text: float = 0.0,
    p_video: float = 0.0,
    p_audio: float = 0.0,
    p_all: float = 0.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Condition dropout for classifier-free guidance: (B, 3) bool [text, video, audio], True = drop.

    Each modality is dropped independently with its own probability; with probability ``p_all`` a sample
    drops all three at once (the unconditional branch CFG uses at sampling time).
    """
    for name, p in (("p_text", p_text), ("p_video", p_video), ("p_audio", p_audio), ("p_all", p_all)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {p}")
    u = torch.rand(batch_size, 4, generator=generator, device=device)
    probs = torch.tensor([p_text, p_video, p_audio], device=u.device)
    drop = u[:, :3] < probs
    drop_all = u[:, 3:] < p_all
    return drop | drop_all
