"""ImageBind AV towers: Kaldi fbank against a float64 hand computation, ImageBind's window / clip / crop sampling,
the towers against a float64 re-computation, and the AV score's pairing by id."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from audiox.bench.embeddings.imagebind import ImageBindAV, ImageBindConfig, kaldi_fbank, kaldi_mel_banks
from audiox.bench.metrics import paired_cosine_score

TINY = ImageBindConfig(embed_dim=16, audio_width=32, audio_depth=2, audio_heads=2, vision_width=32, vision_depth=2,
                       vision_heads=2, image_size=28, patch=14)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    m = ImageBindAV(TINY)
    with torch.no_grad():  # non-trivial norms and biases, so a misplaced one changes the output
        for name, p in m.named_parameters():
            if "norm" in name or name.endswith("bias") or "bias_" in name:
                p.add_(0.3 * torch.randn_like(p))
    return m


def _kaldi_reference(x: np.ndarray, sr: int = 16000, n_mels: int = 128) -> np.ndarray:
    """Kaldi fbank, float64, written from the Kaldi recipe (frame by frame)."""
    mel = lambda f: 1127.0 * math.log(1.0 + f / 700.0)  # noqa: E731
    lo, hi = mel(20.0), mel(sr / 2)
    d = (hi - lo) / (n_mels + 1)
    banks = np.zeros((n_mels, 257))
    for b in range(n_mels):
        left, centre, right = lo + b * d, lo + (b + 1) * d, lo + (b + 2) * d
        for k in range(256):  # bins below Nyquist
            m = mel(k * sr / 512)
            if left < m < right:
                banks[b, k] = (m - left) / (centre - left) if m <= centre else (right - m) / (right - centre)
    win = np.array([0.5 - 0.5 * math.cos(2 * math.pi * n / 399) for n in range(400)])
    rows = []
    for t in range(1 + (len(x) - 400) // 160):
        fr = x[t * 160: t * 160 + 400].astype(np.float64)
        fr = fr - fr.mean()
        fr = np.concatenate([[fr[0] - 0.97 * fr[0]], fr[1:] - 0.97 * fr[:-1]])
        spec = np.abs(np.fft.rfft(fr * win, 512)) ** 2
        rows.append(np.log(np.maximum(banks @ spec, np.finfo(np.float32).eps)))
    return np.array(rows)


def test_kaldi_fbank_matches_float64_recipe():
    rng = np.random.default_rng(0)
    x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000) + 0.05 * rng.standard_normal(8000)).astype(np.float32)
    got = kaldi_fbank(torch.from_numpy(x), kaldi_mel_banks(128, 512, 16000)).numpy()
    want = _kaldi_reference(x)
    assert got.shape == want.shape == (1 + (8000 - 400) // 160, 128)
    np.testing.assert_allclose(got, want, atol=2e-3)  # log domain, float32 FFT
    assert kaldi_fbank(torch.zeros(300), kaldi_mel_banks(128, 512, 16000)).shape == (0, 128)


def test_audio_windows_channel_and_normalisation(net):
    sr = 16000
    rng = np.random.default_rng(1)
    x = (0.2 * rng.standard_normal(5 * sr)).astype(np.float32)
    inp = net.audio_inputs(x, sr)  # 5 s -> windows at 0, 1.5, 3.0 s
    assert inp.shape == (3, 1, 128, 204)
    seg = torch.from_numpy(x[24000:56000])
    fb = torch.from_numpy(_kaldi_reference((seg - seg.mean()).numpy())).float().T  # (128, 198)
    want = (F.pad(fb, (0, 6)) + 4.268) / 9.138  # 198 frames zero-padded (log domain) to 204, then normalised
    torch.testing.assert_close(inp[1, 0], want, atol=3e-4, rtol=0)
    short = net.audio_inputs(x[: sr // 2], sr)  # 0.5 s: every window is the whole clip; 48 frames + padding
    assert torch.equal(short[0], short[2])
    assert torch.allclose(short[0, 0, :, 48:], torch.full((128, 156), 4.268 / 9.138))
    stereo = np.stack([x, rng.standard_normal(x.shape).astype(np.float32)])
    assert torch.equal(net.audio_inputs(stereo, sr), inp)  # channel 0, as kaldi.fbank
    up = np.repeat(x[: 2 * sr], 2)  # 32 kHz input is resampled to 16 kHz first
    assert net.audio_inputs(up, 32000).shape == (3, 1, 128, 204)


def test_video_clips_frames_and_crops(net):
    torch.manual_seed(2)
    frames = torch.rand(40, 3, 32, 48)  # 4 s at 10 fps; 32 x 48 -> short side 28 -> 28 x 42
    views = net.video_inputs(frames, fps=10.0)
    assert views.shape == (15, 3, 2, 28, 28)  # 5 clips x 3 crops, 2-frame tubelets
    # clip 1 starts at 0.5 s: frames shown in [0.5, 2.5) are 5..24; uniform subsample of 2 -> frames 5 and 24
    clip = F.interpolate(frames[[5, 24]], size=(28, 42), mode="bilinear", align_corners=False).transpose(0, 1)
    mean, std = torch.tensor([0.48145466, 0.4578275, 0.40821073]), torch.tensor([0.26862954, 0.26130258, 0.27577711])
    clip = (clip - mean.view(3, 1, 1, 1)) / std.view(3, 1, 1, 1)
    for j, x0 in enumerate((0, 7, 14)):  # left, centre (ceil(14 / 2)), right
        torch.testing.assert_close(views[3 + j], clip[..., x0: x0 + 28])
    img = net.image_inputs(frames[0])
    assert img.shape == (1, 3, 2, 28, 28) and torch.equal(img[0, :, 0], img[0, :, 1])  # repeated to a tubelet
    with pytest.raises(ValueError, match="frames must be"):
        net.video_inputs(torch.rand(0, 3, 8, 8), fps=10.0)


def _tower_reference(tower, x: torch.Tensor, heads: int) -> torch.Tensor:
    """The tower in float64 with explicit attention (bias_k / bias_v appended to the keys / values)."""
    p = {k: v.double() for k, v in tower.state_dict().items()}

    def ln(t, name, eps):
        return F.layer_norm(t, t.shape[-1:], p[name + ".weight"], p[name + ".bias"], eps)

    conv = F.conv2d if p["stem.weight"].ndim == 4 else F.conv3d
    t = conv(x.double(), p["stem.weight"], stride=tower.stem.stride).flatten(2).transpose(1, 2)  # (B, L, W)
    if "stem_norm.weight" in p:
        t = ln(t, "stem_norm", 1e-5)
    t = torch.cat([p["cls"].expand(t.shape[0], -1, -1), t], 1) + p["pos"]
    if "pre_norm.weight" in p:
        t = ln(t, "pre_norm", 1e-6)
    w = t.shape[-1]
    for i in range(len(tower.blocks)):
        b = f"blocks.{i}."
        h = ln(t, b + "norm1", 1e-6)
        q, k, v = (h @ p[b + "attn.in_proj_weight"].T + p[b + "attn.in_proj_bias"]).split(w, -1)
        if b + "attn.bias_k" in p:
            k = torch.cat([k, p[b + "attn.bias_k"].expand(k.shape[0], 1, w)], 1)
            v = torch.cat([v, p[b + "attn.bias_v"].expand(v.shape[0], 1, w)], 1)
        sh = lambda z: z.reshape(z.shape[0], z.shape[1], heads, w // heads).transpose(1, 2)  # noqa: E731
        a = torch.softmax(sh(q) @ sh(k).transpose(-1, -2) / math.sqrt(w // heads), -1) @ sh(v)
        t = t + a.transpose(1, 2).reshape(t.shape) @ p[b + "attn.out_proj.weight"].T + p[b + "attn.out_proj.bias"]
        h = ln(t, b + "norm2", 1e-6)
        h = F.gelu(h @ p[b + "mlp.fc1.weight"].T + p[b + "mlp.fc1.bias"]) @ p[b + "mlp.fc2.weight"].T + p[b + "mlp.fc2.bias"]
        t = t + h
    e = ln(t, "head_norm", 1e-6)[:, 0] @ p["head.weight"].T
    return e / e.norm(dim=-1, keepdim=True)


def test_towers_against_float64(net):
    torch.manual_seed(4)
    mels = torch.randn(2, 1, 128, 204)
    torch.testing.assert_close(net.audio(mels).double(), _tower_reference(net.audio, mels, 2), atol=2e-5, rtol=1e-4)
    vids = torch.randn(3, 3, 2, 28, 28)
    torch.testing.assert_close(net.vision(vids).double(), _tower_reference(net.vision, vids, 2), atol=2e-5, rtol=1e-4)


def test_embeddings_and_av_score(net):
    sr = 8000
    wav = (0.2 * np.sin(2 * np.pi * 300 * np.arange(5 * sr) / sr)).astype(np.float32)
    a = net.embed_audio(wav, sr)
    assert a.shape == (16,) and a.norm().item() == pytest.approx(1.0, abs=1e-5)
    with torch.no_grad():
        want = F.normalize(net.audio(net.audio_inputs(wav, sr)).mean(0), dim=-1)  # mean of the 3 window embeddings
    torch.testing.assert_close(a, want)
    frames = torch.rand(12, 3, 40, 30)
    v = net.embed_video(frames, fps=4.0)
    assert v.shape == (16,) and v.norm().item() == pytest.approx(1.0, abs=1e-5)
    audio = {"x": a.numpy(), "y": net.embed_audio(np.zeros(sr * 3, np.float32) + 0.01, sr).numpy()}
    video = {"y": net.embed_video(torch.zeros(8, 3, 28, 28), fps=4.0).numpy(), "x": v.numpy()}
    want = (float(a @ v) + float(torch.from_numpy(audio["y"]) @ torch.from_numpy(video["y"]))) / 2
    assert paired_cosine_score(audio, video) == pytest.approx(want, rel=1e-5)


def _write_video(path, fps: int, n: int, size=(48, 32)):
    """Frame i is a flat grey of level 10 * i (the decoded frame index can be read back)."""
    import av

    w, h = size
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for i in range(n):
            for p in s.encode(av.VideoFrame.from_ndarray(np.full((h, w, 3), 10 * i, np.uint8), format="rgb24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)


def test_metrics_cli_imagebind_av_score(tmp_path):
    import json

    from audiox.bench.cli import main
    from audiox.bench.evaluate import read_video, tiny_imagebind
    from audiox.bench.io import read_wav, write_wav

    ref, gen, vid = tmp_path / "ref", tmp_path / "gen", tmp_path / "vid"
    vid.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        t = np.arange(3 * 16000) / 16000
        write_wav(ref / f"v{i}.wav", (0.3 * np.sin(2 * np.pi * 500 * (i + 1) * t)).astype(np.float32), 16000)
        write_wav(gen / f"v{i}.wav", (0.1 * rng.standard_normal(len(t))).astype(np.float32), 16000)
        _write_video(vid / f"v{i}.mp4", fps=8, n=24)
    net = tiny_imagebind()
    frames, fps = read_video(vid / "v1.mp4", net)
    assert fps == 8.0 and frames.shape == (24, 3, 28, 42)  # 32 x 48 -> shorter side 28
    levels = frames.float().mean(dim=(1, 2, 3)) * 255
    assert torch.allclose(levels, 10 * torch.arange(24.0), atol=3.0)  # frame order and timing preserved
    out = tmp_path / "out"
    assert main(["metrics", "--ref", str(ref), "--gen", str(gen), "--out", str(out), "--tiny", "--video", str(vid),
                 "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    cos = {}
    for side, folder in (("generated", gen), ("reference", ref)):
        for i in range(2):
            wav, sr = read_wav(folder / f"v{i}.wav")
            f, r = read_video(vid / f"v{i}.mp4", net)
            cos[side, i] = float(net.embed_audio(wav, sr) @ net.embed_video(f, r))
        assert res["imagebind"][side] == pytest.approx((cos[side, 0] + cos[side, 1]) / 2, rel=1e-5)
    assert res["imagebind"]["per_clip"]["generated"]["v1"] == pytest.approx(cos["generated", 1], rel=1e-5)
    assert res["weights"]["imagebind"] == "random" and "| IB ↑ |" in (out / "table.md").read_text()
    # ids must pair; --imagebind needs --video; a bad weights file is a one-line error; nothing written
    (vid / "v1.mp4").rename(vid / "other.mp4")
    bad = tmp_path / "bad"
    assert main(["metrics", "--ref", str(ref), "--gen", str(gen), "--out", str(bad), "--tiny", "--video", str(vid)]) == 2
    assert main(["metrics", "--ref", str(ref), "--gen", str(gen), "--out", str(bad), "--tiny", "--imagebind",
                 str(tmp_path / "ib.safetensors")]) == 2
    (tmp_path / "ib.safetensors").write_bytes(b"junk")
    assert main(["metrics", "--ref", str(ref), "--gen", str(gen), "--out", str(bad), "--tiny", "--imagebind",
                 str(tmp_path / "ib.safetensors"), "--video", str(vid)]) == 2
    assert not bad.exists()
