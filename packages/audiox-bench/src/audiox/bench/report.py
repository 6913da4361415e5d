"""Markdown tables like the paper's and plots (accuracy bars per task type; quality vs NFE as Fig. 1c)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["ACCURACY_NAMES", "accuracy_table", "plot_accuracy_bars", "plot_quality_vs_nfe"]

#: the four T2A-bench accuracies, key -> the name tables print
ACCURACY_NAMES = {"cat_acc": "Cat-acc", "cnt_acc": "Cnt-acc", "ord_acc": "Ord-acc", "ts_acc": "TS-acc"}


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.1f}"


def accuracy_table(results: list[dict]) -> str:
    """One row per run (``{"label", "nfe", "accuracy": aggregate(...)}``), T2A-bench columns in percent."""
    head = "| Method | NFE | " + " | ".join(f"{n} ↑" for n in ACCURACY_NAMES.values()) + " |"
    lines = [head, "|---|---|" + "---|" * len(ACCURACY_NAMES)]
    for r in results:
        o = r["accuracy"]["overall"]
        lines.append(f"| {r['label']} | {r.get('nfe', '-')} | " + " | ".join(_fmt(o[k]) for k in ACCURACY_NAMES) + " |")
    following = [r for r in results if r.get("following")]
    if following:  # Cat-acc's chance level on the same clips (judges.rules.prompt_following)
        lines += ["", "| Method | Cat-acc vs another prompt (chance) | Cat-acc margin over chance | one-sided p (McNemar) "
                  "| extra categories per clip |", "|---|---|---|---|---|"]
        for r in following:
            f = r["following"]
            extra, p = f["extra_categories_per_clip"], f.get("cat_acc_margin_p")
            lines.append(f"| {r['label']} | {_fmt(f['cat_acc_other_prompt'])} | {_fmt(f['cat_acc_margin'])} | "
                         f"{'-' if p is None else f'{p:.2g}'} | "
                         f"{'-' if extra is None else f'{extra:.2f}'} |")
    return "\n".join(lines)


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy_bars(results: list[dict], path: str | Path) -> None:
    """Grouped bars: for each metric (on the task type it applies to), one bar per run."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    keys = list(ACCURACY_NAMES)
    width = 0.8 / max(1, len(results))
    for i, r in enumerate(results):
        vals = [r["accuracy"]["overall"][k] or 0.0 for k in keys]
        ax.bar([j + i * width for j in range(len(keys))], vals, width, label=str(r["label"]))
    ax.set_xticks([j + width * (len(results) - 1) / 2 for j in range(len(keys))], [ACCURACY_NAMES[k] for k in keys])
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    ax.set_title("T2A-bench accuracy per task type")
    _save(fig, Path(path))
    plt.close(fig)


def plot_quality_vs_nfe(points: list[dict], path: str | Path, metric: str = "mean accuracy (%)") -> None:
    """Fig. 1c style: quality (y) against NFE (x, log scale); ``points`` = [{"label", "nfe", "quality"}]."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for p in points:
        ax.scatter([p["nfe"]], [p["quality"]], s=40)
        ax.annotate(str(p["label"]), (p["nfe"], p["quality"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("NFE (log)")
    ax.set_ylabel(metric)
    ax.set_title("quality vs NFE")
    _save(fig, Path(path))
    plt.close(fig)
