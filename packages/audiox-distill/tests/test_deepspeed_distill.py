"""Distillation under DeepSpeed ZeRO-2 with two processes on this CPU (gloo), through the audiox-distill CLI, as
the teacher trainer's DeepSpeed test does: student, fake model and discriminator head each on a ZeRO engine."""

import subprocess
import sys

import pytest
import torch

from audiox.core import AudioXModel, get_config
from audiox.train.testing import deepspeed_cpu_env, deepspeed_cpu_missing

pytest.importorskip("deepspeed")


@pytest.mark.slow
def test_distill_zero2_two_processes_on_cpu(tmp_path):
    if (why := deepspeed_cpu_missing()) is not None:
        pytest.skip(why)
    torch.manual_seed(0)
    teacher = AudioXModel(get_config("debug"))
    with torch.no_grad():
        for p in teacher.dit.parameters():  # a fresh model predicts zero velocity: give it something to distil
            p.add_(0.02 * torch.randn_like(p))
    teacher.save_pretrained(tmp_path / "teacher")
    run, export = tmp_path / "run", tmp_path / "student"
    env = deepspeed_cpu_env()
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "audiox.distill.cli",
        "--teacher", str(tmp_path / "teacher"), "--config", "debug", "--synthetic", "--run-dir", str(run),
        "--export", str(export), "deepspeed.enabled=true", "deepspeed.zero_stage=2", "max_steps=2",
        "checkpoint.every=2", "log.progress=false",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=540)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = run / "checkpoints" / "step-00000002"
    assert (ckpt / "COMPLETE").is_file()
    student = AudioXModel.from_pretrained(export)
    assert student.config.inference.sampler == "turbo" and student.config.inference.steps == 4
    # the student moved away from the teacher (it trained), the teacher folder is untouched
    t, s = AudioXModel.from_pretrained(tmp_path / "teacher").state_dict(), student.state_dict()
    assert any(not torch.equal(t[k], s[k]) for k in t if k.startswith("dit."))
