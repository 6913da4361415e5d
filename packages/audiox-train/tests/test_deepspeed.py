"""DeepSpeed ZeRO-2 with two processes on this CPU (gloo), launched with torchrun, through the same CLI."""

import subprocess
import sys

import pytest

from audiox.core import AudioXModel
from audiox.train.testing import deepspeed_cpu_env, deepspeed_cpu_missing

pytest.importorskip("deepspeed")


@pytest.mark.slow
def test_zero2_two_processes_on_cpu(tmp_path):
    if (why := deepspeed_cpu_missing()) is not None:
        pytest.skip(why)
    run = tmp_path / "run"
    env = deepspeed_cpu_env()
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "audiox.train.cli",
        "--config", "debug", "data.shards=synthetic", "data.batch_size=2", "max_steps=2", "checkpoint.every=2",
        f"checkpoint.dir={run}", "log.progress=false", "deepspeed.zero_stage=2",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=540)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = run / "checkpoints" / "step-00000002"
    assert (ckpt / "COMPLETE").is_file()
    assert (ckpt / "deepspeed").is_dir()  # DeepSpeed's partitioned optimiser state, one file per rank
    ranks = list((ckpt / "deepspeed").glob("*optim_states.pt"))
    assert len(ranks) == 2, [p.name for p in (ckpt / "deepspeed").iterdir()]
    model = AudioXModel.from_pretrained(run / "export")
    assert model.config.name == "debug"
