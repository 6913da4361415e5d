"""``TrainConfig``: a run is a preset plus ``key=value`` overrides (``optim.lr=3e-4``, ``model.dit.depth=4``).

The ``model`` section is an :class:`audiox.core.config.AudioXConfig` (a core preset by name); everything else
is about the run. Presets mirror the core presets: ``debug`` (tests), ``mini`` (the shipped model, CPU),
``paper`` (Sec. VI-A: AdamW lr 1e-5, weight decay 1e-3, exponential warm-up/decay, EMA, batch 240).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from audiox.core.config import AudioXConfig, apply_overrides, get_config

__all__ = [
    "OptimConfig",
    "ScheduleConfig",
    "EMAConfig",
    "FlowConfig",
    "DropoutConfig",
    "DataConfig",
    "CheckpointConfig",
    "LogConfig",
    "DeepSpeedConfig",
    "AutoencoderLossConfig",
    "TrainConfig",
    "TRAIN_PRESETS",
    "get_train_config",
]


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


@dataclass
class OptimConfig:
    lr: float = 1e-5  # paper Sec. VI-A
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 1e-3  # paper Sec. VI-A
    eps: float = 1e-8
    grad_clip: float = 1.0  # max global grad norm; 0 disables
    grad_accum: int = 1  # micro-batches per optimiser step

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)  # type: ignore[assignment]
        _check(self.lr > 0, f"optim.lr must be > 0, got {self.lr}")
        _check(self.grad_accum >= 1, f"optim.grad_accum must be >= 1, got {self.grad_accum}")


@dataclass
class ScheduleConfig:
    """LR multiplier per optimiser step (see :mod:`audiox.train.schedules`)."""

    kind: Literal["inverse", "exponential", "constant"] = "exponential"
    warmup: float = 0.99  # stable-audio-tools style: multiplier (1 - warmup**(step+1)); 0 disables
    inv_gamma: float = 1e6  # InverseLR: (1 + step / inv_gamma) ** -power  (paper VI-A: 1e6, 0.5)
    power: float = 0.5
    decay: float = 0.99999  # exponential: decay ** step after warm-up
    min_factor: float = 0.0  # floor of the multiplier

    def __post_init__(self) -> None:
        _check(self.kind in ("inverse", "exponential", "constant"), f"schedule.kind {self.kind!r}")
        _check(0 <= self.warmup < 1, f"schedule.warmup must be in [0, 1), got {self.warmup}")


@dataclass
class EMAConfig:
    decay: float = 0.999
    start_step: int = 0  # copy the weights (no averaging) before this step
    every: int = 1

    def __post_init__(self) -> None:
        _check(0 <= self.decay < 1, f"ema.decay must be in [0, 1), got {self.decay}")


@dataclass
class FlowConfig:
    """Timestep sampling for Eq. 4."""

    timesteps: Literal["uniform", "logit_normal"] = "logit_normal"
    mean: float = 0.0
    std: float = 1.0


@dataclass
class DropoutConfig:
    """Condition dropout for classifier-free guidance (per modality, and all at once)."""

    p_text: float = 0.1
    p_video: float = 0.1
    p_audio: float = 0.1
    p_all: float = 0.1

    def __post_init__(self) -> None:
        for k in ("p_text", "p_video", "p_audio", "p_all"):
            _check(0 <= getattr(self, k) <= 1, f"dropout.{k} must be in [0, 1]")


@dataclass
class DataConfig:
    shards: str = ""  # glob / brace pattern of WebDataset shards; "" = no data configured
    val_shards: str = ""
    batch_size: int = 8  # per process, per micro-batch
    num_workers: int = 0
    task_weights: dict[str, float] = field(default_factory=dict)  # {} = the loader's defaults
    seed: int = 0
    # Read the target latents cached beside the shards by `audiox-train encode-latents` (same autoencoder)
    # instead of encoding every batch: the frozen encoder dominated a CPU step.
    latents: bool = False
    # guided inpainting: the chance that an inpainting sample also carries a caption / its video (paper App. D1)
    inpaint_text: float = 0.5
    inpaint_video: float = 0.5

    def __post_init__(self) -> None:
        _check(self.batch_size >= 1, f"data.batch_size must be >= 1, got {self.batch_size}")
        for k in ("inpaint_text", "inpaint_video"):
            _check(0 <= getattr(self, k) <= 1, f"data.{k} must be in [0, 1]")


@dataclass
class CheckpointConfig:
    dir: str = "runs/audiox"
    every: int = 1000  # optimiser steps between checkpoints
    keep_last: int = 3
    resume: bool = True  # resume from the newest complete checkpoint in dir


@dataclass
class LogConfig:
    every: int = 10
    tensorboard: bool = True
    wandb: bool = False  # needs `pip install "audiox-train[wandb]"`; the key comes from WANDB_API_KEY
    wandb_project: str = "audiox"
    progress: bool = True
    val_every: int = 0  # optimiser steps between validations; 0 disables
    val_batches: int = 2
    sample_every: int = 0  # optimiser steps between generated audio samples; 0 disables
    sample_steps: int = 25
    sample_cfg: float = 6.0


@dataclass
class DeepSpeedConfig:
    enabled: bool = False  # also switched on automatically when launched with several processes
    zero_stage: int = 2
    bf16: bool = True  # bf16 on GPU only (CPU runs fp32)
    activation_checkpointing: bool = False

    def __post_init__(self) -> None:
        _check(self.zero_stage in (0, 1, 2, 3), f"deepspeed.zero_stage must be 0-3, got {self.zero_stage}")


@dataclass
class AutoencoderLossConfig:
    """``audiox-train autoencoder``: reconstruction + multi-resolution STFT + KL (+ optional adversarial)."""

    l1: float = 1.0
    stft: float = 1.0
    mel: float = 1.0  # multi-scale log-mel L1 (pitch-tolerant; see audiox.train.losses.MultiScaleMelLoss)
    kl: float = 1e-4
    adversarial: bool = False  # multi-scale waveform discriminator, hinge loss
    adv_weight: float = 0.1
    feature_matching: float = 2.0
    crop_seconds: float = 1.0  # random crops of the training clips
    # each clip's crop is the loudest of this many random candidates (1 = uniform): the synthetic world's clips are
    # mostly digital silence, so uniform 1 s crops are often empty and teach the decoder nothing
    crop_candidates: int = 4
    # log-magnitude floor of both spectral terms (MR-STFT and mel), dBFS of white noise (None: eps 1e-7, which
    # rewards silent output on audio with digital silence; see audiox.train.losses.stft_loss)
    stft_floor_db: float | None = -70.0
    # false: fine-tune the decoder alone on the frozen encoder's posterior means (the latents a diffusion model
    # trained on this autoencoder sees), so teachers and students trained on it stay valid; needs
    # model.autoencoder.pretrained. The KL term is then constant and dropped.
    train_encoder: bool = True
    # decoder-only runs: decode the posterior mean plus Gaussian noise of sigma * (the batch latents' std), sigma
    # uniform in [0, latent_noise] per clip, against the clean audio. A generator's latents are near-misses of the
    # encoder's; a decoder that only ever saw exact means turns them into spurious events (scripts/diagnose.py
    # decoder-noise). 0 = exact means only.
    latent_noise: float = 0.0
    # share of each batch's crops replaced by one isolated synthetic-world event each (category uniform over
    # event_categories, unit gain as the corpus renders it, at a random offset in silence), rendered on the fly. In
    # crops of mixed scenes a decoder can hedge between similar sounds (a rising chirp and a steady whistle both
    # come out as one steady tone) at little cost; alone, each category's detail is what the loss sees. They are
    # decoded from their exact posterior means (no latent_noise: noise teaches exactly that blur). 0 = off.
    event_crops: float = 0.0
    # the categories those events are drawn from, uniformly (empty = the whole vocabulary); e.g. the ones a round
    # trip loses (audiox-bench suite's per-category table on its "autoencoder round trip" row)
    event_categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check(self.latent_noise >= 0, f"autoencoder.latent_noise must be >= 0, got {self.latent_noise}")
        _check(0 <= self.event_crops <= 1, f"autoencoder.event_crops must be in [0, 1], got {self.event_crops}")
        _check(self.crop_seconds > 0, "autoencoder.crop_seconds must be > 0")
        _check(self.crop_candidates >= 1, "autoencoder.crop_candidates must be >= 1")


@dataclass
class TrainConfig:
    name: str = "custom"
    model: AudioXConfig = field(default_factory=lambda: get_config("debug"))
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    dropout: DropoutConfig = field(default_factory=DropoutConfig)
    data: DataConfig = field(default_factory=DataConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    log: LogConfig = field(default_factory=LogConfig)
    deepspeed: DeepSpeedConfig = field(default_factory=DeepSpeedConfig)
    autoencoder: AutoencoderLossConfig = field(default_factory=AutoencoderLossConfig)
    max_steps: int = 1000
    max_minutes: float = 0.0  # wall-clock budget of one invocation (0 = none): checkpoint and stop when spent
    seed: int = 0
    device: str = "auto"  # "auto" = cuda when available
    # A model folder (an audiox-train export or a bundled model) whose config and weights start the run: fine-tuning.
    # Its config replaces `model`; a checkpoint in checkpoint.dir still wins on a rerun (resume).
    init_from: str = ""

    def __post_init__(self) -> None:
        _check(self.max_steps >= 1, f"max_steps must be >= 1, got {self.max_steps}")
        _check(self.max_minutes >= 0, f"max_minutes must be >= 0, got {self.max_minutes}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        kinds = {f.name: f for f in dataclasses.fields(cls)}
        kw: dict[str, Any] = {}
        for key, value in d.items():
            if key not in kinds:
                raise ValueError(f"unknown train config key {key!r}")
            if key == "model":
                kw[key] = AudioXConfig.from_dict(value)
            elif isinstance(value, dict) and key != "model":
                sub = {
                    "optim": OptimConfig, "schedule": ScheduleConfig, "ema": EMAConfig, "flow": FlowConfig,
                    "dropout": DropoutConfig, "data": DataConfig, "checkpoint": CheckpointConfig, "log": LogConfig,
                    "deepspeed": DeepSpeedConfig, "autoencoder": AutoencoderLossConfig,
                }[key]
                names = {f.name for f in dataclasses.fields(sub)}
                bad = set(value) - names
                if bad:
                    raise ValueError(f"unknown {key} keys: {sorted(bad)}")
                kw[key] = sub(**value)
            else:
                kw[key] = value
        return cls(**kw)


TRAIN_PRESETS: dict[str, Callable[[], TrainConfig]] = {}


def _preset(fn: Callable[[], TrainConfig]) -> Callable[[], TrainConfig]:
    TRAIN_PRESETS[fn.__name__] = fn
    return fn


@_preset
def debug() -> TrainConfig:
    return TrainConfig(
        name="debug",
        model=get_config("debug"),
        optim=OptimConfig(lr=1e-3, weight_decay=0.0),
        schedule=ScheduleConfig(kind="constant", warmup=0.0),
        ema=EMAConfig(decay=0.9),
        data=DataConfig(batch_size=4),
        checkpoint=CheckpointConfig(dir="runs/debug", every=50, keep_last=2),
        log=LogConfig(every=10, tensorboard=False, progress=False),
        max_steps=100,
    )


@_preset
def mini() -> TrainConfig:
    return TrainConfig(
        name="mini",
        model=get_config("mini"),
        optim=OptimConfig(lr=3e-4, weight_decay=1e-3),  # a small model from scratch takes a larger lr
        schedule=ScheduleConfig(kind="inverse", warmup=0.99, inv_gamma=2e4, power=0.5),
        ema=EMAConfig(decay=0.999),
        data=DataConfig(batch_size=16),
        checkpoint=CheckpointConfig(dir="runs/mini", every=500, keep_last=3),
        log=LogConfig(every=20, val_every=1000, sample_every=2000),
        max_steps=30000,
    )


@_preset
def paper() -> TrainConfig:
    """Sec. VI-A: AdamW lr 1e-5, wd 1e-3, exponential ramp-up and decay, EMA; batch 240 over the cluster."""
    return TrainConfig(
        name="paper",
        model=get_config("paper"),
        optim=OptimConfig(lr=1e-5, weight_decay=1e-3),
        schedule=ScheduleConfig(kind="exponential", warmup=0.99, decay=0.99999),
        ema=EMAConfig(decay=0.9999),
        data=DataConfig(batch_size=10),  # x 24 GPUs = 240
        checkpoint=CheckpointConfig(dir="runs/paper", every=2000, keep_last=3),
        log=LogConfig(every=50, val_every=5000, sample_every=10000),
        deepspeed=DeepSpeedConfig(enabled=True, zero_stage=2, bf16=True, activation_checkpointing=True),
        max_steps=100_000,
    )


def get_train_config(name_or_path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    key = str(name_or_path)
    if key in TRAIN_PRESETS:
        cfg = TRAIN_PRESETS[key]()
    else:
        path = Path(key)
        if not path.is_file():
            raise ValueError(f"unknown train preset or config file {key!r}; presets: {', '.join(sorted(TRAIN_PRESETS))}")
        try:
            cfg = TrainConfig.from_dict(json.loads(path.read_text()))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not valid JSON: {exc}") from None
    return apply_overrides(cfg, list(overrides))
