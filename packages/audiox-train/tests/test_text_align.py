"""``audiox-train text-align``: the contrastive loss and retrieval against their formulas, learning on a separable
toy, and the command end to end (only the T5 changes, the output is frozen, a crashed run resumes exactly)."""

import math

import pytest
import torch
from safetensors.torch import load_file

from audiox.core import AudioXModel, get_config
from audiox.train.text_align import (ClipPairs, TextAlignConfig, TextAligner, category_name_caption, event_pairs,
                                     event_retrieval, retrieval)

SMALL = dict(batch_size=4, holdout=2, embed_dim=16, audio_width=16, audio_depth=1, audio_heads=2)


def _model(seed=0):
    torch.manual_seed(seed)
    return AudioXModel(get_config("debug"))


def test_loss_and_retrieval_match_their_formulas():
    torch.manual_seed(0)
    model = _model()
    aligner = TextAligner(model, TextAlignConfig(**SMALL)).eval()
    cfg = model.config
    texts = ["a bell", "two claps", "a dog barks", "rain"]
    z = torch.randn(4, cfg.autoencoder.latent_dim, cfg.latent_length)
    with torch.no_grad():
        t, a = aligner.embed_text(texts), aligner.embed_audio(z)
        logits = math.exp(math.log(1 / 0.07)) * t.double() @ a.double().T
        ref = 0.0
        for i in range(4):  # InfoNCE, text -> audio and audio -> text, averaged
            ref += -torch.log_softmax(logits[i], 0)[i] / 8 - torch.log_softmax(logits[:, i], 0)[i] / 8
        torch.testing.assert_close(aligner.loss(texts, z).double(), ref, rtol=1e-5, atol=1e-5)

        emb, mask = aligner.text(texts)  # the padded-to-max_length forward the DiT sees pools to the same vector
        w = mask.float()[..., None]
        torch.testing.assert_close(aligner.pooled_text(texts), (emb * w).sum(1) / w.sum(1), rtol=1e-5, atol=1e-5)
        r = retrieval(aligner, ClipPairs(["a", "b", "c", "d"], [[x] for x in texts], z))
        sim = (t @ a.T).tolist()
        ranks = [1 + sum(sim[i][j] > sim[i][i] for j in range(4)) for i in range(4)]
        assert r["r1"] == sum(k == 1 for k in ranks) / 4 and r["mean_rank"] == pytest.approx(sum(ranks) / 4)
        assert (r["chance_r1"], r["chance_r10"], r["chance_rank"]) == (0.25, 1.0, 2.5)


def test_without_a_text_head_the_loss_compares_the_pooled_t5_output_itself():
    model = _model()
    aligner = TextAligner(model, TextAlignConfig(**SMALL, text_head=False)).eval()
    texts = ["a bell", "two claps"]
    z = torch.randn(2, model.config.autoencoder.latent_dim, model.config.latent_length)
    with torch.no_grad():
        pooled = aligner.pooled_text(texts)
        torch.testing.assert_close(aligner.embed_text(texts), torch.nn.functional.normalize(pooled, dim=-1))
        assert aligner.embed_audio(z).shape == (2, model.text_encoder.out_dim)  # the audio head maps to the T5 width
    assert not any(n.startswith("text_head") for n, _ in aligner.named_parameters())


def test_the_towers_learn_a_separable_toy():
    """Four captions, each with its own latent pattern (plus noise): 60 steps align them far above chance."""
    torch.manual_seed(0)
    model = _model()
    cfg = TextAlignConfig(**{**SMALL, "batch_size": 8, "lr": 2e-3})
    aligner = TextAligner(model, cfg)
    c, length = model.config.autoencoder.latent_dim, model.config.latent_length
    words = ["a bell", "two claps", "a dog barks", "steady rain"]
    patterns = torch.randn(4, c, 1) * torch.linspace(-1, 1, length)  # (4, C, T): a channel mix over time
    classes = torch.arange(32) % 4
    z = patterns[classes] + 0.3 * torch.randn(32, c, length)
    pairs = ClipPairs([str(i) for i in range(32)], [[words[k]] for k in classes.tolist()], z)
    opt = torch.optim.AdamW(aligner.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(60):
        idx = torch.randperm(32, generator=gen)[:4]  # four clips; classes may repeat (false negatives, as in data)
        loss = aligner.loss([pairs.captions[i][0] for i in idx], z[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) / 10 < 0.6 * sum(losses[:10]) / 10
    with torch.no_grad():
        t = aligner.eval().embed_text(words)
        a = aligner.embed_audio(patterns)  # the noiseless pattern of each class
    assert ((t @ a.T).argmax(1) == torch.arange(4)).float().mean() >= 0.75  # 3 of 4 classes (chance 1 in 4)


def test_event_pairs_are_seeded_isolated_and_captioned():
    from audiox.data.synth.captions import _PLURAL
    from audiox.data.synth.events import EVENT_NAMES, EVENTS

    model = _model()
    a, b = event_pairs(model, 2, seed=3, max_count=3), event_pairs(model, 2, seed=3, max_count=3)
    c = event_pairs(model, 2, seed=4, max_count=3)
    cfg = model.config
    assert a.latents.shape == (2 * len(EVENT_NAMES), cfg.autoencoder.latent_dim, cfg.latent_length)
    assert a.keys == [f"{n}/{j}" for n in EVENT_NAMES for j in range(2)]  # category-major
    assert torch.equal(a.latents, b.latents) and a.captions == b.captions  # seeded
    assert not torch.equal(a.latents, c.latents)
    for key, caps in zip(a.keys, a.captions):
        name = key.split("/")[0]
        words = [*EVENTS[name].nouns, _PLURAL.get(name, name)]
        assert len(caps) >= 4 and all(any(w.split()[-1] in t.lower() for w in words) for t in caps), (key, caps)
        others = [n for n in EVENT_NAMES if n != name and n not in " ".join(words)]
        assert not any(f" {n}" in f" {t.lower()}" for t in caps for n in others), caps  # that category only
    with torch.no_grad():  # the latents are the model's own encoding of the rendered clip (not zeros)
        assert float(a.latents.abs().mean()) > 0


def test_event_retrieval_matches_a_plain_loop():
    torch.manual_seed(0)
    model = _model()
    aligner = TextAligner(model, TextAlignConfig(**SMALL)).eval()
    probe = event_pairs(model, 2, seed=1)
    r = event_retrieval(aligner, probe)
    names = list(dict.fromkeys(k.split("/")[0] for k in probe.keys))
    with torch.no_grad():
        pooled = aligner.pooled_text([category_name_caption(n) for n in names]).double()
        t = torch.nn.functional.normalize(aligner.text_head(pooled.float()).double(), dim=-1)
        a = aligner.embed_audio(probe.latents).double()
    hits = 0
    for i, key in enumerate(probe.keys):
        scores = [float(a[i] @ t[k]) for k in range(len(names))]
        hits += names[scores.index(max(scores))] == key.split("/")[0]
    assert r["event_top1"] == pytest.approx(hits / len(probe.keys)) and r["event_chance"] == pytest.approx(1 / 13)
    centred = pooled - pooled.mean(0)
    best = max(((float(torch.nn.functional.cosine_similarity(centred[i], centred[j], dim=0)), i, j)
                for i in range(len(names)) for j in range(len(names)) if i != j))
    assert r["closest_cosine"] == pytest.approx(best[0], abs=1e-5)
    assert set(r["closest"].split("~")) == {names[best[1]], names[best[2]]}
    assert category_name_caption("chirp") == "A chirp."


def test_event_share_and_bad_event_settings():
    assert TextAlignConfig(batch_size=64, event_crops=0.25).event_share(13) == 13  # at most one per category
    assert TextAlignConfig(batch_size=4, event_crops=0.5).event_share(13) == 2
    assert TextAlignConfig(batch_size=2, event_crops=0.9).event_share(13) == 1  # one corpus clip stays
    assert TextAlignConfig(batch_size=8).event_share(13) == 0
    for bad in ({"event_crops": 1.0}, {"event_crops": -0.1}, {"event_crops": 0.5, "event_bank": 0},
                {"event_max_count": 0}, {"event_probe": -1}):
        with pytest.raises(ValueError):
            TextAlignConfig(**bad)


@pytest.fixture(scope="module")
def aligned_corpus(tmp_path_factory):
    from audiox.data.shards import synth_shards
    from audiox.data.synth import SynthConfig
    from audiox.train.latents import encode_shards

    root = tmp_path_factory.mktemp("align")
    data = root / "data"
    cfg = get_config("debug")
    synth_shards(data, clips=10, seed=0, shard_size=5,
                 cfg=SynthConfig(sample_rate=cfg.autoencoder.sample_rate, duration=2.0, image_size=32),
                 prompts={"t2a_bench": 2, "t2m": 1}, progress=False)
    model = _model()
    model.save_pretrained(root / "model")
    encode_shards(model, str(data), batch_size=5)
    return root


def test_command_changes_only_the_text_encoder_and_resumes(aligned_corpus, tmp_path, capsys):
    from audiox.train.cli import main

    root = aligned_corpus
    common = [str(root / "model"), str(root / "data"), "--batch-size", "4", "--holdout", "2", "--eval-every", "2",
              "--event-crops", "0.5", "--event-bank", "2", "--event-probe", "1"]
    assert main(["text-align", *common, "--steps", "6", "--out", str(tmp_path / "straight")]) == 0
    out = capsys.readouterr().out
    assert main(["text-align", *common, "--steps", "2", "--no-text-head", "--out", str(tmp_path / "headless")]) == 0
    assert "; no text head" in capsys.readouterr().out
    assert "| 6 |" in out and "R@1" in out and "event top-1 % (chance)" in out
    assert "event crops: 2 of each batch of 4, from 26 encoded isolated events" in out
    assert "isolated events matched to their category name" in out
    before = load_file(str(root / "model" / "model.safetensors"))
    after = load_file(str(tmp_path / "straight" / "model.safetensors"))
    assert before.keys() == after.keys()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("text_encoder.") for k in changed)
    loaded = AudioXModel.from_pretrained(tmp_path / "straight")
    assert loaded.config.text.freeze and loaded.text_encoder.frozen  # frozen like the paper's pretrained T5

    # a run stopped at step 4 (its checkpoint kept), then rerun to 6, ends on the same weights as the straight run
    ckpt = ["--ckpt-dir", str(tmp_path / "ckpt")]
    assert main(["text-align", *common, "--steps", "6", *ckpt, "--eval-every", "4", "--out", str(tmp_path / "x"),
                 "--max-minutes", "1e-9"]) == 0  # stops after its first step: a checkpoint at step 1
    assert main(["text-align", *common, "--steps", "6", *ckpt, "--out", str(tmp_path / "resumed")]) == 0
    assert "resumed text-align at step 1" in capsys.readouterr().out
    resumed = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    for k in changed:
        torch.testing.assert_close(resumed[k], after[k], rtol=1e-5, atol=1e-6)


def test_command_refuses_bad_input(aligned_corpus, tmp_path, capsys):
    from audiox.train.cli import main

    root = aligned_corpus
    assert main(["text-align", str(root / "model"), str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no shards" in capsys.readouterr().err
    assert main(["text-align", str(root / "model"), str(root / "data"), "--holdout", "9", "--batch-size", "4",
                 "--out", str(tmp_path / "o")]) == 2
    assert "captioned clips, need holdout 9" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
