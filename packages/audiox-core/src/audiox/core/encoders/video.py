"""CLIP frame encoder (paper Sec. VI-A: "CLIP-ViT-B/32 ... video frame features at a rate of 5 fps").

Only CLIP's visual tower is built (``open_clip``'s own builder, so the module and its key names are exactly
``CLIP.visual``). ``cfg.model_name`` is an ``open_clip`` architecture (``"ViT-B-32"``; use
``"ViT-B-32-quickgelu"`` with OpenAI's weights) or ``"custom"`` for a small tower built from the config fields.
``cfg.pretrained`` is a local checkpoint (``.safetensors`` with either full-CLIP ``visual.*`` keys or visual-only
keys; other formats go through ``open_clip``'s weights-only loader) or an ``open_clip`` tag such as
``"openai"`` (needs the network or its cache).
"""

from __future__ import annotations

from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
from einops import rearrange
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from open_clip.model import CLIPVisionCfg, _build_vision_tower  # the builder CLIP itself uses for .visual
from torch import nn

from audiox.core.config import VideoEncoderConfig
from audiox.core.encoders.common import FreezableModule, load_safetensors_strict, unit_float

__all__ = ["VideoEncoder", "build_clip_visual"]


def build_clip_visual(cfg: VideoEncoderConfig) -> tuple[nn.Module, int, int]:
    """``(visual tower, output dim, image size)`` with random weights, from the config (no files)."""
    if cfg.model_name == "custom":
        _check_heads(cfg)
        vision = CLIPVisionCfg(
            layers=cfg.layers, width=cfg.width, head_width=cfg.width // cfg.heads, patch_size=cfg.patch_size,
            image_size=cfg.image_size,
        )
        return _build_vision_tower(cfg.embed_dim, vision), cfg.embed_dim, cfg.image_size
    model_cfg = open_clip.get_model_config(cfg.model_name)
    if model_cfg is None:
        raise ValueError(f"video encoder: unknown open_clip model {cfg.model_name!r} (or use model_name='custom')")
    vision = CLIPVisionCfg(**model_cfg["vision_cfg"])
    quick_gelu = bool(model_cfg.get("quick_gelu", False))
    image_size = vision.image_size if isinstance(vision.image_size, int) else vision.image_size[0]
    return _build_vision_tower(model_cfg["embed_dim"], vision, quick_gelu=quick_gelu), model_cfg["embed_dim"], image_size


def _check_heads(cfg: VideoEncoderConfig) -> None:
    if cfg.width % cfg.heads:
        raise ValueError(f"video encoder: width {cfg.width} is not divisible by heads {cfg.heads}")


class VideoEncoder(FreezableModule):
    """Frames ``(B, F, 3, H, W)`` in [0, 1] -> CLIP image embeddings ``(B, F, D_v)`` (one per frame)."""

    def __init__(self, cfg: VideoEncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        visual, out_dim, image_size = self._load(cfg)
        self.visual = visual
        self.out_dim: int = int(out_dim)
        self.image_size: int = int(image_size)
        if cfg.model_name != "custom" and self.image_size != cfg.image_size:
            raise ValueError(
                f"video encoder: {cfg.model_name} takes {self.image_size}px images but video.image_size is "
                f"{cfg.image_size}"
            )
        self.freeze_(cfg.freeze)

    @staticmethod
    def _load(cfg: VideoEncoderConfig) -> tuple[nn.Module, int, int]:
        if cfg.pretrained is None:
            return build_clip_visual(cfg)
        path = Path(cfg.pretrained).expanduser()
        if path.suffix == ".safetensors" or cfg.model_name == "custom":
            visual, out_dim, size = build_clip_visual(cfg)
            load_safetensors_strict(visual, path, "video encoder", prefix="visual.")
            return visual, out_dim, size
        # an open_clip tag ("openai", "laion2b_s34b_b79k") or a torch checkpoint: open_clip's own loader
        if not path.exists() and cfg.pretrained.startswith(("/", "./", "../", "~")):
            raise FileNotFoundError(f"video encoder: checkpoint not found: {cfg.pretrained}")
        try:
            clip = open_clip.create_model(cfg.model_name, pretrained=str(path) if path.exists() else cfg.pretrained)
        except Exception as e:  # open_clip raises RuntimeError/OSError/HTTP errors for missing tags or files
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise RuntimeError(f"video encoder: could not load {cfg.model_name} weights {cfg.pretrained!r}: {first}") from e
        visual = clip.visual
        out_dim = int(clip.visual.output_dim)
        size = visual.image_size[0] if isinstance(visual.image_size, (tuple, list)) else int(visual.image_size)
        return visual, out_dim, size

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` in [0, 1] -> resized (bicubic, antialiased) and CLIP-normalised ``(N, 3, S, S)``."""
        s = self.image_size
        if frames.shape[-2:] != (s, s):
            frames = F.interpolate(frames, size=(s, s), mode="bicubic", align_corners=False, antialias=True)
        # constants, not buffers: a model built on the meta device and loaded with assign=True stays whole
        mean = torch.tensor(OPENAI_DATASET_MEAN, device=frames.device, dtype=frames.dtype).view(1, 3, 1, 1)
        std = torch.tensor(OPENAI_DATASET_STD, device=frames.device, dtype=frames.dtype).view(1, 3, 1, 1)
        return (frames - mean) / std

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.ndim != 5 or frames.shape[2] != 3:
            raise ValueError(f"video encoder expects frames (B, F, 3, H, W), got {tuple(frames.shape)}")
        b = frames.shape[0]
        dtype = next(self.visual.parameters()).dtype
        x = rearrange(unit_float(frames), "B F C H W -> (B F) C H W")  # resize in float32 (no bf16 antialias on CPU)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            emb = self.visual(self.preprocess(x).to(dtype))  # ((B F), D_v)
        return rearrange(emb, "(B F) D -> B F D", B=b)
