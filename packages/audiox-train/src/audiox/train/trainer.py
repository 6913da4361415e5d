"""The AudioX-Base teacher trainer (paper Sec. IV-B): flow matching on autoencoder latents.

One training step, per micro-batch of the task mixture:

1. ``z0 = E(A)`` with the frozen autoencoder (no gradients).
2. Encoders -> modality features; condition dropout for classifier-free guidance (per modality and all at
   once) -> MAF -> ``H_c``. Missing modalities are zero-padded by the model.
3. ``t`` ~ uniform or logit-normal, ``z1 ~ N(0, I)``, ``z_t = t z1 + (1 - t) z0``;
   loss = ``|| v(z_t, t, H_c) - (z1 - z0) ||^2`` (Eq. 4).
4. Engine backward/step (accumulation, clipping, DeepSpeed when distributed); EMA update per optimiser step.

All randomness of a step (timesteps, noise, dropout) comes from one ``torch.Generator`` that is saved in the
checkpoint with the model, optimiser, scheduler, EMA and data position, so a resumed run reproduces the
losses of an uninterrupted one exactly (on CPU).
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch

from audiox.core import AudioXModel, flow
from audiox.core.conditioning import sample_drop_mask
from audiox.core.checkpoint import save_pretrained
from audiox.data.batch import TrainBatch

from audiox.train.checkpoint import (
    CheckpointManager,
    capture_rng,
    flatten_optimizer_state,
    restore_rng,
    unflatten_optimizer_state,
)
from audiox.train.config import TrainConfig
from audiox.train.ema import EMA
from audiox.train.engine import Engine, barrier, resolve_device, time_up
from audiox.train.logging import RunLogger
from audiox.train.losses import flow_matching_loss
from audiox.train.sources import BatchSource

__all__ = ["TeacherTrainer", "export_pretrained", "euler_cfg_sample"]

log = logging.getLogger("audiox.train")


def export_pretrained(model: AudioXModel, ema: EMA | None, path: str | Path) -> Path:
    """Write the EMA weights (or the raw ones without EMA) as an ``AudioXModel.from_pretrained`` folder."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if ema is not None:
        for k, v in ema.shadow.items():
            state[k] = v.to(state[k].dtype)
    return save_pretrained(model, path, state_dict=state)


@torch.no_grad()
def euler_cfg_sample(model: AudioXModel, batch: TrainBatch, steps: int, cfg_scale: float,
                     generator: torch.Generator) -> torch.Tensor:
    """A plain Euler + CFG sampler for training-time previews (audiox-infer has the full samplers)."""
    feats = model.encode_modalities(batch.inputs)
    cond = model.fuse(feats)
    uncond = model.unconditional(feats)
    both = type(cond).cat([cond, uncond])
    b = batch.batch_size
    shape = (b, model.config.autoencoder.latent_dim, model.config.latent_length)
    z = torch.randn(shape, generator=generator).to(model.device, model.dtype)
    grid = flow.time_grid(steps, device=model.device)
    for i in range(steps):
        t = grid[i].expand(2 * b)
        v_c, v_u = model(torch.cat([z, z]), t, both).chunk(2)
        v = v_u + cfg_scale * (v_c - v_u)
        z = flow.euler_step(z, v, grid[i], grid[i + 1])
    return model.autoencoder.decode(z).clamp(-1, 1)


class TeacherTrainer:
    def __init__(
        self,
        cfg: TrainConfig,
        source: BatchSource,
        *,
        model: AudioXModel | None = None,
        val_source: BatchSource | None = None,
        run_dir: str | Path | None = None,
        log: bool = True,
    ) -> None:
        """``log=False``: no run log (``audiox-train export`` reads a run; it must not rewrite its train_config.json)."""
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.model = (model if model is not None else AudioXModel(cfg.model)).to(self.device)
        self.model.train()
        trainable = {id(p) for p in self.model.denoiser_parameters()}
        named = [(n, p) for n, p in self.model.named_parameters() if id(p) in trainable]
        self.engine = Engine(
            self.model, named, cfg.optim, cfg.schedule, cfg.deepspeed,
            micro_batch_size=cfg.data.batch_size, device=self.device,
        )
        self.ema = EMA(named, cfg.ema.decay, cfg.ema.start_step)
        self.source = source
        self.val_source = val_source
        self.run_dir = Path(run_dir or cfg.checkpoint.dir)
        self.ckpt = CheckpointManager(self.run_dir / "checkpoints", cfg.checkpoint.keep_last)
        self.gen = torch.Generator().manual_seed(cfg.seed * 1000 + self.engine.rank)
        self.step = 0  # optimiser steps done
        self.losses: list[float] = []  # per optimiser step (mean over micro-batches)
        self.logger = RunLogger(self.run_dir, cfg, enabled=self.engine.is_main and log)

    # One micro-batch ----------------------------------------------------------------------------------
    def compute_loss(self, batch: TrainBatch) -> torch.Tensor:
        cfg = self.cfg
        model = self.engine.module
        batch = batch.to(self.device)
        b = batch.batch_size
        if batch.latents is not None:  # cached by `audiox-train encode-latents` (data.latents=true)
            z0 = batch.latents.to(self.device, model.dtype)  # (B, C, T)
        else:
            with torch.no_grad():
                z0 = model.autoencoder.encode(model.autoencoder.pad_to_hop(batch.audio))  # (B, C, T)
        feats = model.encode_modalities(batch.inputs)
        d = cfg.dropout
        drop = sample_drop_mask(b, p_text=d.p_text, p_video=d.p_video, p_audio=d.p_audio, p_all=d.p_all,
                                generator=self.gen).to(self.device)
        cond = model.fuse(feats, drop)
        t = flow.sample_timesteps(b, kind=cfg.flow.timesteps, mean=cfg.flow.mean, std=cfg.flow.std, generator=self.gen)
        z1 = torch.randn(z0.shape, generator=self.gen)
        return flow_matching_loss(model, z0, cond, t.to(self.device), z1.to(self.device, z0.dtype))

    def train_step(self) -> float:
        """One optimiser step (``grad_accum`` micro-batches). Returns the mean loss."""
        total = 0.0
        for _ in range(self.cfg.optim.grad_accum):
            loss = self.compute_loss(self.source.next_batch())
            self.engine.backward(loss)
            total += float(loss.detach())
            stepped = self.engine.step()
        assert stepped, "the engine must step at the accumulation boundary"
        self.step += 1
        if self.step % self.cfg.ema.every == 0:
            self.ema.update(self.step)
        mean = total / self.cfg.optim.grad_accum
        self.losses.append(mean)
        return mean

    # Checkpoints ----------------------------------------------------------------------------------
    def save_checkpoint(self) -> Path | None:
        tensors: dict[str, torch.Tensor] = {f"model.{n}": p.detach() for n, p in self.engine.named_params}
        tensors.update({f"ema.{k}": v for k, v in self.ema.state_dict().items()})
        state: dict[str, Any] = {
            "scheduler": self.engine.scheduler.state_dict(),
            "losses": self.losses,
            "data": self.source.state_dict(),
            "engine_micro": self.engine.micro,
            "config": json.loads(self.cfg.to_json()),
        }
        if self.engine.ds_engine is None:
            opt_t, opt_skel = flatten_optimizer_state(self.engine.optimizer_state())
            tensors.update(opt_t)
            state["optimizer"] = opt_skel
        rng_t, rng_meta = capture_rng({"step": self.gen})
        tensors.update(rng_t)
        state["rng"] = rng_meta
        staging = None
        if self.engine.ds_engine is not None:
            staging = self.ckpt.staging_dir(self.step) if self.engine.is_main else self.ckpt.dir / f".step-{self.step:08d}.tmp-shared"
            barrier()
            self.engine.save_extra(staging)
            barrier()
        path = None
        if self.engine.is_main:
            path = self.ckpt.save(self.step, tensors, state, tmp=staging)
        barrier()
        return path

    def load_checkpoint(self, path: str | Path) -> None:
        tensors, state = CheckpointManager.load(path)
        own = dict(self.model.named_parameters())
        extra = sorted(k for k in tensors if k.startswith("model.") and k[len("model."):] not in own)
        if extra:  # e.g. a run started with switches (model.maf.frame_aligned=true) read without them
            raise ValueError(f"{path} holds {len(extra)} weights this model lacks ({extra[0]}): give the run's "
                             "model.* switches again")
        with torch.no_grad():
            for k, v in tensors.items():
                if k.startswith("model."):
                    own[k[len("model."):]].copy_(v)
        self.ema.load_state_dict({k[len("ema."):]: v for k, v in tensors.items() if k.startswith("ema.")})
        if self.engine.ds_engine is None:
            self.engine.load_optimizer_state(unflatten_optimizer_state(tensors, state["optimizer"]))
        else:
            self.engine.load_extra(Path(path))
        self.engine.scheduler.load_state_dict(state["scheduler"])
        self.engine.micro = int(state.get("engine_micro", 0))
        self.source.load_state_dict(state["data"])
        restore_rng(tensors, state["rng"], {"step": self.gen})
        self.losses = list(state["losses"])
        self.step = int(state["step"])
        log.info("resumed from %s at step %d", path, self.step)

    def maybe_resume(self) -> bool:
        return self.ckpt.resume(self.load_checkpoint, self.cfg.checkpoint.resume)

    # Validation and previews -------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> float | None:
        if self.val_source is None:
            return None
        gen_state = self.gen.get_state()
        self.gen.manual_seed(12345)  # the same noise and timesteps at every validation
        self.model.eval()
        losses = [float(self.compute_loss(self.val_source.next_batch())) for _ in range(self.cfg.log.val_batches)]
        self.model.train()
        self.gen.set_state(gen_state)
        return sum(losses) / len(losses)

    def write_samples(self, batch: TrainBatch) -> list[Path]:
        import soundfile as sf

        out_dir = self.run_dir / "samples"
        out_dir.mkdir(parents=True, exist_ok=True)
        self.model.eval()
        audio = euler_cfg_sample(self.model, batch.to(self.device), self.cfg.log.sample_steps, self.cfg.log.sample_cfg,
                                 torch.Generator().manual_seed(0))
        self.model.train()
        paths = []
        for i in range(audio.shape[0]):
            p = out_dir / f"step-{self.step:08d}-{i}.wav"
            tmp = p.with_suffix(".tmp.wav")
            sf.write(str(tmp), audio[i].float().cpu().numpy().T, self.model.sample_rate)
            tmp.replace(p)
            paths.append(p)
        return paths

    # The loop ----------------------------------------------------------------------------------------
    def fit(self, max_steps: int | None = None, on_step: Callable[[int, float], None] | None = None) -> list[float]:
        cfg = self.cfg
        target = max_steps if max_steps is not None else cfg.max_steps
        self.maybe_resume()
        bar = self.logger.progress(total=target, initial=self.step)
        t0, seen = time.perf_counter(), 0
        while self.step < target:
            loss = self.train_step()
            if not math.isfinite(loss):
                raise FloatingPointError(f"loss is {loss} at step {self.step}")
            seen += cfg.data.batch_size * cfg.optim.grad_accum * self.engine.world_size
            if on_step is not None:
                on_step(self.step, loss)
            if self.step % cfg.log.every == 0 or self.step == target:
                rate = seen / max(time.perf_counter() - t0, 1e-9)
                self.logger.scalars(self.step, {"train/loss": loss, "train/lr": self.engine.lr, "train/samples_per_s": rate})
                bar.set_postfix(loss=f"{loss:.4f}", samples_s=f"{rate:.1f}")
            bar.update(1)
            if cfg.log.val_every and self.step % cfg.log.val_every == 0:
                val = self.validate()
                if val is not None:
                    self.logger.scalars(self.step, {"val/loss": val})
            if cfg.log.sample_every and self.step % cfg.log.sample_every == 0 and self.engine.is_main:
                batch = (self.val_source or self.source).next_batch()
                self.logger.audio(self.step, self.write_samples(batch))
            if self.step % cfg.checkpoint.every == 0 or self.step == target:
                self.save_checkpoint()
            elif time_up(t0, cfg.max_minutes):
                log.info("max_minutes=%g spent at step %d: checkpointing and stopping", cfg.max_minutes, self.step)
                self.save_checkpoint()
                break
        bar.close()
        self.logger.close()
        return self.losses

    def export(self, path: str | Path) -> Path | None:
        if not self.engine.is_main:
            return None
        return export_pretrained(self.model, self.ema, path)
