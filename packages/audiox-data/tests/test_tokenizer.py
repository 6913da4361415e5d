"""``audiox-data tokenizer``: a BPE learned from a corpus's captions, loadable as the text encoder's tokenizer."""

import dataclasses

from transformers import AutoTokenizer

from audiox.core.config import TASK_SENTENCES, get_config
from audiox.core.encoders import TextEncoder
from audiox.data.cli import main
from audiox.data.shards import synth_shards
from audiox.data.stats import iter_annotations
from audiox.data.synth import SynthConfig
from audiox.data.tokenizer import caption_texts


def test_tokenizer_from_a_corpus(tmp_path, capsys):
    cfg = SynthConfig(duration=2.0, image_size=16, music_fraction=0.3, video=False)
    synth_shards(tmp_path / "s", 30, 5, shard_size=10, cfg=cfg, prompts={"t2a_bench": 2, "v2a": 1, "t2m": 1},
                 progress=False)
    texts = list(caption_texts(tmp_path / "s"))
    anns = list(iter_annotations(tmp_path / "s"))
    assert len(anns) == 30
    assert all(a["caption"] in texts for a in anns) and set(TASK_SENTENCES.values()) <= set(texts)
    assert len(texts) > 3 * len(anns)  # the caption variants too

    assert main(["tokenizer", str(tmp_path / "s"), "--out", str(tmp_path / "tok"), "--vocab-size", "600"]) == 0
    out = capsys.readouterr().out
    n = len(AutoTokenizer.from_pretrained(str(tmp_path / "tok")))
    assert f"tokenizer: {n} tokens" in out and "model.text.vocab_size=" in out
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # atomic: no temp folder left

    # the corpus's sound words are single tokens, and the text encoder uses the folder
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    events = {e["name"] for a in anns for e in a["meta"].get("events", [])}
    word = min(events).split()[-1]
    assert tok.tokenize(f"a {word}") == ["Ġa", f"Ġ{word}"]
    text_cfg = dataclasses.replace(get_config("debug").text, tokenizer=str(tmp_path / "tok"), vocab_size=-(-n // 64) * 64)
    emb, mask = TextEncoder(text_cfg)([f"a {word}", texts[0]])
    assert emb.shape[0] == 2 and int(mask[0].sum()) == 3  # "a", the word, </s>

    assert main(["tokenizer", str(tmp_path / "missing"), "--out", str(tmp_path / "t2")]) == 2
    assert not (tmp_path / "t2").exists()
