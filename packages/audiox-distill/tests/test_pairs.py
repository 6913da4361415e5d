"""DMD's regression pairs (audiox.distill.pairs) and the regression term of the distiller."""

import dataclasses
import json

import pytest
import torch

from audiox.core import AudioXModel, flow, get_config
from audiox.distill.cli import main
from audiox.distill.config import get_distill_config
from audiox.distill.pairs import PairSource, make_pairs, teacher_ode
from audiox.distill.toy import GaussianMixture, ToySource, ToyVelocity, train_toy_teacher
from audiox.distill.trainer import DistillTrainer

MIX = GaussianMixture()


class PointMass(torch.nn.Module):
    """The exact flow of a point mass: data = ``mu_c`` (the features) or ``mu_u`` (all modalities dropped), so
    ``v(z, t) = (z - mu) / t``. Euler is exact on it: any grid lands on ``mu_u + s (mu_c - mu_u)`` under CFG ``s``."""

    def __init__(self, mu_u: torch.Tensor) -> None:
        super().__init__()
        self.mu_u = mu_u

    def fuse(self, feats, drop=None):
        if drop is None:
            return feats
        return torch.where(drop[:, :1, None], self.mu_u.expand_as(feats), feats)

    def forward(self, z, t, mu):
        return (z - mu) / t[:, None, None]


@pytest.mark.parametrize("steps,guidance,shift", [(1, 1.0, 1.0), (7, 3.0, 1.0), (5, 6.0, 3.0)])
def test_teacher_ode_solves_the_point_mass_flow_exactly(steps, guidance, shift):
    g = torch.Generator().manual_seed(0)
    mu_c = torch.randn(4, 3, 5, generator=g, dtype=torch.float64)
    mu_u = torch.randn(1, 3, 5, generator=g, dtype=torch.float64)
    z1 = torch.randn(4, 3, 5, generator=g, dtype=torch.float64)
    y = teacher_ode(PointMass(mu_u), mu_c, z1, steps, guidance, shift)
    torch.testing.assert_close(y, mu_u + guidance * (mu_c - mu_u), rtol=0, atol=1e-12)


def _toy_teacher(seed=0):
    torch.manual_seed(seed)
    return ToyVelocity(MIX.num_classes, width=16, depth=2).eval().requires_grad_(False)


def _make(folder, batches=3, **kw):
    kw = {"steps": 6, "guidance": 2.0, "seed": 3, **kw}
    return make_pairs(_toy_teacher(), ToySource(MIX, 8, seed=1), lambda b: b, folder, batches, **kw)


def test_make_pairs_stores_the_teachers_sample_from_the_stored_noise_and_resumes(tmp_path):
    paths = _make(tmp_path / "p")
    assert [p.name for p in paths] == [f"pairs-{i:06d}.safetensors" for i in range(3)]
    assert not list((tmp_path / "p").glob("*.tmp"))
    meta = json.loads((tmp_path / "p" / "pairs.json").read_text())
    assert meta["steps"] == 6 and meta["guidance"] == 2.0 and meta["shards"] == 3
    src = PairSource(tmp_path / "p")
    teacher, data = _toy_teacher(), ToySource(MIX, 8, seed=1)
    for _ in range(3):
        labels, z1, y = src.next_batch()
        torch.testing.assert_close(labels, data.next_batch()[0])  # the source's batches, in order
        assert z1.shape == y.shape == (8, 2, 1)
        torch.testing.assert_close(y, teacher_ode(teacher, labels, z1, 6, 2.0), rtol=0, atol=0)
    before = [p.read_bytes() for p in paths]
    paths[1].unlink()  # a crash after shard 0: the rerun writes exactly what was lost
    _make(tmp_path / "p")
    assert [p.read_bytes() for p in paths] == before
    with pytest.raises(ValueError, match="other settings"):
        _make(tmp_path / "p", steps=4)
    meta = json.loads((tmp_path / "p" / "pairs.json").read_text())
    assert meta["complete"] and meta["shards"] == 3  # the refused run left the folder as it was
    # a run that stops part-way leaves a folder the distiller refuses until a rerun finishes it
    (tmp_path / "p" / "pairs.json").write_text(json.dumps({**meta, "complete": False}))
    with pytest.raises(ValueError, match="unfinished"):
        PairSource(tmp_path / "p")
    _make(tmp_path / "p", batches=2)
    assert len(PairSource(tmp_path / "p")) == 2  # the folder now serves what the last run asked for


def test_pair_source_cycles_and_its_position_restores(tmp_path):
    _make(tmp_path / "p", batches=2)
    src = PairSource(tmp_path / "p")
    first = [src.next_batch()[1] for _ in range(3)]
    torch.testing.assert_close(first[0], first[2])  # two shards, then around again
    state = src.state_dict()
    nxt = src.next_batch()[1]
    again = PairSource(tmp_path / "p")
    again.load_state_dict(state)
    torch.testing.assert_close(again.next_batch()[1], nxt)
    with pytest.raises(FileNotFoundError, match="pair folder"):
        PairSource(tmp_path / "nothing")


def test_pair_source_chains_folders_of_one_teacher_and_refuses_another_teachers(tmp_path):
    _make(tmp_path / "a", batches=2, info={"teacher_sha256": "t1"})
    _make(tmp_path / "b", batches=1, seed=4, info={"teacher_sha256": "t1"})
    one = {k: PairSource(tmp_path / k) for k in "ab"}
    expect = [one["a"].next_batch()[1], one["a"].next_batch()[1], one["b"].next_batch()[1]]
    both = PairSource(f"{tmp_path / 'a'},{tmp_path / 'b'}")
    assert len(both) == 3 and PairSource([tmp_path / "a", tmp_path / "b"]).paths == both.paths
    for z1 in expect + expect[:1]:  # a's two shards, b's one, then around again
        torch.testing.assert_close(both.next_batch()[1], z1)
    _make(tmp_path / "c", batches=1, info={"teacher_sha256": "t2"})
    with pytest.raises(ValueError, match="different teacher weights"):
        PairSource(f"{tmp_path / 'a'},{tmp_path / 'c'}")
    with pytest.raises(FileNotFoundError, match="not a pair folder"):
        PairSource(f"{tmp_path / 'a'},{tmp_path / 'nothing'}")


def test_shuffled_pairs_cover_every_stored_pair_once_per_pass_across_folders(tmp_path):
    _make(tmp_path / "a", batches=2, info={"teacher_sha256": "t1"})
    _make(tmp_path / "b", batches=1, seed=4, info={"teacher_sha256": "t1"})
    folders = f"{tmp_path / 'a'},{tmp_path / 'b'}"
    stored = PairSource(folders)
    rows = [stored.next_batch() for _ in range(3)]  # the 3 shards in order: 24 pairs
    pairs = {(float(z[0, 0]), int(lab)): (z, yy) for labels, z1, y in rows for lab, z, yy in zip(labels, z1, y)}
    assert len(pairs) == 24

    src = PairSource(folders, shuffle=True, batch_size=6, seed=1)
    assert len(src) == 24
    passes = []
    for _ in range(2):  # two passes of 4 batches each
        seen = []
        for _ in range(4):
            labels, z1, y = src.next_batch()
            assert z1.shape == y.shape == (6, 2, 1) and labels.shape == (6,)
            for lab, z, yy in zip(labels, z1, y):
                key = (float(z[0, 0]), int(lab))
                torch.testing.assert_close(yy, pairs[key][1], rtol=0, atol=0)  # each pair keeps its own y and label
                seen.append(key)
        assert sorted(seen) == sorted(pairs)  # every stored pair exactly once per pass
        passes.append(seen)
    assert passes[0] != passes[1]  # a fresh order each pass
    in_order = [k for labels, z1, _ in rows for k in zip(z1[:, 0, 0].tolist(), labels.tolist())]
    assert passes[0] != in_order and len({k for k in passes[0][:6]} & set(in_order[:8])) < 6  # batches mix shards

    # a batch that straddles two passes, restored from its position, and the ranks of a data-parallel run
    seq = PairSource(folders, shuffle=True, batch_size=5, seed=2)
    want = [seq.next_batch()[1] for _ in range(8)]
    again = PairSource(folders, shuffle=True, batch_size=5, seed=2)
    again.load_state_dict({"index": 4})  # batch 4 holds pairs 20-24: the first pass's last 4 and the second's first
    torch.testing.assert_close(again.next_batch()[1], want[4])
    ranks = [PairSource(folders, shuffle=True, batch_size=5, seed=2, rank=r, world_size=2) for r in (0, 1)]
    for i in range(4):
        for r in (0, 1):
            torch.testing.assert_close(ranks[r].next_batch()[1], want[2 * i + r])
    assert len(PairSource(folders, shuffle=True).next_batch()[1]) == 8  # batch 0 = one shard's size
    with pytest.raises(ValueError, match="needs regression.shuffle=true"):
        PairSource(folders, batch_size=6)
    with pytest.raises(ValueError, match="rank 2 outside"):
        PairSource(folders, rank=2, world_size=2)


def _trainer(tmp_path, pairs, *overrides):
    torch.manual_seed(0)
    cfg = get_distill_config("debug", ["device=cpu", f"checkpoint.dir={tmp_path}", "gan.enabled=false",
                                       "data.batch_size=8", f"regression.pairs={pairs}", *overrides])
    return DistillTrainer(cfg, _toy_teacher(), ToySource(MIX, 8), prepare=lambda b: b)


def test_regression_term_is_the_first_steps_mse_to_the_teacher_sample(tmp_path):
    _make(tmp_path / "p")
    tr = _trainer(tmp_path / "run", tmp_path / "p", "regression.weight=0.5")
    labels, z1, y = PairSource(tmp_path / "p").next_batch()
    calls = []
    tr.student.register_forward_hook(lambda m, a, o: calls.append(a[1][0].item()))
    loss, logs = tr.regression_loss()
    assert calls == [1.0]  # DMD's term: one student step, from the stored noise at t = 1
    with torch.no_grad():
        by_hand = (z1 - tr.student(z1, torch.ones(8), tr.student.fuse(labels)) - y).pow(2).mean()
    assert float(loss.detach()) == pytest.approx(float(by_hand), rel=1e-6)
    assert logs["student/reg"] == pytest.approx(float(by_hand), rel=1e-6)
    # Eq. 15 + lambda_reg L_reg: the logged student loss is the DM term plus the weighted regression term
    step = tr.train_step()
    assert step["student/loss"] == pytest.approx(step["student/dm"] + 0.5 * step["student/reg"], rel=1e-6)


def test_regression_all_steps_starts_later_steps_from_the_renoised_teacher_sample(tmp_path):
    _make(tmp_path / "p")
    tr = _trainer(tmp_path / "run", tmp_path / "p", "regression.weight=1", "regression.steps=all",
                  "dmd.step_probs=[0,0,1,0]")
    seen = []
    tr.student.register_forward_hook(lambda m, a, o: seen.append((a[0].clone(), a[1][0].item())))
    _, z1, y = PairSource(tmp_path / "p").next_batch()
    state = tr.gen.get_state()
    _, logs = tr.regression_loss()
    assert logs["student/reg_k"] == 2.0 and [t for _, t in seen] == [0.5]
    tr.gen.set_state(state)
    tr.draw_k()
    eps = torch.randn(y.shape, generator=tr.gen)
    torch.testing.assert_close(seen[0][0], flow.renoise(y, 0.5, eps))


def _trained_teacher_and_first_step_error(pairs):
    """A trained toy teacher, 4 batches of its 6-step CFG-2 pairs in ``pairs``, and ``err(student)``: the mean squared
    distance of the student's one step from the stored noise to the teacher's samples on those batches."""
    teacher = train_toy_teacher(MIX, steps=300, batch=256, width=16, depth=2)
    make_pairs(teacher, ToySource(MIX, 8, seed=1), lambda b: b, pairs, 4, steps=6, guidance=2.0)
    src = PairSource(pairs)
    batches = [src.next_batch() for _ in range(4)]

    def err(student):
        with torch.no_grad():
            return sum(float((z1 - student(z1, torch.ones(8), student.fuse(c)) - y).pow(2).mean())
                       for c, z1, y in batches) / 4

    return teacher, err


def test_regression_pulls_the_students_first_step_to_the_teacher(tmp_path):
    """A trained toy teacher's one step from noise is far from its 6-step CFG sample. With the term on, the student's
    one step from the stored noise moves to that sample; with weight 0 (DM only, same settings) it does not."""
    teacher, err = _trained_teacher_and_first_step_error(tmp_path / "p")

    start = err(teacher)
    ends = {}
    for w in (0.0, 2.0):
        cfg = get_distill_config("debug", [
            "device=cpu", f"checkpoint.dir={tmp_path / str(w)}", "gan.enabled=false", "data.batch_size=8",
            f"regression.pairs={tmp_path / 'p'}", f"regression.weight={w}", "max_steps=40", "optim.lr=1e-3",
            "checkpoint.every=1000", "dmd.guidance_scale=2.0"])
        tr = DistillTrainer(cfg, teacher, ToySource(MIX, 8), prepare=lambda b: b)
        assert (tr.pairs is None) == (w == 0.0)
        tr.fit()
        ends[w] = err(tr.student)
    assert ends[2.0] < 0.4 * start and ends[2.0] < 0.4 * ends[0.0], (start, ends)


class NoData:
    """A data source that must not be read: ``dmd.weight=0`` without the GAN trains on the stored pairs only."""

    def next_batch(self):
        raise AssertionError("the regression-only student read a data batch")

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        assert state == {}


def test_regression_alone_skips_the_dm_term_the_fake_model_and_the_data(tmp_path):
    """``dmd.weight=0 gan.enabled=false``: plain knowledge distillation on the teacher's pairs. No data batch, no
    fake-model update, no teacher call; the student's loss is the weighted regression term, and it moves the
    student's first step to the teacher's samples as the DM + regression student does."""
    teacher, err = _trained_teacher_and_first_step_error(tmp_path / "p")

    cfg = get_distill_config("debug", [
        "device=cpu", f"checkpoint.dir={tmp_path / 'run'}", "gan.enabled=false", "data.batch_size=8", "dmd.weight=0",
        f"regression.pairs={tmp_path / 'p'}", "regression.weight=2", "max_steps=40", "optim.lr=1e-3",
        "checkpoint.every=1000"])
    tr = DistillTrainer(cfg, teacher, NoData(), prepare=lambda b: b)
    fake0 = [p.detach().clone() for p in tr.fake.parameters()]
    start = err(teacher)
    teacher_calls = []
    tr.teacher.register_forward_hook(lambda m, a, o: teacher_calls.append(1))
    step = tr.train_step()
    assert "student/dm" not in step and "fake/loss" not in step and tr.fake_steps == 0
    assert step["student/loss"] == pytest.approx(2 * step["student/reg"], rel=1e-6)
    tr.fit()
    assert not teacher_calls
    assert all(torch.equal(a, b) for a, b in zip(fake0, tr.fake.parameters()))
    assert err(tr.student) < 0.4 * start


@pytest.mark.parametrize("draw", [(), ("regression.shuffle=true", "regression.batch_size=5")])
def test_resume_is_exact_with_the_regression_term(tmp_path, draw):
    _make(tmp_path / "p")
    args = (tmp_path / "p", "regression.weight=1", "regression.steps=all", "max_steps=6", "checkpoint.every=3", *draw)
    full = _trainer(tmp_path / "full", *args)
    h_full = full.fit()
    _trainer(tmp_path / "half", *args).fit(max_steps=3)
    resumed = _trainer(tmp_path / "half", *args)
    h_res = resumed.fit()
    assert resumed.pairs.index == full.pairs.index == 6
    assert [h["student/reg"] for h in h_res] == [h["student/reg"] for h in h_full]
    for a, b in zip(full.student.parameters(), resumed.student.parameters()):
        assert torch.equal(a, b)


def test_regression_config_is_checked():
    with pytest.raises(ValueError, match="needs regression.pairs"):
        get_distill_config("debug", ["regression.weight=1"])
    with pytest.raises(ValueError, match="regression.steps"):
        get_distill_config("debug", ["regression.steps=some"])
    with pytest.raises(ValueError, match="regression.weight"):
        get_distill_config("debug", ["regression.weight=-1", "regression.pairs=x"])
    with pytest.raises(ValueError, match="dmd.weight must be >= 0"):
        get_distill_config("debug", ["dmd.weight=-1"])
    with pytest.raises(ValueError, match="regression.batch_size must be >= 0"):
        get_distill_config("debug", ["regression.batch_size=-2"])
    with pytest.raises(ValueError, match="nothing to train"):
        get_distill_config("debug", ["dmd.weight=0", "gan.enabled=false"])
    assert get_distill_config("debug", ["dmd.weight=0", "gan.enabled=false", "regression.weight=1",
                                        "regression.pairs=x"]).dmd.weight == 0.0


def test_pairs_cli_on_the_real_model_then_distill_with_them(tmp_path, capsys):
    torch.manual_seed(0)
    teacher = tmp_path / "teacher"
    AudioXModel(get_config("debug")).save_pretrained(teacher)
    common = ["--config", "debug", "--synthetic", "device=cpu", "data.batch_size=2"]
    rc = main(["pairs", "--teacher", str(teacher), "--out", str(tmp_path / "p"), "--batches", "2", "--steps", "3",
               *common])
    assert rc == 0, capsys.readouterr().err
    assert "2 shards" in capsys.readouterr().out
    feats, z1, y = PairSource(tmp_path / "p").next_batch()
    model = AudioXModel.from_pretrained(teacher)
    assert type(feats).__name__ == "ModalityFeatures" and feats.text_mask.dtype == torch.bool
    torch.testing.assert_close(y, teacher_ode(model, feats, z1, 3, 6.0), rtol=1e-5, atol=1e-5)
    # shuffled: a batch of 3 takes rows of both shards; every ModalityFeatures field stays with its own pair
    mixed, z1s, ys = PairSource(tmp_path / "p", shuffle=True, batch_size=3).next_batch()
    assert z1s.shape[0] == 3 and mixed.text.shape[0] == 3
    torch.testing.assert_close(ys, teacher_ode(model, mixed, z1s, 3, 6.0), rtol=1e-5, atol=1e-5)
    rc = main(["--teacher", str(teacher), "--config", "debug", "--synthetic", "device=cpu", "max_steps=1",
               f"checkpoint.dir={tmp_path / 'run'}", "gan.enabled=false", "data.batch_size=2",
               "regression.weight=1", f"regression.pairs={tmp_path / 'p'}", "regression.shuffle=true"])
    assert rc == 0
    # bad input: one line on stderr, exit 2, nothing written
    assert main(["pairs", "--teacher", str(tmp_path / "missing"), "--out", str(tmp_path / "q"), "--batches", "1"]) == 2
    assert main(["pairs", "--teacher", str(teacher), "--out", str(tmp_path / "q"), "--batches", "0", *common]) == 2
    assert not (tmp_path / "q").exists()
    assert main(["--teacher", str(teacher), "--config", "debug", "--synthetic", "device=cpu",
                 "regression.weight=1", f"regression.pairs={tmp_path / 'none'}"]) == 2
    assert "not a pair folder" in capsys.readouterr().err


def test_stored_features_keep_the_inpainting_share_and_skip_an_absent_one():
    from audiox.core.types import ConditionInputs
    from audiox.distill.pairs import _feats_from_tensors, _feats_to_tensors

    cfg = get_config("debug")
    model = AudioXModel(cfg).eval()
    s = cfg.num_samples
    mask = torch.zeros(1, s, dtype=torch.bool)
    mask[:, s // 4: s // 2] = True
    audio = 0.1 * torch.randn(1, cfg.autoencoder.audio_channels, s)
    for m in (mask, None):
        with torch.no_grad():
            feats = model.encode_modalities(ConditionInputs(text=[""], task=["inpaint"], audio=audio, inpaint_mask=m))
        tensors, kind = _feats_to_tensors(feats)
        assert ("feats.audio_known" in tensors) == (m is not None)
        back = _feats_from_tensors(tensors, kind)
        if m is None:
            assert back.audio_known is None
        else:
            torch.testing.assert_close(back.audio_known, feats.audio_known)
            assert back.audio_known.min() == 0 and back.audio_known.max() == 1


def test_shuffled_batches_mix_shards_with_and_without_an_inpainting_share(tmp_path):
    """A data batch with no inpainting row stores no ``audio_known`` (None); a shuffled batch that takes rows from
    such a shard and from one with inpainting rows fills the absent share with zeros, which the model reads exactly
    as None (the MAF frame_inpaint stream and H_c are the same), so the two kinds of shard can share a batch."""
    from audiox.core.io import save_tensors_atomic
    from audiox.core.types import ConditionInputs
    from audiox.distill.pairs import PAIRS_META, _feats_to_tensors

    cfg = get_config("debug", ["maf.frame_inpaint=true"])
    torch.manual_seed(0)
    model = AudioXModel(cfg).eval()
    s = cfg.num_samples
    mask = torch.zeros(2, s, dtype=torch.bool)
    mask[:, s // 4: s // 2] = True
    audio = 0.1 * torch.randn(2, cfg.autoencoder.audio_channels, s)
    folder = tmp_path / "p"
    folder.mkdir()
    with torch.no_grad():
        plain = model.encode_modalities(ConditionInputs(text=["a", "b"], task=["t2a", "t2a"]))
        inpaint = model.encode_modalities(ConditionInputs(text=["c", "d"], task=["inpaint", "t2a"], audio=audio,
                                                          inpaint_mask=mask))
        assert plain.audio_known is None and inpaint.audio_known is not None
        latent = (2, cfg.autoencoder.latent_dim, cfg.latent_length)
        for i, feats in enumerate((plain, inpaint)):
            tensors, kind = _feats_to_tensors(feats)
            tensors = {k: v.contiguous() for k, v in tensors.items()}  # as make_pairs stores them
            save_tensors_atomic({**tensors, "z1": torch.randn(latent), "y": torch.full(latent, float(i))},
                                folder / f"pairs-{i:06d}.safetensors", metadata={"feats": kind})
        (folder / PAIRS_META).write_text(json.dumps({"complete": True, "shards": 2}))
        src = PairSource(folder, shuffle=True, batch_size=4)
        feats, _, y = src.next_batch()  # the one pass: all four rows
        assert feats.audio_known.shape == (4, inpaint.audio_known.shape[1])
        from_plain = y[:, 0, 0] == 0
        assert int(from_plain.sum()) == 2 and float(feats.audio_known[from_plain].abs().sum()) == 0.0
        # zeros mean what None means: MAF gives the plain rows the same H_c either way
        none = model.fuse(plain)
        filled = model.fuse(dataclasses.replace(plain, audio_known=torch.zeros_like(inpaint.audio_known)))
        torch.testing.assert_close(filled.context, none.context, rtol=0, atol=0)
        torch.testing.assert_close(filled.global_cond, none.global_cond, rtol=0, atol=0)
        assert filled.extras.keys() == none.extras.keys() and filled.extras  # frame_inpaint's stream is there
        for k in none.extras:
            torch.testing.assert_close(filled.extras[k], none.extras[k], rtol=0, atol=0)
        # and the inpainting rows keep their own share
        rows = ~from_plain
        assert torch.allclose(feats.audio_known[rows].sort(0).values, inpaint.audio_known.sort(0).values)
