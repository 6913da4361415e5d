import dataclasses

import torch

from audiox.core.autoencoder import AudioAutoencoder
from audiox.train import FixedBatchSource, get_train_config, synthetic_batch
from audiox.train.autoencoder import AutoencoderTrainer, MultiScaleDiscriminator


def _cfg(tmp_path, *extra):
    cfg = get_train_config("debug", ["optim.lr=3e-3", "data.batch_size=2", "autoencoder.crop_seconds=0.25",
                                     "checkpoint.every=5", *extra])
    cfg.checkpoint.dir = str(tmp_path / "run")
    return cfg


def test_autoencoder_learns_and_exports(tmp_path):
    cfg = _cfg(tmp_path)
    src = FixedBatchSource(synthetic_batch(cfg.model, 2, with_video=False))
    tr = AutoencoderTrainer(cfg, src)
    x = tr.crop(src.batch.audio)
    def recon_loss():  # deterministic: the posterior mean, L1 + MR-STFT
        with torch.no_grad():
            x_hat = tr.ae.decode(tr.ae.encode(x))
            return float(torch.nn.functional.l1_loss(x_hat, x) + tr.stft(x_hat, x))

    before = recon_loss()
    tr.fit(max_steps=40)
    after = recon_loss()
    assert after < 0.75 * before, (before, after)
    path = tr.export(tmp_path / "ae.safetensors")
    ae_cfg = dataclasses.replace(cfg.model.autoencoder, pretrained=str(path), freeze=True)
    loaded = AudioAutoencoder(ae_cfg)
    for (k, a), (_, b) in zip(tr.ae.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k


def test_autoencoder_resume_is_exact(tmp_path):
    cfg = _cfg(tmp_path)
    batch = synthetic_batch(cfg.model, 2, with_video=False)
    cfg.checkpoint.dir = str(tmp_path / "a")
    full = AutoencoderTrainer(cfg, FixedBatchSource(batch)).fit(max_steps=10)
    cfg.checkpoint.dir = str(tmp_path / "b")
    AutoencoderTrainer(cfg, FixedBatchSource(batch)).fit(max_steps=5)
    resumed = AutoencoderTrainer(cfg, FixedBatchSource(batch)).fit(max_steps=10)
    assert resumed == full


def test_adversarial_term_trains_the_discriminator(tmp_path):
    cfg = _cfg(tmp_path, "autoencoder.adversarial=true")
    tr = AutoencoderTrainer(cfg, FixedBatchSource(synthetic_batch(cfg.model, 2, with_video=False)))
    assert isinstance(tr.disc, MultiScaleDiscriminator)
    before = [p.detach().clone() for p in tr.disc.parameters()]
    tr.train_step()
    assert any(not torch.equal(a, p) for a, p in zip(before, tr.disc.parameters()))


def test_decoder_only_finetune_keeps_the_latent_space(tmp_path):
    import pytest

    cfg = _cfg(tmp_path)
    batch = synthetic_batch(cfg.model, 2, with_video=False)
    first = AutoencoderTrainer(cfg, FixedBatchSource(batch))
    first.fit(max_steps=5)
    path = first.export(tmp_path / "ae0.safetensors")

    with pytest.raises(ValueError, match="model.autoencoder.pretrained"):
        AutoencoderTrainer(_cfg(tmp_path / "x", "autoencoder.train_encoder=false"), FixedBatchSource(batch))

    cfg2 = _cfg(tmp_path / "ft", "autoencoder.train_encoder=false", f"model.autoencoder.pretrained={path}")
    tr = AutoencoderTrainer(cfg2, FixedBatchSource(batch))
    x = tr.crop(batch.audio)
    enc0 = {k: v.clone() for k, v in tr.ae.encoder.state_dict().items()}
    dec0 = {k: v.clone() for k, v in tr.ae.decoder.state_dict().items()}
    with torch.no_grad():
        z0 = tr.ae.encode(x)

    def recon():  # what a diffusion model's latents go through: decode(encode(x)) with the posterior mean
        with torch.no_grad():
            x_hat = tr.ae.decode(tr.ae.encode(x))
            return float(torch.nn.functional.l1_loss(x_hat, x) + tr.stft(x_hat, x))

    before = recon()
    tr.fit(max_steps=30)
    assert recon() < 0.8 * before
    for k, v in tr.ae.encoder.state_dict().items():  # the encoder (and so every latent) is bit-identical
        assert torch.equal(v, enc0[k]), k
    assert any(not torch.equal(v, dec0[k]) for k, v in tr.ae.decoder.state_dict().items())
    with torch.no_grad():
        assert torch.equal(tr.ae.encode(x), z0)
    assert all(not p.requires_grad for p in tr.ae.encoder.parameters())
    assert sum(p.numel() for g in tr.opt.param_groups for p in g["params"]) == sum(
        p.numel() for p in tr.ae.decoder.parameters())


def test_istft_decoder_learns_the_latents_of_an_oobleck_encoder(tmp_path):
    """decoder=istft on a file with an Oobleck decoder: same encoder (bit for bit), a fresh iSTFT decoder."""
    cfg = _cfg(tmp_path)
    batch = synthetic_batch(cfg.model, 2, with_video=False)
    first = AutoencoderTrainer(cfg, FixedBatchSource(batch))
    first.fit(max_steps=3)
    path = first.export(tmp_path / "ae0.safetensors")
    enc0 = {k: v.clone() for k, v in first.ae.encoder.state_dict().items()}

    tr = AutoencoderTrainer(_cfg(tmp_path / "is", *_istft_overrides(path)), FixedBatchSource(batch))
    assert tr.fresh_decoder and type(tr.ae.decoder).__name__ == "ISTFTDecoder"
    for k, v in tr.ae.encoder.state_dict().items():
        assert torch.equal(v, enc0[k]), k
    x = tr.crop(batch.audio)

    def recon():
        with torch.no_grad():
            x_hat = tr.ae.decode(tr.ae.encode(x))
            assert x_hat.shape == x.shape
            return float(tr.mel(x_hat, x))

    before = recon()
    tr.fit(max_steps=30)
    assert recon() < 0.8 * before
    for k, v in tr.ae.encoder.state_dict().items():
        assert torch.equal(v, enc0[k]), k
    out = tr.export(tmp_path / "ae_istft.safetensors")
    # a second run from the exported file fine-tunes that decoder (same kind: loaded, not fresh)
    tr2 = AutoencoderTrainer(_cfg(tmp_path / "is2", *_istft_overrides(out)), FixedBatchSource(batch))
    assert not tr2.fresh_decoder
    for k, v in tr2.ae.decoder.state_dict().items():
        assert torch.equal(v, tr.ae.decoder.state_dict()[k]), k


def _istft_overrides(path):
    return ["autoencoder.train_encoder=false", "model.autoencoder.decoder=istft", "model.autoencoder.istft_hop=16",
            "model.autoencoder.istft_n_fft=64", "model.autoencoder.istft_dim=32", f"model.autoencoder.pretrained={path}"]


def test_decoder_only_latent_noise_decodes_noised_means_to_the_clean_audio(tmp_path):
    cfg = _cfg(tmp_path)
    batch = synthetic_batch(cfg.model, 2, with_video=False)
    path = AutoencoderTrainer(cfg, FixedBatchSource(batch)).export(tmp_path / "ae0.safetensors")
    seen = {}
    for noise in (0.0, 0.5):
        ft = _cfg(tmp_path / f"n{noise}", "autoencoder.train_encoder=false", f"model.autoencoder.pretrained={path}",
                  f"autoencoder.latent_noise={noise}")
        tr = AutoencoderTrainer(ft, FixedBatchSource(batch))
        x = tr.crop(batch.audio)
        decode = tr.ae.decoder.forward
        tr.ae.decoder.forward = lambda z, _d=decode: (seen.__setitem__(noise, z.detach().clone()), _d(z))[1]
        tr.losses_for(x)
        with torch.no_grad():
            mean, _ = tr.ae.encode_posterior(x)
        seen[f"mean{noise}"] = mean
    assert torch.equal(seen[0.0], seen["mean0.0"])  # no noise: exactly the posterior mean
    d = (seen[0.5] - seen["mean0.5"]).std(dim=(1, 2)) / seen["mean0.5"].std()
    assert bool((d > 0).all()) and bool((d < 0.5 * 1.2).all())  # noised, by at most latent_noise x std per clip


def test_latent_noise_must_not_be_negative():
    import pytest

    with pytest.raises(ValueError, match="latent_noise"):
        get_train_config("debug", ["autoencoder.latent_noise=-0.1"])


def test_event_crops_replace_the_last_crops_with_isolated_events(tmp_path):
    cfg = _cfg(tmp_path, "data.batch_size=4", "autoencoder.event_crops=0.5")
    batch = synthetic_batch(cfg.model, 4, with_video=False)
    tr = AutoencoderTrainer(cfg, FixedBatchSource(batch))
    seen = []
    losses_for = tr.losses_for
    tr.losses_for = lambda x, exact=0: (seen.append(x.detach().clone()), losses_for(x, exact))[1]
    expected = tr.event_crops(2, tr.crop(batch.audio).shape[-1])  # step 0's events, rendered ahead
    tr.train_step()
    x = seen[0]
    assert x.shape[0] == 4 and torch.equal(x[2:], expected)
    n = x.shape[-1]
    for crop in x[2:, 0]:  # one event: sound inside one span no longer than 90 % of the crop, silence outside
        on = torch.nonzero(crop.abs() > 0).flatten()
        assert len(on) > 0 and (on[-1] - on[0] + 1) <= 0.9 * n + 1 and crop.abs().max() <= 1
    assert not torch.equal(tr.event_crops(2, n), expected)  # a new step draws new events
    # deterministic on resume, like the rest of the run
    full = AutoencoderTrainer(_cfg(tmp_path / "a", "data.batch_size=4", "autoencoder.event_crops=0.5"),
                              FixedBatchSource(batch)).fit(max_steps=10)
    c = _cfg(tmp_path / "b", "data.batch_size=4", "autoencoder.event_crops=0.5")
    AutoencoderTrainer(c, FixedBatchSource(batch)).fit(max_steps=5)
    assert AutoencoderTrainer(c, FixedBatchSource(batch)).fit(max_steps=10) == full


def test_event_crops_must_be_a_share():
    import pytest

    with pytest.raises(ValueError, match="event_crops"):
        get_train_config("debug", ["autoencoder.event_crops=1.5"])


def test_event_categories_pick_the_events_and_unknown_names_are_an_error(tmp_path):
    import pytest

    from audiox.data.synth.events import EVENTS

    cfg = _cfg(tmp_path, "autoencoder.event_crops=1", 'autoencoder.event_categories=["click"]')
    tr = AutoencoderTrainer(cfg, FixedBatchSource(synthetic_batch(cfg.model, 2, with_video=False)))
    crops = tr.event_crops(8, 4000)
    for crop in crops[:, 0]:  # a click lasts 40-60 ms
        on = torch.nonzero(crop.abs() > 0).flatten()
        assert EVENTS["click"].duration[0] * tr.ae.sample_rate - 1 <= on[-1] - on[0] + 1 <= EVENTS["click"].duration[1] * tr.ae.sample_rate
    bad = _cfg(tmp_path, 'autoencoder.event_categories=["click", "oboe"]')
    with pytest.raises(ValueError, match="unknown \\['oboe'\\]"):
        AutoencoderTrainer(bad, FixedBatchSource(synthetic_batch(bad.model, 2, with_video=False)))


def test_event_crops_are_decoded_from_exact_means_under_latent_noise(tmp_path):
    cfg = _cfg(tmp_path)
    batch = synthetic_batch(cfg.model, 4, with_video=False)
    path = AutoencoderTrainer(cfg, FixedBatchSource(batch)).export(tmp_path / "ae0.safetensors")
    ft = _cfg(tmp_path / "ft", "data.batch_size=4", "autoencoder.train_encoder=false",
              f"model.autoencoder.pretrained={path}", "autoencoder.latent_noise=0.5", "autoencoder.event_crops=0.5")
    tr = AutoencoderTrainer(ft, FixedBatchSource(batch))
    seen, seen_x = {}, {}
    decode, losses_for = tr.ae.decoder.forward, tr.losses_for
    tr.ae.decoder.forward = lambda z: (seen.__setitem__("z", z.detach().clone()), decode(z))[1]
    tr.losses_for = lambda x, exact=0: (seen_x.__setitem__("x", x), losses_for(x, exact))[1]
    tr.train_step()
    with torch.no_grad():
        mean, _ = tr.ae.encode_posterior(seen_x["x"])
    assert torch.equal(seen["z"][2:], mean[2:])  # the two event crops: exact means
    assert not torch.equal(seen["z"][0], mean[0]) and not torch.equal(seen["z"][1], mean[1])  # the corpus crops: noised
