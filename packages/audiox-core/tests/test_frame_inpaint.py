"""``maf.frame_inpaint``: the inpainting prompt and its mask, frame by frame, in the MMDiT.

Without it the prompt reaches the MMDiT only as MAF tokens, which carry no time position; adding the zeroed prompt
frame by frame without the mask makes a span to generate look like silence (docs/results.md, session 26). These
tests check what the stream holds and on which rows, that the switch starts as the model it continues, that the
pipeline and the loader pass the mask, and (the reason for it) that a toy MMDiT keeps the known region and fills the
span only with the stream and its mask.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from audiox.core import AudioXModel, get_config
from audiox.core.checkpoint import from_pretrained
from audiox.core.config import MMDiTConfig
from audiox.core.flow import interpolate
from audiox.core.mmdit import MMDiT
from audiox.core.types import ConditionInputs


def _inputs(cfg, tasks: list[str], span: tuple[int, int]) -> ConditionInputs:
    b = len(tasks)
    hop = cfg.autoencoder.hop_length
    s = cfg.latent_length * hop
    audio = 0.3 * torch.randn(b, cfg.autoencoder.audio_channels, s, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(b, s, dtype=torch.bool)
    mask[:, span[0] * hop + hop // 2: span[1] * hop] = True  # the first frame of the span is half kept
    return ConditionInputs(text=[""] * b, task=tasks, audio=audio.masked_fill(mask[:, None], 0.0), inpaint_mask=mask)


def test_the_stream_holds_the_kept_share_on_inpainting_rows_only():
    cfg = get_config("debug")
    cfg.maf.frame_inpaint = True
    torch.manual_seed(0)
    model = AudioXModel(cfg).eval()
    c = cfg.autoencoder.latent_dim
    a, e = 3, 7
    inputs = _inputs(cfg, ["inpaint", "complete"], (a, e))
    with torch.no_grad():
        feats = model.encode_modalities(inputs)
        known = feats.audio_known  # (B, T)
        assert known.shape == (2, cfg.latent_length)
        expect = torch.ones(cfg.latent_length)
        expect[a], expect[a + 1: e] = 0.5, 0.0
        torch.testing.assert_close(known[0], expect)
        assert known[1].eq(0).all(), "a completion prompt is not on the clip's time axis"
        p = model.prompt_frames(model.fuse(feats), cfg.latent_length)  # (B, T, C + 1)
        assert p.shape == (2, cfg.latent_length, c + 1)
        torch.testing.assert_close(p[0, :, c], expect)
        torch.testing.assert_close(p[0, :, :c], feats.audio[0] * expect[:, None])
        assert p[1].eq(0).all()
        dropped = model.prompt_frames(model.unconditional(feats), cfg.latent_length)
        assert dropped.eq(0).all(), "the unconditional branch must not see the prompt"
        no_mask = model.encode_modalities(ConditionInputs(text=inputs.text, task=inputs.task, audio=inputs.audio))
        assert no_mask.audio_known is None
        assert model.prompt_frames(model.fuse(no_mask), cfg.latent_length).eq(0).all()


def test_a_mask_of_the_wrong_shape_is_refused():
    cfg = get_config("debug")
    model = AudioXModel(cfg).eval()
    inputs = _inputs(cfg, ["inpaint"], (1, 2))
    inputs.inpaint_mask = inputs.inpaint_mask[:, :-1]
    with pytest.raises(ValueError, match=r"inpaint_mask must be \(B, S\)"):
        model.encode_modalities(inputs)


def test_switching_on_starts_as_the_model_it_continues(tmp_path):
    torch.manual_seed(0)
    cfg = get_config("debug")
    old = AudioXModel(cfg).eval()
    old.save_pretrained(tmp_path / "m")
    new = from_pretrained(tmp_path / "m", overrides=["maf.frame_inpaint=true"])
    added = sorted(n for n, _ in new.named_parameters() if n.startswith("dit.prompt_proj"))
    assert added == ["dit.prompt_proj.bias", "dit.prompt_proj.weight"]
    inputs = _inputs(cfg, ["inpaint", "inpaint"], (2, 5))
    z = torch.randn(2, cfg.autoencoder.latent_dim, cfg.latent_length)
    t = torch.full((2,), 0.4)
    with torch.no_grad():
        c_old, c_new = old.prepare_conditions(inputs), new.prepare_conditions(inputs)
        assert set(c_new.extras) == {"frames_prompt"} and not c_old.extras
        assert c_new.extras["frames_prompt"].abs().sum() > 0
        torch.testing.assert_close(new(z, t, c_new), old(z, t, c_old), rtol=0, atol=0)


def _toy_batch(g: torch.Generator, b: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents (B, 4, T): channel 0 is 0 or 2 at random frames, and 2 ("the event to fill in") on a span of 1-3
    frames; the prompt is the latents with the span zeroed. Returns (z0, known (B, T))."""
    z0 = torch.zeros(b, 4, length)
    z0[:, 0] = 2.0 * (torch.rand(b, length, generator=g) < 0.5)
    known = torch.ones(b, length)
    for i in range(b):
        n = int(torch.randint(1, 4, (1,), generator=g))
        s = int(torch.randint(0, length - n + 1, (1,), generator=g))
        z0[i, 0, s: s + n] = 2.0
        known[i, s: s + n] = 0.0
    return z0, known


def _train_toy(fit_toy, stream: str, steps: int = 150, length: int = 24) -> tuple[float, float]:
    """Flow matching on the toy with the prompt as MAF tokens (no time position) and, by ``stream``: nothing else
    ("none"), the zeroed prompt frame by frame without the mask ("no_mask", session 26's arm F), or the stream of
    ``frame_inpaint`` ("mask"). Returns the clean-estimate error on channel 0 at t = 0.8, on the kept frames and on
    the span, on held-out batches."""
    torch.manual_seed(0)
    cfg = MMDiTConfig(hidden_size=32, depth=2, num_heads=2, time_embed_dim=32, attn_backend="torch")
    dit = MMDiT(cfg, latent_channels=4, prompt_channels=0 if stream == "none" else 5)
    to_ctx = nn.Linear(4, 32)  # the prompt's latents as context tokens, as MAF gives them

    def run(z0, known, t, z1):
        prompt = z0 * known[:, None]  # (B, 4, T), the span zeroed
        ctx = to_ctx(prompt.transpose(1, 2))
        mask = torch.ones(ctx.shape[:2], dtype=torch.bool)
        frames = None
        if stream != "none":
            k = known if stream == "mask" else torch.zeros_like(known)
            frames = torch.cat([prompt.transpose(1, 2), k[..., None]], dim=-1)  # (B, T, 5)
        z_t = interpolate(z0, z1, t)
        return z_t, dit(z_t, t, ctx, mask, torch.zeros(z0.shape[0], 32), prompt=frames)

    z0, known, x0 = fit_toy(run, lambda g, b: _toy_batch(g, b, length), [*dit.parameters(), *to_ctx.parameters()],
                            steps)
    err = (x0[:, 0] - z0[:, 0]).pow(2)  # (B, T)
    return (err * known).sum().item() / known.sum().item(), (err * (1 - known)).sum().item() / (1 - known).sum().item()


def test_a_toy_mmdit_keeps_the_known_region_and_fills_the_span_only_with_the_stream_and_its_mask(fit_toy):
    none_kept, _ = _train_toy(fit_toy, "none")
    _, no_mask_span = _train_toy(fit_toy, "no_mask")
    kept, span = _train_toy(fit_toy, "mask")
    # a kept frame is 0 or 2 at random: without the stream the model cannot tell which (error ~1, the variance)
    assert none_kept > 0.5, none_kept
    assert kept < 0.2 * none_kept, (kept, none_kept)
    # the span is always 2; without the mask it looks like a silent stretch, which the kept frames often are
    assert span < 0.5 * no_mask_span, (span, no_mask_span)
