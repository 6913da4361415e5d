"""Stage 1 curation drops each kind of bad input (made here with PyAV / numpy) and keeps good ones."""

import json
from fractions import Fraction

import av
import numpy as np
import pytest
import soundfile as sf

from audiox.data.curate import CurateConfig, TonalityMusicDetector, curate
from audiox.data.synth.music import MusicSpec, make_midi, render_midi

SR = 16000
CFG = CurateConfig(min_duration=2.0, window=2.0, sample_rate=SR)


def write_av(path, frames=None, audio=None, fps=10):
    with av.open(str(path), "w", format="mp4") as out:
        vs = as_ = None
        if frames is not None:
            vs = out.add_stream("libx264", rate=fps)
            vs.width, vs.height, vs.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        if audio is not None:
            as_ = out.add_stream("aac", rate=SR)
            as_.layout = "mono"
        if frames is not None:
            for f in frames:
                for p in vs.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                    out.mux(p)
            for p in vs.encode():
                out.mux(p)
        if audio is not None:
            hop = 1024
            for i in range(0, len(audio), hop):
                fr = av.AudioFrame.from_ndarray(
                    audio[None, i : i + hop].astype(np.float32), format="fltp", layout="mono"
                )
                fr.sample_rate, fr.pts, fr.time_base = SR, i, Fraction(1, SR)
                for p in as_.encode(fr):
                    out.mux(p)
            for p in as_.encode():
                out.mux(p)


def moving(seconds, fps=10, size=32):
    f = np.zeros((int(seconds * fps), size, size, 3), np.uint8)
    for k in range(len(f)):
        x = (k * 3) % (size - 8)
        f[k, 8:16, x : x + 8] = 255
    return f


def tone(seconds, f=440.0):
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * f * t) + 0.05 * np.random.default_rng(0).standard_normal(len(t))).astype(
        np.float32
    )


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    write_av(d / "good.mp4", moving(4.2), tone(4.2))
    write_av(d / "silent.mp4", moving(4.2), np.zeros(int(4.2 * SR), np.float32))
    write_av(d / "static.mp4", np.repeat(moving(0.1)[:1], 42, 0), tone(4.2))
    write_av(d / "noaudio.mp4", moving(4.2), None)
    (d / "broken.mp4").write_bytes(np.random.default_rng(1).bytes(5000))
    good = (d / "good.mp4").read_bytes()
    (d / "truncated.mp4").write_bytes(good[: len(good) // 3])
    sf.write(d / "short.wav", tone(1.0), SR)
    sf.write(d / "audio_only.wav", tone(4.5), SR)
    return d


def test_curation_drops_each_bad_kind_and_keeps_good(media, tmp_path):
    counts = curate(str(media), tmp_path / "out", CFG, progress=False)
    recs = {
        json.loads(line)["path"].split("/")[-1]: json.loads(line)
        for line in (tmp_path / "out" / "report.jsonl").read_text().splitlines()
    }
    reasons = {k: (r["status"], r["reason"]) for k, r in recs.items()}
    assert reasons["good.mp4"] == ("kept", None)
    assert reasons["audio_only.wav"] == ("kept", None)
    assert reasons["silent.mp4"] == ("dropped", "silent")
    assert reasons["static.mp4"] == ("dropped", "static_video")
    assert reasons["noaudio.mp4"] == ("dropped", "no_audio")
    assert reasons["broken.mp4"] == ("dropped", "broken_container")
    assert reasons["short.wav"] == ("dropped", "too_short")
    assert reasons["truncated.mp4"][0] == "dropped"
    assert [w["name"] for w in recs["good.mp4"]["windows"]] == ["good_000", "good_001"]
    a, sr = sf.read(tmp_path / "out" / "good_000.flac")
    assert sr == SR and len(a) == 2 * SR
    with av.open(str(tmp_path / "out" / "good_001.mp4")) as f:
        assert f.streams.video[0].frames in (19, 20, 21) or sum(1 for _ in f.decode(video=0)) >= 19
    assert counts["kept"] == 2
    assert not list((tmp_path / "out").glob(".*tmp*"))
    # rerun: nothing redone, nothing duplicated
    assert curate(str(media), tmp_path / "out", CFG, progress=False) == counts
    assert len((tmp_path / "out" / "report.jsonl").read_text().splitlines()) == len(recs)


def test_music_filter(tmp_path):
    spec = MusicSpec("piano", 100, "major", 60, 3)
    music = render_midi(make_midi(spec, 4.0), 4.0, SR, 0)
    noise = (0.3 * np.random.default_rng(2).standard_normal(4 * SR)).astype(np.float32)
    det = TonalityMusicDetector()
    assert det(music, SR) >= 0.75 and det(noise, SR) == 0.0
    d = tmp_path / "in"
    d.mkdir()
    sf.write(d / "music.wav", music, SR)
    sf.write(d / "noise.wav", noise, SR)
    counts = curate(str(d), tmp_path / "out", CurateConfig(min_duration=2.0, window=2.0, music=True), progress=False)
    assert counts == {"kept": 1, "dropped:not_enough_music": 1}
    calls = []
    curate(
        str(d),
        tmp_path / "out2",
        CurateConfig(min_duration=2.0, window=2.0, music=True),
        separator=lambda a, sr: calls.append(len(a)) or a * 0.5,
        progress=False,
    )
    assert calls == [4 * SR]  # the separation hook runs on the kept music item only
