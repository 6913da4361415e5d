"""Embedding networks with random weights: shapes, front-end conventions, pairing by id, weight loading."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from audiox.bench.embeddings import Cnn14, Cnn14Config, VGGish
from audiox.bench.embeddings.frontend import mel_filterbank, to_mono_resampled
from audiox.bench.evaluate import compute_metrics, embed_folder, evaluate_folders, tiny_cnn14, tiny_vggish
from audiox.bench.io import write_wav


def _tone(f, sr, sec=1.0):
    return (0.3 * np.sin(2 * np.pi * f * np.arange(int(sr * sec)) / sr)).astype(np.float32)


def test_frontend_mono_resample_and_mel():
    sr = 8000
    stereo = np.stack([_tone(440, sr), np.zeros(sr, np.float32)])
    x = to_mono_resampled(stereo, sr, 32000)
    assert x.shape == (32000,)
    spec = np.abs(np.fft.rfft(x))
    assert abs(np.argmax(spec) * 32000 / len(x) - 440) < 2 and np.abs(x).max() == pytest.approx(0.15, rel=0.05)
    w = mel_filterbank(16000, 512, 64, 125, 7500, htk=True).numpy()
    freqs = np.linspace(0, 8000, 257)
    centres = freqs[w.argmax(1)]
    assert np.all(np.diff(centres) >= 0) and 100 < centres[0] < 200 and 6500 < centres[-1] < 7600
    assert (w.sum(0)[(freqs > 200) & (freqs < 7000)] > 0).all()  # no holes in the covered band


def test_cnn14_shapes_published_names_and_load(tmp_path):
    net = tiny_cnn14()
    out = net.embed(_tone(1000, 16000, 2.0), 16000)
    assert out.logits.shape == (1, 527) and out.embedding.shape == (1, 32)
    full_names = set(Cnn14(Cnn14Config(channels=(2, 2, 2, 2, 2, 2))).state_dict())
    assert {"bn0.weight", "conv_block1.conv1.weight", "conv_block6.bn2.running_mean", "fc1.weight",
            "fc_audioset.bias"} <= full_names
    sd = {k: v.clone() + 0.01 if v.is_floating_point() else v for k, v in net.state_dict().items()}
    sd["spectrogram_extractor.stft.conv_real.weight"] = torch.zeros(1)  # published extra buffers are ignored
    save_file(sd, str(tmp_path / "cnn14.safetensors"))
    other = tiny_cnn14().load_weights(tmp_path / "cnn14.safetensors")
    assert torch.allclose(other.fc1.weight, net.fc1.weight + 0.01)
    save_file({"foo": torch.zeros(1)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError, match="not a CNN14"):
        tiny_cnn14().load_weights(tmp_path / "bad.safetensors")


def test_vggish_per_frame_examples():
    net = tiny_vggish()
    ex = net.examples(torch.from_numpy(_tone(500, 16000, 3.0)))
    assert ex.shape == (3, 1, 96, 64)  # 3 s -> 3 full 0.96 s examples (the partial tail is dropped)
    assert net.embed(_tone(500, 48000, 2.5), 48000).shape == (2, 128)
    assert "embeddings.4.weight" in VGGish().state_dict()  # torchvggish names (fc 128 is embeddings.4)


def test_metrics_over_folders_pairing_and_identity(tmp_path):
    ref, gen, other = tmp_path / "ref", tmp_path / "gen", tmp_path / "other"
    rng = np.random.default_rng(0)
    for i in range(12):
        clip = (0.2 * rng.standard_normal(16000) * np.linspace(0, 1, 16000)).astype(np.float32) + _tone(300 + 50 * i, 16000)
        write_wav(ref / f"id{i}.wav", clip, 16000)
        write_wav(gen / f"id{i}.wav", clip, 16000)
        write_wav(other / f"x{i}.wav", _tone(2000, 16000) * 0.1, 16000)
    p, v = tiny_cnn14(), tiny_vggish()
    r, g, o = embed_folder(ref, p, v, False), embed_folder(gen, p, v, False), embed_folder(other, p, v, False)
    same = compute_metrics(r, g)
    # identical clips: KL = sum p log(p / (p + 1e-6)) ~ -C * 1e-6 (the eps of the audioldm_eval convention)
    assert same["kl_softmax"] == pytest.approx(0.0, abs=527e-6) and same["fd_panns"] == pytest.approx(0.0, abs=1e-6)
    assert same["fad_vggish"] == pytest.approx(0.0, abs=1e-6) and same["is_splits"] == 10
    diff = compute_metrics(r, o)
    assert diff["kl_softmax"] is None and "unpaired" in diff["kl_note"] and diff["fd_panns"] > 0
    res = evaluate_folders(ref, gen, tmp_path / "out", tiny=True, progress=False)
    assert (tmp_path / "out" / "results.json").exists() and "random" in res["weights"]["panns"]
    assert "| gen |" in (tmp_path / "out" / "table.md").read_text()
