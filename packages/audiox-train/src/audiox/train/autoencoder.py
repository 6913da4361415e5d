"""``audiox-train autoencoder``: train the audio VAE from nothing (so ``mini`` needs no downloaded weights).

Loss per batch of crops (each the loudest of ``crop_candidates`` random ones in its clip):
``l1 * |x - x_hat|_1 + stft * MR-STFT(x_hat, x) + mel * MS-mel(x_hat, x) + kl * KL(q(z|x) || N(0, I))``, both spectral
terms with a -70 dBFS log-magnitude floor,
plus, with ``autoencoder.adversarial=true``, a multi-scale waveform discriminator (MelGAN-style average-pooled
scales) with hinge losses and feature matching. The export is a safetensors file that
``model.autoencoder.pretrained=PATH`` loads.

``autoencoder.train_encoder=false`` fine-tunes the decoder alone: the encoder is frozen and the decoder learns to
invert its posterior *means* (what ``AudioAutoencoder.encode`` hands a diffusion model), so a teacher or student
already trained on this autoencoder's latents keeps working with the new decoder. ``autoencoder.latent_noise=S``
also shows it noised means (up to S times the latents' std), decoded to the clean audio, so that a generator's
near-miss latents do not come out as spurious events.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audiox.core.autoencoder import AudioAutoencoder
from audiox.core.encoders.common import load_safetensors_strict

from audiox.train.checkpoint import CheckpointManager, capture_rng, flatten_optimizer_state, restore_rng, unflatten_optimizer_state
from audiox.train.config import TrainConfig
from audiox.train.engine import resolve_device, time_up
from audiox.train.losses import MultiResolutionSTFTLoss, MultiScaleMelLoss
from audiox.train.schedules import build_scheduler

__all__ = ["AutoencoderTrainer", "MultiScaleDiscriminator", "autoencoder_main", "load_encoder_for_decoder_training"]

log = logging.getLogger("audiox.train")


class _ScaleDisc(nn.Module):
    def __init__(self, channels: int, width: int = 16) -> None:
        super().__init__()
        wn = nn.utils.parametrizations.weight_norm
        self.layers = nn.ModuleList([
            wn(nn.Conv1d(channels, width, 15, padding=7)),
            wn(nn.Conv1d(width, width * 4, 41, stride=4, padding=20, groups=4)),
            wn(nn.Conv1d(width * 4, width * 8, 41, stride=4, padding=20, groups=16)),
            wn(nn.Conv1d(width * 8, width * 8, 5, padding=2)),
        ])
        self.out = wn(nn.Conv1d(width * 8, 1, 3, padding=1))

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        feats = []
        for layer in self.layers:
            x = F.leaky_relu(layer(x), 0.2)
            feats.append(x)
        return self.out(x), feats


class MultiScaleDiscriminator(nn.Module):
    def __init__(self, channels: int, scales: int = 3) -> None:
        super().__init__()
        self.discs = nn.ModuleList(_ScaleDisc(channels) for _ in range(scales))

    def forward(self, x: Tensor) -> list[tuple[Tensor, list[Tensor]]]:
        outs = []
        for i, d in enumerate(self.discs):
            outs.append(d(x))
            if i + 1 < len(self.discs):
                x = F.avg_pool1d(x, 4, 2, padding=1)
        return outs


def load_encoder_for_decoder_training(ae: AudioAutoencoder, path: str | Path) -> bool:
    """Load a trained autoencoder file into ``ae`` for ``train_encoder=false``; returns True for a fresh decoder.

    The encoder must match exactly (every key and shape). The file's decoder is loaded when it is the configured
    kind (fine-tuning); when the configured decoder differs (e.g. ``decoder=istft`` for a file with an Oobleck
    decoder) the new decoder starts from its initialisation and learns to invert the same latents.
    """
    from safetensors import safe_open

    load_safetensors_strict(ae.encoder, path, "autoencoder encoder", prefix="encoder.")
    with safe_open(str(path), "pt") as f:
        in_file = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys() if k.startswith("decoder.")}
    same = in_file == {f"decoder.{k}": tuple(v.shape) for k, v in ae.decoder.state_dict().items()}
    if same:
        load_safetensors_strict(ae.decoder, path, "autoencoder decoder", prefix="decoder.")
    else:
        log.info("autoencoder: %s has another decoder; training a fresh %s decoder on its encoder's latents",
                 path, ae.cfg.decoder)
    return not same


class AutoencoderTrainer:
    def __init__(self, cfg: TrainConfig, source, run_dir: str | Path | None = None) -> None:
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        torch.manual_seed(cfg.seed)
        ae_cfg = cfg.model.autoencoder
        ae_cfg.freeze = False
        self.decoder_only = not cfg.autoencoder.train_encoder
        if self.decoder_only:
            if not ae_cfg.pretrained:
                raise ValueError("autoencoder.train_encoder=false trains a decoder for a trained encoder: set "
                                 "model.autoencoder.pretrained=PATH")
            self.ae = AudioAutoencoder(dataclasses.replace(ae_cfg, pretrained=None))
            self.fresh_decoder = load_encoder_for_decoder_training(self.ae, ae_cfg.pretrained)
            self.ae = self.ae.to(self.device).train()
            self.ae.encoder.requires_grad_(False)
            self.ae.encoder.eval()
        else:
            self.ae = AudioAutoencoder(ae_cfg).to(self.device).train()
        self.stft = MultiResolutionSTFTLoss(floor_db=cfg.autoencoder.stft_floor_db)
        self.mel = MultiScaleMelLoss(ae_cfg.sample_rate, floor_db=cfg.autoencoder.stft_floor_db).to(self.device)
        o = cfg.optim
        params = [p for p in self.ae.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
        self.sched = build_scheduler(self.opt, cfg.schedule)
        self.disc = None
        if cfg.autoencoder.adversarial:
            self.disc = MultiScaleDiscriminator(ae_cfg.audio_channels).to(self.device)
            self.opt_d = torch.optim.AdamW(self.disc.parameters(), lr=o.lr, betas=(0.8, 0.99))
        from audiox.data.synth.events import EVENT_NAMES

        self.event_names = tuple(cfg.autoencoder.event_categories) or EVENT_NAMES
        unknown = sorted(set(self.event_names) - set(EVENT_NAMES))
        if unknown:
            raise ValueError(f"autoencoder.event_categories: unknown {unknown} (known: {', '.join(EVENT_NAMES)})")
        self.source = source
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.run_dir = Path(run_dir or cfg.checkpoint.dir)
        self.ckpt = CheckpointManager(self.run_dir / "checkpoints", cfg.checkpoint.keep_last)
        self.step = 0
        self.losses: list[float] = []

    def crop(self, audio: Tensor) -> Tensor:
        """(B, C, S) clips -> (B, C, n) crops of ``crop_seconds``, each the loudest of ``crop_candidates`` random
        starts in its own clip (1 candidate: uniform)."""
        hop = self.ae.hop_length
        n = max(hop, int(round(self.cfg.autoencoder.crop_seconds * self.ae.sample_rate / hop)) * hop)
        if audio.shape[-1] <= n:
            return self.ae.pad_to_hop(audio)
        k = self.cfg.autoencoder.crop_candidates
        starts = torch.randint(0, audio.shape[-1] - n + 1, (audio.shape[0], k), generator=self.gen)  # (B, K)
        idx = starts.to(audio.device)[..., None] + torch.arange(n, device=audio.device)  # (B, K, n)
        cands = torch.gather(audio[:, None].expand(-1, k, -1, -1), 3,
                             idx[:, :, None, :].expand(-1, -1, audio.shape[1], -1))  # (B, K, C, n)
        best = cands.square().mean(dim=(2, 3)).argmax(dim=1)  # (B,)
        return cands[torch.arange(audio.shape[0], device=audio.device), best]

    def event_crops(self, k: int, n: int) -> Tensor:
        """(k, C, n) crops of one synthetic-world event each (``autoencoder.event_crops``): the category uniform over
        ``autoencoder.event_categories`` (default the whole vocabulary), its duration drawn as the world draws it
        (capped at 90 % of the crop), at a random offset in silence. Seeded by (seed, step), so a resumed run renders the same crops."""
        from audiox.data.synth.events import EVENTS

        sr, ch = self.ae.sample_rate, self.cfg.model.autoencoder.audio_channels
        rng = np.random.default_rng([self.cfg.seed, self.step, 0xE7])
        out = np.zeros((k, n), np.float32)
        for i in range(k):
            cat = EVENTS[self.event_names[int(rng.integers(len(self.event_names)))]]
            m = max(1, int(min(rng.uniform(*cat.duration), 0.9 * n / sr) * sr))
            off = int(rng.integers(0, n - m + 1))
            out[i, off:off + m] = np.clip(cat.render(rng, m, sr), -1, 1)
        return torch.from_numpy(out)[:, None].expand(-1, ch, -1).contiguous()  # (k, C, n)

    def losses_for(self, x: Tensor, exact: int = 0) -> tuple[Tensor, dict[str, float], Tensor]:
        """Loss of one batch of crops; with latent noise, the last ``exact`` crops (the isolated events) are decoded
        from their exact means: noise there would teach the decoder to blur the detail those crops are for."""
        c = self.cfg.autoencoder
        if self.decoder_only:  # the frozen encoder's posterior mean: the latent a diffusion model sees
            with torch.no_grad():
                z, _ = self.ae.encode_posterior(x)
                if c.latent_noise > 0:  # and its near-misses: mean + sigma * std(z) * eps, sigma ~ U(0, latent_noise)
                    sigma = c.latent_noise * torch.rand(z.shape[0], 1, 1, generator=self.gen).to(z)
                    if exact:
                        sigma[z.shape[0] - exact:] = 0
                    z = z + sigma * z.std() * torch.randn(z.shape, generator=self.gen).to(z)
            kl = z.new_zeros(())
        else:
            mean, logvar = self.ae.encode_posterior(x)
            eps = torch.randn(mean.shape, generator=self.gen).to(mean)
            z = mean + torch.exp(0.5 * logvar) * eps
            kl = self.ae.kl(mean, logvar)
        x_hat = self.ae.decoder(z)
        l1 = F.l1_loss(x_hat, x)
        spec = self.stft(x_hat, x)
        mel = self.mel(x_hat, x) if c.mel > 0 else spec.new_zeros(())
        total = c.l1 * l1 + c.stft * spec + c.mel * mel + c.kl * kl
        return total, {"l1": float(l1.detach()), "stft": float(spec.detach()), "mel": float(mel.detach()),
                       "kl": float(kl.detach())}, x_hat

    def train_step(self) -> float:
        x = self.crop(self.source.next_batch().audio.to(self.device))  # (B, C, n)
        k = round(self.cfg.autoencoder.event_crops * x.shape[0])
        if k:  # the last k crops become isolated events
            x = torch.cat([x[: x.shape[0] - k], self.event_crops(k, x.shape[-1]).to(x)])
        total, parts, x_hat = self.losses_for(x, exact=k)
        if self.disc is not None:
            c = self.cfg.autoencoder
            # discriminator (hinge)
            d_loss = sum(F.relu(1 - r[0]).mean() + F.relu(1 + f[0]).mean()
                         for r, f in zip(self.disc(x), self.disc(x_hat.detach())))
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()
            real, fake = self.disc(x), self.disc(x_hat)
            g_adv = sum(-f[0].mean() for f in fake)
            fm = sum(F.l1_loss(ff, rf.detach()) for r, f in zip(real, fake) for rf, ff in zip(r[1], f[1]))
            total = total + c.adv_weight * g_adv + c.feature_matching * fm
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        if self.cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_([p for p in self.ae.parameters() if p.requires_grad],
                                           self.cfg.optim.grad_clip)
        self.opt.step()
        self.sched.step()
        self.step += 1
        loss = float(total.detach())
        self.losses.append(loss)
        return loss

    def save_checkpoint(self) -> Path:
        tensors = {f"ae.{k}": v for k, v in self.ae.state_dict().items()}
        opt_t, skel = flatten_optimizer_state(self.opt.state_dict())
        tensors.update(opt_t)
        rng_t, rng_meta = capture_rng({"step": self.gen})
        tensors.update(rng_t)
        state = {"optimizer": skel, "scheduler": self.sched.state_dict(), "losses": self.losses,
                 "data": self.source.state_dict(), "rng": rng_meta}
        if self.disc is not None:
            tensors.update({f"disc.{k}": v for k, v in self.disc.state_dict().items()})
            dt, dskel = flatten_optimizer_state(self.opt_d.state_dict(), prefix="optim_d")
            tensors.update(dt)
            state["optimizer_d"] = dskel
        return self.ckpt.save(self.step, tensors, state)

    def load_checkpoint(self, path: Path) -> None:
        tensors, state = CheckpointManager.load(path)
        self.ae.load_state_dict({k[3:]: v for k, v in tensors.items() if k.startswith("ae.")})
        self.opt.load_state_dict(unflatten_optimizer_state(tensors, state["optimizer"]))
        self.sched.load_state_dict(state["scheduler"])
        if self.disc is not None and "optimizer_d" in state:
            self.disc.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("disc.")})
            self.opt_d.load_state_dict(unflatten_optimizer_state(tensors, state["optimizer_d"]))
        self.source.load_state_dict(state["data"])
        restore_rng(tensors, state["rng"], {"step": self.gen})
        self.losses = list(state["losses"])
        self.step = int(state["step"])

    def fit(self, max_steps: int | None = None) -> list[float]:
        target = max_steps if max_steps is not None else self.cfg.max_steps
        self.ckpt.resume(self.load_checkpoint, self.cfg.checkpoint.resume)
        from tqdm.auto import tqdm

        bar = tqdm(total=target, initial=self.step, desc="autoencoder", disable=not self.cfg.log.progress)
        t0, first = time.perf_counter(), self.step
        while self.step < target:
            loss = self.train_step()
            if not math.isfinite(loss):
                raise FloatingPointError(f"autoencoder loss is {loss} at step {self.step}")
            bar.set_postfix(loss=f"{loss:.4f}")
            bar.update(1)
            if not self.cfg.log.progress and self.step % self.cfg.log.every == 0:
                log.info("autoencoder step %d: loss=%.4f (%.2f steps/s)", self.step, loss,
                         (self.step - first) / max(time.perf_counter() - t0, 1e-9))
            if self.step % self.cfg.checkpoint.every == 0 or self.step == target:
                self.save_checkpoint()
            elif time_up(t0, self.cfg.max_minutes):
                self.save_checkpoint()
                break
        bar.close()
        return self.losses

    def export(self, path: str | Path) -> Path:
        path = Path(path)
        self.ae.save_weights(path)
        return path


def autoencoder_main(args) -> int:
    from audiox.train.cli import _source
    from audiox.train.config import get_train_config

    cfg = get_train_config(args.config, args.overrides)
    trainer = AutoencoderTrainer(cfg, _source(cfg, 0, 1))
    trainer.fit()
    out = Path(args.out or Path(cfg.checkpoint.dir) / "autoencoder.safetensors")
    trainer.export(out)
    print(f"exported the autoencoder to {out} (use model.autoencoder.pretrained={out})")
    return 0
