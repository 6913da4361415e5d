"""The Oobleck-style waveform VAE: lengths, posterior sampling, KL closed form, loading, sizes."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from audiox.core.autoencoder import AudioAutoencoder, Snake, kl_divergence
from audiox.core.config import AutoencoderConfig, get_config


@pytest.fixture(scope="module")
def cfg() -> AutoencoderConfig:
    return get_config("debug").autoencoder


def _n(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    "strides,mults", [((2, 4, 8), (1, 2, 4)), ((3, 5), (1, 2)), ((2, 4, 8, 10), (1, 2, 4, 8))]
)
def test_lengths_and_hop(cfg, strides, mults):
    c = dataclasses.replace(cfg, strides=strides, channel_mults=mults, base_channels=4)
    ae = AudioAutoencoder(c)
    hop = math.prod(strides)
    assert ae.hop_length == hop == c.hop_length
    wav = torch.randn(2, c.audio_channels, 3 * hop)
    z = ae.encode(wav)
    assert z.shape == (2, c.latent_dim, 3) and z.dtype == torch.float32
    assert ae.decode(z).shape == (2, c.audio_channels, 3 * hop)
    assert ae.decode(torch.randn(1, c.latent_dim, 5)).shape == (1, c.audio_channels, 5 * hop)


def test_stereo_and_bad_lengths(cfg):
    ae = AudioAutoencoder(dataclasses.replace(cfg, audio_channels=2))
    hop = ae.hop_length
    assert ae.decode(ae.encode(torch.randn(1, 2, 2 * hop))).shape == (1, 2, 2 * hop)
    with pytest.raises(ValueError, match="multiple of hop_length"):
        ae.encode(torch.randn(1, 2, 2 * hop + 1))
    with pytest.raises(ValueError, match=r"\(B, 2, S\)"):
        ae.encode(torch.randn(1, 1, hop))
    with pytest.raises(ValueError, match="latents"):
        ae.decode(torch.randn(1, cfg.latent_dim + 1, 4))
    padded = ae.pad_to_hop(torch.ones(1, 2, 2 * hop + 1))
    assert padded.shape[-1] == 3 * hop and padded[..., 2 * hop + 1 :].abs().sum() == 0


def test_posterior_sampling_is_reparameterised_and_reproducible(cfg):
    torch.manual_seed(0)
    ae = AudioAutoencoder(dataclasses.replace(cfg, latent_scale=2.0))
    wav = torch.randn(1, 1, 4 * ae.hop_length)
    mean, logvar = ae.encode_posterior(wav)
    torch.testing.assert_close(ae.encode(wav), 2.0 * mean)  # deterministic: scaled mean
    a = ae.encode(wav, sample=True, generator=torch.Generator().manual_seed(7))
    b = ae.encode(wav, sample=True, generator=torch.Generator().manual_seed(7))
    c = ae.encode(wav, sample=True, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.allclose(a, c)
    eps = torch.randn(mean.shape, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(a, 2.0 * (mean + torch.exp(0.5 * logvar) * eps))
    # sigma = softplus(scale) + 1e-4 > 0, so logvar is bounded below
    assert (logvar > 2 * math.log(1e-4) - 1e-3).all()


def test_latent_scale_is_undone_by_decode(cfg):
    torch.manual_seed(0)
    ae1 = AudioAutoencoder(cfg)
    ae3 = AudioAutoencoder(dataclasses.replace(cfg, latent_scale=3.0))
    ae3.load_state_dict(ae1.state_dict())
    wav = torch.randn(1, 1, 2 * cfg.hop_length)
    z1, z3 = ae1.encode(wav), ae3.encode(wav)
    torch.testing.assert_close(z3, 3 * z1)
    torch.testing.assert_close(ae3.decode(z3), ae1.decode(z1), atol=1e-5, rtol=1e-5)


def test_kl_matches_closed_form():
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(2, 3, 5, generator=g, dtype=torch.float64)
    logvar = torch.randn(2, 3, 5, generator=g, dtype=torch.float64)
    # by hand: KL(N(m, s^2) || N(0, 1)) = log(1/s) + (s^2 + m^2) / 2 - 1/2, summed over channels
    s = torch.exp(0.5 * logvar)
    per = -torch.log(s) + (s**2 + mean**2) / 2 - 0.5
    expected = per.sum(1).mean()
    torch.testing.assert_close(kl_divergence(mean, logvar), expected)
    torch.testing.assert_close(AudioAutoencoder.kl(mean, logvar), expected)
    dist = torch.distributions
    ref = dist.kl_divergence(dist.Normal(mean, s), dist.Normal(0.0, 1.0)).sum(1).mean()
    torch.testing.assert_close(kl_divergence(mean, logvar), ref)
    zero = torch.zeros(1, 4, 3, dtype=torch.float64)
    assert kl_divergence(zero, zero) == 0


def test_snake_activation():
    act = Snake(2)
    with torch.no_grad():
        act.log_alpha[0, 1, 0] = math.log(2.0)
    x = torch.tensor([[[0.5], [0.5]]])
    y = act(x)
    torch.testing.assert_close(y[0, 0, 0], torch.tensor(0.5 + math.sin(0.5) ** 2))
    torch.testing.assert_close(y[0, 1, 0], torch.tensor(0.5 + math.sin(1.0) ** 2 / 2))


def test_snake_inference_path_matches_formula_and_keeps_input():
    torch.manual_seed(0)
    act = Snake(3)
    with torch.no_grad():
        act.log_alpha.copy_(torch.randn(1, 3, 1))
    x = torch.randn(2, 3, 50)
    x_copy = x.clone()
    alpha = act.log_alpha.detach().double().exp()
    ref = x.double() + torch.sin(alpha * x.double()) ** 2 / (alpha + 1e-9)
    with torch.inference_mode():
        y_inf = act(x)  # in-place fast path
    torch.testing.assert_close(x, x_copy, rtol=0, atol=0)  # the input is untouched
    y_grad = act(x)  # autograd path (log_alpha requires grad)
    torch.testing.assert_close(y_inf.double(), ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(y_grad.double(), ref, rtol=1e-6, atol=1e-6)
    xr = x.double().requires_grad_()
    act64 = Snake(3).double()
    with torch.no_grad():
        act64.log_alpha.copy_(act.log_alpha.double())
    assert torch.autograd.gradcheck(lambda t: act64(t), (xr[:1, :, :8],))


def test_weight_norm_and_strict_loading(cfg, tmp_path):
    torch.manual_seed(5)
    ae = AudioAutoencoder(cfg)
    keys = list(ae.state_dict())
    assert any("parametrizations.weight.original0" in k for k in keys)  # weight-normalised convs
    path = tmp_path / "vae.safetensors"
    ae.save_weights(path)
    assert [p.name for p in tmp_path.iterdir()] == ["vae.safetensors"]
    loaded = AudioAutoencoder(dataclasses.replace(cfg, pretrained=str(path)))
    wav = torch.randn(1, 1, 2 * cfg.hop_length)
    assert torch.equal(ae.encode(wav), loaded.encode(wav))
    with pytest.raises(ValueError, match="wrong shape"):
        AudioAutoencoder(dataclasses.replace(cfg, latent_dim=4, pretrained=str(path)))
    with pytest.raises(ValueError, match="does not match"):
        AudioAutoencoder(dataclasses.replace(cfg, strides=(2, 4), channel_mults=(1, 2), pretrained=str(path)))
    with pytest.raises(FileNotFoundError, match="not found"):
        AudioAutoencoder(dataclasses.replace(cfg, pretrained=str(tmp_path / "x.safetensors")))


def test_freezing(cfg):
    frozen = AudioAutoencoder(cfg)
    frozen.train()
    assert not frozen.training and all(not p.requires_grad for p in frozen.parameters())
    trainable = AudioAutoencoder(dataclasses.replace(cfg, freeze=False)).train()
    wav = torch.randn(1, 1, 2 * cfg.hop_length)
    mean, logvar = trainable.encode_posterior(wav)
    z = trainable.encode(wav, sample=True, generator=torch.Generator().manual_seed(0))
    (trainable.decode(z).pow(2).mean() + trainable.kl(mean, logvar)).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable.parameters())


def test_paper_and_mini_sizes():
    paper = get_config("paper").autoencoder
    with torch.device("meta"):
        ae = AudioAutoencoder(paper)
    assert (ae.sample_rate, ae.audio_channels, ae.latent_dim, ae.hop_length) == (44100, 2, 64, 2048)
    assert abs(_n(ae) - 157e6) / 157e6 < 0.15  # Stable Audio Open's VAE
    mini = get_config("mini").autoencoder
    assert mini.hop_length == 640 and mini.sample_rate / mini.hop_length == 25
    with torch.device("meta"):
        ae = AudioAutoencoder(mini)
    assert mini.decoder == "istft" and abs(_n(ae.decoder) - 1.785e6) / 1.785e6 < 0.01  # the bundled decoder's size


def test_debug_vae_learns_to_reconstruct_a_tone(cfg):
    """A few Adam steps on one 440 Hz tone cut the reconstruction error (the layers are wired to learn)."""
    torch.manual_seed(0)
    ae = AudioAutoencoder(dataclasses.replace(cfg, freeze=False)).train()
    t = torch.arange(16 * cfg.hop_length) / cfg.sample_rate
    wav = (0.5 * torch.sin(2 * math.pi * 440 * t)).view(1, 1, -1)
    opt = torch.optim.Adam(ae.parameters(), lr=1e-3)
    losses = []
    for _ in range(40):
        loss = (ae.decode(ae.encode(wav)) - wav).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0], losses[::10]


def test_meta_build_then_assign_load(cfg):
    torch.manual_seed(0)
    real = AudioAutoencoder(cfg)
    with torch.device("meta"):
        empty = AudioAutoencoder(cfg)
    empty.load_state_dict(real.state_dict(), assign=True)
    assert not any(t.is_meta for t in list(empty.parameters()) + list(empty.buffers()))
    wav = torch.randn(1, 1, 2 * cfg.hop_length)
    assert torch.equal(real.decode(real.encode(wav)), empty.decode(empty.encode(wav)))


def test_istft_decoder_shapes_and_reference():
    """decoder=istft: exact T * hop samples, per channel; equals torch.istft of the head's polar spectrum."""
    import dataclasses

    from audiox.core.config import get_config

    cfg = dataclasses.replace(get_config("debug").autoencoder, decoder="istft", istft_hop=16, istft_n_fft=64,
                              istft_dim=24, audio_channels=2)
    ae = AudioAutoencoder(cfg).eval()
    z = torch.randn(3, cfg.latent_dim, 7)
    with torch.no_grad():
        y = ae.decode(z)
        assert y.shape == (3, 2, 7 * cfg.hop_length)
        d = ae.decoder
        h = d.conv_in(z)
        for blk in d.low:
            h = blk(h)
        h = d.upsample(h)
        assert h.shape[-1] == 7 * (cfg.hop_length // 16)
        for blk in d.high:
            h = blk(h)
        h = d.head(d.norm(h.transpose(1, 2))).double().view(3, -1, 2, 2, 33)
        for c in range(2):
            spec = torch.exp(h[..., c, 0, :].clamp(max=12.0)) * torch.exp(1j * h[..., c, 1, :])  # (B, F', bins)
            ref = torch.istft(spec.transpose(1, 2), 64, 16, window=torch.hann_window(64, dtype=torch.float64),
                              center=True, length=7 * cfg.hop_length)
            assert torch.allclose(y[:, c].double(), ref, atol=1e-5 * float(ref.abs().max()) + 1e-7)
    with pytest.raises(ValueError, match="istft_hop"):
        dataclasses.replace(get_config("debug").autoencoder, decoder="istft", istft_hop=48)
    with pytest.raises(ValueError, match="oobleck or istft"):
        dataclasses.replace(get_config("debug").autoencoder, decoder="hifigan")
