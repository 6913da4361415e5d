"""Reduced ImageBind towers: shapes, unit norm, window averaging, AV score pairing by id."""

import numpy as np
import pytest
import torch

from audiox.bench.embeddings.imagebind import ImageBindAV, ImageBindConfig
from audiox.bench.metrics import paired_cosine_score


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return ImageBindAV(ImageBindConfig(embed_dim=16, audio_width=32, audio_depth=1, audio_heads=2, vision_width=32,
                                       vision_depth=1, vision_heads=2, image_size=56, patch=14))


def test_imagebind_embeddings_and_av_score(net):
    sr = 8000
    wav = (0.2 * np.sin(2 * np.pi * 300 * np.arange(5 * sr) / sr)).astype(np.float32)
    a = net.embed_audio(wav, sr)
    assert a.shape == (16,) and a.norm().item() == pytest.approx(1.0, abs=1e-5)
    assert net.fbank(torch.zeros(16000)).shape == (204, 128)
    v = net.embed_video(torch.rand(4, 3, 64, 64))
    assert v.shape == (16,) and v.norm().item() == pytest.approx(1.0, abs=1e-5)
    # a 1 s clip is zero-padded to one 2 s window: still an embedding
    assert torch.isfinite(net.embed_audio(wav[:sr], sr)).all()
    audio = {"x": a.numpy(), "y": net.embed_audio(np.zeros(sr * 3, np.float32) + 0.01, sr).numpy()}
    video = {"y": net.embed_video(torch.zeros(2, 3, 64, 64)).numpy(), "x": v.numpy()}
    want = (float(a @ v) + float(torch.from_numpy(audio["y"]) @ torch.from_numpy(video["y"]))) / 2
    assert paired_cosine_score(audio, video) == pytest.approx(want, rel=1e-5)
