"""``maf.frame_aligned`` / ``dit.abs_time``: frame-aligned conditioning of the MMDiT.

The MMDiT reads ``H_c`` through cross-attention, and ``H_c``'s tokens carry no time position; these tests check that
the switch starts as the model it continues, that it puts a video change under the latent frames where it happened,
and (the reason for it) that an MMDiT can learn to place an onset under its video frame with it and cannot without.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from audiox.core import AudioXModel, get_config
from audiox.core.checkpoint import from_pretrained
from audiox.core.config import MMDiTConfig
from audiox.core.flow import interpolate
from audiox.core.maf import resample_frames
from audiox.core.mmdit import MMDiT
from audiox.core.types import ConditionInputs


def test_resample_frames_keeps_a_one_frame_event_and_the_time_axis():
    x = torch.zeros(1, 250, 3)
    x[0, 100] = 1.0  # one frame at 100 / 250 of the span
    down = resample_frames(x, 50)
    assert down.shape == (1, 50, 3)
    assert down[0, :, 0].argmax().item() == 20 and down[0, 20, 0].item() == pytest.approx(0.2)  # the window's mean
    up = resample_frames(x[:, ::5], 250)  # 50 -> 250: nearest frame
    assert up.shape == (1, 250, 3) and up[0, 100:105, 0].eq(1).all() and up[0, :, 0].sum() == 5
    assert resample_frames(x, 250) is x


def test_switching_on_starts_as_the_model_it_continues(tmp_path):
    torch.manual_seed(0)
    cfg = get_config("debug")
    old = AudioXModel(cfg).eval()
    old.save_pretrained(tmp_path / "m")
    new = from_pretrained(tmp_path / "m", overrides=["maf.frame_aligned=true", "dit.abs_time=true"])
    assert new.config.maf.frame_aligned and new.config.dit.abs_time
    added = [n for n, _ in new.named_parameters() if n.startswith(("dit.frame_proj", "dit.time_proj"))]
    assert sorted(added) == ["dit.frame_proj.bias", "dit.frame_proj.weight", "dit.time_proj.bias", "dit.time_proj.weight"]
    b = 2
    video = torch.rand(b, cfg.video_frames, 3, cfg.video.image_size, cfg.video.image_size)
    inputs = ConditionInputs(text=["a bell", "a knock"], task=["tv2a", "tv2a"], video=video)
    z = torch.randn(b, cfg.autoencoder.latent_dim, cfg.latent_length)
    t = torch.full((b,), 0.4)
    with torch.no_grad():
        c_old, c_new = old.prepare_conditions(inputs), new.prepare_conditions(inputs)
        assert set(c_new.extras) == {"frames_video"} and not c_old.extras
        torch.testing.assert_close(new(z, t, c_new), old(z, t, c_old), rtol=0, atol=0)


def test_a_video_change_reaches_only_the_latent_frames_around_it():
    cfg = get_config("debug")
    cfg.maf.frame_aligned = True
    torch.manual_seed(0)
    model = AudioXModel(cfg).eval()
    n_sync, length = cfg.sync_frames, cfg.latent_length
    video = torch.rand(1, cfg.video_frames, 3, cfg.video.image_size, cfg.video.image_size)
    sync = torch.rand(1, n_sync, 3, cfg.sync.image_size, cfg.sync.image_size)
    k = n_sync // 2
    sync2 = sync.clone()
    sync2[:, k] = 1.0 - sync2[:, k]  # one frame changes, mid-clip
    with torch.no_grad():
        f = [model.frames(model.prepare_conditions(ConditionInputs(text=[""], task=["v2a"], video=video, sync_video=s)),
                          length) for s in (sync, sync2)]
    assert f[0].shape == (1, length, cfg.dit.hidden_size)
    moved = (f[1] - f[0]).abs().amax(-1)[0]  # (T,)
    seg = cfg.sync.segment_frames  # the sync encoder mixes frames within its segments, nowhere else
    where = moved.nonzero().flatten().tolist()
    assert where, "the changed frame did not reach the frame stream"
    lo, hi = (k - seg) * length / n_sync, (k + seg + 1) * length / n_sync
    assert all(lo <= i <= hi for i in where), f"{where} outside [{lo}, {hi}]"


def _toy_batch(g: torch.Generator, b: int, length: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents (B, 4, T) with a pulse on channel 0 at 1-3 random frames; the "video" (B, T, width) marks them."""
    z0 = torch.zeros(b, 4, length)
    video = 0.1 * torch.randn(b, length, width, generator=g)
    marker = torch.ones(width)
    for i in range(b):
        frames = torch.randperm(length, generator=g)[: int(torch.randint(1, 4, (1,), generator=g))]
        z0[i, 0, frames] = 2.0
        video[i, frames] += marker
    return z0, video


def _train_toy(fit_toy, frame_aligned: bool, steps: int = 150, length: int = 24, width: int = 8) -> float:
    """Flow matching on the toy; returns the clean-estimate error on channel 0 at t = 0.8 on held-out batches."""
    torch.manual_seed(0)
    cfg = MMDiTConfig(hidden_size=32, depth=2, num_heads=2, time_embed_dim=32, attn_backend="torch")
    dit = MMDiT(cfg, latent_channels=4, frame_channels=width if frame_aligned else 0)
    to_ctx = nn.Linear(width, 32)  # the video as context tokens, as MAF gives it: content, no time position

    def run(z0, video, t, z1):
        ctx = to_ctx(video)
        mask = torch.ones(ctx.shape[:2], dtype=torch.bool)
        z_t = interpolate(z0, z1, t)
        v = dit(z_t, t, ctx, mask, torch.zeros(z0.shape[0], 32), video if frame_aligned else None)
        return z_t, v

    z0, _, x0 = fit_toy(run, lambda g, b: _toy_batch(g, b, length, width), [*dit.parameters(), *to_ctx.parameters()],
                        steps)
    return (x0[:, 0] - z0[:, 0]).pow(2).mean().item()


def test_an_mmdit_places_onsets_under_their_video_frames_only_with_frame_aligned_conditioning(fit_toy):
    blind = _train_toy(fit_toy, frame_aligned=False)
    aligned = _train_toy(fit_toy, frame_aligned=True)
    # channel 0's variance is about 4 * 2/24 = 0.33: the blind model can only learn the mean pulse rate
    assert blind > 0.2, blind
    assert aligned < 0.3 * blind, (aligned, blind)


def test_the_audio_prompt_stays_out_of_the_frames():
    """An inpainting prompt's masked span is zeros: added frame by frame, the model learns to copy the silence."""
    cfg = get_config("debug")
    cfg.maf.frame_aligned = True
    torch.manual_seed(0)
    model = AudioXModel(cfg).eval()
    audio = torch.randn(1, cfg.autoencoder.audio_channels, cfg.latent_length * cfg.autoencoder.hop_length)
    with torch.no_grad():
        f = [model.frames(model.prepare_conditions(ConditionInputs(text=[""], task=["inpaint"], audio=a)), cfg.latent_length)
             for a in (audio, 0 * audio)]
    torch.testing.assert_close(f[0], f[1], rtol=0, atol=0)
