import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from audiox.core import AudioXModel, ConditionInputs, get_config
from audiox.core.checkpoint import CONFIG_NAME, WEIGHTS_NAME


@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(3)
    model = AudioXModel(get_config("debug")).eval()
    for p in model.dit.parameters():
        torch.nn.init.normal_(p, std=0.05)
    path = model.save_pretrained(tmp_path / "m")
    return model, path


def test_round_trip_is_bitwise(saved):
    model, path = saved
    loaded = AudioXModel.from_pretrained(path)
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert loaded.config == model.config
    inputs = ConditionInputs(text=["beep"], task=["t2a"])
    z = torch.randn(1, model.config.autoencoder.latent_dim, model.config.latent_length)
    t = torch.tensor([0.4])
    assert torch.equal(model(z, t, model.prepare_conditions(inputs)), loaded(z, t, loaded.prepare_conditions(inputs)))
    assert not any(p.name.startswith(".") for p in path.parent.iterdir())  # no temp folders left


def test_overwrite_is_atomic(saved, monkeypatch):
    model, path = saved
    before = (path / WEIGHTS_NAME).read_bytes()
    import audiox.core.checkpoint as ck

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ck, "save_file", boom)
    with pytest.raises(RuntimeError):
        model.save_pretrained(path)
    assert (path / WEIGHTS_NAME).read_bytes() == before  # previous version intact
    assert sorted(p.name for p in path.parent.iterdir()) == ["m"]


def test_missing_folder_and_files(tmp_path, saved):
    with pytest.raises(FileNotFoundError, match="no model folder"):
        AudioXModel.from_pretrained(tmp_path / "nope")
    _, path = saved
    (path / WEIGHTS_NAME).unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors is missing"):
        AudioXModel.from_pretrained(path)
    (path / CONFIG_NAME).unlink()
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        AudioXModel.from_pretrained(path)


def test_config_weights_mismatch(saved):
    _, path = saved
    cfg = json.loads((path / CONFIG_NAME).read_text())
    cfg["dit"]["depth"] = 3
    (path / CONFIG_NAME).write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="missing .* keys"):
        AudioXModel.from_pretrained(path)
    cfg["dit"]["depth"] = 2
    cfg["maf"]["num_queries"] = 5
    (path / CONFIG_NAME).write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="maf.queries has shape"):
        AudioXModel.from_pretrained(path)


def test_overrides_switch_a_saved_model(saved):
    """``from_pretrained(overrides=...)``: a switch that adds zero-initialised weights (``maf.global_text``) starts
    exactly where the saved model was; one whose new weights are random or whose shapes differ is refused."""
    model, path = saved
    inputs = ConditionInputs(text=["a bell rings twice", "rain"], task=["t2a", "t2a"])
    switched = AudioXModel.from_pretrained(path, overrides=["maf.global_text=true", "maf.single_null=true"])
    assert switched.config.maf.global_text and switched.config.maf.single_null
    assert not model.config.maf.global_text  # the folder itself is unchanged
    z, t = torch.randn(2, model.config.autoencoder.latent_dim, model.config.latent_length), torch.tensor([0.3, 0.8])
    with torch.no_grad():
        switched.maf.cfg.single_null = False  # global_text alone: identical outputs
        torch.testing.assert_close(switched(z, t, switched.prepare_conditions(inputs)),
                                   model(z, t, model.prepare_conditions(inputs)), rtol=0, atol=0)
    with pytest.raises(ValueError, match="missing .* keys"):  # new MAF queries would start random
        no_query = AudioXModel(get_config("debug", ["maf.use_query=false"]))
        no_query.save_pretrained(path.parent / "nq")
        AudioXModel.from_pretrained(path.parent / "nq", overrides=["maf.use_query=true"])
    with pytest.raises(ValueError, match="has shape"):
        AudioXModel.from_pretrained(path, overrides=["maf.num_queries=5"])
    with pytest.raises(ValueError, match="unknown config key"):
        AudioXModel.from_pretrained(path, overrides=["maf.no_such_switch=true"])
    # a folder whose own config has the zero-initialised weights but whose file lost them is broken, switch or not
    gt = AudioXModel(get_config("debug", ["maf.global_text=true"]))
    gt.save_pretrained(path.parent / "gt")
    weights = path.parent / "gt" / WEIGHTS_NAME
    with safe_open(str(weights), framework="pt") as f:
        meta = f.metadata()
    every = load_file(weights)
    kept = {k: v for k, v in every.items() if k in model.state_dict()}
    assert 0 < len(kept) < len(every)  # the global_text weights are gone
    save_file(kept, weights, metadata=meta)
    for overrides in ([], ["maf.single_null=true"]):
        with pytest.raises(ValueError, match="missing .* keys"):
            AudioXModel.from_pretrained(path.parent / "gt", overrides=overrides)


def test_newer_format_refused(saved):
    _, path = saved
    cfg = json.loads((path / CONFIG_NAME).read_text())
    cfg["format_version"] = 99
    (path / CONFIG_NAME).write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="newer"):
        AudioXModel.from_pretrained(path)
    cfg["format_version"] = 1
    (path / CONFIG_NAME).write_text(json.dumps(cfg))
    tensors = load_file(str(path / WEIGHTS_NAME))
    save_file(tensors, str(path / WEIGHTS_NAME), metadata={"audiox_format_version": "99"})
    with pytest.raises(ValueError, match="newer"):
        AudioXModel.from_pretrained(path)


def test_half_precision_storage_loads_back_within_fp16_rounding(saved, tmp_path):
    from audiox.core.checkpoint import cast_pretrained

    model, path = saved
    out = cast_pretrained(path, tmp_path / "half", torch.float16)
    stored = load_file(str(out / WEIGHTS_NAME))
    assert all(v.dtype == torch.float16 for v in stored.values() if v.is_floating_point())
    assert (out / WEIGHTS_NAME).stat().st_size < 0.6 * (path / WEIGHTS_NAME).stat().st_size
    loaded = AudioXModel.from_pretrained(out)
    a, b = model.state_dict(), loaded.state_dict()
    assert all(b[k].dtype == a[k].dtype for k in a)  # the model computes in its own type
    assert all(torch.equal(b[k], a[k].half().to(a[k].dtype)) for k in a)  # exactly the fp16 rounding


def test_half_precision_refuses_overflow(saved, tmp_path):
    from audiox.core.checkpoint import cast_pretrained

    model, path = saved
    sd = load_file(str(path / WEIGHTS_NAME))
    key = next(k for k in sd if k.startswith("dit."))
    sd[key] = sd[key] * 0 + 1e6  # beyond fp16's 65504
    save_file(sd, str(path / WEIGHTS_NAME), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="does not fit"):
        cast_pretrained(path, tmp_path / "half", torch.float16)
    assert not (tmp_path / "half").exists()


def test_saved_config_keeps_no_source_checkpoint_paths(tmp_path):
    """The folder holds every weight: a model built from an autoencoder checkpoint on this machine saves a
    config without that path, and loads back identical."""
    torch.manual_seed(0)
    ae_path = tmp_path / "ae.safetensors"
    AudioXModel(get_config("debug")).autoencoder.save_weights(ae_path)
    model = AudioXModel(get_config("debug", [f"autoencoder.pretrained={ae_path}"])).eval()
    path = model.save_pretrained(tmp_path / "m")
    saved = json.loads((path / CONFIG_NAME).read_text())
    assert saved["autoencoder"]["pretrained"] is None and str(tmp_path) not in (path / CONFIG_NAME).read_text()
    loaded = AudioXModel.from_pretrained(path)
    a, b = model.state_dict(), loaded.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_rowwise_int8_against_float64_reference():
    from audiox.core.checkpoint import dequantize_rowwise_int8, quantize_rowwise_int8

    torch.manual_seed(0)
    w = torch.randn(16, 40) * torch.logspace(-3, 1, 16)[:, None]  # rows of very different magnitude
    w[3] = 0.0
    q, scale = quantize_rowwise_int8(w)
    assert q.dtype == torch.int8 and scale.dtype == torch.float32 and scale.shape == (16,)
    assert int(q.abs().max()) == 127 and torch.equal(q[3], torch.zeros_like(q[3]))
    w64 = w.double()
    ref_scale = w64.abs().amax(1) / 127
    ref = torch.round(w64 / torch.where(ref_scale > 0, ref_scale, 1.0)[:, None]).clamp(-127, 127)
    assert torch.equal(q.double(), ref)
    err = (dequantize_rowwise_int8(q, scale).double() - w64).abs()
    assert (err <= ref_scale[:, None] * 0.5 + 1e-7 * w64.abs()).all()  # at most half a step per element
    assert torch.equal(quantize_rowwise_int8(dequantize_rowwise_int8(q, scale))[0], q)  # re-quantizing is exact


def test_int8_storage_quantizes_only_linear_weights_outside_the_autoencoder(saved, tmp_path):
    from audiox.core.checkpoint import SCALE_SUFFIX, cast_pretrained, dequantize_rowwise_int8

    model, path = saved
    out = cast_pretrained(path, tmp_path / "q8", torch.float16, quantize="int8")
    stored = load_file(str(out / WEIGHTS_NAME))
    linear = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    q8 = {k for k, v in stored.items() if v.dtype == torch.int8}
    assert q8 == {k for k in linear if not k.startswith("autoencoder.")} and q8
    assert {k[: -len(SCALE_SUFFIX)] for k in stored if k.endswith(SCALE_SUFFIX)} == q8
    assert all(stored[k].dtype == torch.float16 for k in stored if k not in q8 and not k.endswith(SCALE_SUFFIX))
    assert json.loads((out / CONFIG_NAME).read_text())["format_version"] == 2
    assert json.loads((path / CONFIG_NAME).read_text())["format_version"] == 1  # float-only folders stay version 1

    loaded = AudioXModel.from_pretrained(out)
    a, b = model.state_dict(), loaded.state_dict()
    for k in a:
        assert b[k].dtype == a[k].dtype, k
        if k in q8:
            assert torch.equal(b[k], dequantize_rowwise_int8(stored[k], stored[k + SCALE_SUFFIX]))
            step = a[k].abs().amax(1, keepdim=True) / 127
            assert ((b[k] - a[k]).abs() <= step * 0.5 + 1e-6).all(), k
        else:
            assert torch.equal(b[k], a[k].half().float()), k
    # the velocity of the dequantized model stays close to the float one
    inputs = ConditionInputs(text=["beep"], task=["t2a"])
    z = torch.randn(1, model.config.autoencoder.latent_dim, model.config.latent_length)
    t = torch.tensor([0.4])
    with torch.no_grad():
        v0 = model(z, t, model.prepare_conditions(inputs))
        v1 = loaded(z, t, loaded.prepare_conditions(inputs))
    assert (v1 - v0).norm() / v0.norm() < 0.02

    # saving the loaded model again gives the same codes; a float-only save of it is version 1 again
    again = cast_pretrained(out, tmp_path / "q8b", torch.float16, quantize="int8")
    assert all(torch.equal(v, load_file(str(again / WEIGHTS_NAME))[k]) for k, v in stored.items())
    half = cast_pretrained(out, tmp_path / "half", torch.float16)
    assert json.loads((half / CONFIG_NAME).read_text())["format_version"] == 1
    assert (out / WEIGHTS_NAME).stat().st_size < 0.8 * (half / WEIGHTS_NAME).stat().st_size

    with pytest.raises(ValueError, match="quantize must be"):
        cast_pretrained(path, tmp_path / "bad", torch.float16, quantize="int4")
    stored.pop(next(iter(q8)))  # a scale without its codes
    save_file(stored, str(out / WEIGHTS_NAME), metadata={"format": "pt", "audiox_format_version": "2"})
    with pytest.raises(ValueError, match="missing 1 keys"):
        AudioXModel.from_pretrained(out)


def test_saved_folder_has_the_umask_modes_not_private_temp_ones(saved):
    import os
    import stat

    _, path = saved
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o777 & ~mask
    for f in (CONFIG_NAME, WEIGHTS_NAME):
        assert stat.S_IMODE((path / f).stat().st_mode) == 0o666 & ~mask, f


CAPTIONS = ["A bell rings twice.", "A buzz, then a click.", "Two bell rings and a click.", "Steady rain."] * 5


def _bpe_model(tmp_path):
    from audiox.core.encoders.text import train_tokenizer

    tok = train_tokenizer(CAPTIONS, vocab_size=320)
    tok.save_pretrained(str(tmp_path / "tok"))
    cfg = get_config("debug")
    cfg.text.tokenizer = str(tmp_path / "tok")
    cfg.text.vocab_size = 320
    torch.manual_seed(0)
    return AudioXModel(cfg).eval()


def test_tokenizer_travels_with_the_model_folder(tmp_path):
    """A corpus tokenizer is saved in the folder, named relatively, and loads after the folder moves."""
    import shutil

    model = _bpe_model(tmp_path)
    path = model.save_pretrained(tmp_path / "m")
    assert json.loads((path / CONFIG_NAME).read_text())["text"]["tokenizer"] == "tokenizer"
    assert (path / "tokenizer" / "tokenizer.json").is_file()
    moved = shutil.move(str(path), str(tmp_path / "elsewhere"))
    shutil.rmtree(tmp_path / "tok")  # the source tokenizer is gone: the folder's own copy must be used
    loaded = AudioXModel.from_pretrained(moved)
    inputs = ConditionInputs(text=["a bell rings twice"], task=["t2a"])
    a, b = model.prepare_conditions(inputs), loaded.prepare_conditions(inputs)
    assert torch.equal(a.context, b.context) and torch.equal(a.context_mask, b.context_mask)
    # built again from the loaded config (fine-tuning, distillation), it finds the same tokenizer
    again = AudioXModel(loaded.config)
    assert again.text_encoder.tokenize(["a bell"])[0].tolist() == model.text_encoder.tokenize(["a bell"])[0].tolist()
    # saving the loaded model again keeps the tokenizer
    resaved = loaded.save_pretrained(tmp_path / "again")
    assert (resaved / "tokenizer" / "tokenizer.json").is_file()


def test_missing_saved_tokenizer_is_a_clear_error(tmp_path):
    import shutil

    path = _bpe_model(tmp_path).save_pretrained(tmp_path / "m")
    shutil.rmtree(path / "tokenizer")
    with pytest.raises(FileNotFoundError, match="tokenizer is missing"):
        AudioXModel.from_pretrained(path)


def test_byt5_model_folder_has_no_tokenizer(saved):
    _, path = saved
    assert not (path / "tokenizer").exists()
