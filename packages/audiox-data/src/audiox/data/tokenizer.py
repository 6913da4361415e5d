"""``audiox-data tokenizer``: learn the text encoder's tokenizer from a corpus's captions.

A model trained from scratch without a pretrained T5 (the ``mini`` preset) learns its text encoder with the
diffusion loss alone. Over bytes (``byt5``) that encoder must first learn to spell, and the bundled byte-level
teacher barely separated its prompts (docs/results.md). A byte-level BPE learned from the captions the model will
see turns every frequent word into one token, while any other string still tokenizes (byte fallback).

The texts are every caption variant of every annotation (``caption`` and each list in ``captions``) plus the task
sentences that stand in for a missing caption (``audiox.core.config.TASK_SENTENCES``). The folder is written
atomically in ``transformers``' layout, so ``model.text.tokenizer=DIR`` (with ``model.text.vocab_size`` at least
the printed size) uses it, and ``save_pretrained`` copies it into every model folder trained with it.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

__all__ = ["add_cli", "annotation_captions", "caption_texts", "build_tokenizer"]


def annotation_captions(ann: dict) -> list[str]:
    """One annotation's captions: ``caption``, then every variant of every kind in ``captions`` (repeats kept)."""
    out = [str(ann["caption"])] if ann.get("caption") else []
    for variants in (ann.get("captions") or {}).values():
        out += [str(c) for c in variants if c]
    return out


def caption_texts(source: str | Path) -> Iterator[str]:
    """Every caption variant of the annotations under ``source`` (shards folder, shard or JSONL), then the task
    sentences."""
    from audiox.core.config import TASK_SENTENCES
    from audiox.data.stats import iter_annotations

    for ann in iter_annotations(source):
        yield from annotation_captions(ann)
    yield from sorted(set(TASK_SENTENCES.values()))


def build_tokenizer(source: str | Path, out: str | Path, vocab_size: int = 1024, min_frequency: int = 2) -> int:
    """Learn the tokenizer from ``source``'s captions and write it to ``out`` (atomically); returns its size."""
    from audiox.core.checkpoint import atomic_dir
    from audiox.core.encoders.text import train_tokenizer

    tok = train_tokenizer(caption_texts(source), vocab_size=vocab_size, min_frequency=min_frequency)
    with atomic_dir(out) as tmp:
        tok.save_pretrained(str(tmp))
    return len(tok)


def _run(a: argparse.Namespace) -> None:
    n = build_tokenizer(a.source, a.out, a.vocab_size, a.min_frequency)
    rows = -(-n // 64) * 64  # the T5 embedding's rows, a multiple of 64
    print(f"tokenizer: {n} tokens -> {a.out}\n"
          f"train with: model.text.tokenizer={Path(a.out).resolve()} model.text.vocab_size={rows}")


def add_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tokenizer",
        help="learn the text encoder's BPE tokenizer from a corpus's captions",
        description="Learn a byte-level BPE tokenizer (T5 conventions: </s> appended, <pad>=0) from every caption "
        "variant of a corpus and the task sentences, and write it as a tokenizer folder for model.text.tokenizer.",
    )
    p.add_argument("source", help="folder of shards (*.tar), one shard, or an annotation JSONL file")
    p.add_argument("--out", required=True, help="output tokenizer folder (replaced atomically)")
    p.add_argument("--vocab-size", type=int, default=1024, help="largest vocabulary (stops earlier when merges run out)")
    p.add_argument("--min-frequency", type=int, default=2, help="a merge needs this many occurrences")
    p.set_defaults(func=_run)
