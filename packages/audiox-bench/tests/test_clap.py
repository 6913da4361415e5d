"""CLAP score plumbing with a tiny random transformers.ClapModel (offline)."""

import json

import numpy as np
import pytest
import torch

from audiox.bench.embeddings.clap import ClapScorer, tiny_clap


@pytest.fixture(scope="module")
def scorer():
    return tiny_clap()


def test_clap_score_pairs_by_id_and_equals_manual_cosine(scorer):
    sr = 16000
    t = np.arange(sr) / sr
    clips = {"a": (np.sin(2 * np.pi * 440 * t).astype(np.float32), sr), "b": (0.1 * np.random.default_rng(0).standard_normal(sr).astype(np.float32), sr)}
    texts = {"b": "rain on a roof", "a": "a pure tone"}
    ea, et = scorer.audio_embeddings(clips), scorer.text_embeddings(texts)
    assert ea["a"].shape == (16,) and et["a"].shape == (16,)
    manual = np.mean([ea[k] @ et[k] / np.linalg.norm(ea[k]) / np.linalg.norm(et[k]) for k in ("a", "b")])
    assert scorer.score(clips, texts) == pytest.approx(manual, rel=1e-9)
    swapped = {"a": texts["b"], "b": texts["a"]}
    assert scorer.score(clips, swapped) != pytest.approx(manual, rel=1e-6)


def _folders(tmp_path):
    from audiox.bench.io import write_wav

    ref, gen = tmp_path / "ref", tmp_path / "gen"
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    for i in range(3):
        write_wav(ref / f"c{i}.wav", (0.3 * np.sin(2 * np.pi * (300 + 200 * i) * t)).astype(np.float32), 16000)
        write_wav(gen / f"c{i}.wav", (0.1 * rng.standard_normal(len(t))).astype(np.float32), 16000)
    caps = tmp_path / "captions.jsonl"
    caps.write_text("\n".join(json.dumps({"id": f"c{i}", "prompt": p})
                              for i, p in enumerate(["a low tone", "a bell", "rain on a roof"])))
    return ref, gen, caps


def test_clap_folder_equals_manual_pairing(tmp_path, scorer):
    from audiox.bench.evaluate import clap_folder
    from audiox.bench.io import load_captions, read_wav

    _, gen, caps = _folders(tmp_path)
    texts = load_captions(caps)
    res = clap_folder(gen, scorer, texts, progress=False)
    clips = {f"c{i}": read_wav(gen / f"c{i}.wav") for i in range(3)}
    ea, et = scorer.audio_embeddings(clips), scorer.text_embeddings(texts)
    for k in clips:
        assert res["per_clip"][k] == pytest.approx(ea[k] @ et[k] / np.linalg.norm(ea[k]) / np.linalg.norm(et[k]), rel=1e-9)
    assert res["score"] == pytest.approx(np.mean(list(res["per_clip"].values())), rel=1e-12)
    with pytest.raises(ValueError, match="no caption"):
        clap_folder(gen, scorer, {"c0": "x"}, progress=False)


def test_metrics_cli_clap_column_and_errors(tmp_path, capsys):
    from audiox.bench.cli import main
    from audiox.bench.evaluate import clap_folder
    from audiox.bench.io import load_captions

    ref, gen, caps = _folders(tmp_path)
    out = tmp_path / "out"
    assert main(["metrics", "--ref", str(ref), "--gen", str(gen), "--out", str(out), "--tiny", "--captions",
                 str(caps), "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    texts = load_captions(caps)
    assert res["clap"]["generated"] == pytest.approx(clap_folder(gen, tiny_clap(), texts, progress=False)["score"], rel=1e-9)
    assert res["clap"]["reference"] == pytest.approx(clap_folder(ref, tiny_clap(), texts, progress=False)["score"], rel=1e-9)
    assert res["weights"]["clap"] == "random"
    table = (out / "table.md").read_text()
    assert "| CLAP ↑ |" in table and f"{res['clap']['generated']:.2f} |" in table.splitlines()[2]
    # bad input: one line, exit 2, nothing written
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "c0", "prompt": "x"}))
    capsys.readouterr()
    for extra in (["--captions", str(bad), "--tiny"], ["--clap", str(tmp_path / "nowhere")],
                  ["--captions", str(caps)]):
        out2 = tmp_path / f"o{len(extra)}{extra[0]}"
        assert main(["metrics", "--ref", str(ref), "--gen", str(gen), "--out", str(out2), "--no-progress", *extra]) == 2
        assert not out2.exists()
        err = capsys.readouterr().err.strip()
        assert err and len(err.splitlines()) == 1


def test_t2a_cli_clap_per_setting(tmp_path, monkeypatch):
    from audiox.bench.cli import main
    from audiox.bench.io import read_wav

    monkeypatch.setattr(ClapScorer, "from_pretrained", classmethod(lambda cls, path, device="cpu": tiny_clap()))
    out = tmp_path / "res"
    assert main(["t2a", "--model", "debug", "--n", "2", "--setting", "turbo=turbo:1", "--clap", str(tmp_path),
                 "--out", str(out), "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    per = json.loads((out / "clap_turbo.json").read_text())
    assert sorted(per) == ["T2A_00000", "T2A_00001"]
    s = tiny_clap()
    wav = read_wav(out / "audio" / "turbo" / "T2A_00001.wav")
    a = s.audio_embeddings({"x": wav})["x"]
    assert res["runs"][0]["clap"] == pytest.approx(np.mean(list(per.values())), rel=1e-9)
    assert -1.0 <= per["T2A_00001"] <= 1.0 and a.shape == (16,)
    assert "| turbo | 1 |" in (out / "table.md").read_text().split("CLAP")[1]
