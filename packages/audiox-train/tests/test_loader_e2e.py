"""The teacher trains on real synthetic-world shards through audiox.data's loader, and resumes its position."""

import pytest

from audiox.train import TeacherTrainer, build_source, get_train_config


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    from audiox.data.shards import synth_shards

    out = tmp_path_factory.mktemp("synth")
    synth_shards(out, clips=6, seed=0, shard_size=3, prompts={"t2a_bench": 4, "v2a": 2, "t2m": 2}, progress=False)
    return out


def test_trains_on_shards_and_resumes_data_position(shards, tmp_path):
    over = [f"data.shards={shards}", "data.batch_size=2", "checkpoint.every=2"]
    cfg = get_train_config("debug", over)
    cfg.checkpoint.dir = str(tmp_path / "a")
    full = TeacherTrainer(cfg, build_source(cfg.data, cfg.model)).fit(max_steps=4)
    cfg.checkpoint.dir = str(tmp_path / "b")
    TeacherTrainer(cfg, build_source(cfg.data, cfg.model)).fit(max_steps=2)
    again = TeacherTrainer(cfg, build_source(cfg.data, cfg.model))
    resumed = again.fit(max_steps=4)
    assert resumed == full
    assert again.source.state_dict()["batches"] == 4


def test_missing_data_is_a_clear_error():
    cfg = get_train_config("debug")
    with pytest.raises(ValueError, match="no training data"):
        build_source(cfg.data, cfg.model)
