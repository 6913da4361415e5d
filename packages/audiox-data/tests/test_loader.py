"""The loader: every task's modalities and masks, determinism, resume, bad samples skipped."""

import dataclasses
import io
import json
import tarfile

import pytest
import torch

from audiox.core.config import get_config
from audiox.data.loader import LoaderConfig, ShardLoader
from audiox.data.shards import synth_shards
from audiox.data.synth import SynthConfig

CFG = get_config("debug")
SYN = SynthConfig(duration=3.0, image_size=32, music_fraction=0.4)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    synth_shards(out, 24, seed=3, shard_size=8, cfg=SYN, prompts={"t2a_bench": 4, "v2a": 1, "t2m": 1}, progress=False)
    return out


def only(task: str, **kw) -> LoaderConfig:
    kw = {"inpaint_text": 0.0, "inpaint_video": 0.0, **kw}  # unguided inpainting unless a test asks
    return LoaderConfig(batch_size=4, task_weights={task: 1.0}, seed=1, **kw)


@pytest.mark.parametrize("task", ["t2a", "t2m", "v2a", "v2m", "tv2a", "tv2m", "i2a", "inpaint", "complete"])
def test_each_task_has_the_right_modalities(shards, task):
    loader = ShardLoader(shards, CFG, only(task))
    batch = next(loader.epoch_batches())
    B, S = 4, CFG.num_samples
    inp = batch.inputs
    assert batch.audio.shape == (B, CFG.autoencoder.audio_channels, S) and batch.audio.abs().max() <= 1
    assert inp.task == [task] * B
    has_text = task in ("t2a", "t2m", "tv2a", "tv2m")
    assert all((t is not None) == has_text for t in inp.text)
    if task in ("v2a", "v2m", "tv2a", "tv2m", "i2a"):
        assert inp.video.shape == (B, CFG.video_frames, 3, CFG.video.image_size, CFG.video.image_size)
        assert inp.sync_video.shape == (B, CFG.sync_frames, 3, CFG.sync.image_size, CFG.sync.image_size)
        assert inp.video_present.all() and inp.video.dtype == torch.uint8 and inp.sync_video.dtype == torch.uint8
        assert inp.video.float().std() > 0  # real frames, not the zero padding
        if task == "i2a":  # a still image: every frame equal
            assert torch.equal(inp.video, inp.video[:, :1].expand_as(inp.video))
        else:
            assert not torch.equal(inp.sync_video, inp.sync_video[:, :1].expand_as(inp.sync_video))
    else:
        assert inp.video is None and inp.video_present is None
    if task in ("inpaint", "complete"):
        assert inp.audio.shape == batch.audio.shape and inp.audio_present.all()
    else:
        assert inp.audio is None
    if task == "inpaint":
        m = batch.inpaint_mask
        assert m.any(1).all() and (~m).any(1).all()
        assert torch.equal(inp.audio, batch.audio.masked_fill(m[:, None], 0))
        assert torch.equal(inp.inpaint_mask, m)  # the model gets the mask with the prompt (maf.frame_inpaint)
    else:
        assert not batch.inpaint_mask.any()
        assert inp.inpaint_mask is None or not inp.inpaint_mask.any()
    if task == "complete":  # X_a is music that ends where the target starts (right-aligned, non-silent)
        assert (inp.audio[..., -CFG.num_samples // 4 :].abs().amax(-1) > 0.01).all()


def test_guided_inpainting_carries_captions_and_video_by_chance(shards):
    def batch(**kw):
        return next(ShardLoader(shards, CFG, dataclasses.replace(only("inpaint", **kw), batch_size=12)).epoch_batches())

    plain, text, both, half = batch(), batch(inpaint_text=1.0), batch(inpaint_text=1.0, inpaint_video=1.0), \
        batch(inpaint_text=0.5, inpaint_video=0.5)
    assert all(t is None for t in plain.inputs.text) and plain.inputs.video is None
    # the guidance is drawn after the mask: the same samples, spans and prompts with or without it
    for b in (text, both, half):
        assert b.keys == plain.keys and torch.equal(b.inpaint_mask, plain.inpaint_mask)
        assert torch.equal(b.inputs.audio, plain.inputs.audio) and b.inputs.task == ["inpaint"] * 12
    captions = {}
    for tar in sorted(shards.glob("*.tar")):
        with tarfile.open(tar) as f:
            for m in f.getmembers():
                if m.name.endswith(".json"):
                    a = json.load(f.extractfile(m))
                    captions[m.name.rsplit(".", 1)[0].split("/")[-1]] = {a["caption"], *(c for v in a["captions"].values() for c in v)}
    assert all(t in captions[k] for k, t in zip(text.keys, text.inputs.text, strict=True))
    assert text.inputs.video is None
    assert both.inputs.video_present.all() and both.inputs.video.float().std() > 0  # the clip's real frames
    assert not torch.equal(both.inputs.sync_video, both.inputs.sync_video[:, :1].expand_as(both.inputs.sync_video))
    n_text = sum(t is not None for t in half.inputs.text)
    assert 0 < n_text < 12 and 0 < int(half.inputs.video_present.sum()) < 12
    for bad in ({"inpaint_text": 1.5}, {"inpaint_video": -0.1}):
        with pytest.raises(ValueError, match="must be a probability"):
            LoaderConfig(**bad)


def test_music_and_sound_tasks_follow_the_sample_kind(shards):
    loader = ShardLoader(shards, CFG, LoaderConfig(batch_size=24, drop_last=False))
    batch = next(loader.epoch_batches())
    kinds = {}
    for tar in sorted(shards.glob("*.tar")):
        with tarfile.open(tar) as tf:
            for m in tf.getmembers():
                if m.name.endswith(".json"):
                    kinds[m.name.split(".")[0]] = json.load(tf.extractfile(m))["kind"]
    for key, task in zip(batch.keys, batch.inputs.task, strict=True):
        assert (task in ("t2m", "v2m", "tv2m", "complete")) == (kinds[key] == "music")


def test_deterministic_per_seed_and_epoch(shards):
    def keys(seed, epoch):
        loader = ShardLoader(shards, CFG, LoaderConfig(batch_size=4, seed=seed))
        return [(k, t) for b in loader.epoch_batches(epoch) for k, t in zip(b.keys, b.inputs.text, strict=True)]

    a = keys(0, 0)
    assert a == keys(0, 0)
    assert a != keys(0, 1) and a != keys(1, 0)
    assert sorted(k for k, _ in a) == sorted(k for k, _ in keys(0, 1))  # same samples, another order


def test_resume_from_state_dict(shards):
    full = ShardLoader(shards, CFG, LoaderConfig(batch_size=4))
    ref = [b for b in full.epoch_batches()]
    part = ShardLoader(shards, CFG, LoaderConfig(batch_size=4))
    it = part.epoch_batches()
    first = [next(it), next(it)]
    state = part.state_dict()
    resumed = ShardLoader(shards, CFG, LoaderConfig(batch_size=4))
    resumed.load_state_dict(state)
    rest = list(resumed.epoch_batches())
    got = first + rest
    assert [b.keys for b in got] == [b.keys for b in ref]
    assert all(torch.equal(a.audio, b.audio) for a, b in zip(got, ref, strict=True))
    assert resumed.state_dict()["epoch"] == 1


def test_bad_samples_are_skipped_and_counted(shards, tmp_path, caplog):
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tf:

        def add(name, data):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))

        add("x1.flac", b"not flac")
        add(
            "x1.json",
            json.dumps(
                {"kind": "sfx", "caption": "a", "category": {"beep": 1}, "SED": [], "time_relation": "beep"}
            ).encode(),
        )
        add("x2.flac", (shards / "synth-000000.tar").read_bytes()[:10])
        add("x2.json", b"{not json")
        add("x3.json", json.dumps({"caption": "missing fields"}).encode())
    urls = sorted(str(p) for p in shards.glob("*.tar")) + [str(bad)]
    loader = ShardLoader(urls, CFG, LoaderConfig(batch_size=4, task_weights={"t2a": 1.0, "t2m": 1.0}, drop_last=False))
    n = sum(b.batch_size for b in loader.epoch_batches())
    assert n == 24 and loader.stats["skipped"] == 3
    assert "skipping sample" in caplog.text


def test_rank_split_is_disjoint(shards):
    keys = []
    for r in range(2):
        loader = ShardLoader(
            shards, CFG, LoaderConfig(batch_size=1, rank=r, world_size=2, task_weights={"t2a": 1, "t2m": 1})
        )
        keys.append({k for b in loader.epoch_batches() for k in b.keys})
    assert not keys[0] & keys[1] and len(keys[0] | keys[1]) == 24


def test_decode_threads_give_the_same_batches(shards):
    serial = list(ShardLoader(shards, CFG, LoaderConfig(batch_size=4)).epoch_batches())
    threaded = list(ShardLoader(shards, CFG, LoaderConfig(batch_size=4, decode_threads=2)).epoch_batches())
    assert [b.keys for b in threaded] == [b.keys for b in serial]
    for a, b in zip(threaded, serial, strict=True):
        assert torch.equal(a.audio, b.audio) and a.inputs.task == b.inputs.task
