"""Where training batches come from: anything iterable over ``TrainBatch`` with a resumable position.

A source has ``next_batch() -> TrainBatch``, ``state_dict() -> dict`` (JSON-able) and ``load_state_dict``.
:class:`FixedBatchSource` repeats one batch (tests, overfitting checks, benchmarks); :func:`build_source`
wraps the WebDataset loader of ``audiox.data`` for real runs.
"""

from __future__ import annotations

from typing import Any, Protocol

from audiox.core.config import AudioXConfig
from audiox.data.batch import TrainBatch

from audiox.train.config import DataConfig

__all__ = ["BatchSource", "FixedBatchSource", "LoaderSource", "build_source"]


class BatchSource(Protocol):
    def next_batch(self) -> TrainBatch: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class FixedBatchSource:
    """Yields the same batch forever; its position is just a counter."""

    def __init__(self, batch: TrainBatch) -> None:
        self.batch = batch
        self.position = 0

    def next_batch(self) -> TrainBatch:
        self.position += 1
        return self.batch

    def state_dict(self) -> dict[str, Any]:
        return {"position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.position = int(state.get("position", 0))


class LoaderSource:
    """Adapter over ``audiox.data``'s resumable loader (an iterable of TrainBatch with state_dict)."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self._it = iter(loader)

    def next_batch(self) -> TrainBatch:
        try:
            return next(self._it)
        except StopIteration:  # next epoch
            self._it = iter(self.loader)
            return next(self._it)

    def state_dict(self) -> dict[str, Any]:
        return self.loader.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loader.load_state_dict(state)
        self._it = iter(self.loader)


def build_source(data: DataConfig, model: AudioXConfig, *, shards: str | None = None, rank: int = 0,
                 world_size: int = 1) -> LoaderSource:
    """The WebDataset loader of ``audiox.data`` over ``data.shards`` (or ``shards``)."""
    pattern = shards if shards is not None else data.shards
    if not pattern:
        raise ValueError("no training data: set data.shards=PATTERN (e.g. data.shards='data/train-{000000..000009}.tar')")
    from audiox.data.loader import LoaderConfig, ShardLoader

    kwargs: dict[str, Any] = {"batch_size": data.batch_size, "seed": data.seed, "rank": rank, "world_size": world_size}
    if data.task_weights:
        kwargs["task_weights"] = dict(data.task_weights)
    return LoaderSource(ShardLoader(pattern, model, LoaderConfig(**kwargs)))
