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
