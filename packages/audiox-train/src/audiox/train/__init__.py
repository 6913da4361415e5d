"""audiox.train: flow-matching pretraining of the AudioX-Base teacher (and of the audio autoencoder).

Pieces that audiox-distill reuses::

    from audiox.train import (TrainConfig, get_train_config, Engine, EMA, CheckpointManager, RunLogger,
                              build_scheduler, export_pretrained, TeacherTrainer, FixedBatchSource)

    cfg = get_train_config("debug", ["optim.lr=1e-3", "max_steps=200"])
    trainer = TeacherTrainer(cfg, source)          # source: audiox.train.sources.BatchSource
    trainer.fit()                                  # resumes from cfg.checkpoint.dir when a checkpoint exists
    trainer.export("models/my-teacher")            # EMA weights -> AudioXModel.from_pretrained folder

Command line: ``audiox-train --config debug|mini|paper|FILE [key=value ...]``,
``audiox-train autoencoder ...``, ``audiox-train bench ...``; see ``audiox-train --help``.
"""

from audiox.train.checkpoint import CheckpointManager
from audiox.train.config import TRAIN_PRESETS, TrainConfig, get_train_config
from audiox.train.ema import EMA
from audiox.train.engine import Engine, barrier, resolve_device, world_info
from audiox.train.logging import RunLogger
from audiox.train.losses import MultiResolutionSTFTLoss, flow_matching_loss
from audiox.train.schedules import build_scheduler, lr_factor
from audiox.train.sources import BatchSource, FixedBatchSource, LoaderSource, build_source
from audiox.train.testing import synthetic_batch
from audiox.train.trainer import TeacherTrainer, euler_cfg_sample, export_pretrained

__all__ = [
    "TrainConfig", "TRAIN_PRESETS", "get_train_config", "Engine", "EMA", "CheckpointManager", "RunLogger",
    "build_scheduler", "lr_factor", "flow_matching_loss", "MultiResolutionSTFTLoss", "BatchSource",
    "FixedBatchSource", "LoaderSource", "build_source", "TeacherTrainer", "export_pretrained", "euler_cfg_sample",
    "barrier", "resolve_device", "world_info", "synthetic_batch",
]
