"""recipes/swap_decoder.py: a fine-tuned decoder goes into a model folder, nothing else changes."""

import pytest
import torch
from safetensors.torch import load_file, save_file

from audiox.core import AudioXModel, get_config
from audiox.core.checkpoint import save_pretrained


@pytest.fixture()
def folder(tmp_path):
    torch.manual_seed(0)
    model = AudioXModel(get_config("debug"))
    path = save_pretrained(model, tmp_path / "m", dtype=torch.float16)
    (path / "MODEL_CARD.md").write_text("# card\n")
    return path


def test_replace_takes_the_decoder_and_keeps_everything_else(tmp_path, folder, recipe_tool):
    sd = recipe_tool("swap_decoder")
    ae0 = sd.extract(folder, tmp_path / "ae0.safetensors")
    ae = load_file(str(ae0))
    assert all(v.dtype == torch.float32 for v in ae.values())
    g = torch.Generator().manual_seed(1)
    tuned = {k: (v + 0.01 * torch.randn(v.shape, generator=g)) if k.startswith("decoder.") else v for k, v in ae.items()}
    save_file(tuned, str(tmp_path / "ae1.safetensors"))
    out = sd.replace(tmp_path / "ae1.safetensors", folder, tmp_path / "out", note="3 steps")

    before, after = load_file(str(folder / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert set(before) == set(after)
    changed = 0
    for k, v in after.items():
        assert v.dtype == before[k].dtype, k
        if k.startswith("autoencoder.decoder."):
            assert torch.equal(v, tuned[k[len("autoencoder."):]].to(v.dtype)), k
            changed += not torch.equal(v, before[k])
        else:
            assert torch.equal(v, before[k]), k  # bit for bit
    assert changed > 0
    assert (out / "MODEL_CARD.md").read_text().endswith("- decoder trained on the frozen encoder's latents: 3 steps\n")
    model = AudioXModel.from_pretrained(out)  # loads, and decodes with the new decoder
    z = torch.randn(1, model.autoencoder.latent_dim, 4)
    assert torch.isfinite(model.autoencoder.decode(z)).all()


def test_replace_refuses_another_encoder_and_writes_nothing(tmp_path, folder, capsys, recipe_tool):
    sd = recipe_tool("swap_decoder")
    ae = load_file(str(sd.extract(folder, tmp_path / "ae0.safetensors")))
    k = next(k for k in ae if k.startswith("encoder."))
    ae[k] = ae[k] + 1.0
    save_file(ae, str(tmp_path / "bad.safetensors"))
    rc = sd.main(["replace", str(tmp_path / "bad.safetensors"), str(folder), str(tmp_path / "out")])
    assert rc == 2 and not (tmp_path / "out").exists()
    err = capsys.readouterr().err.strip()
    assert "encoder tensor" in err and len(err.splitlines()) == 1
    assert sd.main(["extract", str(tmp_path / "nowhere"), str(tmp_path / "x.safetensors")]) == 2
    assert not (tmp_path / "x.safetensors").exists()


def test_replace_with_another_decoder_kind(tmp_path, folder, capsys, recipe_tool):
    """--set decoder=istft: the old decoder's tensors go, the new ones come in, config.json says istft."""
    from audiox.core.autoencoder import AudioAutoencoder
    from audiox.core.checkpoint import load_config

    sd = recipe_tool("swap_decoder")
    ae0 = load_file(str(sd.extract(folder, tmp_path / "ae0.safetensors")))
    sets = ["decoder=istft", "istft_hop=16", "istft_n_fft=64", "istft_dim=24"]
    cfg = load_config(folder).autoencoder
    for kv in sets:
        k, v = kv.split("=")
        setattr(cfg, k, v if k == "decoder" else int(v))
    cfg.pretrained = None
    new = AudioAutoencoder(cfg).state_dict()
    mixed = {k: v for k, v in ae0.items() if k.startswith("encoder.")}
    mixed.update({k: v for k, v in new.items() if k.startswith("decoder.")})
    save_file(mixed, str(tmp_path / "ae_istft.safetensors"))
    # without --set the decoder does not fit the folder's config: refused, nothing written
    assert sd.main(["replace", str(tmp_path / "ae_istft.safetensors"), str(folder), str(tmp_path / "no")]) == 2
    assert not (tmp_path / "no").exists() and "decoder tensors" in capsys.readouterr().err
    args = ["replace", str(tmp_path / "ae_istft.safetensors"), str(folder), str(tmp_path / "out")]
    assert sd.main([*args, *[a for kv in sets for a in ("--set", kv)]]) == 0
    out = tmp_path / "out"
    assert load_config(out).autoencoder.decoder == "istft"
    before, after = load_file(str(folder / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert {k for k in after if k.startswith("autoencoder.decoder.")} == {f"autoencoder.{k}" for k in new if k.startswith("decoder.")}
    for k, v in after.items():
        if k.startswith("autoencoder.decoder."):
            assert v.dtype == torch.float16 and torch.equal(v, mixed[k[len("autoencoder."):]].to(torch.float16)), k
        else:
            assert torch.equal(v, before[k]), k
    model = AudioXModel.from_pretrained(out)
    assert type(model.autoencoder.decoder).__name__ == "ISTFTDecoder"
    z = torch.randn(1, model.autoencoder.latent_dim, 4)
    assert model.autoencoder.decode(z).shape[-1] == 4 * model.autoencoder.hop_length
