"""Audiobox Aesthetics: encoder states, pooling / heads / scaling against float64 hand computation, windowing,
the strict key map from the published checkpoint's names (synthetic state dicts, tiny and full size), and
PC / PQ / CE / CU through `audiox-bench metrics` / `t2a --aesthetics` (bad weights: one-line error, no output)."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from audiox.bench.cli import main
from audiox.bench.embeddings.aesthetics import AXES, AestheticsConfig, AudioboxAesthetics, published_to_ours, tiny_aesthetics
from audiox.bench.io import read_wav, write_wav

TT = {"CE": {"mean": 5.5, "std": 1.5}, "CU": {"mean": 6.0, "std": 2.0}, "PC": {"mean": 3.0, "std": 1.25},
      "PQ": {"mean": 7.0, "std": 0.5}}


@pytest.fixture(scope="module")
def net():
    return tiny_aesthetics(TT)


def _published_shapes(c: AestheticsConfig) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of upstream ``AesMultiOutput`` (its WavLM: fairseq/unilm names), written out by hand."""
    d, s = c.hidden, {}
    w = "wavlm_model."
    s[w + "mask_emb"] = (d,)
    cin = 1
    for i, (cout, k) in enumerate(zip(c.conv_dim, c.conv_kernel, strict=True)):
        s[w + f"feature_extractor.conv_layers.{i}.0.weight"] = (cout, cin, k)  # Sequential(conv, dropout, [norm], gelu)
        cin = cout
    s[w + "feature_extractor.conv_layers.0.2.weight"] = s[w + "feature_extractor.conv_layers.0.2.bias"] = (c.conv_dim[0],)
    s[w + "layer_norm.weight"] = s[w + "layer_norm.bias"] = (cin,)
    s[w + "post_extract_proj.weight"], s[w + "post_extract_proj.bias"] = (d, cin), (d,)
    e = w + "encoder."
    s[e + "pos_conv.0.bias"] = (d,)
    s[e + "pos_conv.0.weight_g"] = (1, 1, c.conv_pos)  # weight_norm(dim=2)
    s[e + "pos_conv.0.weight_v"] = (d, d // c.conv_pos_groups, c.conv_pos)
    s[e + "layer_norm.weight"] = s[e + "layer_norm.bias"] = (d,)
    for i in range(c.layers):
        p = e + f"layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            s[p + f"self_attn.{proj}.weight"], s[p + f"self_attn.{proj}.bias"] = (d, d), (d,)
        s[p + "self_attn.grep_linear.weight"], s[p + "self_attn.grep_linear.bias"] = (8, d // c.heads), (8,)
        s[p + "self_attn.grep_a"] = (1, c.heads, 1, 1)
        if i == 0:
            s[p + "self_attn.relative_attention_bias.weight"] = (c.num_buckets, c.heads)
        s[p + "self_attn_layer_norm.weight"] = s[p + "self_attn_layer_norm.bias"] = (d,)
        s[p + "fc1.weight"], s[p + "fc1.bias"] = (c.ffn, d), (c.ffn,)
        s[p + "fc2.weight"], s[p + "fc2.bias"] = (d, c.ffn), (d,)
        s[p + "final_layer_norm.weight"] = s[p + "final_layer_norm.bias"] = (d,)
    for a in AXES:
        s[f"proj_layer.{a}.0.weight"], s[f"proj_layer.{a}.0.bias"] = (1, d), (1,)
        s[f"layer_weights.{a}"] = (c.nth_layer,)
    return s


def _published_sd(c: AestheticsConfig, prefix: str = "") -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {prefix + k: torch.randn(shape, generator=g) * 0.1 for k, shape in _published_shapes(c).items()}


def test_encoder_states_match_transformers_wavlm(net):
    """Our layer loop (input of layer 1 + layer outputs) equals WavLMModel's own hidden_states when nothing is padded."""
    x = torch.randn(2, 8000)
    states, frames = net.hidden_states(x, torch.ones_like(x, dtype=torch.bool))
    ref = net.wavlm(x, output_hidden_states=True).hidden_states
    assert states.shape == (2, 24, 16, 3) and frames.all()  # 8000 samples -> 24 frames of 320 (conv arithmetic)
    for i in range(3):
        torch.testing.assert_close(states[..., i], ref[i], rtol=1e-5, atol=1e-5)


def test_frame_mask_is_upstream_chunking():
    # 16000 samples -> 49 frames; upstream: drop 16000 % 49 = 26 samples, 49 chunks of 326; pad frame iff all-pad chunk
    for n_valid in (1, 326, 327, 5000, 15974, 16000):
        valid = torch.zeros(1, 16000, dtype=torch.bool)
        valid[0, :n_valid] = True
        got = AudioboxAesthetics.frame_mask(valid, 49)[0]
        want = min(49, -(-n_valid // 326))
        assert got.sum().item() == want and got[:want].all()


def test_pooling_heads_against_float64(net):
    """Forward = per-axis softmax layer mix, masked mean over valid frames, L2 norm, Linear head (float64 reference)."""
    torch.manual_seed(3)
    wav = torch.randn(2, 16000) * 0.3
    valid = torch.ones(2, 16000, dtype=torch.bool)
    valid[1, 6000:] = False  # second window: 6000 valid samples -> ceil(6000 / 326) = 19 valid frames
    preds = net(wav, valid)
    states, frames = net.hidden_states(wav, valid)
    assert frames.sum(1).tolist() == [49, 19]
    st, fr = states.double().numpy(), frames.numpy()
    for j, a in enumerate(AXES):
        lw = net.layer_weights[a].detach().double().numpy()
        mix = np.exp(lw - lw.max()) / np.exp(lw - lw.max()).sum()
        head = net.proj_layer[a][0]
        for b in range(2):
            e = (st[b][fr[b]] @ mix).mean(0)  # (T_valid, D, L) @ (L,) -> mean over frames
            e = e / np.linalg.norm(e)
            want = e @ head.weight.detach().double().numpy()[0] + head.bias.item()
            assert preds[b, j].item() == pytest.approx(want, rel=1e-4, abs=1e-5)


def test_clip_score_windows_weights_and_scaling(net):
    """2.5 s at 1 s windows -> windows [0,1), [1,2), [2,2.5) weighted 1, 1, 0.5; score = pred * std + mean."""
    sr = 16000
    rng = np.random.default_rng(0)
    clip = (0.2 * rng.standard_normal(int(2.5 * sr))).astype(np.float32)
    got = net.score(clip, sr)
    wins = torch.zeros(3, sr)
    valid = torch.zeros(3, sr, dtype=torch.bool)
    for k, (s, e) in enumerate(((0, sr), (sr, 2 * sr), (2 * sr, int(2.5 * sr)))):
        wins[k, : e - s] = torch.from_numpy(clip[s:e])
        valid[k, : e - s] = True
    with torch.no_grad():
        p = torch.cat([net(wins[k : k + 1], valid[k : k + 1]) for k in range(3)]).double().numpy()
    wts = np.array([1.0, 1.0, 0.5])
    for j, a in enumerate(AXES):
        per_win = p[:, j] * TT[a]["std"] + TT[a]["mean"]
        assert got[a] == pytest.approx((per_win * wts).sum() / wts.sum(), rel=1e-5)
    # stereo at 32 kHz: channel mean then resampling to 16 kHz, as the mono 16 kHz path
    from audiox.bench.embeddings.frontend import to_mono_resampled

    st = np.stack([clip, np.zeros_like(clip)])
    from scipy.signal import resample_poly

    st32 = resample_poly(st, 2, 1, axis=1).astype(np.float32)
    mono16 = to_mono_resampled(st32, 2 * sr, sr)
    assert net.score(st32, 2 * sr) == pytest.approx(net.score(mono16, sr), rel=1e-6)
    with pytest.raises(ValueError, match="empty"):
        net.score(np.zeros(0, np.float32), sr)


@pytest.mark.parametrize("prefix", ["", "model.", "encoder."])
def test_key_map_loads_published_names(tmp_path, prefix):
    net = tiny_aesthetics()
    sd = _published_sd(net.cfg, prefix)
    save_file(sd, str(tmp_path / "aes.safetensors"))
    net.load_weights(tmp_path / "aes.safetensors")
    p, w = prefix + "wavlm_model.", net.wavlm
    L1 = w.encoder.layers[1]
    pairs = [
        (p + "mask_emb", w.masked_spec_embed),
        (p + "feature_extractor.conv_layers.3.0.weight", w.feature_extractor.conv_layers[3].conv.weight),
        (p + "feature_extractor.conv_layers.0.2.bias", w.feature_extractor.conv_layers[0].layer_norm.bias),
        (p + "layer_norm.weight", w.feature_projection.layer_norm.weight),
        (p + "post_extract_proj.weight", w.feature_projection.projection.weight),
        (p + "encoder.pos_conv.0.bias", w.encoder.pos_conv_embed.conv.bias),
        (p + "encoder.layer_norm.bias", w.encoder.layer_norm.bias),
        (p + "encoder.layers.1.self_attn.k_proj.weight", L1.attention.k_proj.weight),
        (p + "encoder.layers.1.self_attn.out_proj.bias", L1.attention.out_proj.bias),
        (p + "encoder.layers.1.self_attn.grep_linear.weight", L1.attention.gru_rel_pos_linear.weight),
        (p + "encoder.layers.1.self_attn.grep_a", L1.attention.gru_rel_pos_const),
        (p + "encoder.layers.0.self_attn.relative_attention_bias.weight", w.encoder.layers[0].attention.rel_attn_embed.weight),
        (p + "encoder.layers.1.self_attn_layer_norm.weight", L1.layer_norm.weight),
        (p + "encoder.layers.1.fc1.weight", L1.feed_forward.intermediate_dense.weight),
        (p + "encoder.layers.1.fc2.bias", L1.feed_forward.output_dense.bias),
        (p + "encoder.layers.1.final_layer_norm.weight", L1.final_layer_norm.weight),
        (prefix + "proj_layer.PQ.0.weight", net.proj_layer["PQ"][0].weight),
        (prefix + "layer_weights.PC", net.layer_weights["PC"]),
    ]
    for name, param in pairs:
        torch.testing.assert_close(param.detach(), sd[name], msg=name)
    # weight norm over dim 2: w[:, :, k] = g[k] * v[:, :, k] / ||v[:, :, k]|| (g and v not swapped)
    g, v = sd[p + "encoder.pos_conv.0.weight_g"].double(), sd[p + "encoder.pos_conv.0.weight_v"].double()
    want = g * v / v.pow(2).sum(dim=(0, 1), keepdim=True).sqrt()
    torch.testing.assert_close(w.encoder.pos_conv_embed.conv.weight.detach().double(), want, rtol=1e-5, atol=1e-6)


def test_key_map_is_strict(tmp_path):
    net = tiny_aesthetics()
    sd = _published_sd(net.cfg)
    missing = {k: v for k, v in sd.items() if k != "wavlm_model.encoder.layers.1.fc2.weight"}
    with pytest.raises(ValueError, match=r"missing \['wavlm.encoder.layers.1.feed_forward.output_dense.weight'\]"):
        published_to_ours(missing, net)
    with pytest.raises(ValueError, match=r"unknown \['wavlm_model.label_embs_concat'\]"):
        published_to_ours({**sd, "wavlm_model.label_embs_concat": torch.zeros(2)}, net)
    with pytest.raises(ValueError, match="shape"):
        published_to_ours({**sd, "proj_layer.CE.0.weight": torch.zeros(1, 17)}, net)
    with pytest.raises(ValueError, match="unknown"):  # a layer beyond this config's depth
        published_to_ours({**sd, "wavlm_model.encoder.layers.2.fc1.bias": torch.zeros(32)}, net)


def test_deeper_heads_keep_upstream_indices():
    """create_mlp_block(768, 1, 2, "gelu", ln=True): Linear, LayerNorm, GELU, Linear -> indices 0, 1, 3 hold tensors."""
    net = tiny_aesthetics(proj_num_layer=2, proj_ln=True)
    names = {k.split("proj_layer.PQ.")[1] for k in net.state_dict() if k.startswith("proj_layer.PQ.")}
    assert names == {"0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias"}
    assert isinstance(net.proj_layer["PQ"][2], torch.nn.GELU) and net.proj_layer["PQ"][3].out_features == 1


def test_full_size_published_layout_maps_completely():
    """The published model's every tensor (WavLM Base+, 13 states, 4 heads) maps 1:1 onto the default config."""
    c = AestheticsConfig()
    with torch.device("meta"):
        net = AudioboxAesthetics(c)
        sd = {k: torch.empty(s) for k, s in _published_shapes(c).items()}
    out = published_to_ours({"model." + k: v for k, v in sd.items()}, net)
    assert len(out) == len(sd) == len(net.state_dict())
    n_params = sum(int(np.prod(s)) for s in _published_shapes(c).values())
    assert 94_000_000 < n_params < 95_000_000  # WavLM Base+ (94.4M) + 4 x (768 + 1) head + 4 x 13 layer weights


def test_from_pretrained_folder_reads_target_transform(tmp_path):
    net = tiny_aesthetics()
    save_file(_published_sd(net.cfg), str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps({"proj_num_layer": 1, "nth_layer": 3, "precision": "32",
                                                      "normalize_embed": True, "output_dim": 1, "target_transform": TT}))
    loaded = AudioboxAesthetics.from_pretrained(tmp_path, base=net.cfg)
    raw = AudioboxAesthetics(net.cfg)
    raw.load_state_dict(loaded.state_dict())
    clip = np.sin(np.arange(20000) / 7.0).astype(np.float32) * 0.3
    a, r = loaded.score(clip, 16000), raw.score(clip, 16000)  # raw: mean 0, std 1
    for ax in AXES:
        assert a[ax] == pytest.approx(r[ax] * TT[ax]["std"] + TT[ax]["mean"], rel=1e-5)
    (tmp_path / "config.json").write_text(json.dumps({"nth_layer": 3}))
    with pytest.raises(ValueError, match="target_transform"):
        AudioboxAesthetics.from_pretrained(tmp_path, base=net.cfg)

TINY = dict(hidden=16, layers=2, heads=2, ffn=32, conv_dim=[8] * 7, conv_pos=16, conv_pos_groups=4, nth_layer=3,
            window_s=1.0, hop_s=1.0)


@pytest.fixture(scope="module")
def aes_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("aes")
    from audiox.bench.embeddings.aesthetics import AestheticsConfig

    cfg = AestheticsConfig(**{**TINY, "conv_dim": tuple(TINY["conv_dim"])})
    save_file(_published_sd(cfg, "model."), str(d / "model.safetensors"))
    (d / "config.json").write_text(json.dumps({**TINY, "proj_num_layer": 1, "output_dim": 1, "target_transform": TT}))
    return d


def test_metrics_cli_aesthetics_columns(tmp_path, aes_dir):
    ref, gen = tmp_path / "ref", tmp_path / "gen"
    rng = np.random.default_rng(0)
    for i in range(3):
        t = np.arange(int(1.5 * 16000)) / 16000
        write_wav(ref / f"c{i}.wav", (0.3 * np.sin(2 * np.pi * (300 + 100 * i) * t)).astype(np.float32), 16000)
        write_wav(gen / f"c{i}.wav", (0.1 * rng.standard_normal((2, len(t)))).astype(np.float32), 16000)
    out = tmp_path / "out"
    assert main(["metrics", "--ref", str(ref), "--gen", str(gen), "--out", str(out), "--tiny", "--aesthetics",
                 str(aes_dir), "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    model = AudioboxAesthetics.from_pretrained(aes_dir)
    for side, folder in (("generated", gen), ("reference", ref)):
        per = [model.score(*read_wav(folder / f"c{i}.wav")) for i in range(3)]
        for a in AXES:  # per-clip mean on the checkpoint's scale
            assert res["aesthetics"][side][a] == pytest.approx(np.mean([p[a] for p in per]), rel=1e-6)
        assert res["aesthetics"]["per_clip"][side]["c1"]["PQ"] == pytest.approx(per[1]["PQ"], rel=1e-6)
    assert res["weights"]["aesthetics"] == str(aes_dir)
    table = (out / "table.md").read_text()
    assert "| PC | PQ ↑ | CE ↑ | CU ↑ |" in table and "| reference |" in table
    assert f"{res['aesthetics']['generated']['PQ']:.2f} |" in table.splitlines()[2]


def test_metrics_cli_bad_aesthetics_path(tmp_path, capsys):
    ref = tmp_path / "ref"
    write_wav(ref / "a.wav", np.zeros(16000, np.float32), 16000)
    out = tmp_path / "out"
    assert main(["metrics", "--ref", str(ref), "--gen", str(ref), "--out", str(out), "--tiny", "--aesthetics",
                 str(tmp_path / "nope"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "aesthetics weights" in err[0] and not out.exists()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes(b"not a safetensors file")
    (bad / "config.json").write_text(json.dumps({"target_transform": TT}))
    assert main(["metrics", "--ref", str(ref), "--gen", str(ref), "--out", str(out), "--tiny", "--aesthetics", str(bad)]) == 2
    assert "not a safetensors file" in capsys.readouterr().err and not out.exists()


def test_t2a_cli_aesthetics_per_setting(tmp_path, aes_dir):
    out = tmp_path / "res"
    assert main(["t2a", "--model", "debug", "--n", "2", "--setting", "turbo=turbo:1", "--aesthetics", str(aes_dir),
                 "--out", str(out), "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    per = json.loads((out / "aesthetics_turbo.json").read_text())
    assert sorted(per) == ["T2A_00000", "T2A_00001"]
    model = AudioboxAesthetics.from_pretrained(aes_dir)
    want = model.score(*read_wav(out / "audio" / "turbo" / "T2A_00001.wav"))
    assert per["T2A_00001"]["PC"] == pytest.approx(want["PC"], rel=1e-6)
    assert res["runs"][0]["aesthetics"]["PQ"] == pytest.approx(np.mean([p["PQ"] for p in per.values()]), rel=1e-9)
    assert "| turbo | 1 |" in (out / "table.md").read_text().split("PC | PQ")[1]
