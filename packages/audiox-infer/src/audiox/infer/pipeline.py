"""``AudioXPipeline``: media -> conditions (encoded once) -> sampler -> autoencoder decode -> waveform.

    pipe = AudioXPipeline.from_pretrained("path/to/model")            # or AudioXPipeline(model)
    out = pipe("rain on a tin roof", video="clip.mp4", steps=4, seed=0)
    out.audio, out.sample_rate, out.nfe, out.timings

Tasks (paper Sec. IV-B): t2a, t2m, v2a, v2m, tv2a, tv2m, i2a (a still image as a static video),
inpaint (``X_a`` = the audio with the masked spans zeroed, and the mask itself as ``ConditionInputs.inpaint_mask``
for a model with ``maf.frame_inpaint``; the unmasked region is kept: it is re-noised onto the path at every step and
pasted back at the end, in the latent and then exactly in the waveform) and
complete (``X_a`` = the given clip, right-aligned so that it ends where the generated clip begins, as the
training loader builds it).
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from audiox.core import AudioXModel, ConditionInputs
from audiox.core.config import TASKS
from audiox.infer import media
from audiox.infer.defaults import DEFAULT_MODEL_DIR
from audiox.infer.samplers import GuidedVelocity, KnownRegion, Sampler, TurboSampler, get_sampler

__all__ = ["AudioXPipeline", "AudioXOutput", "ForwardCounter", "infer_task", "parse_spans", "parse_dtype",
           "DEFAULT_MODEL_DIR"]

log = logging.getLogger("audiox.infer")


VIDEO_TASKS = ("v2a", "v2m", "tv2a", "tv2m", "i2a")
AUDIO_TASKS = ("inpaint", "complete")

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
           "float16": torch.float16, "fp16": torch.float16, "half": torch.float16}


def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).lower().removeprefix("torch.")
    if key not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of float32, bfloat16, float16")
    return _DTYPES[key]


def parse_spans(spans: str | Sequence[tuple[float, float]] | None) -> list[tuple[float, float]] | None:
    """``"1.0-2.5,4-5"`` (seconds) or a list of ``(start, end)`` pairs -> validated sorted pairs."""
    if spans is None:
        return None
    pairs: list[tuple[float, float]] = []
    if isinstance(spans, str):
        for part in spans.split(","):
            part = part.strip()
            bits = part.split("-")
            if len(bits) != 2:
                raise ValueError(f"bad inpaint span {part!r}: expected START-END in seconds, e.g. 1.0-2.5")
            try:
                pairs.append((float(bits[0]), float(bits[1])))
            except ValueError:
                raise ValueError(f"bad inpaint span {part!r}: START and END must be numbers") from None
    else:
        pairs = [(float(a), float(b)) for a, b in spans]
    if not pairs:
        raise ValueError("inpaint spans are empty")
    for a, b in pairs:
        if not (math.isfinite(a) and math.isfinite(b)) or a < 0 or b <= a:
            raise ValueError(f"bad inpaint span {a:g}-{b:g}: need 0 <= START < END")
    return sorted(pairs)


def infer_task(*, text: bool, video: bool, image: bool, audio: bool, spans: bool) -> str:
    """The task implied by the inputs (general audio; ask for ``*2m`` music tasks explicitly)."""
    if audio:
        return "inpaint" if spans else "complete"
    if image:
        return "i2a"
    if video:
        return "tv2a" if text else "v2a"
    return "t2a"


class ForwardCounter:
    """Counts denoiser evaluations per sample by hooking the model's forward (not by formula).

    Each forward of ``R`` rows for a batch of ``B`` samples counts ``R / B`` (a CFG forward of 2B rows
    counts 2). Reading a shape is host-side metadata: the hook never synchronises the device.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.rows = 0
        self.calls = 0
        self._handle = None

    def _hook(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        self.rows += int(args[0].shape[0])
        self.calls += 1

    def __enter__(self) -> ForwardCounter:
        self.rows = self.calls = 0
        self._handle = self.model.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def nfe(self, batch_size: int) -> int:
        return self.rows // max(1, batch_size)


@dataclass
class AudioXOutput:
    audio: Tensor  # (B, C_a, S) float32 on the CPU, not clipped
    sample_rate: int
    nfe: int  # counted forwards per sample (CFG's batched pair counts 2)
    sampler: str
    steps: int
    guidance_scale: float | None  # None when the sampler uses no CFG
    seeds: list[int] | None  # per-sample seeds (None when a generator was passed)
    tasks: list[str]
    texts: list[str | None]
    duration: float
    timings: dict[str, float] = field(default_factory=dict)  # seconds: load, encode, denoise, decode, total
    latents: Tensor | None = None  # (B, C, T) the sampled clean latents

    def metadata(self) -> dict[str, Any]:
        """What the JSON sidecar records (everything but the tensors)."""
        return {"sample_rate": self.sample_rate, "nfe": self.nfe, "sampler": self.sampler, "steps": self.steps,
                "guidance_scale": self.guidance_scale, "seeds": self.seeds, "tasks": self.tasks,
                "prompts": self.texts, "duration": self.duration, "timings": self.timings}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class AudioXPipeline:
    """Any-to-audio generation with a trained :class:`AudioXModel` (teacher or distilled student)."""

    def __init__(self, model: AudioXModel, *, name: str | None = None) -> None:
        self.model = model.eval()
        self.config = model.config
        self.name = name or model.config.name
        self._compiled = False

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu",
                        dtype: str | torch.dtype | None = None) -> AudioXPipeline:
        model = AudioXModel.from_pretrained(path, device=device, dtype=parse_dtype(dtype))
        return cls(model, name=str(path))

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    @property
    def sample_rate(self) -> int:
        return self.config.autoencoder.sample_rate

    def compile(self, *, cuda_graphs: bool = True) -> AudioXPipeline:
        """``torch.compile`` the MMDiT in place (``reduce-overhead`` = CUDA graphs on a GPU).

        On a CPU, CUDA graphs are skipped (plain compile); if compilation is unavailable the eager model
        stays (logged).
        """
        mode = "reduce-overhead" if cuda_graphs and self.device.type == "cuda" else "default"
        try:
            self.model.dit.compile(mode=mode, dynamic=False)
            self._compiled = True
        except Exception as exc:  # pragma: no cover - depends on the platform's compiler
            log.warning("torch.compile unavailable (%s): running eagerly", exc)
        return self

    # --------------------------------------------------------------------------------------------------
    def make_sampler(self, sampler: str | Sampler | None = None) -> Sampler:
        inf = self.config.inference
        return get_sampler(sampler or inf.sampler, time_shift=inf.time_shift, few_step_times=inf.few_step_times)

    def default_steps(self, sampler: Sampler) -> int:
        if isinstance(sampler, TurboSampler) and sampler.default_steps() is not None:
            return int(sampler.default_steps())  # type: ignore[arg-type]
        if isinstance(sampler, TurboSampler) and self.config.inference.sampler != "turbo":
            return 4  # a teacher's 50 steps make no sense for the few-step sampler
        return self.config.inference.steps

    @torch.no_grad()
    def __call__(
        self,
        text: str | Sequence[str | None] | None = None,
        video: str | Path | Tensor | None = None,
        image: str | Path | None = None,
        audio: str | Path | Tensor | None = None,
        *,
        task: str | None = None,
        duration: float | None = None,
        steps: int | None = None,
        guidance_scale: float | None = None,
        seed: int | None = None,
        batch_size: int = 1,
        inpaint_spans: str | Sequence[tuple[float, float]] | None = None,
        generator: torch.Generator | None = None,
        sampler: str | Sampler | None = None,
        stage_hook: Callable[[str], None] | None = None,
    ) -> AudioXOutput:
        """Generate ``batch_size`` clips per prompt. ``video``/``audio`` may be paths or tensors
        (video ``(F, 3, H, W)`` in [0, 1] at ``config.video.fps``; audio ``(C_a, S)`` at the model's rate).

        ``stage_hook(name)`` is called as each stage starts (``load``, ``encode``, ``denoise``, ``decode``) and
        with ``end`` after the last (``audiox bench-latency`` measures peak memory per stage with it)."""
        hook = stage_hook or (lambda name: None)
        hook("load")
        cfg = self.config
        dev = self.device
        t_start = time.perf_counter()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        texts: list[str | None] = [text] if text is None or isinstance(text, str) else list(text)
        if not texts:
            raise ValueError("text is an empty list")
        spans = parse_spans(inpaint_spans)
        if task is None:
            task = infer_task(text=any(t for t in texts), video=video is not None, image=image is not None,
                              audio=audio is not None, spans=spans is not None)
        self._check_inputs(task, video, image, audio, spans)
        duration = float(duration if duration is not None else cfg.duration)
        if not (math.isfinite(duration) and duration > 0):
            raise ValueError(f"duration must be > 0 seconds, got {duration}")
        hop = cfg.autoencoder.hop_length
        latent_len = max(1, round(duration * cfg.autoencoder.latent_rate))
        num_samples = latent_len * hop
        duration = num_samples / self.sample_rate
        texts = [t for t in texts for _ in range(batch_size)]
        b = len(texts)

        # Media -> tensors (once; shared by every sample of the batch) -------------------------------
        vid = syn = prompt = keep = sample_mask = None
        if video is not None or image is not None:
            vid, syn = self._load_frames(video, image, duration)
        if audio is not None:
            wav = self._load_audio(audio)
            if task == "inpaint":
                wav = media.fit_length(wav, num_samples, what="audio to inpaint", sample_rate=self.sample_rate)
                sample_mask = self._span_mask(spans, num_samples)  # (S,) True = generate
                keep = wav
                prompt = wav.masked_fill(sample_mask[None], 0.0)  # X_a: masked spans zeroed (as in training)
            else:  # complete: the clip ends where the generated segment begins
                prompt = media.fit_length(wav, num_samples, what="audio prompt", sample_rate=self.sample_rate,
                                          align="right")
        inputs = ConditionInputs(
            text=texts, task=[task] * b,
            video=None if vid is None else vid[None].expand(b, *vid.shape).contiguous(),
            sync_video=None if syn is None else syn[None].expand(b, *syn.shape).contiguous(),
            audio=None if prompt is None else prompt[None].expand(b, *prompt.shape).contiguous(),
            inpaint_mask=None if sample_mask is None else sample_mask[None].expand(b, -1).contiguous(),
        ).to(dev, self.dtype)
        t_loaded = time.perf_counter()
        hook("encode")

        # Conditions: encoded once, reused at every step --------------------------------------------------
        smp = self.make_sampler(sampler)
        steps = int(steps if steps is not None else self.default_steps(smp))
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        scale = float(guidance_scale if guidance_scale is not None else cfg.inference.guidance_scale)
        feats = self.model.encode_modalities(inputs)
        cond = self.model.fuse(feats)
        uncond = self.model.unconditional(feats) if smp.uses_cfg and scale != 1.0 else None
        velocity = GuidedVelocity(self._denoiser, cond, uncond, scale)
        known = None
        if keep is not None:
            z0_known = self.model.autoencoder.encode(keep[None].to(dev, self.dtype)).float()  # (1, C, T)
            lat_mask = sample_mask.view(latent_len, hop).any(dim=1)  # a frame is generated if any sample is
            known = KnownRegion(z0=z0_known.expand(b, -1, -1), mask=lat_mask.to(dev).view(1, 1, latent_len))
        _sync(dev)
        t_encoded = time.perf_counter()
        hook("denoise")

        # Denoise -----------------------------------------------------------------------------------------
        shape = (b, cfg.autoencoder.latent_dim, latent_len)
        seeds: list[int] | None = None
        if generator is not None:
            gens = [generator]
        else:
            base = int(seed) if seed is not None else secrets.randbelow(2**31)
            seeds = [base + i for i in range(b)]
            gens = [torch.Generator().manual_seed(s) for s in seeds]
        noise_like = _noise_fn(gens, shape, dev)
        with ForwardCounter(self.model) as counter:
            z0 = smp.sample(velocity, noise_like(), steps, noise_like=noise_like, known=known)
        _sync(dev)
        t_denoised = time.perf_counter()
        hook("decode")

        # Decode ------------------------------------------------------------------------------------------
        wav_out = self.model.autoencoder.decode(z0).float()[..., :num_samples]  # (B, C_a, S)
        if keep is not None:  # the unmasked region is the given audio, sample for sample
            m = sample_mask.to(dev)[None, None]
            wav_out = torch.where(m, wav_out, keep.to(dev, torch.float32)[None])
        wav_out = wav_out.cpu()
        t_end = time.perf_counter()
        hook("end")
        return AudioXOutput(
            audio=wav_out, sample_rate=self.sample_rate, nfe=counter.nfe(b), sampler=smp.name, steps=steps,
            guidance_scale=scale if uncond is not None else None, seeds=seeds, tasks=[task] * b, texts=texts,
            duration=duration, latents=z0.float().cpu(),
            timings={"load": t_loaded - t_start, "encode": t_encoded - t_loaded, "denoise": t_denoised - t_encoded,
                     "decode": t_end - t_denoised, "total": t_end - t_start},
        )

    # Helpers -------------------------------------------------------------------------------------------
    def _denoiser(self, z: Tensor, t: Tensor, cond: Any) -> Tensor:
        """The model in its own dtype; the sampler's state stays float32."""
        return self.model(z.to(self.dtype), t.to(self.dtype), cond).float()

    def _check_inputs(self, task: str, video: Any, image: Any, audio: Any, spans: Any) -> None:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
        if video is not None and image is not None:
            raise ValueError("give either a video or an image, not both")
        has_visual = video is not None or image is not None
        if task in VIDEO_TASKS and not has_visual:
            raise ValueError(f"task {task} needs a {'still image' if task == 'i2a' else 'video'}")
        if task in ("t2a", "t2m") and has_visual:
            raise ValueError(f"task {task} takes no video or image (use tv2a / tv2m / i2a)")
        if task in AUDIO_TASKS and audio is None:
            raise ValueError(f"task {task} needs an audio input")
        if task not in AUDIO_TASKS and audio is not None:
            raise ValueError(f"task {task} takes no audio input (use inpaint or complete)")
        if task == "inpaint" and spans is None:
            raise ValueError("task inpaint needs spans to regenerate, e.g. inpaint_spans='1.0-2.5'")
        if task != "inpaint" and spans is not None:
            raise ValueError(f"inpaint spans were given but the task is {task}")

    def _load_frames(self, video: Any, image: Any, duration: float) -> tuple[Tensor, Tensor]:
        cfg = self.config
        specs = [media.FrameSpec(cfg.video.fps, cfg.video.image_size), media.FrameSpec(cfg.sync.fps, cfg.sync.image_size)]
        if image is not None:
            vid, syn = media.load_image(image, specs, duration)
        elif isinstance(video, Tensor):
            if video.ndim != 4 or video.shape[1] != 3:
                raise ValueError(f"video tensor must be (F, 3, H, W), got {tuple(video.shape)}")
            vid = media.resize_frames(video.float(), cfg.video.image_size)
            syn = None
        else:
            vid, syn = media.load_video(video, specs, duration)
        if syn is None:  # the model derives the sync stream from the CLIP-rate frames
            from audiox.core.maf import align_frames

            n = max(1, round(duration * cfg.sync.fps))
            syn = media.resize_frames(align_frames(vid[None], n)[0], cfg.sync.image_size)
        return vid, syn

    def _load_audio(self, audio: Any) -> Tensor:
        c = self.config.autoencoder.audio_channels
        if isinstance(audio, Tensor):
            if audio.ndim != 2 or audio.shape[-1] == 0:
                raise ValueError(f"audio tensor must be (C, S) with S > 0, got {tuple(audio.shape)}")
            return torch.from_numpy(media.mix_channels(audio.float().cpu().numpy(), c))
        return media.load_audio(audio, self.sample_rate, c)

    def _span_mask(self, spans: list[tuple[float, float]], num_samples: int) -> Tensor:
        sr = self.sample_rate
        total = num_samples / sr
        mask = torch.zeros(num_samples, dtype=torch.bool)
        for a, b in spans:
            if a >= total:
                raise ValueError(f"inpaint span {a:g}-{b:g} s starts after the end of the {total:.2f} s clip")
            mask[int(math.floor(a * sr)): int(math.ceil(min(b, total) * sr))] = True
        return mask


def _noise_fn(gens: list[torch.Generator], shape: tuple[int, int, int], device: torch.device):
    """Fresh N(0, I) latents from per-sample CPU generators (same seed -> same noise on any device)."""
    b = shape[0]

    def draw() -> Tensor:
        if len(gens) == 1 and b > 1:
            z = torch.randn(shape, generator=gens[0])
        else:
            z = torch.stack([torch.randn(shape[1:], generator=g) for g in gens])
        return z.to(device)

    return draw
