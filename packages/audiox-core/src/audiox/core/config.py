"""Typed configs and the preset registry (``debug``, ``mini``, ``paper``).

A run is a preset plus ``key=value`` overrides (dotted paths, e.g. ``dit.depth=4``). Every component has one
flat dataclass; invalid values are rejected in ``__post_init__`` with a message that names the field.
Configs round-trip through JSON (``to_dict`` / ``from_dict``) and live in ``config.json`` next to the weights.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

__all__ = [
    "FORMAT_VERSION",
    "TASKS",
    "TASK_SENTENCES",
    "TextEncoderConfig",
    "VideoEncoderConfig",
    "SyncEncoderConfig",
    "AutoencoderConfig",
    "MAFConfig",
    "MMDiTConfig",
    "InferenceConfig",
    "AudioXConfig",
    "PRESETS",
    "register_preset",
    "get_config",
    "apply_overrides",
]

#: Version of the on-disk format (config.json + model.safetensors). Bumped on incompatible changes;
#: ``from_pretrained`` refuses files written by a newer version. 1: every weight in a float type; 2: Linear weights
#: may be stored as row-wise int8 with their scales (``save_pretrained(quantize="int8")``). A folder is written
#: with the lowest version that can read it, so float-only folders stay readable by version-1 releases.
FORMAT_VERSION = 2

#: The paper's tasks. ``*2a`` are general audio, ``*2m`` music; inpainting and completion take ``X_a``.
TASKS = ("t2a", "t2m", "v2a", "v2m", "tv2a", "tv2m", "i2a", "inpaint", "complete")

#: Task sentences used when a sample has no text (paper Sec. IV-B: "Generate music for the video.").
TASK_SENTENCES: dict[str, str] = {
    "t2a": "Generate general audio.",
    "t2m": "Generate music.",
    "v2a": "Generate general audio for the video.",
    "v2m": "Generate music for the video.",
    "tv2a": "Generate general audio for the video.",
    "tv2m": "Generate music for the video.",
    "i2a": "Generate general audio for the image.",
    "inpaint": "Fill in the missing parts of the audio.",
    "complete": "Continue the music.",
}


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


@dataclass
class TextEncoderConfig:
    """T5-family text encoder (``transformers``)."""

    pretrained: str | None = None  # local path or hub id of a T5 encoder; None = build from the fields below
    # "byt5" needs no files (offline); otherwise a tokenizer folder / hub id (a T5 one, or audiox-data tokenizer's)
    tokenizer: str = "byt5"
    d_model: int = 768  # T5-base
    num_layers: int = 12
    num_heads: int = 12
    d_kv: int = 64
    d_ff: int = 3072
    vocab_size: int = 32128  # T5's sentencepiece vocabulary; ByT5 uses 384
    feed_forward_proj: str = "relu"  # T5 v1.0 (t5-base); "gated-gelu" for T5 v1.1 / FLAN-T5
    max_length: int = 128  # tokens kept per caption (AudioX / stable-audio-tools use 128 for T5)
    freeze: bool = True  # paper: frozen T5. Models trained from scratch offline may train it (mini)

    def __post_init__(self) -> None:
        _check(self.d_model > 0 and self.num_layers > 0 and self.num_heads > 0, f"text: bad sizes {self}")
        _check(self.max_length > 0, f"text.max_length must be > 0, got {self.max_length}")


@dataclass
class VideoEncoderConfig:
    """CLIP frame encoder (``open_clip``) for the semantic video stream."""

    model_name: str = "ViT-B-32"  # open_clip architecture name; "custom" uses the fields below
    pretrained: str | None = None  # local checkpoint path, or an open_clip tag ("openai") when online
    fps: float = 5.0  # paper: CLIP features at 5 fps
    image_size: int = 224
    # used when model_name == "custom" (tiny towers for debug/mini, random init):
    width: int = 768
    layers: int = 12
    heads: int = 12
    patch_size: int = 32
    embed_dim: int = 512  # output feature size (ViT-B/32: 512)
    freeze: bool = True

    def __post_init__(self) -> None:
        _check(self.fps > 0, f"video.fps must be > 0, got {self.fps}")
        _check(self.image_size % self.patch_size == 0, f"video.image_size {self.image_size} % patch {self.patch_size}")


@dataclass
class SyncEncoderConfig:
    """Synchformer-style synchronisation encoder: short 25 fps segments -> per-frame-rate features."""

    pretrained: str | None = None  # local safetensors of a compatible encoder
    fps: float = 25.0  # paper: sync features at 25 fps
    segment_frames: int = 16  # Synchformer: 16-frame segments ...
    segment_stride: int = 8  # ... with a stride of 8 frames
    image_size: int = 224
    patch_size: int = 16
    tubelet: int = 2  # frames per space-time patch
    width: int = 768
    depth: int = 12
    heads: int = 12
    out_dim: int = 768
    freeze: bool = True

    def __post_init__(self) -> None:
        _check(self.fps > 0, f"sync.fps must be > 0, got {self.fps}")
        _check(self.segment_frames % self.tubelet == 0, "sync.segment_frames must be a multiple of sync.tubelet")
        _check(self.image_size % self.patch_size == 0, "sync.image_size must be a multiple of sync.patch_size")


@dataclass
class AutoencoderConfig:
    """1-D convolutional VAE on waveforms (Stable Audio Open's Oobleck layout for ``paper``)."""

    pretrained: str | None = None  # local safetensors of a compatible autoencoder
    sample_rate: int = 44100
    audio_channels: int = 2
    latent_dim: int = 64
    base_channels: int = 128
    channel_mults: tuple[int, ...] = (1, 2, 4, 8, 16)
    strides: tuple[int, ...] = (2, 4, 4, 8, 8)  # product = hop length (2048 for paper)
    latent_scale: float = 1.0  # latents are multiplied by this after encoding (divided before decoding)
    freeze: bool = True  # frozen while the diffusion model trains
    # "oobleck": transposed-conv waveform decoder mirroring the encoder (the paper's VAE); "istft": Vocos-style
    # ConvNeXt blocks at the latent rate, an upsampling to the STFT frame rate, more blocks, then per-frame
    # log-magnitude and phase -> inverse STFT (far cheaper; tones and noise are direct to produce)
    decoder: str = "oobleck"
    istft_n_fft: int = 640
    istft_hop: int = 160  # must divide hop_length
    istft_dim: int = 256
    istft_blocks: tuple[int, int] = (2, 4)  # ConvNeXt blocks at the latent rate, then at the STFT frame rate

    def __post_init__(self) -> None:
        self.channel_mults = tuple(self.channel_mults)
        self.strides = tuple(self.strides)
        self.istft_blocks = tuple(self.istft_blocks)
        _check(self.decoder in ("oobleck", "istft"), f"autoencoder.decoder must be oobleck or istft, got {self.decoder!r}")
        if self.decoder == "istft":
            _check(self.istft_hop > 0 and self.hop_length % self.istft_hop == 0,
                   f"autoencoder: istft_hop {self.istft_hop} must divide hop_length {self.hop_length}")
            _check(self.istft_n_fft >= 2 * self.istft_hop, "autoencoder: istft_n_fft must be >= 2 * istft_hop")
            _check(len(self.istft_blocks) == 2 and min(self.istft_blocks) >= 0 and self.istft_dim > 0,
                   f"autoencoder: bad istft sizes dim={self.istft_dim} blocks={self.istft_blocks}")
        _check(
            len(self.channel_mults) == len(self.strides),
            f"autoencoder: one channel mult per stride, got {self.channel_mults} and {self.strides}",
        )
        _check(self.sample_rate > 0 and self.latent_dim > 0, "autoencoder: sample_rate and latent_dim must be > 0")

    @property
    def hop_length(self) -> int:
        h = 1
        for s in self.strides:
            h *= s
        return h

    @property
    def latent_rate(self) -> float:
        return self.sample_rate / self.hop_length


@dataclass
class MAFConfig:
    """Multimodal Adaptive Fusion. Switches give the paper's Table V variants."""

    enabled: bool = True  # False: plain concatenation of projected modality tokens ("w/o MAF")
    use_gate: bool = True  # per-modality adaptive gate ("w/o Gate" when False)
    use_query: bool = True  # query-based attention fusion ("w/o Query" when False)
    num_queries: int = 32  # learned fusion queries appended to H_c
    num_heads: int = 16
    depth: int = 1  # query-attention layers
    mlp_ratio: float = 4.0
    gate_hidden: int = 256
    # Add the caption's pooled tokens to the global (adaLN) vector through a zero-initialised projection, as MMAudio
    # adds pooled text features to its global condition. Off in the paper-faithful default; the query mean alone
    # hardly tells prompts apart when a T2A sample's keys are mostly placeholders (docs/results.md)
    global_text: bool = False
    # An absent or dropped modality attends as one null token instead of one per frame. Its zero-padded tokens are
    # identical, so this is exactly a logit bias of -log(L) on them: the same null state, without 500 copies that
    # outweigh a caption's 15-60 tokens in every softmax over H_c (MAF's queries, the DiT's cross-attention). Off in
    # the paper-faithful default (the paper zero-pads, Sec. IV-B); changes a trained model's attention, so turn it on
    # for a fresh run or a continuation, not at inference
    single_null: bool = False
    # Also add the video stream, frame by frame, to the latent tokens of the MMDiT (through one zero-initialised
    # projection; ``dit.abs_time`` is its companion). ``H_c`` carries no time position: the DiT's cross-attention
    # cannot tell which video frame belongs to which latent frame, so V2A onsets cannot be placed from it. MMAudio
    # adds its frame-aligned sync features to the latent sequence for the same reason. Off in the paper's presets
    # (the paper does not say how it aligns); zero-initialised, so it can be switched on for a continuation
    frame_aligned: bool = False
    # Also add, frame by frame, the inpainting prompt's kept latents and the mask of what is kept (one more channel)
    # to the latent tokens (``dit.prompt_proj``, zero-initialised): the known region at its place in time, and the
    # spans to generate marked as such rather than as silence (stable-audio-tools concatenates the mask and the
    # masked latents to the input for the same job). Only inpainting rows carry it; a completion prompt is not on
    # the clip's time axis. Off in the presets (the paper feeds ``X_a`` through MAF only)
    frame_inpaint: bool = False

    def __post_init__(self) -> None:
        _check(self.num_queries > 0 and self.num_heads > 0, f"maf: bad sizes {self}")


@dataclass
class MMDiTConfig:
    """The diffusion transformer over the latent sequence."""

    hidden_size: int = 2048
    depth: int = 24  # paper: 24 layers
    num_heads: int = 16
    mlp_ratio: float = 4.0
    qk_norm: bool = True
    rope_theta: float = 10000.0
    time_embed_dim: int = 256  # sinusoidal features before the timestep MLP
    learned_null: bool = True  # learned null tokens for dropped modalities (CFG) on top of zero-padding
    # Add sinusoidal features of each latent frame's index (through a zero-initialised projection) to the latent
    # tokens. RoPE gives the self-attention relative positions only: "a bell at 3 s" needs to know where 3 s is
    abs_time: bool = False
    attn_backend: Literal["auto", "torch", "triton", "sdpa"] = "auto"  # see audiox.core.kernels

    def __post_init__(self) -> None:
        _check(self.hidden_size % self.num_heads == 0, f"dit.hidden_size {self.hidden_size} % heads {self.num_heads}")
        _check((self.hidden_size // self.num_heads) % 2 == 0, "dit head dim must be even (RoPE)")


@dataclass
class InferenceConfig:
    """Defaults that ``audiox-infer`` reads from an exported model (user flags override)."""

    sampler: Literal["euler", "heun", "turbo"] = "euler"
    steps: int = 50
    guidance_scale: float = 6.0  # ignored by the turbo sampler (CFG is baked into the student)
    time_shift: float = 1.0
    few_step_times: tuple[float, ...] | None = None  # the student's T_N (full set, decreasing)

    def __post_init__(self) -> None:
        _check(self.steps >= 1, f"inference.steps must be >= 1, got {self.steps}")
        if self.few_step_times is not None:
            self.few_step_times = tuple(float(x) for x in self.few_step_times)


@dataclass
class AudioXConfig:
    name: str = "custom"
    duration: float = 10.0  # seconds of audio generated per clip
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    video: VideoEncoderConfig = field(default_factory=VideoEncoderConfig)
    sync: SyncEncoderConfig = field(default_factory=SyncEncoderConfig)
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    maf: MAFConfig = field(default_factory=MAFConfig)
    dit: MMDiTConfig = field(default_factory=MMDiTConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        _check(self.duration > 0, f"duration must be > 0, got {self.duration}")

    # Derived sizes -------------------------------------------------------------------------------
    @property
    def latent_length(self) -> int:
        """Latent frames for ``duration`` seconds."""
        return int(round(self.duration * self.autoencoder.latent_rate))

    @property
    def num_samples(self) -> int:
        return self.latent_length * self.autoencoder.hop_length

    @property
    def video_frames(self) -> int:
        return int(round(self.duration * self.video.fps))

    @property
    def sync_frames(self) -> int:
        return int(round(self.duration * self.sync.fps))

    # Serialisation -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AudioXConfig:
        d = dict(d)
        version = int(d.get("format_version", FORMAT_VERSION))
        if version > FORMAT_VERSION:
            raise ValueError(
                f"config format_version {version} is newer than this audiox supports ({FORMAT_VERSION}); upgrade audiox"
            )
        kwargs: dict[str, Any] = {}
        sub = {f.name: f.type for f in dataclasses.fields(cls)}
        nested = {
            "text": TextEncoderConfig,
            "video": VideoEncoderConfig,
            "sync": SyncEncoderConfig,
            "autoencoder": AutoencoderConfig,
            "maf": MAFConfig,
            "dit": MMDiTConfig,
            "inference": InferenceConfig,
        }
        for key, value in d.items():
            if key not in sub:
                raise ValueError(f"unknown config key {key!r}")
            if key in nested:
                kwargs[key] = _build(nested[key], value)
            else:
                kwargs[key] = value
        return cls(**kwargs)

    @classmethod
    def from_json(cls, path: str | Path) -> AudioXConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _build(kind: type, value: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(kind)}
    unknown = set(value) - names
    if unknown:
        raise ValueError(f"unknown {kind.__name__} keys: {sorted(unknown)}")
    return kind(**value)


# Presets -------------------------------------------------------------------------------------------

PRESETS: dict[str, Callable[[], AudioXConfig]] = {}


def register_preset(name: str) -> Callable[[Callable[[], AudioXConfig]], Callable[[], AudioXConfig]]:
    def deco(fn: Callable[[], AudioXConfig]) -> Callable[[], AudioXConfig]:
        PRESETS[name] = fn
        return fn

    return deco


@register_preset("paper")
def paper() -> AudioXConfig:
    """The paper's model: 24-layer MMDiT, T5-base, CLIP ViT-B/32 @ 5 fps + sync @ 25 fps, 44.1 kHz VAE."""
    return AudioXConfig(
        name="paper",
        duration=10.0,
        text=TextEncoderConfig(pretrained=None, tokenizer="google-t5/t5-base"),
        video=VideoEncoderConfig(model_name="ViT-B-32"),
        sync=SyncEncoderConfig(),
        autoencoder=AutoencoderConfig(),
        maf=MAFConfig(),
        dit=MMDiTConfig(),
        inference=InferenceConfig(sampler="euler", steps=50, guidance_scale=6.0),
    )


@register_preset("mini")
def mini() -> AudioXConfig:
    """The shipped default, trained from scratch on the synthetic world on a 2-core CPU."""
    return AudioXConfig(
        name="mini",
        duration=10.0,
        # No pretrained T5 can be downloaded here: a small byte-level T5 trained with the model.
        text=TextEncoderConfig(
            tokenizer="byt5", d_model=256, num_layers=3, num_heads=4, d_kv=64, d_ff=512, vocab_size=384,
            max_length=160, freeze=False,
        ),
        video=VideoEncoderConfig(
            model_name="custom", fps=5.0, image_size=64, width=128, layers=2, heads=4, patch_size=16,
            embed_dim=128, freeze=False,
        ),
        sync=SyncEncoderConfig(
            fps=25.0, segment_frames=8, segment_stride=4, image_size=32, patch_size=16, tubelet=2, width=96,
            depth=2, heads=4, out_dim=96, freeze=False,
        ),
        autoencoder=AutoencoderConfig(
            # encoder: 16 channels at the full 16 kHz rate (the costly layers), 32-256 after each downsampling,
            # 1.36M parameters; with the iSTFT decoder below (1.79M) the autoencoder has 3.14M
            sample_rate=16000, audio_channels=1, latent_dim=16, base_channels=16,
            channel_mults=(2, 4, 8, 16), strides=(2, 4, 8, 10),  # hop 640 -> 25 latent frames/s
            # the iSTFT decoder: ~2.4 GFLOP per 10 s clip against ~14 for the Oobleck one, and on the bundled
            # encoder's latents it learned tones (bells, sirens, buzz) that the Oobleck decoder never produced
            decoder="istft", istft_n_fft=640, istft_hop=160, istft_dim=192, istft_blocks=(2, 4),
        ),
        maf=MAFConfig(num_queries=16, num_heads=4, gate_hidden=64),
        dit=MMDiTConfig(hidden_size=256, depth=6, num_heads=4),
        inference=InferenceConfig(sampler="euler", steps=50, guidance_scale=6.0),
    )


@register_preset("debug")
def debug() -> AudioXConfig:
    """Tiny everything: seconds on CPU, for tests."""
    return AudioXConfig(
        name="debug",
        duration=1.0,
        text=TextEncoderConfig(
            tokenizer="byt5", d_model=32, num_layers=1, num_heads=2, d_kv=16, d_ff=64, vocab_size=384,
            max_length=32,
        ),
        video=VideoEncoderConfig(
            model_name="custom", fps=5.0, image_size=32, width=32, layers=1, heads=2, patch_size=16, embed_dim=32
        ),
        sync=SyncEncoderConfig(
            fps=25.0, segment_frames=4, segment_stride=2, image_size=32, patch_size=16, tubelet=2, width=32,
            depth=1, heads=2, out_dim=32,
        ),
        autoencoder=AutoencoderConfig(
            sample_rate=8000, audio_channels=1, latent_dim=8, base_channels=8,
            channel_mults=(1, 2, 4), strides=(2, 4, 8),  # hop 64 -> 125 latent frames/s
        ),
        maf=MAFConfig(num_queries=4, num_heads=2, gate_hidden=16),
        dit=MMDiTConfig(hidden_size=64, depth=2, num_heads=2, time_embed_dim=32),
        inference=InferenceConfig(sampler="euler", steps=4, guidance_scale=3.0),
    )


def _coerce(raw: str, current: Any) -> Any:
    if isinstance(current, bool):
        if raw.lower() in ("true", "1", "yes"):
            return True
        if raw.lower() in ("false", "0", "no"):
            return False
        raise ValueError(f"expected a boolean, got {raw!r}")
    if isinstance(current, dict):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            raise ValueError(f"expected a JSON object, got {raw!r}") from None
        if not isinstance(value, dict):
            raise ValueError(f"expected a JSON object, got {raw!r}")
        return value
    if current is None or isinstance(current, (tuple, list)):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            return raw
        return tuple(value) if isinstance(value, list) else value
    if isinstance(current, int):
        return int(raw)
    if isinstance(current, float):
        if raw.lower() in ("null", "none"):  # optional float fields (e.g. a loss floor that may be switched off)
            return None
        return float(raw)
    return raw


def apply_overrides(config: Any, overrides: list[str] | tuple[str, ...]) -> Any:
    """Apply ``a.b=value`` overrides to a (nested) dataclass config, in place; returns it re-validated."""
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value")
        key, raw = item.split("=", 1)
        obj = config
        parts = key.strip().split(".")
        for p in parts[:-1]:
            if not hasattr(obj, p):
                raise ValueError(f"unknown config key {key!r}")
            obj = getattr(obj, p)
        leaf = parts[-1]
        if not dataclasses.is_dataclass(obj) or leaf not in {f.name for f in dataclasses.fields(obj)}:
            raise ValueError(f"unknown config key {key!r}")
        setattr(obj, leaf, _coerce(raw, getattr(obj, leaf)))
    # re-run validation on every nested dataclass
    _revalidate(config)
    return config


def _revalidate(obj: Any) -> None:
    if dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            _revalidate(getattr(obj, f.name))
        post = getattr(obj, "__post_init__", None)
        if post is not None:
            post()


def get_config(name_or_path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> AudioXConfig:
    """A preset name (``debug``, ``mini``, ``paper``) or a JSON file, plus ``key=value`` overrides."""
    key = str(name_or_path)
    if key in PRESETS:
        config = PRESETS[key]()
    else:
        path = Path(key)
        if path.is_dir():
            path = path / "config.json"
        if not path.is_file():
            raise ValueError(f"unknown preset or config file {key!r}; presets: {', '.join(sorted(PRESETS))}")
        config = AudioXConfig.from_json(path)
    return apply_overrides(config, overrides)
