"""Paired comparison of two settings judged on the same T2A prompts (``audiox-bench compare``).

Two models judged on one prompt set differ by a few clips; whether such a gap is real is a paired question: only the
clips where exactly one of them meets the prompt say anything. For each accuracy (Cat, Cnt, Ord, TS) this module
pairs the clips by id (their prompts must match), counts the discordant clips (``A only``, ``B only``) and reports

* ``diff``: B's accuracy minus A's, in points, over the clips both were judged on;
* ``ci95``: the Wald interval of that paired difference, ``diff ± 1.96 · sqrt((b + c) - (b - c)² / n) / n``
  (Agresti, *Categorical Data Analysis*, 10.1), in points;
* ``p``: the exact two-sided McNemar test, a binomial test of the discordant clips at 1/2 (1.0 when none).

Several (A, B) pairs can be pooled, e.g. the same two models judged at two held-out seeds; clips are keyed by
(pair, id) so ids may repeat across pairs. A side is a results folder of ``audiox-bench suite`` (``judgments.json``,
one list per setting label) or of ``audiox-bench t2a`` / ``run`` (``judgments_LABEL.json``), written
``FOLDER@LABEL``; the label may be left out when the folder holds exactly one setting.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from scipy.stats import binomtest

__all__ = ["METRICS", "load_judgments", "pair_rows", "compare_pairs", "compare_table"]

METRICS = ("cat_acc", "cnt_acc", "ord_acc", "ts_acc")
_REFERENCES = ("ground truth", "autoencoder round trip")


def _read(path: Path):
    try:
        return json.loads(path.read_text())
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not JSON: {e.msg} (line {e.lineno})") from None


def load_judgments(spec: str) -> tuple[str, list[dict]]:
    """``FOLDER[@LABEL]`` -> (label, per-clip rows with ``id`` and ``prediction``)."""
    where, _, label = spec.rpartition("@") if "@" in spec else (spec, "", "")
    folder = Path(where)
    if not folder.is_dir():
        raise ValueError(f"{spec!r}: no such results folder {folder}")
    tables: dict[str, list] = {}
    if (folder / "judgments.json").is_file():  # suite: {label: rows}
        data = _read(folder / "judgments.json")
        if not isinstance(data, dict):
            raise ValueError(f"{folder / 'judgments.json'}: expected an object of setting label -> clips")
        tables.update({k: v for k, v in data.items() if k not in _REFERENCES})
    for f in sorted(folder.glob("judgments_*.json")):  # t2a / run: one file per label
        tables[f.stem.removeprefix("judgments_")] = _read(f)
    if not tables:
        raise ValueError(f"{folder} holds no judgments (judgments.json or judgments_LABEL.json)")
    if not label:
        if len(tables) != 1:
            raise ValueError(f"{folder} holds several settings ({', '.join(tables)}): name one as {where}@LABEL")
        label = next(iter(tables))
    if label not in tables:
        raise ValueError(f"{folder} has no setting {label!r}; it has: {', '.join(tables)}")
    rows = tables[label]
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "id" in r and "prediction" in r for r in rows):
        raise ValueError(f"{folder}@{label}: expected a list of clips with 'id' and 'prediction'")
    return label, rows


def pair_rows(a: list[dict], b: list[dict], where: str = "") -> list[tuple[dict, dict]]:
    """Clips present on both sides, matched by id, in A's order; their prompts must agree where both record one."""
    by_id = {r["id"]: r for r in b}
    pairs = []
    for r in a:
        s = by_id.get(r["id"])
        if s is None:
            continue
        if r.get("prompt") is not None and s.get("prompt") is not None and r["prompt"] != s["prompt"]:
            raise ValueError(f"{where}clip {r['id']} has different prompts on the two sides "
                             f"({r['prompt']!r} vs {s['prompt']!r}): compare runs of one prompt set (same --seed)")
        pairs.append((r, s))
    if not pairs:
        raise ValueError(f"{where}the two sides share no clip ids")
    return pairs


def _stats(x: list[int], y: list[int]) -> dict:
    n = len(x)
    if n == 0:
        return {"n": 0, "a": None, "b": None, "diff": None, "ci95": None, "a_only": 0, "b_only": 0, "p": None}
    b = sum(i > j for i, j in zip(x, y))  # A met it, B did not
    c = sum(i < j for i, j in zip(x, y))  # B met it, A did not
    diff = 100.0 * (c - b) / n
    half = 196.0 * math.sqrt(max(0.0, (b + c) - (c - b) ** 2 / n)) / n
    p = float(binomtest(b, b + c, 0.5).pvalue) if b + c else 1.0
    return {"n": n, "a": 100.0 * sum(x) / n, "b": 100.0 * sum(y) / n, "diff": diff, "ci95": [diff - half, diff + half],
            "a_only": b, "b_only": c, "p": p}


def compare_pairs(pairs: list[list[tuple[dict, dict]]]) -> dict[str, dict]:
    """Pooled paired statistics per metric over every (A, B) clip pair of every pair list."""
    out = {}
    for m in METRICS:
        x, y = [], []
        for plist in pairs:
            for r, s in plist:
                u, v = r["prediction"].get(m), s["prediction"].get(m)
                if u is None or v is None:  # the metric does not apply to this prompt type
                    continue
                x.append(int(u))
                y.append(int(v))
        out[m] = _stats(x, y)
    return out


def compare_table(stats: dict[str, dict], name_a: str, name_b: str) -> str:
    def f(v, nd=1):
        return "-" if v is None else f"{v:.{nd}f}"

    lines = [f"| Metric | clips | {name_a} (A) | {name_b} (B) | B - A, points (95% CI) | A only | B only | "
             "p (two-sided McNemar) |", "|---|---|---|---|---|---|---|---|"]
    names = {"cat_acc": "Cat-acc", "cnt_acc": "Cnt-acc", "ord_acc": "Ord-acc", "ts_acc": "TS-acc"}
    for m, s in stats.items():
        ci = "-" if s["ci95"] is None else f"{s['diff']:+.1f} ({s['ci95'][0]:+.1f} to {s['ci95'][1]:+.1f})"
        p = "-" if s["p"] is None else f"{s['p']:.2g}"
        lines.append(f"| {names[m]} | {s['n']} | {f(s['a'])} | {f(s['b'])} | {ci} | {s['a_only']} | {s['b_only']} "
                     f"| {p} |")
    return "\n".join(lines)
