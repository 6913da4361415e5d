"""Judges for V2A (events present and aligned with their visual counterparts) and T2M (tempo, instrument).

V2A: in the synthetic world each event's visual counterpart is drawn exactly while it sounds, so the
annotated event times are the visual times. For each annotated event, the judge looks for a detected event of
the same category (:class:`~audiox.bench.judges.detector.EventDetector`) whose onset is within ``window``
(0.5 s); present = found; onset error = |detected - visual onset| in ms. Reported: presence rate and
mean / median onset error over present events.

T2M: tempo from the autocorrelation of an onset-strength envelope (half-wave rectified spectral flux of
log band energies, 10 ms frames), peak picked in 50-200 BPM with a mild prior towards the 60-160 BPM range
of the prompts; correct if within 5% of the prompt's BPM. Instrument: 1-NN over mean log-band spectra of
templates rendered with the data package's own instruments.
"""

from __future__ import annotations

import numpy as np

from audiox.bench.judges.detector import DetectorConfig, EventDetector

__all__ = ["V2AJudge", "T2MJudge", "estimate_tempo"]


class V2AJudge:
    def __init__(self, detector: EventDetector | None = None, window: float = 0.5):
        self.detector = detector or EventDetector(DetectorConfig())
        self.window = window

    def judge(self, record: dict, audio: np.ndarray, sample_rate: int) -> dict:
        truth = record["spec"]["events"]
        dets = self.detector.detect(audio, sample_rate, overlaps=True)
        used: set[int] = set()
        rows = []
        for ev in sorted(truth, key=lambda e: e["onset"]):
            best, err = None, None
            for j, d in enumerate(dets):
                if j in used or d.name != ev["name"]:
                    continue
                e = abs(d.onset - ev["onset"])
                if e <= self.window and (err is None or e < err):
                    best, err = j, e
            if best is not None:
                used.add(best)
            rows.append({"name": ev["name"], "onset": ev["onset"], "present": best is not None,
                         "onset_error_ms": None if err is None else 1000 * err})
        return {"id": record["id"], "events": rows, "present": float(np.mean([r["present"] for r in rows])) if rows else 1.0}

    @staticmethod
    def summary(results: list[dict]) -> dict:
        evs = [r for res in results for r in res["events"]]
        errs = [r["onset_error_ms"] for r in evs if r["present"]]
        return {"events": len(evs), "presence": float(np.mean([r["present"] for r in evs])) if evs else None,
                "onset_error_ms_mean": float(np.mean(errs)) if errs else None,
                "onset_error_ms_median": float(np.median(errs)) if errs else None}


def _flux(x: np.ndarray, sr: int, hop: int = 160, n_fft: int = 1024) -> np.ndarray:
    pad = np.pad(x, (n_fft // 2, n_fft // 2))
    n = 1 + (len(pad) - n_fft) // hop
    idx = np.arange(n_fft)[None] + hop * np.arange(n)[:, None]
    mag = np.abs(np.fft.rfft(pad[idx] * np.hanning(n_fft), axis=1))
    logm = np.log1p(100 * mag)
    flux = np.maximum(0, np.diff(logm, axis=0)).sum(1)
    flux = flux - np.convolve(flux, np.ones(31) / 31, mode="same")  # remove the slow trend
    return np.maximum(flux, 0)


def estimate_tempo(audio: np.ndarray, sample_rate: int, lo: float = 50.0, hi: float = 200.0) -> float:
    """BPM from the onset-envelope autocorrelation (10 ms frames, parabolic peak interpolation)."""
    x = np.asarray(audio, np.float64)
    x = x.mean(0) if x.ndim == 2 else x
    hop = sample_rate // 100
    env = _flux(x, sample_rate, hop)
    env = env - env.mean()
    ac = np.correlate(env, env, mode="full")[len(env) - 1 :]
    fps = sample_rate / hop
    lags = np.arange(len(ac))
    valid = (lags >= fps * 60 / hi) & (lags <= fps * 60 / lo)
    bpm = 60 * fps / np.maximum(lags, 1)
    prior = np.exp(-0.5 * (np.log2(bpm / 110.0) / 0.9) ** 2)  # log-normal prior around 110 BPM
    score = np.where(valid, ac * prior, -np.inf)
    k = int(np.argmax(score))
    if 0 < k < len(ac) - 1:
        a, b, c = ac[k - 1], ac[k], ac[k + 1]
        den = a - 2 * b + c
        k = k + (0.5 * (a - c) / den if den != 0 else 0.0)
    return float(60 * fps / k)


class T2MJudge:
    """Tempo within ``tolerance`` (5%) and instrument by template matching."""

    def __init__(self, sample_rate: int = 16000, templates_per_instrument: int = 4, tolerance: float = 0.05, seed: int = 7):
        from audiox.data.synth import INSTRUMENTS, SynthConfig
        from audiox.data.synth.music import MusicSpec, make_midi, render_midi

        self.sr, self.tolerance = sample_rate, tolerance
        rng = np.random.default_rng(seed)
        edges = np.geomspace(60, min(7600, sample_rate / 2 - 1), 41)
        freqs = np.fft.rfftfreq(2048, 1 / sample_rate)
        self._bands = np.stack([(freqs >= a) & (freqs < b) for a, b in zip(edges[:-1], edges[1:])]).astype(float)
        feats, labels = [], []
        dur = 4.0
        _ = SynthConfig
        for name in INSTRUMENTS:
            for _k in range(templates_per_instrument):
                spec = MusicSpec(name, int(rng.integers(60, 161)), str(rng.choice(["major", "minor"])), int(rng.integers(55, 67)),
                                 int(rng.integers(2**31)))
                wav = render_midi(make_midi(spec, dur), dur, sample_rate, spec.seed)
                feats.append(self._feature(wav))
                labels.append(name)
        self._templates, self._labels = np.stack(feats), labels

    def _feature(self, wav: np.ndarray) -> np.ndarray:
        x = np.asarray(wav, np.float64)
        n = 2048
        frames = x[: len(x) // n * n].reshape(-1, n) * np.hanning(n)
        p = (np.abs(np.fft.rfft(frames, axis=1)) ** 2).mean(0)
        band = 10 * np.log10(self._bands @ p / self._bands.sum(1).clip(1) + 1e-12)
        return band - band.max()

    def instrument(self, audio: np.ndarray, sample_rate: int) -> str:
        from audiox.bench.embeddings.frontend import to_mono_resampled

        f = self._feature(to_mono_resampled(audio, sample_rate, self.sr))
        return self._labels[int(np.argmin(np.linalg.norm(self._templates - f, axis=1)))]

    def judge(self, record: dict, audio: np.ndarray, sample_rate: int) -> dict:
        bpm = estimate_tempo(audio, sample_rate)
        inst = self.instrument(audio, sample_rate)
        want = float(record["bpm"])
        return {"id": record["id"], "bpm_est": bpm, "tempo_acc": int(abs(bpm - want) <= self.tolerance * want),
                "instrument_est": inst, "instrument_acc": int(inst in (record["instrument"] if isinstance(record["instrument"], list) else [record["instrument"]]))}
