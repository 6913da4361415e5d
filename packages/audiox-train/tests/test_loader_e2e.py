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


def _keys(batch):
    return [(k, t) for k, t in zip(batch.keys, batch.inputs.task, strict=True)]


def test_parallel_workers_cover_the_same_samples_and_resume_exactly(shards):
    """Two worker processes deliver the samples of the in-process loader (by shard slice), and a source rebuilt
    from a mid-cycle state continues the very same sequence of batches."""
    import torch

    from audiox.data.loader import LoaderConfig, ShardLoader

    cfg = get_train_config("debug", [f"data.shards={shards}", "data.batch_size=1", "data.num_workers=2"])
    src = build_source(cfg.data, cfg.model)
    seq = [src.next_batch() for _ in range(6)]  # 6 clips, 2 workers x 1 shard of 3 -> one epoch each
    # worker w is loader rank w of 2: the same batches, interleaved round-robin
    per_worker = [list(ShardLoader(str(shards), cfg.model, LoaderConfig(batch_size=1, rank=w, world_size=2))
                       .epoch_batches(0)) for w in range(2)]
    expect = [per_worker[i % 2][i // 2] for i in range(6)]
    assert [_keys(b) for b in seq] == [_keys(b) for b in expect]
    assert all(torch.equal(a.audio, b.audio) for a, b in zip(seq, expect, strict=True))
    assert sorted(k for b in seq for k, _ in _keys(b)) == sorted(k for b in per_worker[0] + per_worker[1] for k in b.keys)

    src = build_source(cfg.data, cfg.model)
    for _ in range(3):  # stop mid-cycle: worker 1 is next
        src.next_batch()
    state = src.state_dict()
    rest = [src.next_batch() for _ in range(4)]
    again = build_source(cfg.data, cfg.model)
    again.load_state_dict(state)
    assert [_keys(again.next_batch()) for _ in range(4)] == [_keys(b) for b in rest]


def test_parallel_workers_need_enough_shards(shards):
    cfg = get_train_config("debug", [f"data.shards={shards}", "data.num_workers=3"])
    with pytest.raises(ValueError, match="2 shards cannot feed 3 loader workers"):
        build_source(cfg.data, cfg.model)


def test_guided_inpainting_chances_reach_the_loader(shards):
    cfg = get_train_config("debug", [f"data.shards={shards}", "data.inpaint_text=0.25", "data.inpaint_video=1"])
    loader_cfg = build_source(cfg.data, cfg.model).loader.cfg
    assert loader_cfg.inpaint_text == 0.25
    assert loader_cfg.inpaint_video == 1.0
    with pytest.raises(ValueError, match="data.inpaint_text must be in"):
        get_train_config("debug", ["data.inpaint_text=2"])
