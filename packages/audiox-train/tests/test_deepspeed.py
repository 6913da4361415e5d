"""DeepSpeed ZeRO-2 with two processes on this CPU (gloo), launched with torchrun, through the same CLI."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from audiox.core import AudioXModel

pytest.importorskip("deepspeed")


@pytest.mark.slow
def test_zero2_two_processes_on_cpu(tmp_path):
    if not shutil.which("g++") or not shutil.which("ninja") and not Path(sys.executable).with_name("ninja").exists():
        pytest.skip("DeepSpeed's CPU comm op needs g++ and ninja to JIT-compile")
    run = tmp_path / "run"
    env = {
        **os.environ,
        "DS_ACCELERATOR": "cpu",
        "OMP_NUM_THREADS": "1",
        # one extension cache per torch build (a stale lock from another build can hang the JIT)
        "TORCH_EXTENSIONS_DIR": os.environ.get("TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache" / "audiox-torch-ext-2.14.1")),
    }
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "audiox.train.cli",
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
