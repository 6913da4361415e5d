"""The IF-caps-Pro annotation schema (paper Appendix A2) and its strict validation.

General audio::

    {"caption": str, "category": {name: int >= 1 | None}, "SED": [{"MM:SS.sss-MM:SS.sss": str}, ...],
     "time_relation": "A, B, ..." | "interleave"}

Music::

    {"caption": str, "genre": str, "mood": str, "instrument": [str, ...], "tempo": str}

Extra keys (``audio_id``, ``captions``, ``meta``, ...) are allowed; the required ones are checked strictly.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "SchemaError",
    "format_span",
    "format_timestamp",
    "parse_span",
    "validate_annotation",
    "validate_audio_annotation",
    "validate_music_annotation",
]

_SPAN = re.compile(r"^(\d{2}):(\d{2}(?:\.\d{1,3})?)-(\d{2}):(\d{2}(?:\.\d{1,3})?)$")


class SchemaError(ValueError):
    """An annotation that does not follow the IF-caps-Pro schema."""


def format_timestamp(seconds: float) -> str:
    """``MM:SS.sss`` (millisecond precision)."""
    ms = int(round(seconds * 1000))
    if ms < 0:
        raise ValueError(f"negative time {seconds}")
    m, rest = divmod(ms, 60_000)
    return f"{m:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def format_span(onset: float, offset: float) -> str:
    return f"{format_timestamp(onset)}-{format_timestamp(offset)}"


def parse_span(span: str) -> tuple[float, float]:
    """``"MM:SS(.sss)-MM:SS(.sss)"`` -> (onset, offset) seconds."""
    m = _SPAN.match(span.strip())
    if not m:
        raise SchemaError(f"bad SED timestamp {span!r} (want MM:SS.sss-MM:SS.sss)")
    on = int(m.group(1)) * 60 + float(m.group(2))
    off = int(m.group(3)) * 60 + float(m.group(4))
    if off < on:
        raise SchemaError(f"SED span {span!r} ends before it starts")
    return on, off


def _need_str(d: dict[str, Any], key: str) -> str:
    v = d.get(key)
    if not isinstance(v, str) or not v.strip():
        raise SchemaError(f"{key!r} must be a non-empty string, got {v!r}")
    return v


def validate_audio_annotation(d: Any) -> dict[str, Any]:
    """Check a general-audio annotation; return it unchanged or raise :class:`SchemaError`."""
    if not isinstance(d, dict):
        raise SchemaError(f"annotation must be an object, got {type(d).__name__}")
    _need_str(d, "caption")
    cat = d.get("category")
    if not isinstance(cat, dict) or not cat:
        raise SchemaError(f"'category' must be a non-empty object, got {cat!r}")
    for name, count in cat.items():
        if not isinstance(name, str) or not name.strip():
            raise SchemaError(f"category name {name!r} must be a non-empty string")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise SchemaError(f"category {name!r}: count must be an integer >= 1 or null, got {count!r}")
    sed = d.get("SED")
    if not isinstance(sed, list):
        raise SchemaError(f"'SED' must be a list, got {sed!r}")
    for entry in sed:
        if not isinstance(entry, dict) or len(entry) != 1:
            raise SchemaError(f"each SED entry maps one timestamp to a description, got {entry!r}")
        ((span, text),) = entry.items()
        parse_span(span)
        if not isinstance(text, str) or not text.strip():
            raise SchemaError(f"SED {span!r}: description must be a non-empty string")
    rel = d.get("time_relation")
    if not isinstance(rel, str) or not rel.strip():
        raise SchemaError(f"'time_relation' must be 'interleave' or ordered names, got {rel!r}")
    return d


def validate_music_annotation(d: Any) -> dict[str, Any]:
    """Check a music annotation; return it unchanged or raise :class:`SchemaError`."""
    if not isinstance(d, dict):
        raise SchemaError(f"annotation must be an object, got {type(d).__name__}")
    for key in ("caption", "genre", "mood", "tempo"):
        _need_str(d, key)
    inst = d.get("instrument")
    if not isinstance(inst, list) or not inst or not all(isinstance(i, str) and i.strip() for i in inst):
        raise SchemaError(f"'instrument' must be a non-empty list of strings, got {inst!r}")
    return d


def validate_annotation(d: Any) -> dict[str, Any]:
    """Music if it has ``genre`` (or ``kind == "music"``), general audio otherwise."""
    if isinstance(d, dict) and (d.get("kind") == "music" or "genre" in d):
        return validate_music_annotation(d)
    return validate_audio_annotation(d)
