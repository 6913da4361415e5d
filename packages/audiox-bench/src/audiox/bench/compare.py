"""Paired comparison of two settings judged on the same held-out prompts (``audiox-bench compare``).

Two models judged on one prompt set differ by a few clips; whether such a gap is real is a paired question: only the
clips where exactly one of them meets the prompt say anything. For each accuracy (Cat, Cnt, Ord, TS) this module
pairs the clips by id (their prompts must match), counts the discordant clips (``A better``: A meets the prompt and B
does not; ``B better``) and reports

* ``diff``: B's accuracy minus A's, in points, over the clips both were judged on;
* ``ci95``: a 95% interval of that paired difference, in points: Agresti and Min's (Stat. Med. 2005) Wald interval
  ``d ± 1.96 · sqrt((b' + c') - (c' - b')² / n') / n'`` with ``d = (c' - b') / n'`` after adding 1/2 to each cell
  of the 2x2 table (``b' = b + 1/2``, ``c' = c + 1/2``, ``n' = n + 2``), which unlike the plain Wald interval does
  not shrink to a point when no clip is discordant;
* ``p``: the exact two-sided McNemar test, a binomial test of the discordant clips at 1/2 (1.0 when none).

V2A, when both sides are suite folders with ``v2a_judgments.json``: the same for each ground-truth event found (within
0.5 s of its visual onset) and aligned (within 0.2 s), paired per event; and false alarms per clip, paired per clip:
the mean difference with a normal 95% interval and the two-sided sign test of the clips where one side has fewer.

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

from audiox.bench.report import ACCURACY_NAMES

__all__ = ["METRICS", "NAMES", "split_spec", "load_judgments", "load_v2a", "pair_rows", "pair_v2a", "compare_pairs",
           "compare_v2a", "compare_table"]

METRICS = tuple(ACCURACY_NAMES)  # cat_acc, cnt_acc, ord_acc, ts_acc
NAMES = {**ACCURACY_NAMES, "v2a_present": "V2A events found", "v2a_aligned": "V2A events aligned (0.2 s)",
         "v2a_false_alarms": "V2A false alarms per clip (lower is better)"}
_REFERENCES = ("ground truth", "autoencoder round trip")


def _read(path: Path):
    try:
        return json.loads(path.read_text())
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not JSON: {e.msg} (line {e.lineno})") from None


def split_spec(spec: str) -> tuple[str, str]:
    """``FOLDER[@LABEL]`` -> (folder, label or "")."""
    where, _, label = spec.rpartition("@")
    return (where, label) if where else (spec, "")


def load_judgments(spec: str) -> tuple[str, list[dict]]:
    """``FOLDER[@LABEL]`` -> (label, per-clip rows with ``id`` and ``prediction``)."""
    where, label = split_spec(spec)
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


def load_v2a(spec: str) -> list[dict] | None:
    """The per-clip V2A judgments of ``FOLDER[@LABEL]`` (a suite folder's ``v2a_judgments.json``); None if absent."""
    where, label = split_spec(spec)
    f = Path(where) / "v2a_judgments.json"
    if not f.is_file():
        return None
    data = _read(f)
    if not isinstance(data, dict):
        raise ValueError(f"{f}: expected an object of setting label -> clips")
    if not label:
        if len(data) != 1:
            return None
        label = next(iter(data))
    rows = data.get(label)
    if rows is None:
        return None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "id" in r and "events" in r for r in rows):
        raise ValueError(f"{f}@{label}: expected a list of clips with 'id' and 'events'")
    return rows


def _match(a: list[dict], b: list[dict], differ, where: str) -> list[tuple[dict, dict]]:
    """(A, B) clips with one id, in A's order; ``differ(r, s)`` names what the two must not disagree on, or None."""
    by_id = {r["id"]: r for r in b}
    pairs = []
    for r in a:
        s = by_id.get(r["id"])
        if s is None:
            continue
        if (what := differ(r, s)) is not None:
            raise ValueError(f"{where}clip {r['id']} has {what} on the two sides: compare runs of one prompt set "
                             "(same --seed)")
        pairs.append((r, s))
    return pairs


def pair_v2a(a: list[dict], b: list[dict], where: str = "") -> list[tuple[dict, dict]]:
    """V2A clips on both sides, by id; their ground-truth events (names and onsets) must agree."""
    def events(r: dict) -> list:
        return [(e["name"], e["onset"]) for e in r["events"]]

    return _match(a, b, lambda r, s: "different events" if events(r) != events(s) else None, where)


def pair_rows(a: list[dict], b: list[dict], where: str = "") -> list[tuple[dict, dict]]:
    """Clips present on both sides, matched by id, in A's order; their prompts must agree where both record one."""
    def prompts(r: dict, s: dict) -> str | None:
        u, v = r.get("prompt"), s.get("prompt")
        return f"different prompts ({u!r} vs {v!r})" if u is not None and v is not None and u != v else None

    pairs = _match(a, b, prompts, where)
    if not pairs:
        raise ValueError(f"{where}the two sides share no clip ids")
    return pairs


def _stats(x: list[int], y: list[int]) -> dict:
    n = len(x)
    if n == 0:
        return {"n": 0, "a": None, "b": None, "diff": None, "ci95": None, "a_better": 0, "b_better": 0, "p": None}
    b = sum(i > j for i, j in zip(x, y))  # A met it, B did not
    c = sum(i < j for i, j in zip(x, y))  # B met it, A did not
    diff = 100.0 * (c - b) / n
    # Agresti-Min: the Wald interval after adding 1/2 to each cell of the 2x2 table (not degenerate at b = c = 0)
    b2, c2, n2 = b + 0.5, c + 0.5, n + 2.0
    mid = 100.0 * (c2 - b2) / n2
    half = 196.0 * math.sqrt(max(0.0, (b2 + c2) - (c2 - b2) ** 2 / n2)) / n2
    p = float(binomtest(b, b + c, 0.5).pvalue) if b + c else 1.0
    return {"n": n, "a": 100.0 * sum(x) / n, "b": 100.0 * sum(y) / n, "diff": diff, "ci95": [mid - half, mid + half],
            "a_better": b, "b_better": c, "p": p}


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


def _mean_diff(x: list[float], y: list[float]) -> dict:
    n = len(x)
    if n == 0:
        return {"n": 0, "a": None, "b": None, "diff": None, "ci95": None, "a_better": 0, "b_better": 0, "p": None}
    d = [v - u for u, v in zip(x, y)]
    mean = sum(d) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in d) / (n - 1)) if n > 1 else 0.0
    half = 1.96 * sd / math.sqrt(n)
    a_better = sum(u < v for u, v in zip(x, y))  # fewer false alarms on A's clip
    b_better = sum(u > v for u, v in zip(x, y))
    k = a_better + b_better
    p = float(binomtest(a_better, k, 0.5).pvalue) if k else 1.0
    return {"n": n, "a": sum(x) / n, "b": sum(y) / n, "diff": mean, "ci95": [mean - half, mean + half],
            "a_better": a_better, "b_better": b_better, "p": p}


def compare_v2a(pairs: list[list[tuple[dict, dict]]]) -> dict[str, dict]:
    """Pooled paired V2A statistics: events found and aligned (per event), false alarms (per clip)."""
    out = {}
    for key, m in (("present", "v2a_present"), ("aligned", "v2a_aligned")):
        x = [int(bool(e[key])) for plist in pairs for r, _ in plist for e in r["events"]]
        y = [int(bool(e[key])) for plist in pairs for _, s in plist for e in s["events"]]
        out[m] = _stats(x, y)
    x = [float(r.get("false_alarms", 0)) for plist in pairs for r, _ in plist]
    y = [float(s.get("false_alarms", 0)) for plist in pairs for _, s in plist]
    out["v2a_false_alarms"] = _mean_diff(x, y)
    return out


def compare_table(stats: dict[str, dict], name_a: str, name_b: str) -> str:
    """Accuracies in % and their differences in points; false alarms per clip and their difference in clips."""
    def f(v, nd=1):
        return "-" if v is None else f"{v:.{nd}f}"

    lines = [f"| Metric | n | {name_a} (A) | {name_b} (B) | B - A (95% CI) | A better | B better | "
             "p (two-sided, exact) |", "|---|---|---|---|---|---|---|---|"]
    for m, s in stats.items():
        nd = 2 if m == "v2a_false_alarms" else 1
        ci = "-" if s["ci95"] is None else (f"{s['diff']:+.{nd}f} ({s['ci95'][0]:+.{nd}f} to "
                                            f"{s['ci95'][1]:+.{nd}f})")
        p = "-" if s["p"] is None else f"{s['p']:.2g}"
        lines.append(f"| {NAMES[m]} | {s['n']} | {f(s['a'], nd)} | {f(s['b'], nd)} | {ci} | {s['a_better']} | "
                     f"{s['b_better']} | {p} |")
    return "\n".join(lines)
