"""Text (T5), video (CLIP) and sync (Synchformer-style) encoders at debug size, plus paper sizes on meta."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from safetensors.torch import save_file

from audiox.core.config import get_config
from audiox.core.encoders import SyncEncoder, TextEncoder, VideoEncoder
from audiox.core.encoders.sync import segment_starts


@pytest.fixture(scope="module")
def cfg():
    return get_config("debug")


def _n(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------------------------- text


def test_text_shapes_and_mask_counts(cfg):
    torch.manual_seed(0)
    enc = TextEncoder(cfg.text)
    texts = ["rain", "a dog barks twice", "x" * 200]
    emb, mask = enc(texts)
    L = cfg.text.max_length
    assert emb.shape == (3, L, enc.out_dim) and enc.out_dim == cfg.text.d_model
    assert emb.dtype == torch.float32 and mask.dtype == torch.bool
    # ByT5: one token per UTF-8 byte plus </s>, truncated to max_length
    expected = [min(len(t.encode()) + 1, L) for t in texts]
    assert mask.sum(1).tolist() == expected
    assert mask[0, : expected[0]].all() and not mask[0, expected[0] :].any()  # real tokens first
    assert torch.all(emb[~mask] == 0)  # padding positions are zero
    assert emb[mask].abs().sum(-1).gt(0).all()
    none, none_mask = enc([])
    assert none.shape == (0, L, enc.out_dim) and none_mask.shape == (0, L)
    with pytest.raises(TypeError, match="list of strings"):
        enc("rain")


def test_text_caption_content_changes_embedding(cfg):
    torch.manual_seed(0)
    enc = TextEncoder(cfg.text)
    a, _ = enc(["a dog barks"])
    b, _ = enc(["a cat meows"])
    assert not torch.allclose(a, b)


def test_text_frozen_and_trainable(cfg):
    frozen = TextEncoder(cfg.text)
    assert cfg.text.freeze and all(not p.requires_grad for p in frozen.parameters())
    frozen.train()
    assert not frozen.training and not frozen.t5.training
    emb, _ = frozen(["hello"])
    assert not emb.requires_grad

    trainable = TextEncoder(dataclasses.replace(cfg.text, freeze=False))
    trainable.train()
    assert trainable.training
    emb, mask = trainable(["hello", "a longer caption"])
    emb[mask].pow(2).sum().backward()
    grads = [p.grad for p in trainable.parameters()]
    assert all(g is not None for g in grads)
    assert trainable.t5.shared.weight.grad.abs().sum() > 0


def test_text_loads_local_save_pretrained(cfg, tmp_path):
    torch.manual_seed(1)
    enc = TextEncoder(cfg.text)
    enc.t5.save_pretrained(tmp_path / "t5")
    assert (tmp_path / "t5" / "model.safetensors").is_file()
    loaded = TextEncoder(dataclasses.replace(cfg.text, pretrained=str(tmp_path / "t5")))
    texts = ["thunder then rain", "a piano"]
    a, ma = enc(texts)
    b, mb = loaded(texts)
    assert torch.equal(ma, mb) and torch.equal(a, b)
    # a folder with other sizes (a gated T5 v1.1) writes its architecture into the config it was loaded with
    gated = dataclasses.replace(cfg.text, d_ff=48, feed_forward_proj="gated-gelu")
    TextEncoder(gated).t5.save_pretrained(tmp_path / "t5-gated")
    loaded_cfg = dataclasses.replace(cfg.text, pretrained=str(tmp_path / "t5-gated"))
    TextEncoder(loaded_cfg)
    assert (loaded_cfg.d_ff, loaded_cfg.feed_forward_proj) == (48, "gated-gelu")
    rebuilt = TextEncoder(dataclasses.replace(loaded_cfg, pretrained=None))
    assert rebuilt.t5.encoder.block[0].layer[1].DenseReluDense.__class__.__name__ == "T5DenseGatedActDense"
    # a differently initialised encoder really differs (the comparison above can fail)
    torch.manual_seed(2)
    other, _ = TextEncoder(cfg.text)(texts)
    assert not torch.allclose(a, other)


def test_text_save_weights_round_trip(cfg, tmp_path):
    torch.manual_seed(5)
    enc = TextEncoder(cfg.text)
    path = tmp_path / "text.safetensors"
    enc.save_weights(path)  # T5's tied embedding is written under both keys
    assert sorted(p.name for p in tmp_path.iterdir()) == ["text.safetensors"]  # no temp files left
    loaded = TextEncoder(dataclasses.replace(cfg.text, pretrained=str(path)))
    assert loaded.t5.encoder.embed_tokens.weight is loaded.t5.shared.weight
    assert torch.equal(enc(["a siren"])[0], loaded(["a siren"])[0])
    with pytest.raises(ValueError, match="wrong shape|does not match"):
        TextEncoder(dataclasses.replace(cfg.text, d_ff=cfg.text.d_ff * 2, pretrained=str(path)))
    with pytest.raises(ValueError, match=".safetensors"):
        enc.save_weights(tmp_path / "text.pt")


def test_text_missing_local_path_is_a_clear_error(cfg, tmp_path):
    with pytest.raises(FileNotFoundError, match="local path not found"):
        TextEncoder(dataclasses.replace(cfg.text, pretrained=str(tmp_path / "nope")))


def test_text_unreachable_hub_id_is_a_clear_error(cfg, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # fail fast instead of retrying
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="could not load 'audiox-test/not-a-model' from the hub"):
        TextEncoder(dataclasses.replace(cfg.text, pretrained="audiox-test/not-a-model"))
    enc = TextEncoder(dataclasses.replace(cfg.text, tokenizer="audiox-test/not-a-tokenizer"))  # lazy tokenizer
    with pytest.raises(RuntimeError, match="text tokenizer: could not load"):
        enc(["hi"])


def test_text_tokenizer_larger_than_vocab_is_rejected(cfg):
    enc = TextEncoder(dataclasses.replace(cfg.text, vocab_size=100))
    with pytest.raises(ValueError, match="vocab_size"):
        enc(["hi"])


def test_train_tokenizer_words_become_tokens(cfg):
    from audiox.core.encoders.text import train_tokenizer

    caps = ["A bell rings twice.", "A buzz, then a click.", "Two bell rings and a click.", "Steady rain."] * 5
    tok = train_tokenizer(caps, vocab_size=320)
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)
    assert tok.tokenize("A bell rings") == ["Ġa", "Ġbell", "Ġrings"]  # lower-cased, one token per frequent word
    ids = tok("a bell")["input_ids"]
    assert ids[-1] == tok.eos_token_id and len(ids) == 3
    unseen = tok("Zebra ß 猫")["input_ids"]  # any string tokenizes through the byte symbols, never <unk>
    assert tok.unk_token_id not in unseen and tok.decode(unseen, skip_special_tokens=True) == " zebra ß 猫"
    enc = TextEncoder(dataclasses.replace(cfg.text, tokenizer="byt5"))
    enc._tokenizer = tok  # the encoder pads / truncates it like any tokenizer
    ids, mask = enc.tokenize(["a bell", "steady rain, then a bell rings twice"])
    assert ids.shape == (2, cfg.text.max_length) and mask.sum(1).tolist() == [3, 9]
    with pytest.raises(ValueError, match="vocab_size must be at least"):
        train_tokenizer(caps, vocab_size=100)
    with pytest.raises(ValueError, match="no texts"):
        train_tokenizer([], vocab_size=300)


# ---------------------------------------------------------------------------------------------- video


def test_video_shapes_and_per_frame_batching(cfg):
    torch.manual_seed(0)
    enc = VideoEncoder(cfg.video)
    frames = torch.rand(2, 3, 3, 40, 48)  # not the tower's size: resized inside
    out = enc(frames)
    assert out.shape == (2, 3, cfg.video.embed_dim) and out.dtype == torch.float32
    # flattening (B F) must keep every frame's identity: frame (1, 2) alone gives the same feature
    single = enc(frames[1:2, 2:3])
    torch.testing.assert_close(out[1, 2], single[0, 0], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out[0, 0], out[1, 2])


def test_video_clip_normalisation(cfg):
    enc = VideoEncoder(cfg.video)
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    x = mean.expand(2, 3, cfg.video.image_size, cfg.video.image_size)
    assert enc.preprocess(x).abs().max() < 1e-6  # the CLIP mean maps to zero
    white = enc.preprocess(torch.ones(1, 3, 64, 64))
    assert white.shape[-1] == cfg.video.image_size
    torch.testing.assert_close(white[0, 0, 0, 0], torch.tensor((1 - 0.48145466) / 0.26862954))


def test_video_custom_tower_loads_local_state_dict(cfg, tmp_path):
    torch.manual_seed(3)
    enc = VideoEncoder(cfg.video)
    frames = torch.rand(1, 2, 3, 32, 32)
    ref = enc(frames)
    # full-CLIP key names ("visual.*") and visual-only names both load
    save_file({f"visual.{k}": v.contiguous() for k, v in enc.visual.state_dict().items()}, tmp_path / "clip.safetensors")
    save_file({k: v.contiguous() for k, v in enc.visual.state_dict().items()}, tmp_path / "visual.safetensors")
    for name in ("clip.safetensors", "visual.safetensors"):
        loaded = VideoEncoder(dataclasses.replace(cfg.video, pretrained=str(tmp_path / name)))
        torch.testing.assert_close(loaded(frames), ref, atol=0, rtol=0)
    with pytest.raises(ValueError, match="wrong shape|does not match"):
        VideoEncoder(dataclasses.replace(cfg.video, width=64, heads=2, pretrained=str(tmp_path / "clip.safetensors")))
    with pytest.raises(FileNotFoundError, match="not found"):
        VideoEncoder(dataclasses.replace(cfg.video, pretrained=str(tmp_path / "missing.safetensors")))


# ---------------------------------------------------------------------------------------------- sync


def test_segment_starts_cover_the_clip():
    for f in range(1, 30):
        starts = segment_starts(f, 4, 2)
        assert starts[0] == 0 and starts[-1] + 4 >= f and (len(starts) == 1 or starts[-1] < f - 4 + 2)


@pytest.mark.parametrize("num_frames", [1, 3, 4, 7, 11])
def test_sync_one_feature_per_frame(cfg, num_frames):
    enc = SyncEncoder(cfg.sync)
    out = enc(torch.rand(2, num_frames, 3, 32, 32))
    assert out.shape == (2, num_frames, cfg.sync.out_dim) and torch.isfinite(out).all()


def test_sync_overlap_average_matches_segments(cfg):
    torch.manual_seed(0)
    enc = SyncEncoder(cfg.sync)
    s, stride = cfg.sync.segment_frames, cfg.sync.segment_stride  # 4, 2
    frames = torch.rand(1, s + stride, 3, 32, 32)  # exactly two segments: [0, 4) and [2, 6)
    out = enc(frames)
    seg0 = enc.encode_segments(frames[:, 0:s])[0]
    seg1 = enc.encode_segments(frames[:, stride : stride + s])[0]
    torch.testing.assert_close(out[0, :stride], seg0[:stride], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[0, stride:s], (seg0[stride:] + seg1[: s - stride]) / 2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[0, s:], seg1[s - stride :], atol=1e-5, rtol=1e-5)
    # within a tubelet the frames share their feature; across tubelets they differ
    assert torch.equal(seg0[0], seg0[1]) and not torch.allclose(seg0[0], seg0[2])


def test_sync_locality(cfg):
    torch.manual_seed(0)
    enc = SyncEncoder(cfg.sync)
    s = cfg.sync.segment_frames
    frames = torch.rand(1, 21, 3, 32, 32)
    changed = frames.clone()
    changed[:, 10] = torch.rand(3, 32, 32)
    a, b = enc(frames), enc(changed)
    diff = (a - b).abs().amax(-1)[0]  # (F,)
    assert diff[10] > 1e-4
    far = [f for f in range(21) if abs(f - 10) >= s]
    assert diff[far].max() == 0  # frames that share no segment with frame 10 are untouched
    assert diff[10 - s // 2] > 0 and diff[10 + s // 2] > 0  # neighbours inside a shared segment do change


def test_sync_strict_pretrained_loading(cfg, tmp_path):
    torch.manual_seed(4)
    enc = SyncEncoder(cfg.sync)
    path = tmp_path / "sync.safetensors"
    enc.save_weights(path)
    loaded = SyncEncoder(dataclasses.replace(cfg.sync, pretrained=str(path)))
    x = torch.rand(1, 6, 3, 32, 32)
    assert torch.equal(enc(x), loaded(x))
    with pytest.raises(ValueError, match="does not match"):
        SyncEncoder(dataclasses.replace(cfg.sync, depth=2, pretrained=str(path)))
    with pytest.raises(ValueError, match="wrong shape"):
        SyncEncoder(dataclasses.replace(cfg.sync, out_dim=16, pretrained=str(path)))
    with pytest.raises(FileNotFoundError, match="not found"):
        SyncEncoder(dataclasses.replace(cfg.sync, pretrained=str(tmp_path / "nope.safetensors")))


# ---------------------------------------------------------------------------------------------- freezing


@pytest.mark.parametrize("kind", ["video", "sync"])
def test_frame_encoders_freeze(cfg, kind):
    cls, sub = {"video": (VideoEncoder, cfg.video), "sync": (SyncEncoder, cfg.sync)}[kind]
    x = torch.rand(1, 4, 3, 32, 32)
    frozen = cls(sub)
    frozen.train()
    assert not frozen.training and all(not m.training for m in frozen.modules())
    assert all(not p.requires_grad for p in frozen.parameters())
    assert not frozen(x).requires_grad

    trainable = cls(dataclasses.replace(sub, freeze=False)).train()
    assert trainable.training
    trainable(x).pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable.parameters())


# ---------------------------------------------------------------------------------------------- sizes


def test_paper_encoder_sizes_on_meta():
    cfg = get_config("paper")
    with torch.device("meta"):
        text = TextEncoder(cfg.text)
        video = VideoEncoder(cfg.video)
        sync = SyncEncoder(cfg.sync)
    assert text.out_dim == 768 and abs(_n(text) - 110e6) / 110e6 < 0.10  # T5-base encoder
    assert video.out_dim == 512 and abs(_n(video) - 88e6) / 88e6 < 0.05  # CLIP ViT-B/32 visual tower
    assert sync.out_dim == 768 and 85e6 < _n(sync) < 125e6  # ViT-B with divided space-time attention


def test_mini_encoders_run(tmp_path):
    cfg = get_config("mini")
    torch.manual_seed(0)
    emb, mask = TextEncoder(cfg.text)(["a bell rings three times"])
    assert emb.shape == (1, cfg.text.max_length, cfg.text.d_model) and mask.sum() == 25
    v = VideoEncoder(cfg.video)(torch.rand(1, 2, 3, 64, 64))
    assert v.shape == (1, 2, cfg.video.embed_dim)
    s = SyncEncoder(cfg.sync)(torch.rand(1, 10, 3, 32, 32))
    assert s.shape == (1, 10, cfg.sync.out_dim)


@pytest.mark.parametrize("kind", ["text", "video", "sync"])
def test_meta_build_then_assign_load(cfg, kind):
    """Built on the meta device and loaded with ``assign=True`` (how checkpoints load), nothing stays on meta."""
    cls, sub = {"text": (TextEncoder, cfg.text), "video": (VideoEncoder, cfg.video), "sync": (SyncEncoder, cfg.sync)}[kind]
    torch.manual_seed(0)
    real = cls(sub)
    with torch.device("meta"):
        empty = cls(sub)
    empty.load_state_dict(real.state_dict(), assign=True)
    assert not any(t.is_meta for t in list(empty.parameters()) + list(empty.buffers()))
    if kind == "text":  # the tied input embedding survives assign-loading, also through a parent module
        assert empty.t5.encoder.embed_tokens.weight is empty.t5.shared.weight
        with torch.device("meta"):
            parent = torch.nn.ModuleDict({"text_encoder": cls(sub)})
        parent.load_state_dict({f"text_encoder.{k}": v for k, v in real.state_dict().items()}, assign=True)
        assert parent["text_encoder"].t5.encoder.embed_tokens.weight is parent["text_encoder"].t5.shared.weight
    x = ["a dog barks"] if kind == "text" else torch.rand(1, 5, 3, 32, 32)
    a, b = real(x), empty(x)
    a, b = (a[0], b[0]) if kind == "text" else (a, b)
    assert torch.equal(a, b)


def test_bfloat16_encoders_accept_float_frames(cfg):
    """A bf16 model (e.g. ``from_pretrained(dtype=torch.bfloat16)``) takes float32 frames in [0, 1]."""
    torch.manual_seed(0)
    frames = torch.rand(1, 5, 3, 40, 40)  # resized inside (antialias has no bf16 CPU kernel: done in float32)
    for enc in (VideoEncoder(cfg.video), SyncEncoder(cfg.sync)):
        ref = enc(frames)
        out = enc.to(torch.bfloat16)(frames)
        assert out.dtype == torch.bfloat16 and out.shape == ref.shape
        torch.testing.assert_close(out.float(), ref, atol=0.1, rtol=0.1)
    emb, _ = TextEncoder(cfg.text).to(torch.bfloat16)(["hi"])
    assert emb.dtype == torch.bfloat16


def test_uint8_frames_equal_their_float_scaling(cfg):
    """Loaders ship frames as uint8 0-255 (4x fewer bytes between processes and to the GPU); both video encoders
    must see exactly what they see for the same frames as float in [0, 1]."""
    torch.manual_seed(0)
    raw = torch.randint(0, 256, (2, 5, 3, 32, 32), dtype=torch.uint8)
    scaled = raw.float() / 255
    enc_v, enc_s = VideoEncoder(cfg.video).eval(), SyncEncoder(cfg.sync).eval()
    with torch.no_grad():
        torch.testing.assert_close(enc_v(raw), enc_v(scaled), atol=0, rtol=0)
        torch.testing.assert_close(enc_s(raw), enc_s(scaled), atol=0, rtol=0)
        assert not torch.equal(enc_v(raw), enc_v(raw.float()))  # a 0-255 float would be a different input
