import json

import pytest

from audiox.core.config import FORMAT_VERSION, PRESETS, AudioXConfig, get_config


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_json(name):
    cfg = get_config(name)
    again = AudioXConfig.from_dict(json.loads(cfg.to_json()))
    assert again == cfg


def test_overrides_and_validation(tmp_path):
    cfg = get_config("debug", ["dit.depth=3", "maf.use_gate=false", "duration=2.0", "inference.few_step_times=[1,0.5,0]"])
    assert cfg.dit.depth == 3 and cfg.maf.use_gate is False and cfg.duration == 2.0
    assert cfg.inference.few_step_times == (1.0, 0.5, 0.0)
    assert cfg.latent_length == round(2.0 * cfg.autoencoder.sample_rate / cfg.autoencoder.hop_length)
    with pytest.raises(ValueError, match="unknown config key"):
        get_config("debug", ["dit.nope=1"])
    with pytest.raises(ValueError, match="hidden_size"):
        get_config("debug", ["dit.num_heads=5"])
    with pytest.raises(ValueError, match="unknown preset"):
        get_config("no-such-preset")
    path = tmp_path / "c.json"
    path.write_text(get_config("debug").to_json())
    assert get_config(path) == get_config("debug")


def test_newer_format_version_is_refused():
    d = get_config("debug").to_dict()
    d["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(ValueError, match="newer"):
        AudioXConfig.from_dict(d)
