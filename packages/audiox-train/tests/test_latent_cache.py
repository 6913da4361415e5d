"""Cached target latents (``audiox-train encode-latents``, ``data.latents=true``): the same loss as encoding every
batch, a tag that refuses another autoencoder's cache, a resumable encoder pass, a fallback for uncached clips."""

import dataclasses

import pytest
import torch

from audiox.core import AudioXModel
from audiox.train import TeacherTrainer, build_source, get_train_config

OVER = ["model.duration=2.0", "data.batch_size=2", "log.progress=false", "log.tensorboard=false"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from audiox.data.shards import synth_shards
    from audiox.data.synth import SynthConfig

    out = tmp_path_factory.mktemp("synth")
    # clips exactly as long as the model's duration (2 s at the debug model's 8 kHz): every target is the clip
    synth_shards(out, clips=6, seed=0, shard_size=3, cfg=SynthConfig(sample_rate=8000, duration=2.0, image_size=32),
                 prompts={"t2a_bench": 2, "v2a": 1, "t2m": 1}, progress=False)
    return out


def _model(cfg):
    torch.manual_seed(cfg.seed)
    return AudioXModel(cfg.model)


def test_cached_latents_give_the_loss_of_encoding(corpus, tmp_path):
    from audiox.data.latents import load_sidecar, save_sidecar, sidecar_path
    from audiox.train.latents import encode_shards, latent_tag

    cfg = get_train_config("debug", [*OVER, f"data.shards={corpus}", "data.latents=true"])
    cfg.checkpoint.dir = str(tmp_path / "run")
    model = _model(cfg)
    tag = latent_tag(model)
    first = encode_shards(model, str(corpus), batch_size=4)
    assert (first.tag, first.shards, first.skipped_shards, first.clips, first.bad_clips) == (tag, 2, 0, 6, 0)
    again = encode_shards(model, str(corpus), batch_size=4)
    assert (again.shards, again.skipped_shards, again.clips) == (0, 2, 0)  # a rerun keeps finished shards
    assert not list(corpus.glob(".*.tmp"))

    source = build_source(cfg.data, cfg.model, latent_tag=tag)
    trainer = TeacherTrainer(cfg, source, model=model)
    ae = model.autoencoder
    for _ in range(3):
        batch = source.next_batch()
        assert batch.latents is not None and batch.latents.shape == (2, ae.latent_dim, cfg.model.latent_length)
        with torch.no_grad():
            ref = ae.encode(ae.pad_to_hop(batch.audio))
        torch.testing.assert_close(batch.latents, ref, rtol=1e-5, atol=1e-5)
        losses = []
        for b in (batch, dataclasses.replace(batch, latents=None)):
            trainer.gen.manual_seed(7)  # the same t, noise and condition dropout for both
            with torch.no_grad():
                losses.append(trainer.compute_loss(b))
        torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=1e-6)

    # a clip missing from its shard's cache makes its batch fall back to encoding
    url = str(sorted(corpus.glob("*.tar"))[0])
    cache = load_sidecar(url, tag)
    dropped = sorted(cache)[0]
    save_sidecar(url, tag, {k: v for k, v in cache.items() if k != dropped})
    seen = [source.next_batch() for _ in range(6)]
    assert any(dropped in b.keys and b.latents is None for b in seen)
    assert all(b.latents is not None for b in seen if dropped not in b.keys)

    # a sidecar under the right name but written for another tag is refused
    other = sidecar_path(url, tag)
    save_sidecar(url, "0" * 12, cache).replace(other)
    with pytest.raises(ValueError, match="holds latents for tag"):
        load_sidecar(url, tag)


def test_encode_latents_command_and_a_refused_cache(corpus, tmp_path, capsys):
    from audiox.train.cli import main

    data = [f"data.shards={corpus}", f"checkpoint.dir={tmp_path / 'run'}"]
    for p in corpus.glob("*.latents-*"):
        p.unlink()
    assert main(["--config", "debug", *OVER, *data, "data.latents=true", "max_steps=1"]) == 2  # nothing cached yet
    assert "2 shard(s) have no latents for this autoencoder" in capsys.readouterr().err
    assert main(["encode-latents", "--config", "debug", *OVER, *data]) == 0
    assert len(list(corpus.glob("*.latents-*.safetensors"))) == 2
    out = tmp_path / "export"
    assert main(["--config", "debug", *OVER, *data, "data.latents=true", "max_steps=2", "--out", str(out)]) == 0
    assert (out / "model.safetensors").is_file()
    # another autoencoder (another initialisation) has another tag: its run refuses this cache
    assert main(["--config", "debug", *OVER, f"data.shards={corpus}", f"checkpoint.dir={tmp_path / 'b'}",
                 "seed=1", "data.latents=true", "max_steps=1"]) == 2
    assert "have no latents for this autoencoder" in capsys.readouterr().err
    assert main(["encode-latents", "--config", "debug", *OVER, "data.shards=synthetic"]) == 2
    assert "needs data.shards" in capsys.readouterr().err


def test_bench_times_a_step_with_cached_latents(capsys):
    from audiox.train.cli import main

    for latents, label in (("false", "encoded"), ("true", "cached")):
        assert main(["bench", "--config", "debug", "data.batch_size=1", f"data.latents={latents}", "--steps", "1"]) == 0
        row = capsys.readouterr().out.strip().splitlines()[-1].split("|")
        assert row[4].strip() == label and float(row[5]) > 0
