"""audiox.data: WebDataset shards, the synthetic world, stage-1 curation, stage-2 annotation.

Public API::

    from audiox.data import TrainBatch, ShardLoader, LoaderConfig      # training batches for every task
    from audiox.data import synth_shards, SynthConfig                  # render the synthetic world
    from audiox.data.synth import EVENTS, clip_events, clip_for_prompt # vocabulary + truth for judges
    from audiox.data import validate_annotation                        # IF-caps-Pro schema
    from audiox.data import curate, CurateConfig                       # stage 1
    from audiox.data import GeminiClient, OpenAICompatClient, cascade, strong_label_annotations, template_augment

Names are imported lazily (PEP 562), so ``audiox-data synth`` workers start without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainBatch": "batch",
    "ShardLoader": "loader",
    "LoaderConfig": "loader",
    "DEFAULT_TASK_WEIGHTS": "loader",
    "synth_shards": "shards",
    "SynthConfig": "synth",
    "validate_annotation": "schema",
    "SchemaError": "schema",
    "curate": "curate",
    "CurateConfig": "curate",
    "TonalityMusicDetector": "curate",
    "GeminiClient": "annotate",
    "OpenAICompatClient": "annotate",
    "AnnotationFailure": "annotate",
    "cascade": "annotate",
    "strong_label_annotations": "annotate",
    "template_augment": "annotate",
    "dataset_stats": "stats",
    "sidecar_path": "latents",
    "load_sidecar": "latents",
    "save_sidecar": "latents",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"audiox.data.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'audiox.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
