"""Caption phrasings for the synthetic world.

Training captions come from four perspectives (paper Appendix A2: rephrase; category + count; SED
timestamps; time relation) and, for music, four more (rephrase; genre; mood; tempo). Evaluation
prompts use a *held-out* set of phrasings whose openings never start a training caption, so an
evaluation prompt is never a training caption (``tests/test_synth.py`` checks it on rendered sets).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from audiox.data.synth.events import EVENTS

__all__ = [
    "EVAL_OPENINGS",
    "NUMBERS",
    "audio_captions",
    "music_captions",
    "phrase",
]

NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight"}
_PLURAL = {
    "beep": "beeps",
    "chirp": "chirps",
    "siren": "siren wails",
    "click": "clicks",
    "knock": "knocks",
    "whoosh": "whooshes",
    "bell": "bell rings",
    "buzz": "buzzes",
    "clap": "claps",
    "whistle": "whistles",
}
_TIMES = {1: "once", 2: "twice", 3: "three times", 4: "four times", 5: "five times", 6: "six times"}


def phrase(name: str, count: int | None, rng: np.random.Generator | None = None) -> str:
    """``("beep", 3)`` -> "three beeps"; ``("rain", None)`` -> "steady rain"; count 1 -> a noun phrase."""
    nouns = EVENTS[name].nouns
    noun = nouns[int(rng.integers(len(nouns)))] if rng is not None else nouns[0]
    if count is None or count == 1:
        return noun
    return f"{NUMBERS.get(count, str(count))} {_PLURAL[name]}"


def _join(items: Sequence[str], last: str = "and") -> str:
    items = list(items)
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + f" {last} " + items[-1]


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _order(category: dict[str, int | None], relation: str) -> list[str]:
    return [n.strip() for n in relation.split(",")] if relation != "interleave" else list(category)


def audio_captions(
    category: dict[str, int | None], events: Sequence[dict], relation: str, rng: np.random.Generator
) -> dict[str, list[str]]:
    """Training captions per perspective for a general-audio clip (several phrasings each)."""
    order = _order(category, relation)
    items = [phrase(n, category[n], rng) for n in order]
    seq_link = _pick(rng, [", then ", ", followed by ", " and then "]) if relation != "interleave" else " and "
    seq = seq_link.join(items) if relation != "interleave" else _join(items)
    rephrase = [
        _cap(seq) + ".",
        _pick(rng, ["The audio features ", "This clip features ", "You can hear "]) + seq + ".",
        _pick(rng, ["A recording of ", "Sound of ", "Audio of "]) + seq + ".",
    ]
    cat_items = [phrase(n, category[n]) for n in category]
    cat = [
        _pick(rng, ["The audio contains ", "We hear ", "The clip has "]) + _join(cat_items) + ".",
        _cap(_join(cat_items)) + _pick(rng, [" and nothing else.", ", with silence in between.", "."]),
    ]
    counts = [f"{n} {_TIMES.get(c, str(c) + ' times')}" for n, c in category.items() if c is not None]
    if counts:
        cat.append(_pick(rng, ["Count: ", "Occurrences: "]) + "; ".join(counts) + ".")
    parts = []
    for ev in events:
        noun = phrase(ev["name"], 1, rng)
        on, off = ev["onset"], ev["offset"]
        parts.append(
            _pick(
                rng,
                [
                    f"{noun} from {on:.1f} to {off:.1f} seconds",
                    f"{noun} at {on:.1f}-{off:.1f} s",
                    f"{noun} between {on:.1f} s and {off:.1f} s",
                ],
            )
        )
    sed = [_cap(_join(parts)) + ".", _pick(rng, ["Timeline: ", "Events: "]) + "; ".join(parts) + "."]
    if relation == "interleave":
        names = _join([phrase(n, None, rng) for n in category])
        rel = [_cap(names) + _pick(rng, [" overlap and alternate.", " are interleaved.", " occur together."])]
    else:
        first = _cap(items[0])
        if len(items) == 1:
            rel = [first + _pick(rng, [" alone.", " and nothing else happens.", " on its own."])]
        else:
            rel = [
                "First " + items[0] + ", then " + _join(items[1:], "then") + ".",
                first + " comes before " + items[1] + ("" if len(items) < 3 else ", which precedes " + items[2]) + ".",
            ]
    return {"rephrase": rephrase, "category": cat, "sed": sed, "time_relation": rel}


def music_captions(labels: dict, rng: np.random.Generator) -> dict[str, list[str]]:
    """Training captions per music perspective: rephrase, genre, mood, tempo."""
    inst, genre, mood, tempo = labels["instrument"][0], labels["genre"], labels["mood"], labels["tempo"]
    speed, bpm = tempo.split(", ")
    return {
        "rephrase": [
            f"A {mood.split(', ')[0]} {genre} piece played on {inst}.",
            _pick(rng, ["Solo ", "A lone ", "Just "]) + f"{inst} playing a {speed} {mood.split(', ')[1]} melody.",
        ],
        "genre": [_pick(rng, ["A ", "An instrumental "]) + f"{genre} track featuring {inst}."],
        "mood": [_cap(mood) + f" music on {inst}.", f"The mood is {mood}; the {inst} carries the tune."],
        "tempo": [f"A {speed} tempo {inst} tune at {bpm}.", f"{inst.capitalize()} music, {bpm}, {speed} pace."],
    }


#: Openings of held-out evaluation prompts; no training phrasing starts with one of these.
EVAL_OPENINGS = ("Create ", "Produce ", "Generate ", "Make ", "Synthesize ", "Compose ")
