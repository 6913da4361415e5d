"""audiox.core: configs, encoders, MAF, MMDiT, the audio autoencoder, flow-matching math and checkpoint I/O.

Public API::

    import torch
    from audiox.core import AudioXModel, ConditionInputs, get_config, flow

    model = AudioXModel(get_config("debug"))                 # or AudioXModel.from_pretrained("path/to/model")
    cond = model.prepare_conditions(ConditionInputs(text=["a bell rings twice"], task=["t2a"]))
    z1 = torch.randn(1, model.config.autoencoder.latent_dim, model.config.latent_length)
    v = model(z1, torch.ones(1), cond)                         # velocity at t = 1
    z0_hat = flow.clean_from_velocity(z1, 1.0, v)              # paper Eq. 5
    audio = model.autoencoder.decode(z0_hat)                   # (1, C_a, S)

Time convention (DESIGN.md): data at t = 0, noise at t = 1, ``z_t = t z1 + (1 - t) z0``; see
:mod:`audiox.core.flow`.
"""

from audiox.core import flow
from audiox.core.autoencoder import AudioAutoencoder
from audiox.core.checkpoint import from_pretrained, save_pretrained
from audiox.core.conditioning import fill_text, sample_drop_mask
from audiox.core.config import (
    FORMAT_VERSION,
    PRESETS,
    TASK_SENTENCES,
    TASKS,
    AudioXConfig,
    AutoencoderConfig,
    InferenceConfig,
    MAFConfig,
    MMDiTConfig,
    SyncEncoderConfig,
    TextEncoderConfig,
    VideoEncoderConfig,
    apply_overrides,
    get_config,
)
from audiox.core.maf import MAF
from audiox.core.mmdit import MMDiT
from audiox.core.model import AudioXModel
from audiox.core.types import ConditionInputs, Conditions, ModalityFeatures

__all__ = [
    "flow",
    "AudioXModel",
    "AudioAutoencoder",
    "MAF",
    "MMDiT",
    "ConditionInputs",
    "Conditions",
    "ModalityFeatures",
    "AudioXConfig",
    "TextEncoderConfig",
    "VideoEncoderConfig",
    "SyncEncoderConfig",
    "AutoencoderConfig",
    "MAFConfig",
    "MMDiTConfig",
    "InferenceConfig",
    "PRESETS",
    "TASKS",
    "TASK_SENTENCES",
    "FORMAT_VERSION",
    "get_config",
    "apply_overrides",
    "fill_text",
    "sample_drop_mask",
    "save_pretrained",
    "from_pretrained",
]
