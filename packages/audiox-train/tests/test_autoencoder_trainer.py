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
