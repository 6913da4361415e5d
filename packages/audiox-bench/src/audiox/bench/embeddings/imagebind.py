"""ImageBind (Girdhar et al., 2023) audio and vision towers for the ImageBind AV score (paper Sec. VI-B).

Architecture and preprocessing follow facebookresearch/ImageBind (``imagebind_huge``, ``data.py``):

* Audio: first channel (``kaldi.fbank`` reads channel 0), 16 kHz; ``clips`` (3) windows of 2 s starting at
  ``k * max(D - 2, 0) / (clips - 1)`` (pytorchvideo ``ConstantClipsPerVideoSampler``); each window minus its mean,
  then a Kaldi fbank (25 ms / 10 ms frames, snip edges, per-frame DC removal, pre-emphasis 0.97, symmetric Hann
  window, 512-point power spectrum, 128 Kaldi mel bins 20 Hz - 8 kHz, ``log(max(mel, float32 eps))``), zero-padded or
  cut to 204 frames, normalised ``(x + 4.268) / 9.138``. Tower: Conv2d 16x16 stride 10 (no bias) -> LayerNorm ->
  CLS + learned positions (1 + 12 x 19) -> 12 pre-LN blocks (``nn.MultiheadAttention`` with ``add_bias_kv``,
  LayerNorm eps 1e-6, GELU MLP x4) -> LayerNorm -> CLS -> Linear(768, 1024, no bias) -> L2 norm.
* Vision: a video is cut into ``video_clips`` (5) clips of 2 s the same way; each clip gives 2 frames (uniform
  subsample of the frames shown in ``[start, start + 2)``), shorter side scaled to 224 (bilinear), CLIP mean/std,
  3 spatial crops (start / centre / end of the longer side) -> 15 tubelets ``(3, 2, 224, 224)``; a still image is
  resized (bicubic) and centre-cropped, then repeated to 2 frames. Tower: Conv3d (2, 14, 14) stride (2, 14, 14),
  no bias -> CLS + learned positions (1 + 16 x 16) -> LayerNorm (eps 1e-6) -> 32 pre-LN blocks (1280-d, 16
  heads, no bias_kv) -> LayerNorm -> CLS -> Linear(1280, 1024, no bias) -> L2 norm.
* A clip's embedding is the mean of its windows' / views' unit embeddings (ImageBind's ``reduce_list``), then
  L2-normalised here (the cosine is unchanged; ImageBind's audio logit scale 20 is dropped for the same reason).
  The AV score is the cosine of audio and video embeddings averaged over id-paired clips
  (:func:`audiox.bench.metrics.paired_cosine_score`).

Published weights: ``imagebind_huge.pth`` (a torch pickle) converted once to safetensors (docs/metrics.md), loaded
strictly with :meth:`ImageBindAV.load_weights` through :func:`map_imagebind_key`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from audiox.bench.embeddings.weights import rename_strict

__all__ = ["ImageBindConfig", "ImageBindAV", "kaldi_fbank", "kaldi_mel_banks", "map_imagebind_key", "imagebind_to_ours"]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ImageBindConfig:
    embed_dim: int = 1024  # imagebind_huge out_embed_dim
    audio_width: int = 768
    audio_depth: int = 12
    audio_heads: int = 12
    vision_width: int = 1280
    vision_depth: int = 32
    vision_heads: int = 16
    image_size: int = 224
    patch: int = 14
    tubelet: int = 2  # video_frames: a still image is repeated to this many frames (PadIm2Video)
    sample_rate: int = 16000
    clip_seconds: float = 2.0
    clips: int = 3  # audio windows per clip (load_and_transform_audio_data)
    n_mels: int = 128
    frames: int = 204
    audio_patch: int = 16
    audio_stride: int = 10
    audio_mean: float = -4.268  # AudioSet fbank statistics used by ImageBind
    audio_std: float = 9.138
    video_clip_seconds: float = 2.0
    video_clips: int = 5  # load_and_transform_video_data
    crops: int = 3  # SpatialCrop(224, num_crops=3)

    def __post_init__(self):
        for w, h, name in ((self.audio_width, self.audio_heads, "audio"), (self.vision_width, self.vision_heads, "vision")):
            if w % h:
                raise ValueError(f"{name}_width {w} is not divisible by {name}_heads {h}")
        if self.image_size % self.patch:
            raise ValueError(f"image_size {self.image_size} must be a multiple of patch {self.patch}")
        if self.crops not in (1, 3):
            raise ValueError("crops must be 1 or 3 (ImageBind's SpatialCrop)")

    @property
    def audio_grid(self) -> tuple[int, int]:
        return ((self.n_mels - self.audio_patch) // self.audio_stride + 1,
                (self.frames - self.audio_patch) // self.audio_stride + 1)


# --- Kaldi fbank (torchaudio.compliance.kaldi.fbank with ImageBind's arguments) -------------------------------------

def kaldi_mel_banks(n_mels: int, n_fft: int, sample_rate: int, low: float = 20.0, high: float = 0.0) -> torch.Tensor:
    """``(n_mels, n_fft // 2 + 1)`` Kaldi triangles, linear in the mel domain (1127 ln(1 + f / 700)); the Nyquist
    column is zero as in Kaldi (its FFT bins stop at ``n_fft // 2 - 1``)."""
    nyq = sample_rate / 2
    high = high if high > 0 else nyq + high

    def mel(f):
        return 1127.0 * np.log1p(np.asarray(f, np.float64) / 700.0)

    lo, hi = mel(low), mel(high)
    delta = (hi - lo) / (n_mels + 1)
    b = np.arange(n_mels)[:, None]
    left, centre, right = lo + b * delta, lo + (b + 1) * delta, lo + (b + 2) * delta
    m = mel(sample_rate / n_fft * np.arange(n_fft // 2))[None, :]
    w = np.maximum(0.0, np.minimum((m - left) / (centre - left), (right - m) / (right - centre)))
    return torch.from_numpy(np.pad(w, ((0, 0), (0, 1))).astype(np.float32))


def kaldi_fbank(wav: torch.Tensor, mel_banks: torch.Tensor, win: int = 400, hop: int = 160, n_fft: int = 512) -> torch.Tensor:
    """(S,) -> (T, n_mels) log mel energies, T = 1 + (S - win) // hop (0 when S < win)."""
    if wav.numel() < win:
        return wav.new_zeros(0, mel_banks.shape[0])
    frames = wav.unfold(0, win, hop)  # (T, win), snip_edges
    frames = frames - frames.mean(1, keepdim=True)  # remove_dc_offset
    frames = frames - 0.97 * torch.cat([frames[:, :1], frames[:, :-1]], 1)  # pre-emphasis, first sample replicated
    frames = frames * torch.hann_window(win, periodic=False, dtype=frames.dtype, device=frames.device)  # "hanning"
    power = torch.fft.rfft(frames, n=n_fft).abs().pow(2)  # (T, n_fft // 2 + 1)
    return torch.log((power @ mel_banks.T.to(power.dtype)).clamp_min(torch.finfo(torch.float32).eps))


def clip_starts(duration: float, clip: float, n: int) -> list[float]:
    """pytorchvideo ``ConstantClipsPerVideoSampler``: n clips of ``clip`` seconds spread uniformly."""
    span = max(duration - clip, 0.0)
    return [k * span / max(n - 1, 1) for k in range(n)]


# --- towers ---------------------------------------------------------------------------------------------------------

class _Mlp(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _Block(nn.Module):
    """ImageBind ``BlockWithMasking``: pre-LN attention (torch MultiheadAttention) and GELU MLP, no layer scale."""

    def __init__(self, width: int, heads: int, bias_kv: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=1e-6)
        self.attn = nn.MultiheadAttention(width, heads, bias=True, add_bias_kv=bias_kv, batch_first=True)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        self.mlp = _Mlp(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class _Tower(nn.Module):
    def __init__(self, stem: nn.Module, width: int, depth: int, heads: int, n_patches: int, embed_dim: int, *,
                 stem_norm: bool, pre_norm: bool, bias_kv: bool):
        super().__init__()
        self.stem = stem
        self.stem_norm = nn.LayerNorm(width) if stem_norm else None  # audio stem: default eps (1e-5)
        self.cls = nn.Parameter(torch.randn(1, 1, width) * width**-0.5)
        self.pos = nn.Parameter(torch.randn(1, n_patches + 1, width) * width**-0.5)
        self.pre_norm = nn.LayerNorm(width, eps=1e-6) if pre_norm else None
        self.blocks = nn.ModuleList(_Block(width, heads, bias_kv) for _ in range(depth))
        self.head_norm = nn.LayerNorm(width, eps=1e-6)
        self.head = nn.Linear(width, embed_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.stem(x).flatten(2).transpose(1, 2)  # (B, L, W)
        if self.stem_norm is not None:
            t = self.stem_norm(t)
        t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], dim=1)
        assert t.shape[1] == self.pos.shape[1], f"{t.shape=} {self.pos.shape=}"
        t = t + self.pos
        if self.pre_norm is not None:
            t = self.pre_norm(t)
        for blk in self.blocks:
            t = blk(t)
        return F.normalize(self.head(self.head_norm(t)[:, 0]), dim=-1)  # (B, E)


class ImageBindAV(nn.Module):
    def __init__(self, cfg: ImageBindConfig = ImageBindConfig()):
        super().__init__()
        self.cfg = c = cfg
        gh, gw = c.audio_grid
        self.audio = _Tower(nn.Conv2d(1, c.audio_width, c.audio_patch, stride=c.audio_stride, bias=False),
                            c.audio_width, c.audio_depth, c.audio_heads, gh * gw, c.embed_dim,
                            stem_norm=True, pre_norm=False, bias_kv=True)
        k = (c.tubelet, c.patch, c.patch)
        self.vision = _Tower(nn.Conv3d(3, c.vision_width, k, stride=k, bias=False), c.vision_width, c.vision_depth,
                             c.vision_heads, (c.image_size // c.patch) ** 2, c.embed_dim,
                             stem_norm=False, pre_norm=True, bias_kv=False)
        self._constant_buffers()
        self.requires_grad_(False)
        self.eval()

    def _constant_buffers(self, device: torch.device | str | None = None) -> None:
        c = self.cfg
        self.register_buffer("mel_banks", kaldi_mel_banks(c.n_mels, 512, c.sample_rate).to(device), persistent=False)
        self.register_buffer("img_mean", torch.tensor(CLIP_MEAN, device=device).view(3, 1, 1, 1), persistent=False)
        self.register_buffer("img_std", torch.tensor(CLIP_STD, device=device).view(3, 1, 1, 1), persistent=False)

    # audio ---------------------------------------------------------------------------------------------------------
    def fbank(self, wav: torch.Tensor) -> torch.Tensor:
        """(S,) 16 kHz window -> (n_mels, frames) normalised log-mel (ImageBind ``waveform2melspec`` + Normalize)."""
        fb = kaldi_fbank(wav - wav.mean(), self.mel_banks).T  # (M, T)
        fb = F.pad(fb, (0, max(0, self.cfg.frames - fb.shape[1])))[:, : self.cfg.frames]  # zeros in the log domain
        return (fb - self.cfg.audio_mean) / self.cfg.audio_std

    def audio_inputs(self, audio: np.ndarray | torch.Tensor, sample_rate: int) -> torch.Tensor:
        """One clip -> (clips, 1, n_mels, frames)."""
        from scipy.signal import resample_poly

        c = self.cfg
        x = audio.detach().float().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio, np.float32)
        x = x[0] if x.ndim == 2 else x  # Kaldi fbank uses channel 0
        if x.ndim != 1 or x.size == 0:
            raise ValueError(f"audio must be a non-empty (S,) or (C, S) array, got {x.shape}")
        if sample_rate != c.sample_rate:
            g = math.gcd(int(sample_rate), c.sample_rate)
            x = resample_poly(x, c.sample_rate // g, int(sample_rate) // g)
        x = torch.from_numpy(np.ascontiguousarray(x, np.float32)).to(self.mel_banks.device)
        starts = clip_starts(x.numel() / c.sample_rate, c.clip_seconds, c.clips)
        return torch.stack([self.fbank(x[int(s * c.sample_rate): int((s + c.clip_seconds) * c.sample_rate)])
                            for s in starts]).unsqueeze(1)

    @torch.no_grad()
    def embed_audio(self, audio: np.ndarray | torch.Tensor, sample_rate: int) -> torch.Tensor:
        """One clip (S,) / (C, S) at any rate -> (E,) unit embedding (mean over windows)."""
        return F.normalize(self.audio(self.audio_inputs(audio, sample_rate)).mean(0), dim=-1)

    # vision --------------------------------------------------------------------------------------------------------
    def scale_short_side(self, x: torch.Tensor, mode: str) -> torch.Tensor:
        """(N, 3, H, W) -> shorter side = image_size (pytorchvideo ShortSideScale sizes)."""
        h, w, s = x.shape[-2], x.shape[-1], self.cfg.image_size
        size = (int(math.floor(h / w * s)), s) if w < h else (s, int(math.floor(w / h * s)))
        return F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=mode == "bicubic")

    def _crops(self, clip: torch.Tensor) -> list[torch.Tensor]:
        """(3, T, H, W) -> spatial crops (ImageBind ``uniform_crop``: start / centre / end of the longer side)."""
        s, (h, w) = self.cfg.image_size, clip.shape[-2:]
        out = []
        for idx in ((0, 1, 2) if self.cfg.crops == 3 else (1,)):
            y, x = math.ceil((h - s) / 2), math.ceil((w - s) / 2)
            if h > w:
                y = {0: 0, 1: y, 2: h - s}[idx]
            else:
                x = {0: 0, 1: x, 2: w - s}[idx]
            out.append(clip[..., y: y + s, x: x + s])
        return out

    def video_inputs(self, frames: torch.Tensor, fps: float) -> torch.Tensor:
        """(F, 3, H, W) in [0, 1] (or uint8) at ``fps`` -> (video_clips * crops, 3, tubelet, S, S) normalised views."""
        c = self.cfg
        if frames.ndim != 4 or frames.shape[1] != 3 or frames.shape[0] == 0:
            raise ValueError(f"frames must be (F, 3, H, W) with F >= 1, got {tuple(frames.shape)}")
        x = frames.to(self.img_mean.device)
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        n = x.shape[0]
        views = []
        for start in clip_starts(n / fps, c.video_clip_seconds, c.video_clips):
            shown = [i for i in range(n) if start <= i / fps < start + c.video_clip_seconds] or [min(n - 1, int(start * fps))]
            pick = [shown[j] for j in torch.linspace(0, len(shown) - 1, c.tubelet).long().tolist()]  # uniform subsample
            clip = self.scale_short_side(x[pick], "bilinear").transpose(0, 1)  # (3, T, H', W')
            views += self._crops((clip - self.img_mean) / self.img_std)
        return torch.stack(views)

    def image_inputs(self, image: torch.Tensor) -> torch.Tensor:
        """(3, H, W) in [0, 1] -> (1, 3, tubelet, S, S): bicubic resize, centre crop, CLIP norm, repeated in time."""
        x = image.to(self.img_mean.device)
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        x = self.scale_short_side(x[None], "bicubic")[0]
        s, (h, w) = self.cfg.image_size, x.shape[-2:]
        y0, x0 = int(round((h - s) / 2.0)), int(round((w - s) / 2.0))  # torchvision CenterCrop
        x = x[:, y0: y0 + s, x0: x0 + s]
        x = (x[:, None] - self.img_mean) / self.img_std  # (3, 1, S, S)
        return x.repeat(1, self.cfg.tubelet, 1, 1)[None]  # PadIm2Video(repeat)

    @torch.no_grad()
    def embed_video(self, frames: torch.Tensor, fps: float) -> torch.Tensor:
        """(F, 3, H, W) at ``fps`` -> (E,) unit embedding (mean over 5 clips x 3 crops)."""
        return F.normalize(self.vision(self.video_inputs(frames, fps)).mean(0), dim=-1)

    @torch.no_grad()
    def embed_image(self, image: torch.Tensor) -> torch.Tensor:
        return self.vision(self.image_inputs(image))[0]

    # weights -------------------------------------------------------------------------------------------------------
    def load_weights(self, path: str | Path) -> ImageBindAV:
        """Strictly load ``imagebind_huge`` converted to safetensors (published names; see :func:`map_imagebind_key`)."""
        self.load_state_dict(imagebind_to_ours(_read_safetensors(path), self), strict=True)
        return self.eval()

    @classmethod
    def from_pretrained(cls, path: str | Path, cfg: ImageBindConfig = ImageBindConfig(), device: str = "cpu") -> ImageBindAV:
        """Read the file first, build on the meta device and assign the tensors (no 700M-parameter random init)."""
        raw = _read_safetensors(path)
        with torch.device("meta"):
            model = cls(cfg)
        model.load_state_dict(imagebind_to_ours(raw, model), strict=True, assign=True)
        model._constant_buffers()
        return model.to(device).requires_grad_(False).eval()


def _read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such ImageBind weights file: {path}")
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors' error type is not an OSError / ValueError
        raise ValueError(f"{path}: not a safetensors file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None


# --- key map: imagebind_huge.pth names -> ours ----------------------------------------------------------------------
_M = r"(audio|vision)"
_RULES: list[tuple[str, str]] = [
    (r"modality_preprocessors\.audio\.rgbt_stem\.proj\.weight", "audio.stem.weight"),  # Conv2d (single-stem case)
    (r"modality_preprocessors\.audio\.rgbt_stem\.norm_layer\.(weight|bias)", r"audio.stem_norm.\1"),
    (r"modality_preprocessors\.vision\.rgbt_stem\.proj\.1\.weight", "vision.stem.weight"),  # proj.0 = PadIm2Video
    (rf"modality_preprocessors\.{_M}\.cls_token", r"\1.cls"),
    (rf"modality_preprocessors\.{_M}\.pos_embedding_helper\.pos_embed", r"\1.pos"),
    (r"modality_trunks\.vision\.pre_transformer_layer\.0\.(weight|bias)", r"vision.pre_norm.\1"),
    (rf"modality_trunks\.{_M}\.blocks\.(\d+)\.attn\.(in_proj_weight|in_proj_bias|bias_k|bias_v|out_proj\.weight|out_proj\.bias)",
     r"\1.blocks.\2.attn.\3"),
    (rf"modality_trunks\.{_M}\.blocks\.(\d+)\.norm_([12])\.(weight|bias)", r"\1.blocks.\2.norm\3.\4"),
    (rf"modality_trunks\.{_M}\.blocks\.(\d+)\.mlp\.(fc[12])\.(weight|bias)", r"\1.blocks.\2.mlp.\3.\4"),
    (rf"modality_heads\.{_M}\.0\.(weight|bias)", r"\1.head_norm.\2"),
    (rf"modality_heads\.{_M}\.2\.weight", r"\1.head.weight"),
]
# Published tensors we do not need: the other modalities, and the audio logit scale (a constant 20 that the cosine
# removes).
_IGNORED = [r"modality_(preprocessors|trunks|heads|postprocessors)\.(text|depth|thermal|imu)\..+",
            r"modality_postprocessors\.audio\.1\.log_logit_scale"]


def map_imagebind_key(name: str) -> str | None:
    """A published ``imagebind_huge`` tensor name -> ours; None for a known tensor we skip; KeyError when unknown."""
    for pat, rep in _RULES:
        if re.fullmatch(pat, name):
            return re.sub(pat, rep, name)
    if any(re.fullmatch(p, name) for p in _IGNORED):
        return None
    raise KeyError(name)


def imagebind_to_ours(sd: Mapping[str, torch.Tensor], model: ImageBindAV) -> dict[str, torch.Tensor]:
    """Rename strictly: unknown names, uncovered tensors of ours and shape mismatches are one-line errors."""
    return rename_strict(sd, model.state_dict(), map_imagebind_key, "an ImageBind (imagebind_huge)")
