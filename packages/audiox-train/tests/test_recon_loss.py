"""The autoencoder's reconstruction loss on audio with digital silence, and the loud-crop sampler."""

import math

import torch

from audiox.train import FixedBatchSource, get_train_config, synthetic_batch
from audiox.train.autoencoder import AutoencoderTrainer
from audiox.train.losses import MultiResolutionSTFTLoss, stft_loss


def _mostly_silent_clip(seed: int = 0) -> torch.Tensor:
    """1 s at 16 kHz: a 0.25 s decaying 600 Hz tone in exact digital silence (like a synthetic-world bell)."""
    sr, n = 16000, 16000
    t = torch.arange(4000, dtype=torch.float64) / sr
    x = torch.zeros(1, 1, n, dtype=torch.float64)
    x[..., 6000:10000] = 0.2 * torch.sin(2 * math.pi * 600 * t) * torch.exp(-t / 0.08)
    return x.float()


def test_floor_ranks_inaudible_noise_above_silence():
    x = _mostly_silent_clip()
    g = torch.Generator().manual_seed(0)
    noisy = x + 1e-4 * torch.randn(x.shape, generator=g)  # -80 dBFS: inaudible, below any judge's floor
    quiet, zeros = 0.05 * x, torch.zeros_like(x)
    plain = MultiResolutionSTFTLoss()
    floored = MultiResolutionSTFTLoss(floor_db=-70.0)
    # the eps-only loss prefers losing the sound to a trace of noise: the failure this floor fixes
    assert plain(zeros, x) < plain(noisy, x)
    assert floored(noisy, x) < floored(quiet, x) < floored(zeros, x)
    assert float(floored(x, x)) == 0.0


def test_floor_is_the_white_noise_magnitude():
    # by hand at one resolution: log(|X| + 10^(db/20) * ||w||_2), L1, plus spectral convergence
    x, y = torch.randn(1, 1, 2048, dtype=torch.float64).float(), _mostly_silent_clip()[..., 5000:7048]
    n_fft, hop, db = 512, 128, -70.0
    w = torch.hann_window(n_fft, dtype=torch.float64)
    X = torch.stft(x[0].double(), n_fft, hop, window=w, return_complex=True).abs()
    Y = torch.stft(y[0].double(), n_fft, hop, window=w, return_complex=True).abs()
    fl = 10 ** (db / 20) * math.sqrt(float((w ** 2).sum()))
    ref = torch.linalg.norm(Y - X) / torch.linalg.norm(Y) + (torch.log(X + fl) - torch.log(Y + fl)).abs().mean()
    assert abs(float(stft_loss(x, y, n_fft, hop, floor_db=db)) - float(ref)) < 1e-4 * float(ref)


def test_crop_takes_the_loudest_candidate(tmp_path):
    cfg = get_train_config("debug", ["data.batch_size=3", "autoencoder.crop_seconds=0.25",
                                     "autoencoder.crop_candidates=64"])
    cfg.checkpoint.dir = str(tmp_path / "run")
    batch = synthetic_batch(cfg.model, 3, with_video=False)
    audio = torch.zeros_like(batch.audio)  # (3, C, S): silence with one loud burst per clip, at different places
    n_total = audio.shape[-1]
    bursts = [(100, 300), (n_total // 2, n_total // 2 + 200), (n_total - 400, n_total - 200)]
    for i, (a, b) in enumerate(bursts):
        audio[i, :, a:b] = 0.5
    tr = AutoencoderTrainer(cfg, FixedBatchSource(batch))
    crops = tr.crop(audio)
    assert crops.shape[-1] % tr.ae.hop_length == 0 and crops.shape[:2] == audio.shape[:2]
    for i in range(3):  # 64 random starts: each clip's crop holds (nearly all of) its own burst
        assert float(crops[i].abs().sum()) > 0.8 * float(audio[i].abs().sum()), i
    one = get_train_config("debug", ["autoencoder.crop_candidates=1", "autoencoder.stft_floor_db=null"])
    assert one.autoencoder.crop_candidates == 1 and one.autoencoder.stft_floor_db is None


def _bell(f0: float, sr: int = 16000) -> torch.Tensor:
    """A struck-bar bell (the synthetic world's partials) at ``f0`` Hz in 1 s of silence."""
    t = torch.arange(12000, dtype=torch.float64) / sr
    x = sum(a * torch.sin(2 * math.pi * f0 * r * t) * torch.exp(-t * (1.5 + r))
            for r, a in ((1.0, 1.0), (2.76, 0.6), (5.40, 0.4), (8.93, 0.25)))
    out = torch.zeros(1, 1, sr, dtype=torch.float64)
    out[..., 3000:15000] = 0.6 * x / x.abs().max()
    return out.float()


def test_mel_loss_tolerates_small_pitch_errors_that_mrstft_punishes_like_silence():
    from audiox.train.losses import MultiScaleMelLoss

    y = _bell(600.0)
    sharp, zeros = _bell(630.0), torch.zeros_like(y)  # 5 % sharp
    stft, mel = MultiResolutionSTFTLoss(floor_db=-70.0), MultiScaleMelLoss(16000)
    assert float(stft(sharp, y)) > 0.85 * float(stft(zeros, y))  # nearly as bad as silence
    assert float(mel(sharp, y)) < 0.4 * float(mel(zeros, y))  # far better than silence
    assert float(mel(y, y)) == 0.0


def test_mel_loss_matches_a_float64_computation():
    from transformers.audio_utils import mel_filter_bank

    from audiox.train.losses import MultiScaleMelLoss

    g = torch.Generator().manual_seed(1)
    x, y = 0.1 * torch.randn(2, 1, 4096, generator=g), _bell(600.0)[..., 3000:7096].expand(2, 1, -1)
    loss = MultiScaleMelLoss(16000, scales=((512, 128, 16), (1024, 256, 32)), floor_db=-60.0)
    ref = 0.0
    for n_fft, hop, n_mels in ((512, 128, 16), (1024, 256, 32)):
        fb = torch.from_numpy(mel_filter_bank(num_frequency_bins=n_fft // 2 + 1, num_mel_filters=n_mels,
                                              min_frequency=0.0, max_frequency=8000.0, sampling_rate=16000,
                                              norm="slaney", mel_scale="slaney")).double()
        w = torch.hann_window(n_fft, dtype=torch.float64)
        X = torch.stft(x[:, 0].double(), n_fft, hop, window=w, return_complex=True).abs().transpose(1, 2) @ fb
        Y = torch.stft(y[:, 0].double(), n_fft, hop, window=w, return_complex=True).abs().transpose(1, 2) @ fb
        fl = 1e-3 * math.sqrt(float((w ** 2).sum())) * float(fb.sum(0).mean())
        ref += float((torch.log(X + fl) - torch.log(Y + fl)).abs().mean()) / 2
    assert abs(float(loss(x, y)) - ref) < 1e-4 * ref
