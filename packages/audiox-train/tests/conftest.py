import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture()
def fast_cfg(tmp_path):
    from audiox.train import get_train_config

    cfg = get_train_config("debug", ["optim.lr=2e-3", "data.batch_size=2", "checkpoint.every=3", "log.every=1"])
    cfg.checkpoint.dir = str(tmp_path / "run")
    return cfg
