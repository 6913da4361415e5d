"""``DistillConfig``: AudioX-Turbo distillation (paper Sec. V, VI-A) as a preset plus ``key=value`` overrides.

The optimiser / schedule / EMA / data / checkpoint / log / DeepSpeed sections are audiox-train's own dataclasses,
so the distiller runs on the same engine with the same meaning of every key.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from audiox.core.config import apply_overrides
from audiox.train.config import (
    CheckpointConfig,
    DataConfig,
    DeepSpeedConfig,
    EMAConfig,
    LogConfig,
    OptimConfig,
    ScheduleConfig,
)

__all__ = ["DMDConfig", "GANConfig", "RegressionConfig", "GuidedConfig", "DistillConfig", "DISTILL_PRESETS", "get_distill_config"]


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


@dataclass
class DMDConfig:
    """Few-step student and distribution matching (Eq. 5-12)."""

    steps: int = 4  # N: intervals of the student's timestep set T_N
    times: tuple[float, ...] | None = None  # T_N (interior points or full set); None = uniform grid
    step_probs: tuple[float, ...] | None = None  # P(k) over the N steps in sampling order; None = uniform
    guidance_scale: float = 6.0  # teacher CFG inside the DM loss (baked into the student)
    tau_min: float = 0.02  # tau ~ U(tau_min, tau_max) for Eq. 6 / Eq. 11
    tau_max: float = 0.98
    student_updates: int = 5  # update ratio: student_updates student steps per fake_updates fake steps
    fake_updates: int = 1  # paper: 5:1; DMD2: 1:5
    norm_eps: float = 1e-6  # floor of DMD2's per-sample normaliser mean|z0_hat - x0_real|
    # lambda_dm, the DM term's weight in Eq. 15 (1 = the paper). 0 = an ablation: no fake model updates and no DM
    # term; with the GAN off too, the student learns from the regression term's teacher pairs alone (plain
    # knowledge distillation, Luhman & Luhman 2021), about 6x cheaper per update at dmd.fake_updates=5
    weight: float = 1.0

    def __post_init__(self) -> None:
        _check(self.steps >= 1, f"dmd.steps must be >= 1, got {self.steps}")
        if self.times is not None:
            self.times = tuple(float(x) for x in self.times)
            pts = sorted({*self.times, 0.0, 1.0})
            _check(len(pts) - 1 == self.steps, f"dmd.times {self.times} give {len(pts) - 1} steps, dmd.steps={self.steps}")
        if self.step_probs is not None:
            self.step_probs = tuple(float(x) for x in self.step_probs)
            _check(len(self.step_probs) == self.steps, f"dmd.step_probs needs {self.steps} entries, got {len(self.step_probs)}")
            _check(all(p >= 0 for p in self.step_probs) and sum(self.step_probs) > 0, "dmd.step_probs must be >= 0, not all 0")
        _check(0.0 <= self.tau_min < self.tau_max <= 1.0, f"need 0 <= dmd.tau_min < dmd.tau_max <= 1, got {self.tau_min}, {self.tau_max}")
        _check(self.student_updates >= 1 and self.fake_updates >= 1, "dmd.student_updates and dmd.fake_updates must be >= 1")
        _check(self.weight >= 0.0, f"dmd.weight must be >= 0, got {self.weight}")


@dataclass
class GANConfig:
    """Diffusion discriminator (Sec. V-B, Eq. 13-15)."""

    enabled: bool = True  # False = DM loss only (Table VI)
    num_blocks: int = 6  # L: frozen teacher blocks used as the backbone
    head_hidden: int = 256
    t_max: float = 0.2  # t_d ~ U(0, t_max)
    weight: float = 1.0  # lambda_adv (Eq. 15)
    # rescale each student latent to the rms of the real latent of its own condition before the discriminator sees it
    # (both in its update and in the generator's): the head cannot tell real from fake by loudness, and Eq. 14's
    # gradient at the student's clean estimate has no component along it (it cannot change the sample's scale),
    # which is left to the DM term. Off = the paper (Sec. V-B); see docs/distillation.md for why it exists.
    match_rms: bool = False
    # what the head scores: "pool" (the hidden states mean-pooled over the latent's frames, one logit per clip) or
    # "frame" (one logit per latent frame, the hinge losses averaged over frames: the head sees where in the clip
    # the sound is, e.g. a texture filling a real clip's silences). Same weights either way; see docs/distillation.md.
    head: str = "pool"

    def __post_init__(self) -> None:
        _check(self.num_blocks >= 1, f"gan.num_blocks must be >= 1, got {self.num_blocks}")
        _check(0.0 < self.t_max <= 1.0, f"gan.t_max must be in (0, 1], got {self.t_max}")
        _check(self.head in ("pool", "frame"), f"gan.head must be 'pool' or 'frame', got {self.head!r}")


@dataclass
class RegressionConfig:
    """DMD's paired regression loss (Yin et al. 2024, Sec. 3.3), not in the AudioX-Turbo paper: the student's clean
    estimate from stored noise ``z1`` is pulled to the teacher's multi-step CFG sample ``y`` from the same noise and
    condition (``audiox-distill pairs`` makes them). It anchors the student's scale and layout to the teacher's; the
    DM term keeps matching the distribution. Off (weight 0) = the paper; see docs/distillation.md."""

    weight: float = 0.0  # lambda_reg in L = L_DM + lambda_adv L_adv + lambda_reg L_reg
    pairs: str = ""  # a pair folder (pairs.json + pairs-NNNNNN.safetensors), or several of one teacher: "a,b"
    # which student steps it trains: "first" = DMD's, the step from pure noise z1 at t=1 only; "all" = also each
    # later step k, from the teacher's sample re-noised to t_k (the state the student meets if its earlier steps
    # matched the teacher), k drawn with dmd.step_probs
    steps: str = "first"
    # false: one stored shard per batch, the shards in order (as written); true: each batch drawn from a fresh
    # permutation of every stored pair per pass (seeded by ``seed``), across shards and folders
    shuffle: bool = False
    batch_size: int = 0  # pairs per regression batch; 0 = one shard's (the batch size the pairs were made with)

    def __post_init__(self) -> None:
        _check(self.weight >= 0.0, f"regression.weight must be >= 0, got {self.weight}")
        _check(self.batch_size >= 0, f"regression.batch_size must be >= 0 (0: one shard's), got {self.batch_size}")
        _check(self.weight == 0.0 or bool(self.pairs), "regression.weight > 0 needs regression.pairs (a pair folder)")
        _check(self.steps in ("first", "all"), f"regression.steps must be 'first' or 'all', got {self.steps!r}")


@dataclass
class GuidedConfig:
    """Guided velocity distillation (Meng et al. 2023, "On Distillation of Guided Diffusion Models", stage one), not
    in the AudioX-Turbo paper: on the student's grid ``T_N`` the student's conditional velocity at a state ``z_{t_k}``
    is pulled to the teacher's CFG velocity there, ``mean((v_phi(z, t_k, c) - [v_u + s (v_c - v_u)])^2)``, so that
    Euler on ``T_N`` with ONE forward per step follows the teacher's ``N``-step Euler + CFG path (2 forwards per
    step). The student is exported with the Euler sampler, not the denoise-renoise one. It is an alternative to the
    DMD objective, so it trains alone (dmd.weight=0, no GAN, no regression term); see docs/distillation.md."""

    weight: float = 0.0  # 0 = off; > 0: the student's only objective
    scale: float = 6.0  # the teacher's CFG scale that the student absorbs
    # where the states z_{t_k} come from (k drawn with dmd.step_probs, fresh noise at t=1 and the data batch's
    # conditions): "teacher" = k Euler + CFG steps of the teacher (its own path), "student" = k Euler steps of the
    # student without gradients (the states it meets when sampling: its own errors are corrected, not compounded)
    states: str = "student"

    def __post_init__(self) -> None:
        _check(self.weight >= 0.0, f"guided.weight must be >= 0, got {self.weight}")
        _check(self.states in ("teacher", "student"), f"guided.states must be 'teacher' or 'student', got {self.states!r}")


@dataclass
class DistillConfig:
    name: str = "custom"
    dmd: DMDConfig = field(default_factory=DMDConfig)
    gan: GANConfig = field(default_factory=GANConfig)
    regression: RegressionConfig = field(default_factory=RegressionConfig)
    guided: GuidedConfig = field(default_factory=GuidedConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)  # paper VI-A: AdamW 1e-5, (0.9, 0.999), wd 1e-3
    schedule: ScheduleConfig = field(default_factory=lambda: ScheduleConfig(kind="inverse", warmup=0.99, inv_gamma=1e6, power=0.5))
    ema: EMAConfig = field(default_factory=EMAConfig)
    data: DataConfig = field(default_factory=DataConfig)
    checkpoint: CheckpointConfig = field(default_factory=lambda: CheckpointConfig(dir="runs/distill"))
    log: LogConfig = field(default_factory=LogConfig)
    deepspeed: DeepSpeedConfig = field(default_factory=DeepSpeedConfig)
    max_steps: int = 1000  # student updates
    max_minutes: float = 0.0  # wall-clock budget of one invocation (0 = none): checkpoint and stop when spent
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        _check(self.max_steps >= 1, f"max_steps must be >= 1, got {self.max_steps}")
        _check(self.optim.grad_accum == 1, "distillation does one backward per update: optim.grad_accum must be 1")
        if self.guided.weight > 0:
            _check(self.dmd.weight == 0 and not (self.gan.enabled and self.gan.weight > 0) and self.regression.weight == 0,
                   "guided.weight > 0 trains the student alone: set dmd.weight=0 gan.enabled=false regression.weight=0")
            _check(self.dmd.times is None, "guided.weight > 0 samples with Euler on a uniform grid: leave dmd.times unset")
        _check(self.on_data or self.regression.weight > 0 or self.guided.weight > 0,
               "nothing to train the student: dmd.weight, gan.weight (with gan.enabled), regression.weight and "
               "guided.weight are all 0")

    @property
    def on_data(self) -> bool:
        """Whether a student update needs a data batch and the student's own samples: the DM term or the GAN term is
        on. Without either (``dmd.weight=0``, no GAN) the student learns from the regression pairs alone."""
        return self.dmd.weight > 0 or (self.gan.enabled and self.gan.weight > 0)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DistillConfig:
        return _build(cls, d, "distill")


def _build(kind: Any, d: dict[str, Any], where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(kind)}
    bad = set(d) - set(fields)
    if bad:
        raise ValueError(f"unknown {where} config keys: {sorted(bad)}")
    default = kind()
    kw: dict[str, Any] = {}
    for key, value in d.items():
        sub = getattr(default, key)
        kw[key] = _build(type(sub), value, f"{where}.{key}") if dataclasses.is_dataclass(sub) and isinstance(value, dict) else value
    return kind(**kw)


DISTILL_PRESETS: dict[str, Callable[[], DistillConfig]] = {}


def _preset(fn: Callable[[], DistillConfig]) -> Callable[[], DistillConfig]:
    DISTILL_PRESETS[fn.__name__] = fn
    return fn


@_preset
def debug() -> DistillConfig:
    """Tests and the CPU demo: the debug AudioXModel has 2 blocks, so the discriminator uses 1."""
    return DistillConfig(
        name="debug",
        dmd=DMDConfig(student_updates=1, fake_updates=1),
        gan=GANConfig(num_blocks=1, head_hidden=32),
        optim=OptimConfig(lr=1e-4, weight_decay=1e-3),
        schedule=ScheduleConfig(kind="inverse", warmup=0.0, inv_gamma=1e6, power=0.5),
        ema=EMAConfig(decay=0.9),
        data=DataConfig(batch_size=2),
        checkpoint=CheckpointConfig(dir="runs/distill-debug", every=5, keep_last=2),
        log=LogConfig(every=1, tensorboard=False, progress=False),
        max_steps=10,
    )


@_preset
def paper() -> DistillConfig:
    """Sec. V / VI-A: N=4 uniform, CFG 6, L=6, lambda_adv 1, 5 student : 1 fake, AdamW 1e-5, InverseLR."""
    return DistillConfig(
        name="paper",
        dmd=DMDConfig(),
        gan=GANConfig(),
        optim=OptimConfig(lr=1e-5, betas=(0.9, 0.999), weight_decay=1e-3),
        schedule=ScheduleConfig(kind="inverse", warmup=0.99, inv_gamma=1e6, power=0.5),
        ema=EMAConfig(decay=0.999),
        data=DataConfig(batch_size=10),
        checkpoint=CheckpointConfig(dir="runs/distill", every=1000, keep_last=3),
        log=LogConfig(every=50),
        deepspeed=DeepSpeedConfig(enabled=True, zero_stage=2, bf16=True),
        max_steps=20_000,
    )


def get_distill_config(name_or_path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> DistillConfig:
    key = str(name_or_path)
    if key in DISTILL_PRESETS:
        cfg = DISTILL_PRESETS[key]()
    else:
        path = Path(key)
        if not path.is_file():
            raise ValueError(f"unknown distill preset or config file {key!r}; presets: {', '.join(sorted(DISTILL_PRESETS))}")
        try:
            cfg = DistillConfig.from_dict(json.loads(path.read_text()))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not valid JSON: {exc}") from None
    return apply_overrides(cfg, list(overrides))
