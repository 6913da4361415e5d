"""The real AudioXModel (debug preset, random weights) through the same distiller, the export and the CLI."""

import json

import pytest
import torch

from audiox.core import AudioXModel, get_config
from audiox.distill.cli import main
from audiox.distill.config import get_distill_config
from audiox.distill.trainer import DistillTrainer
from audiox.train import FixedBatchSource, synthetic_batch


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("teacher")
    AudioXModel(get_config("debug")).save_pretrained(path)
    return path


def test_audiox_distill_step_and_export(teacher_dir, tmp_path):
    teacher = AudioXModel.from_pretrained(teacher_dir)
    cfg = get_distill_config("debug", ["device=cpu", f"checkpoint.dir={tmp_path / 'run'}", "max_steps=2",
                                       "data.batch_size=2"])
    tr = DistillTrainer(cfg, teacher, FixedBatchSource(synthetic_batch(teacher.config, 2, with_video=False)))
    t0 = {n: p.detach().clone() for n, p in tr.teacher.named_parameters()}
    s0 = {n: p.detach().clone() for n, p in tr.student.dit.named_parameters()}
    hist = tr.fit()
    assert len(hist) == 2 and all(torch.isfinite(torch.tensor(h["student/loss"])) for h in hist)
    assert all(torch.equal(t0[n], p) for n, p in tr.teacher.named_parameters())  # teacher + D backbone frozen
    assert any(not torch.equal(s0[n], p) for n, p in tr.student.dit.named_parameters())
    # the frozen encoders / autoencoder of the student are not trained
    trained = {n for n, _ in tr.student_engine.named_params}
    assert trained and not any(n.startswith(("autoencoder.", "text_encoder.")) for n in trained)
    out = tr.export(tmp_path / "student")
    meta = json.loads((out / "config.json").read_text())
    inf = meta["inference"] if "inference" in meta else meta["config"]["inference"]
    assert inf["sampler"] == "turbo" and inf["steps"] == 4 and inf["guidance_scale"] == 1.0
    assert inf["few_step_times"] == [1.0, 0.75, 0.5, 0.25, 0.0]
    student = AudioXModel.from_pretrained(out)
    assert student.config.inference.sampler == "turbo"
    for k, v in tr.ema.shadow.items():  # the EMA weights are what is exported
        torch.testing.assert_close(dict(student.named_parameters())[k], v)


def test_cli_runs_and_rejects_bad_input(teacher_dir, tmp_path, capsys):
    rc = main(["--teacher", str(teacher_dir), "--config", "debug", "--synthetic", "--export", str(tmp_path / "s"),
               "device=cpu", f"checkpoint.dir={tmp_path / 'run'}", "max_steps=1", "gan.enabled=false"])
    assert rc == 0 and (tmp_path / "s" / "model.safetensors").is_file()
    assert "iterations/s" in capsys.readouterr().out
    assert main(["--teacher", str(tmp_path / "missing"), "--config", "debug"]) == 2
    assert main(["--teacher", str(teacher_dir), "--config", "debug", "dmd.nope=1"]) == 2
    assert main(["--teacher", str(teacher_dir), "--config", "debug", "device=cpu", "gan.num_blocks=9"]) == 2
    assert "error" in capsys.readouterr().err


def test_distills_from_latents_cached_with_the_teachers_encoder(tmp_path, capsys):
    """`audiox-train encode-latents init_from=TEACHER` caches the corpus; `audiox-distill ... data.latents=true`
    reads it: ``prepare`` hands the cached latents through unchanged and runs no encoder for the targets."""
    from audiox.data.shards import synth_shards
    from audiox.data.synth import SynthConfig
    from audiox.distill.trainer import audiox_prepare
    from audiox.train import build_source, get_train_config
    from audiox.train.cli import main as train_main
    from audiox.train.latents import latent_tag

    cfg = get_config("debug")
    cfg.duration = 2.0
    torch.manual_seed(0)
    teacher_dir = AudioXModel(cfg).save_pretrained(tmp_path / "teacher")
    data = tmp_path / "data"
    synth_shards(data, clips=4, seed=0, shard_size=2, cfg=SynthConfig(sample_rate=8000, duration=2.0, image_size=32),
                 prompts={"t2a_bench": 1, "v2a": 1, "t2m": 1}, progress=False)
    assert train_main(["encode-latents", "--config", "debug", f"init_from={teacher_dir}", f"data.shards={data}",
                       "log.progress=false"]) == 0
    teacher = AudioXModel.from_pretrained(teacher_dir)
    tcfg = get_train_config("debug", [f"data.shards={data}", "data.batch_size=2", "data.latents=true",
                                      'data.task_weights={"t2a": 1.0, "t2m": 1.0}'])  # no audio prompts to encode
    batch = build_source(tcfg.data, teacher.config, latent_tag=latent_tag(teacher)).next_batch()
    assert batch.latents is not None
    teacher.autoencoder.encode_posterior = None  # any encoder call would fail
    _, z0 = audiox_prepare(teacher, torch.device("cpu"))(batch)
    assert torch.equal(z0, batch.latents)

    rc = main(["--teacher", str(teacher_dir), "--config", "debug", "--export", str(tmp_path / "s"), "device=cpu",
               f"checkpoint.dir={tmp_path / 'run'}", "max_steps=1", f"data.shards={data}", "data.batch_size=2",
               "data.latents=true"])
    assert rc == 0 and (tmp_path / "s" / "model.safetensors").is_file()
    for p in data.glob("*.latents-*"):
        p.unlink()
    assert main(["--teacher", str(teacher_dir), "--config", "debug", "device=cpu", f"checkpoint.dir={tmp_path / 'r2'}",
                 "max_steps=1", f"data.shards={data}", "data.batch_size=2", "data.latents=true"]) == 2
    assert "no latents for this autoencoder" in capsys.readouterr().err


def test_continue_from_an_exported_student(teacher_dir, tmp_path):
    """``--student FOLDER`` starts the student (and its EMA) from an earlier student; the fake model still starts
    from the teacher; a student of another architecture is refused."""
    over = ["device=cpu", "max_steps=1", "gan.enabled=false", "data.batch_size=2"]
    first = tmp_path / "s1"
    assert main(["--teacher", str(teacher_dir), "--config", "debug", "--synthetic", "--export", str(first),
                 *over, f"checkpoint.dir={tmp_path / 'r1'}"]) == 0
    earlier = AudioXModel.from_pretrained(first)
    teacher = AudioXModel.from_pretrained(teacher_dir)
    cfg = get_distill_config("debug", [*over, f"checkpoint.dir={tmp_path / 'r2'}"])
    tr = DistillTrainer(cfg, teacher, FixedBatchSource(synthetic_batch(teacher.config, 2, with_video=False)),
                        student=earlier)
    s, f, t = (dict(m.named_parameters()) for m in (tr.student, tr.fake, teacher))
    assert all(torch.equal(p, s[n]) for n, p in earlier.named_parameters())
    assert any(not torch.equal(s[n], t[n]) for n in t)  # the earlier student moved away from the teacher
    assert all(torch.equal(f[n], t[n]) for n in t)
    assert all(torch.equal(v, s[k]) for k, v in tr.ema.shadow.items())
    assert main(["--teacher", str(teacher_dir), "--config", "debug", "--synthetic", "--student", str(first),
                 "--export", str(tmp_path / "s2"), *over, f"checkpoint.dir={tmp_path / 'r3'}"]) == 0

    other = get_config("debug")
    other.dit.depth = 1
    with pytest.raises(ValueError, match="architecture"):
        DistillTrainer(cfg, teacher, FixedBatchSource(synthetic_batch(teacher.config, 2)), student=AudioXModel(other))


def test_per_frame_discriminator_head_scores_each_latent_frame(teacher_dir, tmp_path):
    from audiox.distill.dmd import DiffusionDiscriminator, d_hinge_loss
    from audiox.distill.trainer import audiox_prepare, hidden_width

    teacher = AudioXModel.from_pretrained(teacher_dir).eval().requires_grad_(False)
    torch.manual_seed(1)
    pool = DiffusionDiscriminator(teacher, 2, hidden_width(teacher), hidden=16)
    frame = DiffusionDiscriminator(teacher, 2, hidden_width(teacher), hidden=16, per_frame=True)
    frame.load_state_dict(pool.state_dict())  # the same weights serve both heads
    batch = synthetic_batch(teacher.config, 2, with_video=False)
    feats, z0 = audiox_prepare(teacher, torch.device("cpu"))(batch)
    cond = teacher.fuse(feats)
    t = torch.full((2,), 0.1)
    hs = teacher.forward_features(z0, t, cond, num_blocks=2)  # 2 x (B, T, D)
    by_hand = torch.cat(hs, -1)  # (B, T, 2D): block 0's states, then block 1's, per frame
    logits = frame(z0, t, cond)
    assert logits.shape == (2, z0.shape[-1])  # one logit per latent frame
    torch.testing.assert_close(logits, frame.head(by_hand).squeeze(-1))
    torch.testing.assert_close(pool(z0, t, cond), pool.head(by_hand.mean(1)).squeeze(-1))
    # the hinge averages frames: a frame-wise real/fake split costs what its share of frames says
    real, fake = torch.ones(2, 4) * 2.0, torch.tensor([[-2.0, -2.0, 0.0, 0.0]] * 2)
    assert float(d_hinge_loss(real, fake)) == pytest.approx(0.5)
    # and the distiller trains with it
    cfg = get_distill_config("debug", ["device=cpu", f"checkpoint.dir={tmp_path / 'run'}", "max_steps=1",
                                       "data.batch_size=2", "gan.head=frame", "gan.match_rms=true"])
    tr = DistillTrainer(cfg, teacher, FixedBatchSource(batch))
    assert tr.disc.per_frame
    hist = tr.fit()
    assert all(torch.isfinite(torch.tensor(v)) for v in hist[-1].values())
    with pytest.raises(ValueError, match="gan.head"):
        get_distill_config("debug", ["gan.head=patch"])
