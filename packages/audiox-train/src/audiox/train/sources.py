"""Where training batches come from: anything iterable over ``TrainBatch`` with a resumable position.

A source has ``next_batch() -> TrainBatch``, ``state_dict() -> dict`` (JSON-able) and ``load_state_dict``.
:class:`FixedBatchSource` repeats one batch (tests, overfitting checks, benchmarks); :func:`build_source`
wraps the WebDataset loader of ``audiox.data`` for real runs: in-process (``data.num_workers=0``), or
:class:`ParallelLoaderSource` with ``data.num_workers=N`` worker processes when decoding (video especially) would
starve the accelerator. Both resume exactly where they stopped.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Iterator, Protocol

import torch

from audiox.core.config import AudioXConfig
from audiox.data.batch import TrainBatch

from audiox.train.config import DataConfig

__all__ = ["BatchSource", "FixedBatchSource", "LoaderSource", "ParallelLoaderSource", "build_source"]


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


class _WorkerShards(torch.utils.data.IterableDataset):
    """One :class:`ShardLoader` per DataLoader worker, over its own slice of the shards.

    Worker ``w`` of process ``rank`` is loader rank ``rank * num_workers + w`` of ``world_size * num_workers``,
    so the slices are disjoint across workers and processes. Each item is ``(w, batch, state after it)``.
    """

    def __init__(self, pattern: str, model: AudioXConfig, kwargs: dict[str, Any], num_workers: int,
                 states: list[dict[str, Any] | None]) -> None:
        self.pattern, self.model, self.kwargs, self.num_workers, self.states = pattern, model, kwargs, num_workers, states

    def __iter__(self) -> Iterator[tuple[int, Any, dict[str, Any]]]:
        from audiox.data.loader import LoaderConfig, ShardLoader

        info = torch.utils.data.get_worker_info()
        w = info.id if info is not None else 0
        torch.set_num_threads(1)  # the workers are the parallelism
        kw = dict(self.kwargs)
        kw["rank"] = kw["rank"] * self.num_workers + w
        kw["world_size"] = kw["world_size"] * self.num_workers
        loader = ShardLoader(self.pattern, self.model, LoaderConfig(**kw))
        if self.states[w] is not None:
            loader.load_state_dict(self.states[w])
        for batch in loader:
            yield w, batch, loader.state_dict()


class ParallelLoaderSource:
    """``audiox.data``'s loader in ``num_workers`` processes (a torch DataLoader), resumable exactly.

    Batches are handed out round-robin over the workers (batch ``i`` comes from worker ``i % num_workers``),
    whatever order the processes finish in. The state is every worker's loader position after its last batch
    handed out plus the count handed out, so a resumed source continues the same sequence: it restarts each
    worker from its own position and rotates the round-robin to the worker that was next.
    """

    def __init__(self, pattern: str, model: AudioXConfig, kwargs: dict[str, Any], num_workers: int,
                 prefetch: int = 2, pin_memory: bool = False) -> None:
        from audiox.data.shards import list_shards

        if num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        shards = len(list_shards(pattern))
        slices = kwargs.get("world_size", 1) * num_workers
        if shards < slices:
            raise ValueError(
                f"{shards} shards cannot feed {slices} loader workers (world size x data.num_workers): "
                "write more, smaller shards or lower data.num_workers"
            )
        self.pattern, self.model, self.kwargs = pattern, model, kwargs
        self.num_workers, self.prefetch, self.pin_memory = num_workers, prefetch, pin_memory
        self.handed = 0
        self.states: list[dict[str, Any] | None] = [None] * num_workers
        self._it: Iterator | None = None  # worker processes start at the first batch (after any resume)

    def _start(self) -> None:
        ds = _WorkerShards(self.pattern, self.model, self.kwargs, self.num_workers, list(self.states))
        self._loader = torch.utils.data.DataLoader(
            ds, batch_size=None, num_workers=self.num_workers, prefetch_factor=self.prefetch,
            persistent_workers=False, pin_memory=self.pin_memory,
        )
        self._it = iter(self._loader)
        # the DataLoader always starts at worker 0; our sequence continues at worker (handed % N): batches of
        # the workers before it wait in their queues until their turn
        self._pending: list[deque] = [deque() for _ in range(self.num_workers)]
        self._produced = 0  # items taken from the DataLoader (its worker is produced % N)

    def next_batch(self) -> TrainBatch:
        if self._it is None:
            self._start()
        want = self.handed % self.num_workers
        while not self._pending[want]:
            w, batch, state = next(self._it)
            if w != self._produced % self.num_workers:  # a DataLoader guarantee; say so if it ever breaks
                raise RuntimeError(f"loader worker order broke: got worker {w}, expected {self._produced % self.num_workers}")
            self._produced += 1
            self._pending[w].append((batch, state))
        batch, state = self._pending[want].popleft()
        self.states[want] = state
        self.handed += 1
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {"num_workers": self.num_workers, "handed": self.handed, "workers": list(self.states)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state.get("num_workers", -1)) != self.num_workers:
            raise ValueError(
                f"data state was saved with data.num_workers={state.get('num_workers')}, this run has {self.num_workers}; "
                "resume with the same number of loader workers"
            )
        self.handed = int(state["handed"])
        self.states = list(state["workers"])
        self._it = self._loader = None  # restart the workers from these positions at the next batch


def build_source(data: DataConfig, model: AudioXConfig, *, shards: str | None = None, rank: int = 0,
                 world_size: int = 1, latent_tag: str = "") -> LoaderSource | ParallelLoaderSource:
    """The WebDataset loader of ``audiox.data`` over ``data.shards`` (or ``shards``).

    ``data.num_workers > 0`` decodes in that many worker processes (:class:`ParallelLoaderSource`); the shards
    must number at least ``world_size * num_workers``. ``latent_tag`` (with ``data.latents=true``; see
    :func:`audiox.train.latents.latent_tag`) attaches the cached target latents; every shard must have them.
    """
    pattern = shards if shards is not None else data.shards
    if not pattern:
        raise ValueError("no training data: set data.shards=PATTERN (e.g. data.shards='data/train-{000000..000009}.tar')")
    from audiox.data.loader import LoaderConfig, ShardLoader

    kwargs: dict[str, Any] = {"batch_size": data.batch_size, "seed": data.seed, "rank": rank, "world_size": world_size,
                              "inpaint_text": data.inpaint_text, "inpaint_video": data.inpaint_video}
    if data.latents:
        from audiox.data.latents import missing_sidecars
        from audiox.data.shards import list_shards

        if not latent_tag:
            raise ValueError("data.latents=true needs the model's latent tag (audiox.train.latents.latent_tag)")
        missing = missing_sidecars(list_shards(pattern), latent_tag)
        if missing:
            raise FileNotFoundError(
                f"data.latents=true: {len(missing)} shard(s) have no latents for this autoencoder (tag {latent_tag}), "
                f"e.g. {missing[0]}; run `audiox-train encode-latents` with the same model and data.shards first"
            )
        kwargs["latents"] = latent_tag
    if data.task_weights:
        kwargs["task_weights"] = dict(data.task_weights)
    if data.num_workers > 0:
        LoaderConfig(**kwargs)  # validate here, not in a worker
        return ParallelLoaderSource(pattern, model, kwargs, data.num_workers)
    return LoaderSource(ShardLoader(pattern, model, LoaderConfig(**kwargs)))
