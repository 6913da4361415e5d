import json

import pytest
import torch
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
