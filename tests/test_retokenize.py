"""recipes/retokenize.py: a fresh text encoder over a corpus tokenizer, every other weight kept; the tokenizer
travels with the folder through swap_decoder too."""

import json

import torch
from safetensors.torch import load_file

from audiox.core import AudioXModel, ConditionInputs, get_config
from audiox.core.encoders.text import train_tokenizer

CAPTIONS = ["A bell rings twice.", "A buzz, then a click.", "Two bell rings and a click.", "Steady rain."] * 5


def test_retokenize_keeps_everything_but_the_text_encoder(tmp_path, recipe_tool):
    torch.manual_seed(0)
    src = AudioXModel(get_config("debug")).save_pretrained(tmp_path / "m")
    (src / "MODEL_CARD.md").write_text("# card\n")
    tok = train_tokenizer(CAPTIONS, vocab_size=400)
    tok.save_pretrained(str(tmp_path / "tok"))
    rows = -(-len(tok) // 64) * 64
    assert rows != get_config("debug").text.vocab_size
    rt = recipe_tool("retokenize")
    out = rt.retokenize(src, tmp_path / "tok", tmp_path / "out", max_length=24)

    before, after = load_file(str(src / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert {k for k in before if not k.startswith("text_encoder.")} == {k for k in after if not k.startswith("text_encoder.")}
    for k, v in after.items():
        if not k.startswith("text_encoder."):
            assert torch.equal(v, before[k]), k
    assert after["text_encoder.t5.shared.weight"].shape[0] == rows  # the tokenizer's size, rounded up to 64
    text = json.loads((out / "config.json").read_text())["text"]
    assert text["tokenizer"] == "tokenizer" and text["max_length"] == 24 and text["vocab_size"] == rows
    assert "retokenize.py" in (out / "MODEL_CARD.md").read_text()

    model = AudioXModel.from_pretrained(out)
    ids, mask = model.text_encoder.tokenize(["a bell rings twice"])
    assert int(mask.sum()) == 5 and ids.shape == (1, 24)  # 4 words + </s>
    cond = model.prepare_conditions(ConditionInputs(text=["a bell rings twice", "steady rain"], task=["t2a", "t2a"]))
    assert cond.context.shape[0] == 2 and torch.isfinite(cond.context).all()

    # swap_decoder copies the tokenizer folder with the rest
    sd = recipe_tool("swap_decoder")
    ae = sd.extract(out, tmp_path / "ae.safetensors")
    swapped = sd.replace(ae, out, tmp_path / "swapped")
    assert (swapped / "tokenizer" / "tokenizer.json").read_bytes() == (out / "tokenizer" / "tokenizer.json").read_bytes()
    assert AudioXModel.from_pretrained(swapped).text_encoder.tokenize(["a bell"])[0].tolist() == \
        model.text_encoder.tokenize(["a bell"])[0].tolist()

    assert rt.main([str(src), str(tmp_path / "nope"), str(tmp_path / "out2")]) == 2
    assert not (tmp_path / "out2").exists()
