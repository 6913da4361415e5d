"""Step 2 of the T2A-bench judge as deterministic rules (paper Appendix C, "Evaluation Metrics").

Input: a T2A-bench record (``type``, ``category``, ``count``, ``time_relation``, ``timestamp``) and a structured
annotation of the audio (the Step-1 output: ``category`` name -> count or None, ``SED`` events with times,
``time_relation``). Output: ``{"cat_acc", "cnt_acc", "ord_acc", "ts_acc"}`` with 1 / 0, or None where the
metric does not apply to the record's type (Cat-acc applies to every record, as in the paper).

* Cat-acc: every category of the prompt is detected.
* Cnt-acc (category+count): the detected count of the category equals the prompt's.
* Ord-acc (category+ordering): the prompt's categories, ordered by their first detected onset, give exactly
  the prompt's sequence (all must be detected).
* TS-acc (category+timestamp): the detected span of the category (first onset, last offset) has start and end
  each within ``tolerance`` (1 s) of the prompt's.

Cat-acc does not penalize extra sounds, so a model that ignores the prompt and fills its clips with many kinds of
sound scores above zero by chance. :func:`prompt_following` measures that chance level on the same clips: Cat-acc of
each clip against *another* prompt's categories (one that shares none with its own), and the extra categories per
clip. A model follows its prompts as far as its Cat-acc exceeds that chance level. Each clip is judged both ways,
so the two are paired: the margin's p-value is the exact one-sided McNemar test on the clips where they disagree.
"""

from __future__ import annotations

from scipy.stats import binomtest

__all__ = ["METRICS", "split_names", "annotation_from_events", "judge_record", "aggregate", "prompt_following",
           "category_recall"]

METRICS = ("cat_acc", "cnt_acc", "ord_acc", "ts_acc")


def split_names(field: str | None) -> list[str]:
    return [s.strip().lower() for s in (field or "").split(",") if s.strip()]


def annotation_from_events(events: list[dict], continuous: set[str] = frozenset()) -> dict:
    """IF-caps-Pro-like structured annotation of detected events (``{"name", "onset", "offset"}``)."""
    events = sorted(events, key=lambda e: e["onset"])
    category: dict[str, int | None] = {}
    for e in events:
        category[e["name"]] = None if e["name"] in continuous else (category.get(e["name"]) or 0) + 1
    first: list[str] = []
    for e in events:
        if e["name"] not in first:
            first.append(e["name"])
    return {"category": category, "SED": [dict(e) for e in events], "time_relation": ", ".join(first)}


def _events_of(annotation: dict, name: str) -> list[dict]:
    return [e for e in annotation.get("SED") or [] if str(e.get("name", "")).lower() == name]


def judge_record(record: dict, annotation: dict, tolerance: float = 1.0) -> dict[str, int | None]:
    kind = record["type"]
    want = split_names(record.get("category"))
    found = {str(k).lower(): v for k, v in (annotation.get("category") or {}).items()}
    out: dict[str, int | None] = {m: None for m in METRICS}
    out["cat_acc"] = int(all(n in found for n in want))
    if kind == "category+count":
        ((name, n),) = record["count"].items()
        got = found.get(name.lower())
        if got is None and name.lower() in found:  # counted as continuous: count the detected events
            got = len(_events_of(annotation, name.lower()))
        out["cnt_acc"] = int(got == n)
    elif kind == "category+ordering":
        seq = split_names(record.get("time_relation"))
        firsts = {}
        for n in seq:
            ev = _events_of(annotation, n)
            if ev:
                firsts[n] = min(float(e["onset"]) for e in ev)
        out["ord_acc"] = int(len(firsts) == len(seq) and sorted(seq, key=lambda n: firsts[n]) == seq)
    elif kind == "category+timestamp":
        ((name, span),) = record["timestamp"].items()
        ev = _events_of(annotation, name.lower())
        if ev:
            on, off = min(float(e["onset"]) for e in ev), max(float(e["offset"]) for e in ev)
            ok = abs(on - float(span["start"])) <= tolerance and abs(off - float(span["end"])) <= tolerance
            out["ts_acc"] = int(ok)
        else:
            out["ts_acc"] = 0
    elif kind != "category-only":
        raise ValueError(f"unknown T2A-bench type {kind!r}")
    return out


def aggregate(judgments: list[dict], types: list[str] | None = None) -> dict:
    """Percent correct per metric over the records where it applies (and per type, if ``types`` given)."""
    def pct(rows: list[dict]) -> dict[str, float | None]:
        res = {}
        for m in METRICS:
            vals = [r[m] for r in rows if r.get(m) is not None]
            res[m] = 100.0 * sum(vals) / len(vals) if vals else None
        res["n"] = len(rows)
        return res

    out = {"overall": pct(judgments)}
    if types is not None:
        for t in sorted(set(types)):
            out[t] = pct([j for j, k in zip(judgments, types, strict=True) if k == t])
    return out


def prompt_following(records: list[dict], annotations: list[dict]) -> dict[str, float | int | None]:
    """Chance level of Cat-acc on these clips, and how many sounds the prompts did not ask for.

    * ``cat_acc_other_prompt`` (%): each clip judged against the categories of the next record (cyclically) whose
      categories are disjoint from its own; a clip with no such record is skipped.
    * ``cat_acc_margin``: Cat-acc on the clips' own prompts minus that chance level (points, same clips).
    * ``cat_acc_margin_p``: how likely a margin at least this large is when the clips do not follow their prompts
      (own and other prompt equally likely to be the one met): the exact one-sided McNemar test, a binomial test of
      the ``discordant`` clips (``[own only, other only]``) at 1/2; 1.0 when no clip is discordant.
    * ``extra_categories_per_clip``: detected categories that the clip's own prompt does not name, on average.
    """
    if len(records) != len(annotations):
        raise ValueError(f"{len(records)} records for {len(annotations)} annotations")
    wants = [set(split_names(r.get("category"))) for r in records]
    found = [{str(k).lower() for k in (a.get("category") or {})} for a in annotations]
    n, own, other = len(records), [], []
    for i, (want, got) in enumerate(zip(wants, found, strict=True)):
        j = next((k % n for k in range(i + 1, i + n) if not (wants[k % n] & want)), None)
        if j is None:
            continue
        own.append(int(want <= got))
        other.append(int(wants[j] <= got))
    extra = [len(got - want) for want, got in zip(wants, found, strict=True)]
    pct = lambda v: 100.0 * sum(v) / len(v) if v else None  # noqa: E731
    chance, mine = pct(other), pct(own)
    b = sum(o > x for o, x in zip(own, other))  # met its own prompt only
    c = sum(o < x for o, x in zip(own, other))  # met the other prompt only
    p = binomtest(b, b + c, 0.5, alternative="greater").pvalue if b + c else 1.0
    return {"cat_acc_other_prompt": chance, "cat_acc_margin": None if chance is None else mine - chance,
            "cat_acc_margin_p": None if chance is None else float(p), "discordant": [b, c],
            "extra_categories_per_clip": sum(extra) / len(extra) if extra else None, "n": len(other)}


def category_recall(records: list[dict], annotations: list[dict]) -> dict[str, dict[str, float | int | None]]:
    """Which sounds a model makes when asked, per category (a breakdown of Cat-acc; sorted by name).

    * ``asked`` / ``heard``: clips whose prompt names the category, and of those the ones where it was detected;
      ``recall`` = heard / asked in %.
    * ``unasked`` / ``heard_unasked``: clips whose prompt does not name it, and of those the ones where it was
      detected anyway; ``unasked_rate`` in %. A category with a high rate in both is one the model makes whatever
      the prompt says.
    """
    if len(records) != len(annotations):
        raise ValueError(f"{len(records)} records for {len(annotations)} annotations")
    wants = [set(split_names(r.get("category"))) for r in records]
    found = [{str(k).lower() for k in (a.get("category") or {})} for a in annotations]
    out: dict[str, dict[str, float | int | None]] = {}
    for name in sorted(set().union(*wants, *found)) if wants else []:
        asked = [name in got for want, got in zip(wants, found, strict=True) if name in want]
        other = [name in got for want, got in zip(wants, found, strict=True) if name not in want]
        out[name] = {"asked": len(asked), "heard": sum(asked),
                     "recall": 100.0 * sum(asked) / len(asked) if asked else None,
                     "unasked": len(other), "heard_unasked": sum(other),
                     "unasked_rate": 100.0 * sum(other) / len(other) if other else None}
    return out
