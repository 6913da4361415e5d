"""AudioTime's STEAM metrics (temporal controllability), on detected vs specified event lists.

An event is ``{"name": str, "onset": s, "offset": s}``. Per clip:

* Ordering: the distinct categories ordered by first onset must equal the specified order; the metric is
  the *error rate* over clips (lower is better).
* Duration: ``|d_spec - d_det|`` (seconds) per specified category, where d is the total active time of that
  category (union of its events); mean over categories, then over clips (L1, lower is better).
* Frequency: ``|n_spec - n_det|`` occurrences per specified category; mean over categories and clips.
* Timestamp: segment-based F1 (as sed_eval's SegmentBasedMetrics / DCASE): time is cut into segments of
  ``resolution`` seconds; a (segment, category) is active if any event of the category overlaps it; TP/FP/FN
  are accumulated over all clips, F1 = 2TP / (2TP + FP + FN) (micro average).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["first_onset_order", "ordering_error", "duration_l1", "frequency_l1", "segment_f1", "steam"]

Events = Sequence[dict]


def first_onset_order(events: Events) -> list[str]:
    first: dict[str, float] = {}
    for e in events:
        first[e["name"]] = min(first.get(e["name"], math.inf), float(e["onset"]))
    return sorted(first, key=lambda n: (first[n], n))


def ordering_error(spec: Sequence[Events], det: Sequence[Events]) -> float:
    """Fraction of clips whose detected first-onset order differs from the specified one."""
    _check(spec, det)
    return sum(first_onset_order(s) != first_onset_order(d) for s, d in zip(spec, det, strict=True)) / len(spec)


def _active_time(events: Events, name: str) -> float:
    spans = sorted((float(e["onset"]), float(e["offset"])) for e in events if e["name"] == name)
    total, cur_on, cur_off = 0.0, None, None
    for on, off in spans:
        if cur_off is None or on > cur_off:
            if cur_off is not None:
                total += cur_off - cur_on
            cur_on, cur_off = on, off
        else:
            cur_off = max(cur_off, off)
    if cur_off is not None:
        total += cur_off - cur_on
    return total


def duration_l1(spec: Sequence[Events], det: Sequence[Events]) -> float:
    _check(spec, det)
    per_clip = []
    for s, d in zip(spec, det, strict=True):
        names = sorted({e["name"] for e in s})
        per_clip.append(sum(abs(_active_time(s, n) - _active_time(d, n)) for n in names) / max(1, len(names)))
    return sum(per_clip) / len(per_clip)


def frequency_l1(spec: Sequence[Events], det: Sequence[Events]) -> float:
    _check(spec, det)
    per_clip = []
    for s, d in zip(spec, det, strict=True):
        names = sorted({e["name"] for e in s})
        diff = [abs(sum(e["name"] == n for e in s) - sum(e["name"] == n for e in d)) for n in names]
        per_clip.append(sum(diff) / max(1, len(names)))
    return sum(per_clip) / len(per_clip)


def _segments(events: Events, resolution: float, n_seg: int) -> set[tuple[int, str]]:
    out = set()
    for e in events:
        lo = max(0, int(math.floor(float(e["onset"]) / resolution)))
        hi = min(n_seg, int(math.ceil(float(e["offset"]) / resolution)))
        out.update((k, e["name"]) for k in range(lo, max(hi, lo + 1)))
    return out


def segment_f1(spec: Sequence[Events], det: Sequence[Events], duration: float, resolution: float = 1.0) -> float:
    """Micro segment-based F1 over all clips (sed_eval convention); 1.0 when both sides are empty."""
    _check(spec, det)
    if resolution <= 0 or duration <= 0:
        raise ValueError("duration and resolution must be > 0")
    n_seg = int(math.ceil(duration / resolution))
    tp = fp = fn = 0
    for s, d in zip(spec, det, strict=True):
        ref, est = _segments(s, resolution, n_seg), _segments(d, resolution, n_seg)
        tp += len(ref & est)
        fp += len(est - ref)
        fn += len(ref - est)
    return 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def steam(spec: Sequence[Events], det: Sequence[Events], duration: float, resolution: float = 1.0) -> dict[str, float]:
    return {
        "ordering_error": ordering_error(spec, det),
        "duration_l1": duration_l1(spec, det),
        "frequency_l1": frequency_l1(spec, det),
        "timestamp_f1": segment_f1(spec, det, duration, resolution),
    }


def _check(spec: Sequence[Events], det: Sequence[Events]) -> None:
    if len(spec) != len(det) or not spec:
        raise ValueError(f"need equally many specified and detected clips (>0), got {len(spec)} and {len(det)}")
