"""The sound-event vocabulary of the synthetic world: parametric renderers, one per category.

Each category is chosen to be easy to tell apart by ear and by a simple detector (distinct spectra,
durations and envelopes). Renderers are pure functions of ``(rng, n, sr)``: the same generator state
gives the same samples. Countable categories are short one-shots (count = number of occurrences);
continuous ones (``hum``, ``rain``, ``wind``) last seconds and are annotated with a ``null`` count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

__all__ = ["CONTINUOUS", "COUNTABLE", "EVENTS", "EVENT_NAMES", "EventCategory"]

Renderer = Callable[[np.random.Generator, int, int], np.ndarray]


@dataclass(frozen=True)
class EventCategory:
    name: str  # vocabulary name (used in category / time_relation fields)
    nouns: tuple[str, ...]  # ways captions name one occurrence ("a beep", "an electronic beep")
    continuous: bool  # True: count is null, duration drawn from ``duration``
    duration: tuple[float, float]  # seconds (min, max) of one occurrence
    shape: str  # visual counterpart drawn while it sounds
    colour: tuple[int, int, int]  # RGB
    render: Renderer


def _t(n: int, sr: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64) / sr


def _env(n: int, sr: int, attack: float, release: float) -> np.ndarray:
    """Linear attack / release envelope (avoids clicks at the edges)."""
    e = np.ones(n)
    a = max(1, min(n // 2, int(attack * sr)))
    r = max(1, min(n // 2, int(release * sr)))
    e[:a] = np.linspace(0, 1, a, endpoint=False)
    e[n - r :] = np.linspace(1, 0, r)
    return e


def _noise(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.standard_normal(n)


def _lowpass(x: np.ndarray, alpha: float) -> np.ndarray:
    return lfilter([alpha], [1, alpha - 1], x)


def _bandpass(x: np.ndarray, f: float, sr: int, q: float = 4.0) -> np.ndarray:
    w = 2 * np.pi * f / sr
    a = np.sin(w) / (2 * q)
    b = [a, 0.0, -a]
    den = [1 + a, -2 * np.cos(w), 1 - a]
    return lfilter(b, den, x)


def _norm(x: np.ndarray, peak: float) -> np.ndarray:
    m = np.abs(x).max()
    return (x / m * peak) if m > 0 else x


def beep(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    f = rng.uniform(900, 1100)
    return 0.5 * np.sin(2 * np.pi * f * _t(n, sr)) * _env(n, sr, 0.005, 0.01)


def chirp(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    f0, f1 = rng.uniform(1500, 1900), rng.uniform(3800, 4400)  # fast upward sweep, bird-like
    t = _t(n, sr)
    dur = n / sr
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * dur))
    return 0.45 * np.sin(phase) * np.sin(np.pi * t / dur) ** 2


def siren(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    t = _t(n, sr)
    rate = rng.uniform(1.5, 2.5)  # wails per second
    f = 750 + 250 * np.sin(2 * np.pi * rate * t)
    phase = 2 * np.pi * np.cumsum(f) / sr
    return 0.4 * (np.sin(phase) + 0.3 * np.sin(2 * phase)) * _env(n, sr, 0.05, 0.1)


def click(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    x = _noise(rng, n) * np.exp(-_t(n, sr) / 0.004)
    return _norm(np.diff(x, prepend=0.0), 0.8)  # high-passed: a bright tick


def knock(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    t = _t(n, sr)
    f = rng.uniform(140, 190)
    x = np.sin(2 * np.pi * f * t) + 0.5 * np.sin(2 * np.pi * 2.7 * f * t)
    x = x * np.exp(-t / 0.03) + 0.3 * _lowpass(_noise(rng, n), 0.2) * np.exp(-t / 0.01)
    return _norm(x, 0.8) * _env(n, sr, 0.001, 0.01)


def whoosh(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    # Noise through a band-pass whose centre sweeps up and down, fading in and out.
    x = _noise(rng, n)
    blocks = np.array_split(np.arange(n), 16)
    y = np.zeros(n)
    for i, idx in enumerate(blocks):
        centre = 400 + 2200 * np.sin(np.pi * (i + 0.5) / len(blocks))
        y[idx] = _bandpass(x, centre, sr, 2.0)[idx]
    t = _t(n, sr)
    return _norm(y * np.sin(np.pi * t / (n / sr)) ** 2, 0.5)


def hum(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    f = rng.choice([50.0, 60.0]) * 2  # mains hum at twice the line frequency, plus harmonics
    t = _t(n, sr)
    x = sum(np.sin(2 * np.pi * f * k * t + rng.uniform(0, 2 * np.pi)) / k for k in (1, 2, 3, 4))
    return _norm(x, 0.35) * _env(n, sr, 0.08, 0.08)


def bell(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    f = rng.uniform(500, 700)
    t = _t(n, sr)
    partials = ((1.0, 1.0), (2.76, 0.6), (5.40, 0.4), (8.93, 0.25))  # inharmonic, struck-bar ratios
    x = sum(a * np.sin(2 * np.pi * f * r * t) * np.exp(-t * (1.5 + r)) for r, a in partials)
    return _norm(x, 0.6) * _env(n, sr, 0.002, 0.05)


def buzz(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    f = rng.uniform(180, 230)
    t = _t(n, sr)
    saw = 2 * ((f * t) % 1.0) - 1
    return 0.35 * saw * _env(n, sr, 0.01, 0.02)


def rain(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    bed = _lowpass(_noise(rng, n), 0.5) * 0.15
    drops = (rng.random(n) < 40 / sr) * rng.uniform(0.3, 1.0, n)  # ~40 drops per second
    drops = lfilter([1.0], [1, -0.97], drops * rng.choice([-1, 1], n))
    x = bed + 0.25 * np.diff(drops, prepend=0.0)
    return _norm(x, 0.4) * _env(n, sr, 0.3, 0.3)


def wind(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    t = _t(n, sr)
    gust = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.2, 0.4) * t + rng.uniform(0, 6.28))
    x = _lowpass(_lowpass(_noise(rng, n), 0.05), 0.1) * gust
    return _norm(x, 0.4) * _env(n, sr, 0.4, 0.4)


def clap(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    t = _t(n, sr)
    x = _bandpass(_noise(rng, n), 1200, sr, 1.0)
    env = sum(np.exp(-np.clip(t - d, 0, None) / 0.012) * (t >= d) for d in (0.0, 0.008, 0.016))
    return _norm(x * env, 0.8)


def whistle(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    t = _t(n, sr)
    f = rng.uniform(2300, 2700) + 60 * np.sin(2 * np.pi * 6 * t)  # vibrato
    phase = 2 * np.pi * np.cumsum(f) / sr
    return 0.4 * np.sin(phase) * _env(n, sr, 0.04, 0.06)


_CATS = [
    EventCategory(
        "beep", ("a beep", "an electronic beep", "a short beep"), False, (0.25, 0.35), "square", (255, 255, 255), beep
    ),
    EventCategory(
        "chirp",
        ("a chirp", "a bird-like chirp", "a rising chirp"),
        False,
        (0.3, 0.45),
        "triangle",
        (255, 220, 0),
        chirp,
    ),
    EventCategory(
        "siren", ("a siren", "a wailing siren", "a siren wail"), False, (1.6, 2.2), "bar_h", (255, 0, 0), siren
    ),
    EventCategory("click", ("a click", "a sharp click", "a tick"), False, (0.04, 0.06), "dot", (0, 255, 255), click),
    EventCategory(
        "knock",
        ("a knock", "a knock on wood", "a dull knock"),
        False,
        (0.12, 0.18),
        "square_outline",
        (150, 90, 40),
        knock,
    ),
    EventCategory(
        "whoosh", ("a whoosh", "a swoosh", "a rushing whoosh"), False, (0.6, 0.9), "bar_v", (120, 120, 255), whoosh
    ),
    EventCategory(
        "bell", ("a bell", "a bell ring", "a ringing bell"), False, (1.0, 1.4), "circle", (255, 200, 80), bell
    ),
    EventCategory("buzz", ("a buzz", "a buzzer", "an electric buzz"), False, (0.5, 0.7), "cross", (255, 0, 255), buzz),
    EventCategory(
        "clap", ("a clap", "a hand clap", "a single clap"), False, (0.08, 0.12), "diamond", (255, 140, 0), clap
    ),
    EventCategory(
        "whistle", ("a whistle", "a shrill whistle", "a whistle blow"), False, (0.5, 0.8), "ring", (0, 255, 0), whistle
    ),
    EventCategory(
        "hum", ("a hum", "an electrical hum", "a low mains hum"), True, (2.0, 6.0), "stripes", (80, 80, 80), hum
    ),
    EventCategory("rain", ("rain", "falling rain", "steady rain"), True, (3.0, 8.0), "rain", (0, 90, 255), rain),
    EventCategory("wind", ("wind", "blowing wind", "gusting wind"), True, (3.0, 8.0), "wave", (200, 200, 160), wind),
]

#: name -> category; the fixed vocabulary (import this in judges and benchmarks).
EVENTS: dict[str, EventCategory] = {c.name: c for c in _CATS}
EVENT_NAMES: tuple[str, ...] = tuple(EVENTS)
COUNTABLE: tuple[str, ...] = tuple(n for n, c in EVENTS.items() if not c.continuous)
CONTINUOUS: tuple[str, ...] = tuple(n for n, c in EVENTS.items() if c.continuous)
