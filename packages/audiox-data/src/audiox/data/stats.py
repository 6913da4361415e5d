"""``audiox-data stats``: counts over shards (or annotation JSONL) and genre / instrument / category
distribution plots (PNG, matplotlib Agg), like the paper's Fig. A.1 / A.2."""

from __future__ import annotations

import argparse
import io
import json
import os
import tarfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

__all__ = ["add_cli", "dataset_stats", "iter_annotations", "plot_counts"]


def iter_annotations(source: str | Path) -> Iterator[dict]:
    """Annotations from a folder of shards (``*.tar``, ``.json`` members), a shard, or a JSONL file."""
    p = Path(source)
    paths = sorted(p.glob("*.tar")) if p.is_dir() else [p]
    if not paths or not all(x.exists() for x in paths):
        raise FileNotFoundError(f"{source}: no shards or annotation file")
    for path in paths:
        if path.suffix == ".tar":
            with tarfile.open(path) as tf:
                for m in tf:
                    if m.name.endswith(".json"):
                        try:
                            yield json.load(tf.extractfile(m))
                        except json.JSONDecodeError:
                            continue
        else:
            for line in path.read_text().splitlines():
                if line.strip():
                    yield json.loads(line)


def dataset_stats(source: str | Path) -> dict:
    kinds, genres, instruments, categories, tasks = Counter(), Counter(), Counter(), Counter(), Counter()
    for ann in iter_annotations(source):
        kind = ann.get("kind") or ("music" if "genre" in ann else "sfx")
        kinds[kind] += 1
        if kind == "music":
            for g in str(ann.get("genre", "")).split(","):
                if g.strip():
                    genres[g.strip()] += 1  # a clip may carry several tags: counts are occurrences
            for i in ann.get("instrument", []):
                instruments[i] += 1
        else:
            for name, count in ann.get("category", {}).items():
                categories[name] += 1
            tasks[ann.get("time_relation") == "interleave" and "interleave" or "ordered"] += 1
    return {
        "clips": sum(kinds.values()),
        "kinds": dict(kinds),
        "genre": dict(genres.most_common()),
        "instrument": dict(instruments.most_common()),
        "category": dict(categories.most_common()),
        "time_relation": dict(tasks),
    }


def plot_counts(counts: dict[str, int], title: str, path: Path, log: bool = False) -> None:
    """Horizontal bar chart written atomically to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(counts)[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(names) + 1.2))
    ax.barh(names, [counts[n] for n in names], color="#3b75af")
    if log:
        ax.set_xscale("log")
    ax.set_title(title)
    ax.set_xlabel("occurrences")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)


def _run(a: argparse.Namespace) -> None:
    s = dataset_stats(a.source)
    out = Path(a.plots)
    out.mkdir(parents=True, exist_ok=True)
    for field in ("genre", "instrument", "category"):
        if s[field]:
            plot_counts(s[field], f"{field} distribution", out / f"{field}.png", log=field == "instrument")
    print(json.dumps(s, indent=2))


def add_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stats", help="print counts; write genre / instrument / category PNGs", description=__doc__)
    p.add_argument("source", help="shard folder, a shard, or an annotation JSONL")
    p.add_argument("--plots", default="stats", help="folder for the PNGs")
    p.set_defaults(func=_run)
