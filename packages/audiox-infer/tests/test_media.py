"""Media I/O: audio formats, resampling and mixing, video sampling in time, images, atomic outputs, mux."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import torch

from audiox.infer import media
from audiox.infer.media import FrameSpec, MediaError


def _peak_hz(x: torch.Tensor, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x.numpy()[0]))
    return float(np.argmax(spec) * sr / x.shape[-1])


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "mp3"])
def test_audio_formats_resampled_and_mixed(fmt: str, tmp_path: Path, sine) -> None:
    path = tmp_path / f"tone.{fmt}"
    sf.write(path, sine(440, 22050, 1.0, channels=2), 22050)
    x = media.load_audio(path, 8000, 1)
    assert x.dtype == torch.float32 and x.shape[0] == 1
    assert abs(x.shape[-1] - 8000) <= 1200  # mp3/ogg add encoder padding
    assert abs(_peak_hz(x, 8000) - 440) < 5  # resampling keeps the pitch


def test_channel_mixing_is_the_mean_and_mono_repeats(tmp_path: Path, sine) -> None:
    st = sine(300, 8000, 0.5, channels=2)  # right channel is 0.7 x left
    sf.write(tmp_path / "st.wav", st, 8000, subtype="FLOAT")
    mono = media.load_audio(tmp_path / "st.wav", 8000, 1)
    np.testing.assert_allclose(mono.numpy()[0], st.mean(axis=1), atol=1e-6)
    sf.write(tmp_path / "mo.wav", st[:, :1], 8000, subtype="FLOAT")
    both = media.load_audio(tmp_path / "mo.wav", 8000, 2)
    assert both.shape == (2, 4000) and torch.equal(both[0], both[1])


def test_audio_from_a_video_container_and_missing_streams(files: dict[str, Path]) -> None:
    x = media.load_audio(files["video_av"], 16000, 1)  # soundfile cannot: PyAV decodes the AAC track
    assert x.shape[-1] > 16000 and abs(_peak_hz(x, 16000) - 300) < 5
    with pytest.raises(MediaError, match="no audio stream"):
        media.load_audio(files["video"], 16000, 1)
    with pytest.raises(MediaError, match="empty"):
        media.load_audio(files["empty"], 16000, 1)
    with pytest.raises(MediaError, match="cannot read"):
        media.load_audio(files["garbage"], 16000, 1)
    with pytest.raises(MediaError, match="not found"):
        media.load_audio(files["video"].parent / "nope.wav", 16000, 1)


def test_fit_length_warns(caplog: pytest.LogCaptureFixture) -> None:
    x = torch.arange(10.0)[None]
    with caplog.at_level(logging.WARNING, logger="audiox.infer"):
        assert torch.equal(media.fit_length(x, 4, what="clip", sample_rate=2), x[:, :4])
        assert torch.equal(media.fit_length(x, 4, what="clip", sample_rate=2, align="right"), x[:, 6:])
        y = media.fit_length(x, 12, what="clip", sample_rate=2, align="right")
    assert torch.equal(y[:, 2:], x) and torch.equal(y[:, :2], torch.zeros(1, 2))
    msgs = " ".join(r.getMessage() for r in caplog.records)
    assert "trimmed to the first 2.00 s" in msgs and "trimmed to the last" in msgs and "zero-padded to 6.00 s" in msgs


@pytest.mark.parametrize("suffix,codec,fps", [(".mp4", "libx264", 12), (".mov", "mpeg4", 30), (".mkv", "libx264", 7),
                                              (".webm", "libvpx", 24)])
def test_video_sampled_in_time(suffix: str, codec: str, fps: int, tmp_path: Path, write_video,
                               caplog: pytest.LogCaptureFixture) -> None:
    n = 2 * fps  # 2 s of video; frame i has grey level 10 i (capped at 255)
    path = write_video(tmp_path / f"v{suffix}", fps=fps, frames=n, size=(40, 30), codec=codec)
    with caplog.at_level(logging.WARNING, logger="audiox.infer"):
        clip, sync = media.load_video(path, [FrameSpec(5, 32), FrameSpec(25, 16)], duration=3.0)
    assert clip.shape == (15, 3, 32, 32) and sync.shape == (75, 3, 16, 16)
    for frames, rate in ((clip, 5), (sync, 25)):
        expect = [min(255, 10 * min(n - 1, int(k / rate * fps + 1e-9))) for k in range(frames.shape[0])]
        got = (frames[:, :, 8, 8].mean(1) * 255).numpy()
        np.testing.assert_allclose(got, expect, atol=6)  # sample-and-hold in time, last frame held
    assert "padded to 3.00 s by holding its last frame" in caplog.text


def test_video_trimmed_and_bad_files(files: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="audiox.infer"):
        (clip,) = media.load_video(files["video"], [FrameSpec(5, 32)], duration=1.0)
    assert clip.shape == (5, 3, 32, 32) and "trimmed to the first 1.00 s" in caplog.text
    with pytest.raises(MediaError, match="no video stream"):
        media.load_video(files["audio"], [FrameSpec(5, 32)], 1.0)
    with pytest.raises(MediaError, match="cannot read video"):
        media.load_video(files["garbage"], [FrameSpec(5, 32)], 1.0)
    with pytest.raises(MediaError, match="empty"):
        media.load_video(files["empty"], [FrameSpec(5, 32)], 1.0)


def test_image_is_a_static_video(files: dict[str, Path]) -> None:
    clip, sync = media.load_image(files["image"], [FrameSpec(5, 32), FrameSpec(25, 16)], duration=2.0)
    assert clip.shape == (10, 3, 32, 32) and sync.shape == (50, 3, 16, 16)
    assert torch.equal(clip[0], clip[-1])
    # 64x48 (left half red) -> shorter side 32, centre crop: the left ~half is red, the right black
    assert clip[0, 0, 16, 2] > 0.95 and clip[0, 1, 16, 2] < 0.05 and clip[0, 0, 16, 29] < 0.05
    with pytest.raises(MediaError, match="cannot read image"):
        media.load_image(files["garbage"], [FrameSpec(5, 32)], 1.0)


def test_save_audio_atomic_roundtrip(tmp_path: Path) -> None:
    wav = torch.linspace(-1.5, 1.5, 800)[None].repeat(2, 1)
    for suffix in (".wav", ".flac"):
        path = media.save_audio(tmp_path / f"o{suffix}", wav, 8000)
        back, sr = sf.read(path, always_2d=True)
        assert sr == 8000 and back.shape == (800, 2)
        np.testing.assert_allclose(back[:, 0], wav[0].clamp(-1, 1).numpy(), atol=1 / 16000)
    with pytest.raises(MediaError, match=".wav or .flac"):
        media.save_audio(tmp_path / "o.mp3", wav, 8000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.flac", "o.wav"]  # no temp files left


def test_mux_copies_video_and_adds_aac(files: dict[str, Path], tmp_path: Path, sine) -> None:
    wav = torch.from_numpy(sine(440, 8000, 2.0).T.astype(np.float32))
    out = media.mux_audio(files["video"], wav, 8000, tmp_path / "muxed.mp4")
    with av.open(str(files["video"])) as a, av.open(str(out)) as b:
        assert [s.type for s in b.streams] == ["video", "audio"]
        assert b.streams.audio[0].codec_context.name == "aac"
        n_in = sum(1 for p in a.demux(a.streams.video[0]) if p.dts is not None)
        n_out = sum(1 for p in b.demux(b.streams.video[0]) if p.dts is not None)
    assert n_in == n_out == 24  # packets copied, not re-encoded
    back = media.load_audio(out, 8000, 1)
    assert abs(_peak_hz(back, 8000) - 440) < 5
    with pytest.raises(MediaError, match="no video stream"):
        media.mux_audio(files["audio"], wav, 8000, tmp_path / "bad.mp4")
    assert not (tmp_path / "bad.mp4").exists() and len(list(tmp_path.iterdir())) == 1
