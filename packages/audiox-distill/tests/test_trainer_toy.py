"""The distillation loop on the toy velocity model (same code path as AudioXModel): invariants and resume."""

import math

import pytest
import torch

from audiox.distill.config import get_distill_config
from audiox.distill.toy import GaussianMixture, ToySource, ToyVelocity
from audiox.distill.trainer import DistillTrainer

MIX = GaussianMixture()


def _trainer(tmp_path, *overrides, seed=0):
    torch.manual_seed(seed)
    teacher = ToyVelocity(MIX.num_classes, width=16, depth=2)
    cfg = get_distill_config("debug", ["device=cpu", f"checkpoint.dir={tmp_path}", "gan.num_blocks=2",
                                       "gan.head_hidden=8", "data.batch_size=8", *overrides])
    return DistillTrainer(cfg, teacher, ToySource(MIX, 8), prepare=lambda b: b)


def _snap(params):
    return [p.detach().clone() for p in params]


def test_models_start_from_teacher_and_teacher_backbone_never_change(tmp_path):
    tr = _trainer(tmp_path)
    t0 = _snap(tr.teacher.parameters())
    for a, b, c in zip(tr.teacher.parameters(), tr.student.parameters(), tr.fake.parameters()):
        assert torch.equal(a, b) and torch.equal(a, c)
    s0, f0, h0 = _snap(tr.student.parameters()), _snap(tr.fake.parameters()), _snap(tr.disc.parameters())
    for _ in range(3):
        tr.train_step()
    assert all(torch.equal(a, b) for a, b in zip(t0, tr.teacher.parameters()))  # teacher = discriminator backbone
    assert all(p.grad is None for p in tr.teacher.parameters())
    assert tr.disc.backbone is tr.teacher and not any(p is q for p in tr.disc.parameters() for q in tr.teacher.parameters())
    for before, model in ((s0, tr.student), (f0, tr.fake), (h0, tr.disc)):
        assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_fake_changes_only_through_its_own_loss(tmp_path):
    tr = _trainer(tmp_path)
    feats, z0 = tr.prepare(tr.source.next_batch())
    f0 = _snap(tr.fake.parameters())
    loss, _ = tr.student_loss(feats, z0, k=2)
    tr.student_engine.backward(loss)
    assert all(p.grad is None for p in tr.fake.parameters())  # the student's loss sends nothing to v_psi
    tr.student_engine.step()
    assert all(torch.equal(a, b) for a, b in zip(f0, tr.fake.parameters()))
    s_before = _snap(tr.student.parameters())
    tr.fake_update(feats, z0)
    assert any(not torch.equal(a, b) for a, b in zip(f0, tr.fake.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(s_before, tr.student.parameters()))  # fake step leaves student alone


def test_student_gradient_only_from_step_k_and_dm_gan_terms(tmp_path):
    tr = _trainer(tmp_path)
    feats, z0 = tr.prepare(tr.source.next_batch())
    calls = []
    tr.student.register_forward_hook(lambda m, a, o: calls.append((torch.is_grad_enabled(), a[1][0].item())))
    fake_calls = []
    tr.fake.register_forward_hook(lambda m, a, o: fake_calls.append(torch.is_grad_enabled()))
    state = tr.gen.get_state()
    loss, logs = tr.student_loss(feats, z0, k=3)
    # rollout steps 0..2 without grad, step k=3 with grad; the fake model is evaluated without graph
    assert calls == [(False, 1.0), (False, 0.75), (False, 0.5), (True, 0.25)]
    assert fake_calls == [False]
    loss.backward()
    g_total = [p.grad.clone() for p in tr.student.parameters()]
    # Eq. 15 = DM + lambda_adv * adv: the same draws with lambda_adv = 0 give the DM-only gradient,
    # and the difference is exactly the GAN term's gradient (linearity), with lambda_adv = 1
    for p in tr.student.parameters():
        p.grad = None
    tr.gen.set_state(state)
    tr.cfg.gan.weight = 0.0
    loss_dm, logs_dm = tr.student_loss(feats, z0, k=3)
    loss_dm.backward()
    g_dm = [p.grad.clone() for p in tr.student.parameters()]
    assert logs_dm["student/dm"] == pytest.approx(logs["student/dm"], rel=1e-6)
    assert loss.item() == pytest.approx(logs["student/dm"] + logs["student/adv"], rel=1e-5)
    assert any(not torch.allclose(a, b) for a, b in zip(g_total, g_dm))  # the GAN term contributes
    # the logged scale ratio: each sample's rms(z0_hat_i) / rms(z0_i) of that step's clean estimate, geometric mean
    # over the batch (the same draws again)
    from audiox.distill.dmd import student_sample
    from audiox.distill.trainer import scale_ratio

    tr.gen.set_state(state)
    with torch.no_grad():
        z0_hat = student_sample(tr.student, tr.student.fuse(feats), tr._noise(z0), tr.grid, 3, tr.gen).z0_hat
    per = [float(a.pow(2).mean().sqrt() / b.pow(2).mean().sqrt()) for a, b in zip(z0_hat, z0)]
    ratio = math.exp(sum(math.log(r) for r in per) / len(per))
    assert logs["student/scale_ratio"] == pytest.approx(ratio, rel=1e-5)
    assert logs_dm["student/scale_ratio"] == pytest.approx(ratio, rel=1e-5)
    # a geometric mean over samples: doubling one of B samples moves the ratio by 2 ** (1 / B), whatever its size
    loud = z0.clone()
    loud[0] *= 2
    assert scale_ratio(loud, z0) == pytest.approx(2 ** (1 / len(z0)), rel=1e-5) and scale_ratio(z0, z0) == pytest.approx(1.0)


def test_update_ratios(tmp_path):
    tr = _trainer(tmp_path / "a", "dmd.student_updates=5", "dmd.fake_updates=1")
    for _ in range(10):
        tr.train_step()
    assert tr.fake_steps == 2  # paper: one fake update per 5 student updates
    tr = _trainer(tmp_path / "b", "dmd.student_updates=1", "dmd.fake_updates=5")
    for _ in range(2):
        tr.train_step()
    assert tr.fake_steps == 10  # DMD2: 5 fake updates per student update


def test_gan_switch_and_depth(tmp_path):
    tr = _trainer(tmp_path, "gan.enabled=false")
    assert tr.disc is None and "disc" not in tr.engines
    logs = tr.train_step()
    assert "student/adv" not in logs and "disc/loss" not in logs
    with pytest.raises(ValueError, match="num_blocks"):
        _trainer(tmp_path / "x", "gan.num_blocks=3")


def test_resume_is_exact(tmp_path):
    full = _trainer(tmp_path / "full", "max_steps=6", "checkpoint.every=3")
    h_full = full.fit()
    half = _trainer(tmp_path / "half", "max_steps=6", "checkpoint.every=3")
    half.fit(max_steps=3)
    resumed = _trainer(tmp_path / "half", "max_steps=6", "checkpoint.every=3")
    with torch.no_grad():  # a fresh process's student/fake/head would differ: the checkpoint must overwrite them
        for p in [*resumed.student.parameters(), *resumed.fake.parameters(), *resumed.disc.parameters()]:
            p.add_(0.1)
    h_res = resumed.fit()
    assert resumed.step == 6 and len(h_res) == 6
    assert [h["student/loss"] for h in h_res] == [h["student/loss"] for h in h_full]
    for a, b in zip(full.student.parameters(), resumed.student.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(full.fake.parameters(), resumed.fake.parameters()):
        assert torch.equal(a, b)
    for k in full.ema.shadow:
        assert torch.equal(full.ema.shadow[k], resumed.ema.shadow[k])


def test_adv_dm_grad_balance_is_the_ratio_of_the_two_terms_gradients(tmp_path):
    from audiox.distill.trainer import grad_balance

    x = torch.randn(4, 3, requires_grad=True)
    y = x * 2.0
    # d(3 sum y)/dx = 6, d(0.5 sum y^2)/dx = 4x: ratio ||6|| / ||4x||, and the graph survives for the real backward
    assert grad_balance(3 * y.sum(), 0.5 * y.pow(2).sum(), x) == pytest.approx(
        6 * math.sqrt(x.numel()) / float((4 * x).norm()), rel=1e-5)
    (3 * y.sum()).backward()
    assert torch.allclose(x.grad, torch.full_like(x, 6.0))
    # in the student's loss: linear in lambda_adv for the same draws, absent without the GAN term
    tr = _trainer(tmp_path)
    feats, z0 = tr.prepare(tr.source.next_batch())
    state = tr.gen.get_state()
    _, logs1 = tr.student_loss(feats, z0, k=2)
    tr.gen.set_state(state)
    tr.cfg.gan.weight = 2.5
    loss, logs2 = tr.student_loss(feats, z0, k=2)
    loss.backward()  # the logging kept the graph
    assert logs1["student/adv_dm_grad"] > 0
    assert logs2["student/adv_dm_grad"] == pytest.approx(2.5 * logs1["student/adv_dm_grad"], rel=1e-4)
    tr.gen.set_state(state)
    tr.cfg.gan.weight = 0.0
    assert "student/adv_dm_grad" not in tr.student_loss(feats, z0, k=2)[1]
    # the training loop measures it only on the updates that fit() logs (an extra backward through D's blocks)
    tr.cfg.gan.weight = 1.0
    tr.cfg.log.every = 2
    assert "student/adv_dm_grad" not in tr.train_step()  # update 1 of every 2: not logged
    assert tr.train_step()["student/adv_dm_grad"] > 0  # update 2: logged


def test_match_rms_hides_the_scale_from_the_discriminator(tmp_path, monkeypatch):
    import audiox.distill.trainer as trainer_mod
    from audiox.distill.dmd import match_rms

    seen = []

    def spy(x, ref):
        alias = x.view_as(x)  # a node of its own: the hook sees only the gradient that comes through match_rms
        if alias.requires_grad:
            alias.register_hook(lambda g: seen.append(("grad", x.detach().clone(), g.detach().clone())))
        out = match_rms(alias, ref)
        seen.append(("call", out.detach().clone(), ref.detach().clone()))
        return out

    monkeypatch.setattr(trainer_mod, "match_rms", spy)
    tr = _trainer(tmp_path, "gan.match_rms=true")
    feats, z0 = tr.prepare(tr.source.next_batch())
    tr.fake_update(feats, z0)  # the head's update sees rms-matched student samples
    loss, _ = tr.student_loss(feats, z0, k=1, diagnostics=False)  # (grad_balance would fire the hook too)
    loss.backward()
    calls = [s for s in seen if s[0] == "call"]
    grads = [s for s in seen if s[0] == "grad"]
    assert len(calls) == 2 and len(grads) == 1
    rms = lambda a: a.flatten(1).pow(2).mean(1).sqrt()  # noqa: E731
    for _, out, ref in calls:
        assert torch.allclose(rms(out), rms(z0), rtol=1e-5)
    _, x, g = grads[0]
    assert float(g.norm()) > 0  # Eq. 14 still steers the sample ...
    cos = (g * x).flatten(1).sum(1) / (g.flatten(1).norm(dim=1) * x.flatten(1).norm(dim=1))
    assert cos.abs().max() < 1e-4  # ... but not along it: the adversarial term cannot change its scale
    # off (the paper): never called
    seen.clear()
    tr2 = _trainer(tmp_path / "off")
    feats, z0 = tr2.prepare(tr2.source.next_batch())
    tr2.fake_update(feats, z0)
    tr2.student_loss(feats, z0, k=1)
    assert not seen
