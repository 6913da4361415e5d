"""End to end with the real ``debug`` AudioXModel (random weights) on files written in the test."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from audiox.core import AudioXModel, get_config
from audiox.infer import AudioXPipeline, ForwardCounter, infer_task, media, parse_spans

STEPS = 2


@pytest.mark.parametrize(
    "task,kwargs",
    [
        ("t2a", dict(text="a bell rings twice")),
        ("t2m", dict(text="slow piano")),
        ("v2a", dict(video="video")),
        ("v2m", dict(video="video")),
        ("tv2a", dict(text="a door slams", video="video")),
        ("tv2m", dict(text="calm strings", video="video")),
        ("i2a", dict(image="image")),
        ("inpaint", dict(audio="audio", inpaint_spans="0.25-0.5")),
        ("complete", dict(audio="flac")),
    ],
)
def test_every_task_end_to_end(pipe: AudioXPipeline, files: dict[str, Path], task: str, kwargs: dict) -> None:
    kw = {k: (files[v] if k in ("video", "image", "audio") else v) for k, v in kwargs.items()}
    with ForwardCounter(pipe.model) as counter:
        out = pipe(**kw, task=task, steps=STEPS, seed=0)
    cfg = pipe.config
    assert out.audio.shape == (1, cfg.autoencoder.audio_channels, cfg.num_samples)
    assert torch.isfinite(out.audio).all() and out.audio.abs().max() > 0
    assert out.tasks == [task] and out.sampler == "euler" and out.steps == STEPS
    assert out.nfe == 2 * STEPS == counter.nfe(1)  # teacher with CFG: cond + uncond per step
    assert set(out.timings) == {"load", "encode", "denoise", "decode", "total"}
    if task != "t2m" and task != "v2m" and task != "tv2m":
        assert infer_task(text="text" in kw, video="video" in kw, image="image" in kw, audio="audio" in kw,
                          spans="inpaint_spans" in kw) == task


def test_inputs_change_the_output(pipe: AudioXPipeline, files: dict[str, Path]) -> None:
    a = pipe("a bell", steps=STEPS, seed=0).audio
    b = pipe("a bell", video=files["video"], steps=STEPS, seed=0).audio
    c = pipe("a dog", steps=STEPS, seed=0).audio
    assert not torch.allclose(a, b) and not torch.allclose(a, c)


def test_nfe_counted_per_sampler(pipe: AudioXPipeline) -> None:
    assert pipe("x", steps=3, seed=0, sampler="turbo").nfe == 3
    assert pipe("x", steps=3, seed=0, sampler="heun").nfe == 12
    assert pipe("x", steps=3, seed=0, guidance_scale=1.0).nfe == 3  # no unconditional pass at s = 1
    out = pipe("x", steps=3, seed=0, batch_size=2)
    assert out.nfe == 6 and out.audio.shape[0] == 2  # per sample, whatever the batch


def test_seed_reproduces(pipe: AudioXPipeline) -> None:
    a = pipe("rain", steps=STEPS, seed=7)
    b = pipe("rain", steps=STEPS, seed=7)
    c = pipe("rain", steps=STEPS, seed=8)
    assert torch.equal(a.audio, b.audio) and a.seeds == [7]
    assert not torch.allclose(a.audio, c.audio)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(pipe("rain", steps=STEPS, generator=g1).audio, pipe("rain", steps=STEPS, generator=g2).audio)


@pytest.mark.parametrize("sampler", ["euler", "turbo"])
def test_batch_matches_single(pipe: AudioXPipeline, files: dict[str, Path], sampler: str) -> None:
    batch = pipe(["a bell", "a dog"], video=files["video"], steps=STEPS, seed=11, batch_size=2, sampler=sampler)
    assert batch.seeds == [11, 12, 13, 14] and batch.texts == ["a bell", "a bell", "a dog", "a dog"]
    for i, text in enumerate(batch.texts):
        single = pipe(text, video=files["video"], steps=STEPS, seed=11 + i, sampler=sampler)
        torch.testing.assert_close(batch.audio[i], single.audio[0], atol=1e-4, rtol=1e-4)


def test_inpainting_keeps_the_unmasked_region(pipe: AudioXPipeline, files: dict[str, Path]) -> None:
    cfg = pipe.config
    sr, hop, n = cfg.autoencoder.sample_rate, cfg.autoencoder.hop_length, cfg.num_samples
    given = media.fit_length(media.load_audio(files["audio"], sr, 1), n, what="x", sample_rate=sr)
    out = pipe(audio=files["audio"], inpaint_spans="0.25-0.5,0.75-0.8", steps=STEPS, seed=0)
    assert out.tasks == ["inpaint"]
    m = torch.zeros(n, dtype=torch.bool)
    m[2000:4000] = m[6000:6400] = True
    assert torch.equal(out.audio[0][:, ~m], given[:, ~m])  # sample for sample
    assert not torch.allclose(out.audio[0][:, m], given[:, m], atol=1e-3)
    # and in the latent: frames with no masked sample are the encoded given audio
    z_given = pipe.model.autoencoder.encode(given[None])
    frames = ~m.view(-1, hop).any(1)
    torch.testing.assert_close(out.latents[0][:, frames], z_given[0][:, frames])


def test_inpainting_passes_the_mask_to_the_model(pipe: AudioXPipeline, files: dict[str, Path], monkeypatch) -> None:
    seen = []
    encode = pipe.model.encode_modalities
    monkeypatch.setattr(pipe.model, "encode_modalities", lambda inputs: seen.append(inputs) or encode(inputs))
    pipe(audio=files["audio"], inpaint_spans="0.25-0.5", steps=1, seed=0, batch_size=2)
    n = pipe.config.num_samples
    m = torch.zeros(n, dtype=torch.bool)
    m[2000:4000] = True
    assert torch.equal(seen[0].inpaint_mask, m[None].expand(2, -1))
    torch.testing.assert_close(seen[0].audio[:, :, m], torch.zeros(2, seen[0].audio.shape[1], int(m.sum())))


def test_guided_inpainting_reads_text_and_video(pipe: AudioXPipeline, files: dict[str, Path], monkeypatch) -> None:
    """Text- and video-guided inpainting (paper App. D1): both reach the model beside the masked prompt, the
    unmasked region is still the given audio, and the guidance changes what fills the span."""
    seen = []
    encode = pipe.model.encode_modalities
    monkeypatch.setattr(pipe.model, "encode_modalities", lambda inputs: seen.append(inputs) or encode(inputs))
    plain = pipe(audio=files["audio"], inpaint_spans="0.25-0.5", steps=STEPS, seed=0)
    out = pipe("a bell rings", video=files["video"], audio=files["audio"], inpaint_spans="0.25-0.5", steps=STEPS, seed=0)
    assert out.tasks == ["inpaint"] and seen[-1].text == ["a bell rings"] and seen[-1].video is not None
    assert seen[-1].inpaint_mask is not None
    m = torch.zeros(pipe.config.num_samples, dtype=torch.bool)
    m[2000:4000] = True
    assert torch.equal(out.audio[0][:, ~m], plain.audio[0][:, ~m])
    assert not torch.allclose(out.audio[0][:, m], plain.audio[0][:, m], atol=1e-4)


def test_model_metadata_picks_defaults(model: AudioXModel, files: dict[str, Path]) -> None:
    cfg = dataclasses.replace(model.config, inference=dataclasses.replace(
        model.config.inference, sampler="turbo", steps=3, few_step_times=(1.0, 0.8, 0.4, 0.0)))
    student = AudioXModel(cfg)
    student.load_state_dict(model.state_dict())
    pipe = AudioXPipeline(student)
    out = pipe("a bell", seed=0)
    assert (out.sampler, out.steps, out.nfe, out.guidance_scale) == ("turbo", 3, 3, None)
    out = pipe("a bell", seed=0, sampler="euler", steps=2, guidance_scale=2.0)  # the user overrides
    assert (out.sampler, out.steps, out.nfe, out.guidance_scale) == ("euler", 2, 4, 2.0)


def test_from_pretrained_and_dtype(model_dir: Path, pipe: AudioXPipeline) -> None:
    loaded = AudioXPipeline.from_pretrained(model_dir, device="cpu", dtype="float32")
    torch.testing.assert_close(loaded("owl", steps=STEPS, seed=1).audio, pipe("owl", steps=STEPS, seed=1).audio)
    half = AudioXPipeline.from_pretrained(model_dir, dtype="bf16")
    out = half("owl", steps=STEPS, seed=1)
    assert half.dtype == torch.bfloat16 and out.audio.dtype == torch.float32 and torch.isfinite(out.audio).all()
    with pytest.raises(FileNotFoundError):
        AudioXPipeline.from_pretrained(model_dir.parent / "missing")


def test_duration_sets_the_length(pipe: AudioXPipeline) -> None:
    out = pipe("wind", duration=0.5, steps=1, seed=0)
    assert out.audio.shape[-1] == round(0.5 * pipe.config.autoencoder.latent_rate) * pipe.config.autoencoder.hop_length


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(text="x", task="v2a"), "needs a video"),
        (dict(text="x", task="i2a"), "needs a still image"),
        (dict(text="x", video="video", task="t2a"), "takes no video"),
        (dict(audio="audio", task="inpaint"), "needs spans"),
        (dict(audio="audio", inpaint_spans="2-1"), "START < END"),
        (dict(audio="audio", inpaint_spans="a-b"), "must be numbers"),
        (dict(audio="audio", inpaint_spans="3-4"), "after the end"),
        (dict(text="x", inpaint_spans="0-0.5"), "spans were given"),
        (dict(text="x", task="nope"), "unknown task"),
        (dict(video="video", image="image"), "either a video or an image"),
        (dict(text="x", steps=0), "steps"),
        (dict(text="x", duration=-1.0), "duration"),
        (dict(video="audio"), "no video stream"),
    ],
)
def test_bad_inputs(pipe: AudioXPipeline, files: dict[str, Path], kwargs: dict, match: str) -> None:
    kw = {k: (files[v] if k in ("video", "image", "audio") else v) for k, v in kwargs.items()}
    with pytest.raises(ValueError, match=match):
        pipe(**kw)


def test_parse_spans() -> None:
    assert parse_spans("4-5, 1.0-2.5") == [(1.0, 2.5), (4.0, 5.0)]
    assert parse_spans(None) is None
    with pytest.raises(ValueError):
        parse_spans("1")
