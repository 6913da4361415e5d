import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from audiox.core import AudioXModel, flow
from audiox.core.conditioning import sample_drop_mask
from audiox.train import FixedBatchSource, TeacherTrainer, get_train_config, lr_factor, synthetic_batch
from audiox.train.config import ScheduleConfig


def test_loss_equals_eq4_by_hand(fast_cfg):
    batch = synthetic_batch(fast_cfg.model, 2, with_video=False)
    tr = TeacherTrainer(fast_cfg, FixedBatchSource(batch))
    for p in tr.model.dit.parameters():  # a non-trivial velocity field
        torch.nn.init.normal_(p, std=0.05)
    state = tr.gen.get_state()
    loss = tr.compute_loss(batch)
    # by hand, replaying the same random draws in the same order
    g = torch.Generator()
    g.set_state(state)
    m = tr.model
    z0 = m.autoencoder.encode(m.autoencoder.pad_to_hop(batch.audio))
    d = fast_cfg.dropout
    drop = sample_drop_mask(2, p_text=d.p_text, p_video=d.p_video, p_audio=d.p_audio, p_all=d.p_all, generator=g)
    cond = m.fuse(m.encode_modalities(batch.inputs), drop)
    t = flow.sample_timesteps(2, kind=fast_cfg.flow.timesteps, generator=g)
    z1 = torch.randn(z0.shape, generator=g)
    z_t = t[:, None, None] * z1 + (1 - t[:, None, None]) * z0
    expected = ((m(z_t, t, cond) - (z1 - z0)) ** 2).mean()
    torch.testing.assert_close(loss, expected)


def test_debug_model_fits_a_fixed_batch(fast_cfg):
    fast_cfg.checkpoint.every = 10**6
    tr = TeacherTrainer(fast_cfg, FixedBatchSource(synthetic_batch(fast_cfg.model, 2, with_video=False)))
    losses = tr.fit(max_steps=120)
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.2 * first, (first, last)


def test_condition_dropout_rates(fast_cfg):
    fast_cfg.dropout.p_text, fast_cfg.dropout.p_video, fast_cfg.dropout.p_audio, fast_cfg.dropout.p_all = 0.3, 0.5, 0.0, 0.2
    batch = synthetic_batch(fast_cfg.model, 2, with_video=False)
    tr = TeacherTrainer(fast_cfg, FixedBatchSource(batch))
    seen = []
    real_fuse = tr.model.fuse
    tr.model.fuse = lambda feats, drop=None: (seen.append(drop.clone()), real_fuse(feats, drop))[1]
    with torch.no_grad():
        for _ in range(150):
            tr.compute_loss(batch)
    drops = torch.cat(seen).float()  # (300, 3)
    rate = drops.mean(0)
    assert abs(rate[0] - (0.3 + 0.2 - 0.3 * 0.2)) < 0.09
    assert abs(rate[1] - (0.5 + 0.2 - 0.5 * 0.2)) < 0.09
    assert abs(rate[2] - 0.2) < 0.07
    assert abs(drops.all(1).float().mean() - 0.2) < 0.07


def test_stop_and_resume_reproduces_losses(fast_cfg, tmp_path):
    batch = synthetic_batch(fast_cfg.model, 2, with_video=False)
    fast_cfg.checkpoint.dir = str(tmp_path / "a")
    full = TeacherTrainer(fast_cfg, FixedBatchSource(batch)).fit(max_steps=6)
    fast_cfg.checkpoint.dir = str(tmp_path / "b")
    first = TeacherTrainer(fast_cfg, FixedBatchSource(batch))
    first.fit(max_steps=3)
    second = TeacherTrainer(fast_cfg, FixedBatchSource(batch))  # a fresh process would do the same
    resumed = second.fit(max_steps=6)
    assert resumed == full  # bitwise equal floats
    assert second.source.position == 6


def test_export_loads_in_core_with_ema_weights(fast_cfg, tmp_path):
    tr = TeacherTrainer(fast_cfg, FixedBatchSource(synthetic_batch(fast_cfg.model, 2, with_video=False)))
    tr.fit(max_steps=3)
    path = tr.export(tmp_path / "export")
    loaded = AudioXModel.from_pretrained(path)
    own = dict(loaded.named_parameters())
    for name, shadow in tr.ema.shadow.items():
        assert torch.equal(own[name], shadow.to(own[name].dtype)), name
    raw = dict(tr.model.named_parameters())
    assert any(not torch.equal(raw[n], own[n]) for n in tr.ema.shadow)  # EMA differs from the raw weights


def test_schedules():
    inv = lr_factor(ScheduleConfig(kind="inverse", warmup=0.99, inv_gamma=1e6, power=0.5))
    assert math.isclose(inv(0), (1 - 0.99) * 1.0)
    assert math.isclose(inv(1000), (1 - 0.99**1001) * (1 + 1000 / 1e6) ** -0.5)
    exp = lr_factor(ScheduleConfig(kind="exponential", warmup=0.0, decay=0.9))
    assert math.isclose(exp(3), 0.9**3)
    const = lr_factor(ScheduleConfig(kind="constant", warmup=0.5))
    assert math.isclose(const(1), 0.75) and const(100) > 0.999


def test_gradient_accumulation_and_clipping(tmp_path):
    """With grad_accum=2 the optimiser steps every second micro-batch, on the mean of the two gradients."""
    cfg = get_train_config("debug", ["optim.lr=1e-2", "optim.grad_clip=0", "optim.grad_accum=2"])
    cfg.checkpoint.dir = str(tmp_path)
    batch = synthetic_batch(cfg.model, 2, with_video=False)
    tr = TeacherTrainer(cfg, FixedBatchSource(batch))
    for p in tr.model.dit.parameters():
        torch.nn.init.normal_(p, std=0.05)
    params = [p for _, p in tr.engine.named_params]
    tr.gen.manual_seed(0)
    l1 = tr.compute_loss(batch)
    g1 = torch.autograd.grad(l1, params, retain_graph=True, allow_unused=True)
    tr.engine.backward(l1)
    assert not tr.engine.step()
    l2 = tr.compute_loss(batch)
    g2 = torch.autograd.grad(l2, params, retain_graph=True, allow_unused=True)
    tr.engine.backward(l2)
    accumulated = [None if p.grad is None else p.grad.clone() for p in params]
    before = [p.detach().clone() for p in params]
    assert tr.engine.step()
    for a, b, acc in zip(g1, g2, accumulated):
        if a is not None:
            torch.testing.assert_close(acc, (a + b) / 2)
    assert any(not torch.equal(b, p) for b, p in zip(before, params))
    assert all(p.grad is None for p in params)  # zeroed after the step
    # clipping bounds the global norm
    cfg2 = get_train_config("debug", ["optim.grad_clip=1e-3"])
    cfg2.checkpoint.dir = str(tmp_path / "c")
    tr2 = TeacherTrainer(cfg2, FixedBatchSource(batch))
    for p in tr2.model.dit.parameters():
        torch.nn.init.normal_(p, std=0.05)
    seen = {}
    real = tr2.engine.optimizer.step
    tr2.engine.optimizer.step = lambda *a, **k: (seen.setdefault("norm", torch.nn.utils.get_total_norm([p.grad for _, p in tr2.engine.named_params if p.grad is not None])), real(*a, **k))[1]
    tr2.train_step()
    assert seen["norm"] <= 1e-3 * 1.01


@pytest.mark.slow
def test_sigkill_mid_run_resumes_from_last_complete_checkpoint(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "audiox.train.cli", "--config", "debug", "data.shards=synthetic", "data.batch_size=2",
           "max_steps=400", "checkpoint.every=2", "checkpoint.keep_last=2", f"checkpoint.dir={run}", "log.progress=false"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = run / "checkpoints"
    deadline = time.time() + 480  # generous: a loaded CI machine is slow to import torch in a subprocess
    while time.time() < deadline and proc.poll() is None:
        done = [p for p in ckpts.glob("step-*") if (p / "COMPLETE").exists()] if ckpts.exists() else []
        if len(done) >= 2:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the training run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    from audiox.train.checkpoint import CheckpointManager

    latest = CheckpointManager(ckpts).latest()
    assert latest is not None
    step = int(latest.name.split("-")[1])
    cfg = get_train_config("debug", ["data.shards=synthetic", "data.batch_size=2", "checkpoint.every=2", f"checkpoint.dir={run}"])
    tr = TeacherTrainer(cfg, FixedBatchSource(synthetic_batch(cfg.model, 2, seed=cfg.seed)))
    assert tr.maybe_resume() and tr.step == step
    assert len(tr.losses) == step
    tr.fit(max_steps=step + 2)
    assert tr.step == step + 2
    assert not list(ckpts.glob(".step-*"))  # partial folders cleaned up


def test_max_minutes_checkpoints_and_stops_then_resumes(fast_cfg, tmp_path):
    """A spent wall-clock budget ends the run after the current step with a complete checkpoint; the next
    invocation resumes from it and reaches max_steps with the losses of an uninterrupted run."""
    batch = synthetic_batch(fast_cfg.model, 2, with_video=False)
    fast_cfg.checkpoint.dir = str(tmp_path / "full")
    full = TeacherTrainer(fast_cfg, FixedBatchSource(batch)).fit(max_steps=3)
    fast_cfg.checkpoint.dir = str(tmp_path / "budget")
    fast_cfg.max_minutes = 1e-9
    first = TeacherTrainer(fast_cfg, FixedBatchSource(batch))
    assert len(first.fit(max_steps=3)) == 1
    assert first.ckpt.latest() is not None and first.ckpt.latest().name == "step-00000001"
    fast_cfg.max_minutes = 0.0
    assert TeacherTrainer(fast_cfg, FixedBatchSource(batch)).fit(max_steps=3) == full


def test_init_from_fine_tunes_an_exported_model(tmp_path):
    """``init_from=FOLDER`` starts the run from the folder's config and weights (fine-tuning); its architecture
    replaces the preset's, model.* overrides are switches on top of it (refused where the weights do not fit), and a
    checkpoint in checkpoint.dir still wins."""
    from audiox.train.cli import main

    base = ["--config", "debug", "data.shards=synthetic", "data.batch_size=2", "log.progress=false", "log.tensorboard=false"]
    src = tmp_path / "src"
    assert main([*base, "model.dit.depth=1", "max_steps=2", f"checkpoint.dir={tmp_path / 'a'}", "--out", str(src)]) == 0
    start = AudioXModel.from_pretrained(src)
    assert start.config.dit.depth == 1 and get_train_config("debug").model.dit.depth != 1

    # A vanishing learning rate: the fine-tuned export (EMA from the first step on) is the folder's weights.
    tuned = tmp_path / "tuned"
    args = [*base, f"init_from={src}", "optim.lr=1e-12", "ema.decay=0.0", "max_steps=1", f"checkpoint.dir={tmp_path / 'b'}"]
    assert main([*args, "--out", str(tuned)]) == 0
    after = AudioXModel.from_pretrained(tuned)
    assert after.config.dit.depth == 1
    ref = dict(start.named_parameters())
    for name, p in after.named_parameters():
        torch.testing.assert_close(p, ref[name], rtol=0, atol=1e-6, msg=name)

    # Without init_from, the same command starts from a fresh initialisation.
    fresh = tmp_path / "fresh"
    assert main([*base, "model.dit.depth=1", "seed=1", "optim.lr=1e-12", "ema.decay=0.0", "max_steps=1",
                 f"checkpoint.dir={tmp_path / 'c'}", "--out", str(fresh)]) == 0
    other = dict(AudioXModel.from_pretrained(fresh).named_parameters())
    assert any(not torch.allclose(other[n], ref[n]) for n in ref if n.startswith("dit."))

    # `export` of a fine-tuning run rebuilds the folder's architecture, then loads the run's last checkpoint
    again = tmp_path / "again"
    assert main(["export", *base, f"init_from={src}", f"checkpoint.dir={tmp_path / 'b'}", "--out", str(again)]) == 0
    exported = dict(AudioXModel.from_pretrained(again).named_parameters())
    assert all(torch.equal(p, exported[n]) for n, p in after.named_parameters())

    assert main([*base, f"init_from={src}", "model.dit.depth=2", f"checkpoint.dir={tmp_path / 'd'}"]) == 2
    switched = tmp_path / "switched"  # a switch whose new weights start at zero: the run starts where the folder was
    assert main([*args[:-1], f"checkpoint.dir={tmp_path / 'f'}", "model.maf.global_text=true",
                 "model.maf.single_null=true", "--out", str(switched)]) == 0
    sw = AudioXModel.from_pretrained(switched)
    assert sw.config.maf.global_text and sw.config.maf.single_null and sw.config.dit.depth == 1
    assert sw.maf.global_text.weight.abs().max() <= 1e-6
    # `export` reads the run and leaves its record alone; without the run's switches it stops with a one-line error
    record = (tmp_path / "f" / "train_config.json").read_text()
    assert main(["export", *base, f"init_from={src}", f"checkpoint.dir={tmp_path / 'f'}", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()
    assert main(["export", *base, f"init_from={src}", f"checkpoint.dir={tmp_path / 'f'}", "model.maf.global_text=true",
                 "model.maf.single_null=true", "--out", str(tmp_path / "y")]) == 0
    assert (tmp_path / "f" / "train_config.json").read_text() == record
    assert main([*base, f"init_from={tmp_path / 'missing'}", f"checkpoint.dir={tmp_path / 'e'}"]) == 2
