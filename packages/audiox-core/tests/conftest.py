import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def debug_model():
    from audiox.core import AudioXModel, get_config

    torch.manual_seed(0)
    return AudioXModel(get_config("debug")).eval()
