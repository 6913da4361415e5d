"""Synthetic music: generated MIDI (pretty_midi) rendered by our own per-instrument synthesisers.

No soundfont is needed: each instrument is a small, clearly distinct timbre (additive piano with
decaying harmonics, Karplus-Strong plucked guitar, sustained additive organ, breathy sine flute, FM
synth lead). Tempo (BPM) and mode (major / minor) are known exactly and drive mood and tempo labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pretty_midi

__all__ = ["GENRES", "INSTRUMENTS", "MusicSpec", "make_midi", "music_labels", "render_midi", "sample_music_spec"]

#: instrument -> (General MIDI program, shape, colour, genre)
INSTRUMENTS: dict[str, tuple[int, str, tuple[int, int, int], str]] = {
    "piano": (0, "circle", (240, 240, 240), "classical"),
    "guitar": (24, "triangle", (200, 120, 40), "folk"),
    "organ": (19, "square", (160, 0, 200), "gospel"),
    "flute": (73, "ring", (120, 220, 255), "ambient"),
    "synth": (80, "diamond", (0, 255, 120), "electronic"),
}
GENRES = tuple(sorted({v[3] for v in INSTRUMENTS.values()}))
_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)


@dataclass(frozen=True)
class MusicSpec:
    instrument: str
    bpm: int
    mode: str  # "major" | "minor"
    root: int  # MIDI note of the tonic
    seed: int


def sample_music_spec(rng: np.random.Generator) -> MusicSpec:
    return MusicSpec(
        instrument=str(rng.choice(list(INSTRUMENTS))),
        bpm=int(rng.integers(60, 161)),
        mode=str(rng.choice(["major", "minor"])),
        root=int(rng.integers(55, 67)),
        seed=int(rng.integers(2**31)),
    )


def tempo_word(bpm: int) -> str:
    return "slow" if bpm <= 80 else ("moderate" if bpm < 120 else "fast")


def music_labels(spec: MusicSpec) -> dict[str, object]:
    """The structured fields (genre, mood, instrument, tempo) that follow from the spec."""
    speed = tempo_word(spec.bpm)
    mood = {
        ("major", "slow"): "calm, peaceful",
        ("major", "moderate"): "cheerful, warm",
        ("major", "fast"): "happy, upbeat",
        ("minor", "slow"): "sad, melancholic",
        ("minor", "moderate"): "wistful, reflective",
        ("minor", "fast"): "tense, dramatic",
    }[(spec.mode, speed)]
    return {
        "genre": INSTRUMENTS[spec.instrument][3],
        "mood": mood,
        "instrument": [spec.instrument],
        "tempo": f"{speed}, {spec.bpm} BPM",
    }


def make_midi(spec: MusicSpec, seconds: float) -> pretty_midi.PrettyMIDI:
    """A melody over the scale (random walk, eighth and quarter notes) plus a tonic-fifth bass line."""
    rng = np.random.default_rng(spec.seed)
    scale = _MAJOR if spec.mode == "major" else _MINOR
    pm = pretty_midi.PrettyMIDI(initial_tempo=float(spec.bpm))
    inst = pretty_midi.Instrument(program=INSTRUMENTS[spec.instrument][0], name=spec.instrument)
    beat = 60.0 / spec.bpm
    t, degree = 0.0, 0
    while t < seconds:
        length = beat * (0.5 if rng.random() < 0.5 else 1.0)
        degree = int(np.clip(degree + rng.integers(-2, 3), -3, 9))
        octave, step = divmod(degree, 7)
        pitch = spec.root + 12 * octave + scale[step]
        inst.notes.append(pretty_midi.Note(int(rng.integers(70, 110)), pitch, t, min(t + 0.95 * length, seconds)))
        t += length
    bar = 4 * beat
    t, k = 0.0, 0
    while t < seconds:  # bass: tonic / fifth alternating per half bar, an octave below
        pitch = spec.root - 12 + (0 if k % 2 == 0 else 7)
        inst.notes.append(pretty_midi.Note(80, pitch, t, min(t + bar / 2 * 0.9, seconds)))
        t += bar / 2
        k += 1
    pm.instruments.append(inst)
    return pm


def _note(instrument: str, f: float, n: int, sr: int, vel: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / sr
    if instrument == "piano":
        x = sum(np.sin(2 * np.pi * f * k * t) * np.exp(-t * (2.0 + 1.5 * k)) / k for k in range(1, 7))
    elif instrument == "organ":
        x = sum(a * np.sin(2 * np.pi * f * k * t) for k, a in ((1, 1.0), (2, 0.7), (3, 0.5), (4, 0.35), (8, 0.2)))
    elif instrument == "flute":
        x = np.sin(2 * np.pi * f * t) + 0.15 * np.sin(4 * np.pi * f * t)
        x = x * (1 + 0.03 * np.sin(2 * np.pi * 5 * t)) + 0.05 * rng.standard_normal(n)
    elif instrument == "synth":  # FM: modulator at 2x carrier, index decaying
        index = 3.0 * np.exp(-t * 3)
        x = np.sin(2 * np.pi * f * t + index * np.sin(2 * np.pi * 2 * f * t))
    elif instrument == "guitar":  # Karplus-Strong, vectorised one period at a time
        p = max(2, int(round(sr / f)))
        x = np.zeros(n + p + 1)
        x[: p + 1] = rng.uniform(-1, 1, p + 1)
        for i in range(p + 1, n + p + 1, p):
            j = min(i + p, n + p + 1)
            x[i:j] = 0.996 * 0.5 * (x[i - p : j - p] + x[i - p - 1 : j - p - 1])
        x = x[p + 1 :]
    else:
        raise ValueError(f"unknown instrument {instrument!r}")
    a, r = min(n // 2, int(0.01 * sr)) or 1, min(n // 2, int(0.03 * sr)) or 1
    env = np.ones(n)
    env[:a] = np.linspace(0, 1, a, endpoint=False)
    env[n - r :] = np.linspace(1, 0, r)
    return x / (np.abs(x).max() + 1e-9) * env * vel


def render_midi(pm: pretty_midi.PrettyMIDI, seconds: float, sr: int, seed: int) -> np.ndarray:
    """Render every note with the instrument's synthesiser (named by ``Instrument.name``); peak 0.8."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(round(seconds * sr)))
    for inst in pm.instruments:
        for note in inst.notes:
            s, e = int(round(note.start * sr)), min(len(out), int(round(note.end * sr)))
            if e <= s:
                continue
            f = pretty_midi.note_number_to_hz(note.pitch)
            out[s:e] += _note(inst.name, f, e - s, sr, note.velocity / 127, rng)
    peak = np.abs(out).max()
    return (out / peak * 0.8 if peak > 0 else out).astype(np.float32)
