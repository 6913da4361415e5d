"""AudioX-Turbo distillation loop (paper Sec. V, VI-A) on audiox-train's engine, EMA and checkpoints.

Per student update ``s`` (``max_steps`` of them):

1. A batch gives the condition features and real latents ``z0`` (``prepare``: for AudioXModel the frozen
   encoders and ``autoencoder.encode``).
2. ``floor((s+1) F / S) - floor(s F / S)`` fake-model updates (``F = dmd.fake_updates``, ``S = dmd.student_updates``;
   paper 1:5, DMD2 5:1): a fresh student sample without gradients, Eq. 11-12 on ``sg(z0_hat)``; with the GAN
   term the discriminator head takes a hinge step (Eq. 13) on real vs student latents re-noised at
   ``t_d ~ U(0, t_max)``.
3. One student update: draw ``k ~ P(k)``, roll out steps ``< k`` without gradients (denoise-renoise), take step
   ``k`` with gradients (Eq. 5), DM loss against the CFG teacher and the fake model (Eq. 6-10, DMD2 weighting),
   plus ``lambda_adv`` times the generator hinge loss (Eq. 14) -> Eq. 15; with ``regression.weight > 0`` also DMD's
   paired regression term on a batch of stored teacher samples (:mod:`audiox.distill.pairs`). EMA of the student.

With ``guided.weight > 0`` a student update is instead guided velocity distillation (Meng et al. 2023, stage one):
the data batch's conditions, fresh noise, ``k ~ P(k)`` Euler steps on ``T_N`` to a state ``z_{t_k}`` (the teacher's
with CFG or the student's own, ``guided.states``), and the student's velocity there pulled to the teacher's CFG
velocity; the student is exported with the Euler sampler.

The teacher (and hence the discriminator backbone) is frozen. All randomness comes from one generator saved in
the checkpoint with every model, optimiser, scheduler, the EMA and the data position: resume is exact on CPU.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from audiox.core import flow
from audiox.train import CheckpointManager, EMA, Engine, RunLogger, barrier, export_pretrained, resolve_device
from audiox.train.checkpoint import capture_rng, flatten_optimizer_state, restore_rng, unflatten_optimizer_state
from audiox.train.engine import time_up

from audiox.distill.config import DistillConfig
from audiox.distill.pairs import PairSource
from audiox.distill.dmd import (
    DiffusionDiscriminator,
    cfg_velocity,
    d_hinge_loss,
    dmd_loss,
    fake_flow_loss,
    g_hinge_loss,
    match_rms,
    null_drop,
    per_sample_rms,
    sample_step_index,
    student_sample,
)

__all__ = ["DistillTrainer", "audiox_prepare", "trainable_named_parameters", "hidden_width"]

log = logging.getLogger("audiox.distill")


def trainable_named_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """What trains in a copy of the teacher: ``denoiser_parameters()`` (AudioXModel: MAF + MMDiT) or everything."""
    if hasattr(model, "denoiser_parameters"):
        ids = {id(p) for p in model.denoiser_parameters()}
        return [(n, p) for n, p in model.named_parameters() if id(p) in ids]
    return list(model.named_parameters())


def hidden_width(model: nn.Module) -> int:
    """Width D of the hidden states returned by ``forward_features``."""
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "dit"):
        return int(config.dit.hidden_size)
    return int(model.width)


def _depth(model: nn.Module) -> int | None:
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "dit"):
        return int(config.dit.depth)
    blocks = getattr(model, "blocks", None)
    return len(blocks) if blocks is not None else None


def audiox_prepare(teacher: nn.Module, device: torch.device) -> Callable[[Any], tuple[Any, Tensor]]:
    """TrainBatch -> (ModalityFeatures from the frozen encoders, real latents z0 = E(A)) without gradients."""

    @torch.no_grad()
    def prepare(batch: Any) -> tuple[Any, Tensor]:
        batch = batch.to(device)
        if batch.latents is not None:  # cached by `audiox-train encode-latents` (data.latents=true)
            z0 = batch.latents.to(device, teacher.dtype)  # (B, C, T)
        else:
            z0 = teacher.autoencoder.encode(teacher.autoencoder.pad_to_hop(batch.audio))  # (B, C, T)
        return teacher.encode_modalities(batch.inputs), z0

    return prepare


def _rand(shape: tuple[int, ...], g: torch.Generator, like: Tensor) -> Tensor:
    return torch.randn(shape, generator=g).to(like.device, like.dtype)


def _check_same_architecture(teacher: nn.Module, student: nn.Module) -> None:
    a, b = teacher.state_dict(), student.state_dict()
    bad = sorted(set(a) ^ set(b)) or [k for k in a if a[k].shape != b[k].shape]
    if bad:
        raise ValueError(f"the student to continue does not have the teacher's architecture (first difference: {bad[0]})")


def scale_ratio(z0_hat: Tensor, z0: Tensor) -> float:
    """``exp(mean_i log(rms(z0_hat_i) / rms(z0_i)))``: each clean estimate's scale against the true latents of its
    own condition (rms over every non-batch dim), as a geometric mean over the batch; 1 = the data's scale."""
    return float((per_sample_rms(z0_hat) / per_sample_rms(z0)).log().mean().exp())


def grad_balance(loss_a: Tensor, loss_b: Tensor, x: Tensor) -> float:
    """``||d loss_a / d x|| / ||d loss_b / d x||`` (the graph is kept for the real backward). Logged as
    ``student/adv_dm_grad`` with ``x`` the student's clean estimate: how strongly the weighted adversarial term
    (Eq. 14) pushes it against the distribution-matching term (Eq. 10); 1 = balanced."""
    (g_a,) = torch.autograd.grad(loss_a, x, retain_graph=True)
    (g_b,) = torch.autograd.grad(loss_b, x, retain_graph=True)
    return float(g_a.float().norm() / g_b.float().norm().clamp_min(1e-20))


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, device: torch.device) -> Tensor:
    return (lo + (hi - lo) * torch.rand(n, generator=g)).to(device)


class DistillTrainer:
    def __init__(self, cfg: DistillConfig, teacher: nn.Module, source: Any, *,
                 prepare: Callable[[Any], tuple[Any, Tensor]] | None = None, run_dir: str | Path | None = None,
                 student: nn.Module | None = None) -> None:
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.teacher = teacher.to(self.device).eval().requires_grad_(False)
        depth = _depth(teacher)
        if cfg.gan.enabled and depth is not None and cfg.gan.num_blocks > depth:
            raise ValueError(f"gan.num_blocks={cfg.gan.num_blocks} exceeds the teacher's {depth} blocks")
        # Student v_phi and fake model v_psi both start from the teacher v_theta; ``student`` (an earlier student of
        # the same architecture, e.g. an exported one whose run folder is gone) continues a distillation instead.
        if student is not None:
            _check_same_architecture(teacher, student)
        self.student = copy.deepcopy(self.teacher if student is None else student).to(self.device)
        self.fake = copy.deepcopy(self.teacher)
        engines = {}
        for name, model in (("student", self.student), ("fake", self.fake)):
            named = trainable_named_parameters(model)
            for _, p in named:
                p.requires_grad_(True)
            model.train()
            engines[name] = Engine(model, named, cfg.optim, cfg.schedule, cfg.deepspeed,
                                   micro_batch_size=cfg.data.batch_size, device=self.device)
        self.student_engine, self.fake_engine = engines["student"], engines["fake"]
        self.disc: DiffusionDiscriminator | None = None
        self.disc_engine: Engine | None = None
        if cfg.gan.enabled:
            self.disc = DiffusionDiscriminator(self.teacher, cfg.gan.num_blocks, hidden_width(teacher), cfg.gan.head_hidden,
                                               per_frame=cfg.gan.head == "frame")
            self.disc.to(self.device)
            self.disc_engine = Engine(self.disc, list(self.disc.named_parameters()), cfg.optim, cfg.schedule, cfg.deepspeed,
                                      micro_batch_size=cfg.data.batch_size, device=self.device)
        self.ema = EMA(self.student_engine.named_params, cfg.ema.decay, cfg.ema.start_step)
        self.source = source
        self.prepare = prepare if prepare is not None else audiox_prepare(self.teacher, self.device)
        self.grid = flow.few_step_grid(cfg.dmd.times, cfg.dmd.steps, device=self.device)  # (N+1,) decreasing
        probs = cfg.dmd.step_probs or (1.0,) * cfg.dmd.steps
        self.step_probs = torch.tensor(probs, dtype=torch.float64)
        self.run_dir = Path(run_dir or cfg.checkpoint.dir)
        self.ckpt = CheckpointManager(self.run_dir / "checkpoints", cfg.checkpoint.keep_last)
        self.gen = torch.Generator().manual_seed(cfg.seed * 1000 + self.student_engine.rank)
        reg = cfg.regression
        self.pairs = (PairSource(reg.pairs, self.device, shuffle=reg.shuffle, batch_size=reg.batch_size, seed=cfg.seed,
                                 rank=self.student_engine.rank, world_size=self.student_engine.world_size)
                      if reg.weight > 0 else None)
        self.step = 0  # student updates
        self.fake_steps = 0
        self.history: list[dict[str, float]] = []
        self.logger = RunLogger(self.run_dir, cfg, enabled=self.student_engine.is_main)

    # Pieces -----------------------------------------------------------------------------------------
    @property
    def engines(self) -> dict[str, Engine]:
        out = {"student": self.student_engine, "fake": self.fake_engine}
        if self.disc_engine is not None:
            out["disc"] = self.disc_engine
        return out

    def draw_k(self) -> int:
        return sample_step_index(self.step_probs, self.gen)

    def _noise(self, like: Tensor) -> Tensor:
        return _rand(tuple(like.shape), self.gen, like)

    def fake_update(self, feats: Any, z0_real: Tensor) -> dict[str, float]:
        """Eq. 11-12 for the fake model, and Eq. 13 for the discriminator head, on a fresh ``sg(z0_hat)``."""
        b = z0_real.shape[0]
        k = self.draw_k()
        with torch.no_grad():
            sample = student_sample(self.student, self.student.fuse(feats), self._noise(z0_real), self.grid, k,
                                    self.gen, grad=False)
        x = sample.z0_hat.detach()
        logs: dict[str, float] = {}
        if self.cfg.dmd.weight > 0:  # the fake model serves the DM term only
            tau = _uniform(b, self.cfg.dmd.tau_min, self.cfg.dmd.tau_max, self.gen, self.device)
            loss_fake = fake_flow_loss(self.fake, x, self.fake.fuse(feats), tau, self._noise(x))
            self.fake_engine.backward(loss_fake)
            self.fake_engine.step()
            logs["fake/loss"] = float(loss_fake.detach())
        if self.disc is not None:
            t_d = _uniform(b, 0.0, self.cfg.gan.t_max, self.gen, self.device)
            z_td = flow.interpolate(z0_real, self._noise(z0_real), t_d)
            xd = match_rms(x, z0_real) if self.cfg.gan.match_rms else x
            zhat_td = flow.interpolate(xd, self._noise(xd), t_d)
            with torch.no_grad():
                tcond = self.teacher.fuse(feats)
            _zero_grads(self.disc_engine)  # drop what the student's generator loss left on the head
            loss_d = d_hinge_loss(self.disc(z_td, t_d, tcond), self.disc(zhat_td, t_d, tcond))
            self.disc_engine.backward(loss_d)
            self.disc_engine.step()
            logs["disc/loss"] = float(loss_d.detach())
        self.fake_steps += 1
        return logs

    def student_loss(self, feats: Any, z0_real: Tensor, k: int, *,
                     diagnostics: bool = True) -> tuple[Tensor, dict[str, float]]:
        """Eq. 15 for one batch at step ``k``: DM loss (Eq. 6-10) + lambda_adv * generator hinge (Eq. 14).
        ``diagnostics=False`` skips ``student/adv_dm_grad`` (an extra backward through the discriminator's blocks)."""
        cfg = self.cfg
        b = z0_real.shape[0]
        sample = student_sample(self.student, self.student.fuse(feats), self._noise(z0_real), self.grid, k, self.gen)
        z0_hat = sample.z0_hat
        # the student's clean estimate against the data's scale (the bundled student's T2A latents are 2.6x the
        # data's, docs/results.md): each sample's rms against the rms of the true latents of its own condition,
        # geometric mean over the batch, so that loud music clips do not hide sparse sound effects growing louder
        logs = {"student/k": float(k), "student/scale_ratio": scale_ratio(z0_hat.detach(), z0_real)}
        loss = z0_hat.new_zeros(())
        tcond = loss_dm = None
        if cfg.dmd.weight > 0:
            tau = _uniform(b, cfg.dmd.tau_min, cfg.dmd.tau_max, self.gen, self.device)
            z_tau = flow.interpolate(z0_hat.detach(), self._noise(z0_hat), tau)  # Eq. 6
            with torch.no_grad():
                tcond, tucond = self.teacher.fuse(feats), self.teacher.fuse(feats, null_drop(b, self.device))
                v_real = cfg_velocity(self.teacher, z_tau, tau, tcond, tucond, cfg.dmd.guidance_scale)
                v_fake = self.fake(z_tau, tau, self.fake.fuse(feats))
            loss_dm, _ = dmd_loss(z0_hat, z_tau, tau, v_real, v_fake, cfg.dmd.norm_eps)
            loss = loss + cfg.dmd.weight * loss_dm
            logs["student/dm"] = float(loss_dm.detach())
        if self.disc is not None and cfg.gan.weight > 0:
            t_d = _uniform(b, 0.0, cfg.gan.t_max, self.gen, self.device)
            if tcond is None:
                with torch.no_grad():
                    tcond = self.teacher.fuse(feats)
            zd = match_rms(z0_hat, z0_real) if cfg.gan.match_rms else z0_hat
            zhat_td = flow.interpolate(zd, self._noise(zd), t_d)
            # Eq. 14 updates the generator only: the head is a constant here (no gradient reaches its weights,
            # so under ZeRO its gradient hooks fire once, in its own update, never from the student's backward)
            head = [p for p in self.disc.parameters() if p.requires_grad]
            for p in head:
                p.requires_grad_(False)
            try:
                loss_adv = g_hinge_loss(self.disc(zhat_td, t_d, tcond))
            finally:
                for p in head:
                    p.requires_grad_(True)
            loss = loss + cfg.gan.weight * loss_adv
            logs["student/adv"] = float(loss_adv.detach())
            # Eq. 15's balance where the two terms meet: the student's clean estimate
            if diagnostics and z0_hat.requires_grad and loss_dm is not None:
                logs["student/adv_dm_grad"] = grad_balance(cfg.gan.weight * loss_adv, loss_dm, z0_hat)
        logs["student/loss"] = float(loss.detach())
        return loss, logs

    def regression_loss(self) -> tuple[Tensor, dict[str, float]]:
        """DMD's regression term ``mean((z0_hat - y)^2)`` on the next stored pair batch ``(feats, z1, y)``.

        ``regression.steps="first"``: the student's step from the stored noise at ``t_N = 1`` (``z0_hat`` by Eq. 5);
        ``"all"``: a step ``k ~ P(k)``, from ``z1`` when ``k = 0``, else from ``y`` re-noised to ``t_k`` with fresh
        noise (denoise-renoise, as if the student's earlier steps had produced the teacher's sample)."""
        assert self.pairs is not None
        feats, z1, y = self.pairs.next_batch()  # z1, y: (B, C, T)
        k = 0 if self.cfg.regression.steps == "first" else self.draw_k()
        b = z1.shape[0]
        z = z1 if k == 0 else flow.renoise(y, self.grid[k], self._noise(y))
        t_k = self.grid[k]
        v = self.student(z, t_k.expand(b), self.student.fuse(feats))
        if v.shape != y.shape:
            raise ValueError(f"regression pairs have latents {tuple(y.shape[1:])}, the student makes {tuple(v.shape[1:])}")
        z0_hat = flow.clean_from_velocity(z, t_k, v)
        loss = (z0_hat - y).pow(2).mean()
        return loss, {"student/reg": float(loss.detach()), "student/reg_k": float(k),
                      "student/reg_scale_ratio": scale_ratio(z0_hat.detach(), y)}

    def guided_loss(self, feats: Any, z0_real: Tensor) -> tuple[Tensor, dict[str, float]]:
        """``mean((v_phi(z, t_k, c) - v_cfg(z, t_k, c))^2)`` at a state ``z`` reached by ``k ~ P(k)`` Euler steps on
        ``T_N`` from fresh noise (the teacher's CFG steps or the student's own, ``guided.states``); ``v_cfg`` is the
        teacher's ``v_u + s (v_c - v_u)`` with every modality dropped in ``v_u``. ``z0_real`` gives the shape and the
        data scale of the logged ``student/guided_scale_ratio`` (the student's clean estimate at ``t_k``)."""
        g = self.cfg.guided
        b = z0_real.shape[0]
        k = self.draw_k()
        z = self._noise(z0_real)  # (B, C, T) at t_N = 1
        with torch.no_grad():
            tcond, tucond = self.teacher.fuse(feats), self.teacher.fuse(feats, null_drop(b, self.device))
            scond = self.student.fuse(feats) if g.states == "student" and k > 0 else None
            for i in range(k):
                t = self.grid[i].expand(b)
                v = (cfg_velocity(self.teacher, z, t, tcond, tucond, g.scale) if scond is None
                     else self.student(z, t, scond))
                z = flow.euler_step(z, v, self.grid[i], self.grid[i + 1])
            t_k = self.grid[k].expand(b)
            v_target = cfg_velocity(self.teacher, z, t_k, tcond, tucond, g.scale)
        v = self.student(z, t_k, self.student.fuse(feats))
        loss = (v - v_target).pow(2).mean()
        z0_hat = flow.clean_from_velocity(z, self.grid[k], v.detach())
        return loss, {"student/guided": float(loss.detach()), "student/guided_k": float(k),
                      "student/guided_scale_ratio": scale_ratio(z0_hat, z0_real)}

    def train_step(self) -> dict[str, float]:
        """Fake/discriminator updates due before student update ``step``, then that student update."""
        d = self.cfg.dmd
        logs: dict[str, float] = {}
        if self.cfg.guided.weight > 0:  # guided velocity distillation: the student's only objective
            feats, z0_real = self.prepare(self.source.next_batch())
            loss_g, logs = self.guided_loss(feats, z0_real)
            loss = self.cfg.guided.weight * loss_g
            logs["student/loss"] = float(loss.detach())
        elif self.cfg.on_data:
            feats, z0_real = self.prepare(self.source.next_batch())
            n_fake = (self.step + 1) * d.fake_updates // d.student_updates - self.step * d.fake_updates // d.student_updates
            for _ in range(n_fake):
                logs.update(self.fake_update(feats, z0_real))
            logged = (self.step + 1) % self.cfg.log.every == 0  # fit() logs this update
            loss, slogs = self.student_loss(feats, z0_real, self.draw_k(), diagnostics=logged)
            logs.update(slogs)
        else:  # dmd.weight=0 without the GAN: the regression term alone, no data batch and no fake model
            loss = torch.zeros((), device=self.device)
        if self.pairs is not None:
            loss_reg, rlogs = self.regression_loss()
            loss = loss + self.cfg.regression.weight * loss_reg
            logs.update(rlogs)
            logs["student/loss"] = float(loss.detach())
        self.student_engine.backward(loss)
        self.student_engine.step()
        self.step += 1
        if self.step % self.cfg.ema.every == 0:
            self.ema.update(self.step)
        self.history.append(logs)
        return logs

    # Checkpoints (the train package's manager and formats) ---------------------------------------------
    def save_checkpoint(self) -> Path | None:
        tensors: dict[str, Tensor] = {}
        state: dict[str, Any] = {"schedulers": {}, "optimizers": {}, "micro": {}}
        for name, eng in self.engines.items():
            tensors.update({f"{name}.{n}": p.detach() for n, p in eng.named_params})
            state["schedulers"][name] = eng.scheduler.state_dict()
            state["micro"][name] = eng.micro
            if eng.ds_engine is None:
                opt_t, skel = flatten_optimizer_state(eng.optimizer_state(), prefix=f"optim_{name}")
                tensors.update(opt_t)
                state["optimizers"][name] = skel
        tensors.update({f"ema.{k}": v for k, v in self.ema.state_dict().items()})
        rng_t, rng_meta = capture_rng({"step": self.gen})
        tensors.update(rng_t)
        state.update(rng=rng_meta, data=self.source.state_dict(), history=self.history, fake_steps=self.fake_steps,
                     config=json.loads(self.cfg.to_json()))
        if self.pairs is not None:
            state["pairs"] = self.pairs.state_dict()
        staging = None
        if self.student_engine.ds_engine is not None:
            staging = self.ckpt.staging_dir(self.step) if self.student_engine.is_main else self.ckpt.dir / f".step-{self.step:08d}.tmp-shared"
            barrier()
            for name, eng in self.engines.items():
                eng.save_extra(staging / name)
            barrier()
        path = self.ckpt.save(self.step, tensors, state, tmp=staging) if self.student_engine.is_main else None
        barrier()
        return path

    def load_checkpoint(self, path: str | Path) -> None:
        tensors, state = CheckpointManager.load(path)
        with torch.no_grad():
            for name, eng in self.engines.items():
                for n, p in eng.named_params:
                    p.copy_(tensors[f"{name}.{n}"])
                if eng.ds_engine is None:
                    eng.load_optimizer_state(unflatten_optimizer_state(tensors, state["optimizers"][name]))
                else:
                    eng.load_extra(Path(path) / name)
                eng.scheduler.load_state_dict(state["schedulers"][name])
                eng.micro = int(state["micro"][name])
        self.ema.load_state_dict({k[len("ema."):]: v for k, v in tensors.items() if k.startswith("ema.")})
        self.source.load_state_dict(state["data"])
        if self.pairs is not None and "pairs" in state:
            self.pairs.load_state_dict(state["pairs"])
        restore_rng(tensors, state["rng"], {"step": self.gen})
        self.history = list(state["history"])
        self.fake_steps = int(state["fake_steps"])
        self.step = int(state["step"])
        log.info("resumed from %s at step %d", path, self.step)

    def maybe_resume(self) -> bool:
        return self.ckpt.resume(self.load_checkpoint, self.cfg.checkpoint.resume)

    # The loop ----------------------------------------------------------------------------------------
    def fit(self, max_steps: int | None = None) -> list[dict[str, float]]:
        cfg = self.cfg
        target = max_steps if max_steps is not None else cfg.max_steps
        self.maybe_resume()
        bar = self.logger.progress(total=target, initial=self.step)
        t0, done = time.perf_counter(), 0
        while self.step < target:
            logs = self.train_step()
            done += 1
            if not math.isfinite(logs["student/loss"]):
                raise FloatingPointError(f"student loss is {logs['student/loss']} at step {self.step}")
            if self.step % cfg.log.every == 0 or self.step == target:
                rate = done / max(time.perf_counter() - t0, 1e-9)
                self.logger.scalars(self.step, {**logs, "train/lr": self.student_engine.lr, "train/iters_per_s": rate})
                bar.set_postfix(loss=f"{logs['student/loss']:.4f}", it_s=f"{rate:.2f}")
            bar.update(1)
            if self.step % cfg.checkpoint.every == 0 or self.step == target:
                self.save_checkpoint()
            elif time_up(t0, cfg.max_minutes):
                log.info("max_minutes=%g spent at step %d: checkpointing and stopping", cfg.max_minutes, self.step)
                self.save_checkpoint()
                break
        bar.close()
        self.logger.close()
        return self.history

    def export(self, path: str | Path) -> Path | None:
        """The EMA student as an AudioXModel folder marked few-step: turbo sampler, N steps, T_N, no CFG (with
        ``guided.weight > 0``: the Euler sampler on the same uniform grid, no CFG)."""
        if not hasattr(self.student, "config") or not hasattr(self.student.config, "inference"):
            raise TypeError("export needs an AudioXModel student")
        if not self.student_engine.is_main:
            return None
        from audiox.core.config import InferenceConfig

        guided = self.cfg.guided.weight > 0
        self.student.config.inference = InferenceConfig(
            sampler="euler" if guided else "turbo", steps=self.cfg.dmd.steps, guidance_scale=1.0, time_shift=1.0,
            few_step_times=None if guided else tuple(float(x) for x in self.grid.tolist()),
        )
        return export_pretrained(self.student, self.ema, path)


def _zero_grads(engine: Engine | None) -> None:
    if engine is not None:
        for _, p in engine.named_params:
            p.grad = None
