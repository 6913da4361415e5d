"""audiox.distill: AudioX-Turbo (paper Sec. V) -- DMD with a diffusion discriminator into a few-step student.

::

    from audiox.distill import DistillConfig, get_distill_config, DistillTrainer

    cfg = get_distill_config("paper", ["data.shards=data/train-{000000..000009}.tar"])
    trainer = DistillTrainer(cfg, AudioXModel.from_pretrained("models/teacher"), source)
    trainer.fit()                       # resumes from cfg.checkpoint.dir when a checkpoint exists
    trainer.export("models/turbo")      # EMA student; config.inference = turbo, N steps, T_N, no CFG

Command line: ``audiox-distill --teacher PATH --config debug|paper|FILE [key=value ...] [--export DIR]``.
The math (Eq. 5-14) is in :mod:`audiox.distill.dmd`; the toy mixture-of-Gaussians proof in
:mod:`audiox.distill.toy` and ``scripts/toy_proof.py``.
"""

from audiox.distill.config import DISTILL_PRESETS, DistillConfig, DMDConfig, GANConfig, get_distill_config
from audiox.distill.dmd import (
    DiffusionDiscriminator,
    cfg_velocity,
    d_hinge_loss,
    dm_loss_eq10,
    dmd_loss,
    fake_flow_loss,
    g_hinge_loss,
    match_rms,
    student_sample,
)
from audiox.distill.trainer import DistillTrainer, audiox_prepare

__all__ = [
    "DistillConfig", "DMDConfig", "GANConfig", "DISTILL_PRESETS", "get_distill_config", "DistillTrainer",
    "audiox_prepare", "DiffusionDiscriminator", "cfg_velocity", "dmd_loss", "dm_loss_eq10", "fake_flow_loss",
    "d_hinge_loss", "g_hinge_loss", "match_rms", "student_sample",
]
