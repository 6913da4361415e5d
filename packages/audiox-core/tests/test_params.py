import torch

from audiox.core import AudioXModel, get_config


def test_paper_parameter_counts_on_meta_device():
    with torch.device("meta"):
        model = AudioXModel(get_config("paper"))
    counts = model.num_parameters()
    assert next(model.parameters()).is_meta
    assert abs(counts["trainable"] / 2.4e9 - 1) < 0.10, counts
    assert abs(counts["total"] / 2.7e9 - 1) < 0.10, counts
    assert abs(counts["maf"] / 60e6 - 1) < 0.10, counts
    assert len(model.dit.blocks) == 24
    # frozen encoders are frozen, the denoiser is not
    assert not any(p.requires_grad for p in model.text_encoder.parameters())
    assert all(p.requires_grad for p in model.dit.parameters())
