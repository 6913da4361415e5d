"""Meta Audiobox Aesthetics (Tjandra et al., 2025): per-clip CE / CU / PC / PQ scores (paper Sec. VI-B: PC, PQ).

The published predictor (github facebookresearch/audiobox-aesthetics, ``AesMultiOutput``; weights
``checkpoint.pt`` on dl.fbaipublicfiles.com or ``model.safetensors`` + ``config.json`` in the HF repo
``facebook/audiobox-aesthetics``) is rebuilt here on ``transformers.WavLMModel``:

* Encoder: WavLM Base+ (7 conv layers 512-d, kernels 10,3,3,3,3,2,2, strides 5,2,2,2,2,2,2 = 320 samples per frame,
  group norm in the first conv, no conv bias; 12 post-LN layers, 768-d, 12 heads, FFN 3072; conv positional
  embedding 128 / 16 groups; gated relative position bias, 320 buckets, max distance 800). No waveform
  normalisation (``normalize: False``).
* Pooling, per axis: the input of the first transformer layer plus the outputs of the first ``nth_layer - 1``
  layers (13 states for the published model) are mixed with ``softmax(layer_weights[axis])``, averaged over the
  valid (non-padding) frames, L2-normalised (``normalize_embed``), then the axis' MLP head (``proj_layer[axis]``,
  ``create_mlp_block``: one ``Linear(768, 1)`` for ``proj_num_layer = 1``) gives a standardised score.
* Output scaling: ``score = pred * std[axis] + mean[axis]`` with ``target_transform`` from the checkpoint
  (``config.json`` of the HF repo; ``ckpt["target_transform"]`` of ``checkpoint.pt``).
* Input: mono (channel mean), 16 kHz (upstream resamples with ``torchaudio.functional.resample``, we with
  ``scipy.signal.resample_poly``; both band-limited), cut into 10 s windows with a 10 s hop; the last window is
  zero-padded and its padding masked (a frame is padding when all of its 320 samples are, as upstream's
  ``forward_padding_mask``); the clip score is the mean of the window scores weighted by each window's valid
  length / 10 s (upstream ``make_inference_batch``). Full float32 (upstream's autocast flag never fires).

Weights load strictly from safetensors (:meth:`AudioboxAesthetics.load_weights`) through
:func:`map_published_key`; docs/metrics.md shows the one-time conversion of ``checkpoint.pt``.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from audiox.bench.embeddings.frontend import to_mono_resampled
from audiox.bench.embeddings.weights import rename_strict

__all__ = ["AXES", "AestheticsConfig", "AudioboxAesthetics", "map_published_key", "published_to_ours", "tiny_aesthetics"]

AXES = ("CE", "CU", "PC", "PQ")  # Content Enjoyment, Content Usefulness, Production Complexity, Production Quality


@dataclass(frozen=True)
class AestheticsConfig:
    hidden: int = 768  # WavLM Base+ (upstream DEFAULT_AUDIO_CFG)
    layers: int = 12
    heads: int = 12
    ffn: int = 3072
    conv_dim: tuple[int, ...] = (512,) * 7
    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)  # 320 samples (20 ms) per frame at 16 kHz
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    conv_pos: int = 128
    conv_pos_groups: int = 16
    num_buckets: int = 320
    max_distance: int = 800
    # head fields: the checkpoint's model_cfg / config.json (published values as defaults)
    nth_layer: int = 13  # input of layer 1 + 12 layer outputs
    proj_num_layer: int = 1
    proj_ln: bool = False
    proj_dropout: float = 0.0
    normalize_embed: bool = True
    use_weighted_layer_sum: bool = True
    sample_rate: int = 16000
    window_s: float = 10.0  # make_inference_batch(hop_size=10, window_size=10)
    hop_s: float = 10.0

    def __post_init__(self):
        if not self.use_weighted_layer_sum:
            raise ValueError("audiobox-aesthetics: only use_weighted_layer_sum=True (the published model) is supported")
        if not 1 <= self.nth_layer <= self.layers + 1:
            raise ValueError(f"nth_layer must be in [1, {self.layers + 1}], got {self.nth_layer}")
        if self.proj_num_layer < 1:
            raise ValueError("proj_num_layer must be >= 1")
        if len(self.conv_dim) != len(self.conv_kernel) or len(self.conv_kernel) != len(self.conv_stride):
            raise ValueError("conv_dim, conv_kernel and conv_stride must have the same length")

    def wavlm_config(self):
        from transformers import WavLMConfig

        return WavLMConfig(hidden_size=self.hidden, num_hidden_layers=self.layers, num_attention_heads=self.heads,
                           intermediate_size=self.ffn, conv_dim=self.conv_dim, conv_kernel=self.conv_kernel,
                           conv_stride=self.conv_stride, conv_bias=False, feat_extract_norm="group",
                           do_stable_layer_norm=False, num_conv_pos_embeddings=self.conv_pos,
                           num_conv_pos_embedding_groups=self.conv_pos_groups, num_buckets=self.num_buckets,
                           max_bucket_distance=self.max_distance, hidden_act="gelu", feat_extract_activation="gelu",
                           layer_norm_eps=1e-5, mask_time_prob=0.05)  # > 0 keeps masked_spec_embed (= mask_emb)


def _mlp(dim: int, n: int, ln: bool, dropout: float) -> nn.Sequential:
    """Upstream ``create_mlp_block(dim, 1, n, "gelu", ln, dropout)``, with the same module indices."""
    mods: list[nn.Module] = []
    for _ in range(n - 1):
        mods += [nn.Linear(dim, dim)] + ([nn.LayerNorm(dim)] if ln else []) + [nn.GELU()]
        mods += [nn.Dropout(dropout)] if dropout else []
    return nn.Sequential(*mods, nn.Linear(dim, 1))


class AudioboxAesthetics(nn.Module):
    def __init__(self, cfg: AestheticsConfig = AestheticsConfig(), target_transform: Mapping | None = None):
        super().__init__()
        from transformers import WavLMModel

        self.cfg = cfg
        self.wavlm = WavLMModel(cfg.wavlm_config())
        self.proj_layer = nn.ModuleDict({a: _mlp(cfg.hidden, cfg.proj_num_layer, cfg.proj_ln, cfg.proj_dropout) for a in AXES})
        self.layer_weights = nn.ParameterDict({a: nn.Parameter(torch.ones(cfg.nth_layer) / cfg.nth_layer) for a in AXES})
        tt = target_transform or {a: {"mean": 0.0, "std": 1.0} for a in AXES}
        try:
            mean = [float(tt[a]["mean"]) for a in AXES]
            std = [float(tt[a]["std"]) for a in AXES]
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"target_transform needs {{axis: {{mean, std}}}} for {', '.join(AXES)}") from None
        self.register_buffer("target_mean", torch.tensor(mean), persistent=False)
        self.register_buffer("target_std", torch.tensor(std), persistent=False)
        self.requires_grad_(False)  # a frozen metric network
        self.eval()

    @property
    def frame_stride(self) -> int:
        return int(np.prod(self.cfg.conv_stride))

    @staticmethod
    def frame_mask(valid: torch.Tensor, n_frames: int) -> torch.Tensor:
        """(N, S) sample validity -> (N, T) frame validity, as upstream ``forward_padding_mask``: the first
        ``(S // T) * T`` samples in T equal chunks; a frame is padding only when its whole chunk is."""
        n, s = valid.shape
        used = s - s % n_frames
        return valid[:, :used].reshape(n, n_frames, -1).any(-1)

    def hidden_states(self, wav: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, S) 16 kHz windows, (N, S) bool -> states (N, T, D, nth_layer) and frame validity (N, T)."""
        w = self.wavlm
        feats = w.feature_extractor(wav).transpose(1, 2)  # (N, T, 512)
        frames = self.frame_mask(valid, feats.shape[1])  # (N, T)
        x, _ = w.feature_projection(feats)  # (N, T, D): LayerNorm(512) -> Linear (upstream layer_norm, post_extract_proj)
        enc = w.encoder
        x = x.masked_fill(~frames[..., None], 0.0)  # padded frames are zeroed before the positional conv
        x = enc.layer_norm(x + enc.pos_conv_embed(x))  # post-LN encoder: norm before the first layer
        states, bias = [x], None
        mask = None if bool(frames.all()) else frames
        with warnings.catch_warnings():  # torch: bool key-padding mask beside the float relative-position bias
            warnings.filterwarnings("ignore", message=".*mismatched key_padding_mask.*")
            for layer in enc.layers[: self.cfg.nth_layer - 1]:
                out = layer(x, attention_mask=mask, position_bias=bias)
                x, bias = out[0], out[1]
                states.append(x)
        return torch.stack(states, dim=-1), frames

    def forward(self, wav: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(N, S), (N, S) bool -> (N, 4) standardised predictions in ``AXES`` order (before target_transform)."""
        states, frames = self.hidden_states(wav, valid)
        m = frames[..., None].to(states.dtype)  # (N, T, 1)
        preds = []
        for a in AXES:
            emb = torch.einsum("ntdl,l->ntd", states, F.softmax(self.layer_weights[a], dim=-1))
            emb = (emb * m).sum(1) / m.sum(1).clamp_min(1)  # mean over valid frames
            if self.cfg.normalize_embed:
                emb = F.normalize(emb, dim=-1)
            preds.append(self.proj_layer[a](emb).squeeze(-1))
        return torch.stack(preds, dim=-1)

    def windows(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(S,) -> windows (K, W), validity (K, W), weights (K,) = valid length / W (upstream make_inference_batch)."""
        win = int(self.cfg.window_s * self.cfg.sample_rate)
        hop = int(self.cfg.hop_s * self.cfg.sample_rate)
        if x.numel() == 0:
            raise ValueError("audiobox-aesthetics: empty clip")
        chunks, valid, weights = [], [], []
        for start in range(0, x.numel(), hop):
            c = x[start : start + win]
            v = torch.zeros(win, dtype=torch.bool, device=x.device)
            v[: c.numel()] = True
            chunks.append(F.pad(c, (0, win - c.numel())))
            valid.append(v)
            weights.append(c.numel() / win)
        return torch.stack(chunks), torch.stack(valid), torch.tensor(weights, dtype=torch.float64)

    @torch.no_grad()
    def score(self, audio: np.ndarray | torch.Tensor, sample_rate: int, batch_size: int = 4) -> dict[str, float]:
        """One clip (S,) / (C, S) at any rate -> {"CE", "CU", "PC", "PQ"} on the checkpoint's scale."""
        dev = self.target_mean.device
        x = torch.from_numpy(to_mono_resampled(audio, sample_rate, self.cfg.sample_rate)).to(dev)
        wins, valid, weights = self.windows(x)
        preds = torch.cat([self(wins[i : i + batch_size], valid[i : i + batch_size])
                           for i in range(0, len(wins), batch_size)])  # (K, 4)
        scores = preds.double().cpu() * self.target_std.double().cpu() + self.target_mean.double().cpu()
        clip = (scores * weights[:, None]).sum(0) / weights.sum()
        return {a: float(v) for a, v in zip(AXES, clip, strict=True)}

    def load_weights(self, path: str | Path | Mapping[str, torch.Tensor]) -> AudioboxAesthetics:
        """Strictly load a safetensors file (or its tensors) with the published names (see :func:`map_published_key`)."""
        raw = path if isinstance(path, Mapping) else _read_safetensors(path)
        self.load_state_dict(published_to_ours(raw, self), strict=True)
        return self.eval()

    @classmethod
    def from_pretrained(cls, path: str | Path, base: AestheticsConfig = AestheticsConfig()) -> AudioboxAesthetics:
        """A folder with ``model.safetensors`` + ``config.json`` (the HF repo ``facebook/audiobox-aesthetics``), or a
        ``.safetensors`` file with ``config.json`` beside it. ``config.json`` supplies ``target_transform``
        (required: without it the scores are not on the published 1-10 scale) and the head fields."""
        path = Path(path)
        weights = path / "model.safetensors" if path.is_dir() else path
        cfg_path = weights.parent / "config.json"
        if not weights.is_file():
            raise FileNotFoundError(f"no such aesthetics weights file: {weights}")
        if not cfg_path.is_file():
            raise FileNotFoundError(f"{cfg_path}: missing (needs the checkpoint's target_transform)")
        try:
            meta = json.loads(cfg_path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{cfg_path}: not JSON ({e.msg})") from None
        if "target_transform" not in meta:
            raise ValueError(f"{cfg_path}: no target_transform (per-axis mean/std of the published scores)")
        names = {f.name for f in fields(AestheticsConfig)}
        over = {k: tuple(v) if isinstance(v, list) else v for k, v in meta.items() if k in names and k != "sample_rate"}
        cfg = replace(base, **over)  # the published config.json holds only head fields; tests also set tiny widths
        if meta.get("output_dim", 1) != 1 or meta.get("proj_act_fn", "gelu") != "gelu":
            raise ValueError(f"{cfg_path}: only output_dim 1 and proj_act_fn gelu (the published model) are supported")
        raw = _read_safetensors(weights)  # a bad file fails before the network is built
        return cls(cfg, meta["target_transform"]).load_weights(raw)


def _read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such aesthetics weights file: {path}")
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors' own error type is not an OSError / ValueError
        raise ValueError(f"{path}: not a safetensors file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None


# --- key map: published names -> ours ------------------------------------------------------------------------------
# Published names are those of upstream ``AesMultiOutput`` (HF model.safetensors) or, in ``checkpoint.pt``'s
# state_dict, the same names behind a ``model.`` prefix (an ``encoder.`` prefix in the first HF export).
_RULES: list[tuple[str, str]] = [
    (r"wavlm_model\.mask_emb", "wavlm.masked_spec_embed"),
    (r"wavlm_model\.feature_extractor\.conv_layers\.(\d+)\.0\.weight", r"wavlm.feature_extractor.conv_layers.\1.conv.weight"),
    (r"wavlm_model\.feature_extractor\.conv_layers\.0\.2\.(weight|bias)", r"wavlm.feature_extractor.conv_layers.0.layer_norm.\1"),
    (r"wavlm_model\.layer_norm\.(weight|bias)", r"wavlm.feature_projection.layer_norm.\1"),
    (r"wavlm_model\.post_extract_proj\.(weight|bias)", r"wavlm.feature_projection.projection.\1"),
    (r"wavlm_model\.encoder\.pos_conv\.0\.bias", "wavlm.encoder.pos_conv_embed.conv.bias"),
    (r"wavlm_model\.encoder\.pos_conv\.0\.weight_g", "wavlm.encoder.pos_conv_embed.conv.{g}"),
    (r"wavlm_model\.encoder\.pos_conv\.0\.weight_v", "wavlm.encoder.pos_conv_embed.conv.{v}"),
    (r"wavlm_model\.encoder\.layer_norm\.(weight|bias)", r"wavlm.encoder.layer_norm.\1"),
    (r"wavlm_model\.encoder\.layers\.(\d+)\.self_attn\.([qkv]_proj|out_proj)\.(weight|bias)", r"wavlm.encoder.layers.\1.attention.\2.\3"),
    (r"wavlm_model\.encoder\.layers\.(\d+)\.self_attn\.grep_linear\.(weight|bias)", r"wavlm.encoder.layers.\1.attention.gru_rel_pos_linear.\2"),
    (r"wavlm_model\.encoder\.layers\.(\d+)\.self_attn\.grep_a", r"wavlm.encoder.layers.\1.attention.gru_rel_pos_const"),
    (r"wavlm_model\.encoder\.layers\.(\d+)\.self_attn\.relative_attention_bias\.weight", r"wavlm.encoder.layers.\1.attention.rel_attn_embed.weight"),
    (r"wavlm_model\.encoder\.layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)", r"wavlm.encoder.layers.\1.layer_norm.\2"),
    (r"wavlm_model\.encoder\.layers\.(\d+)\.fc1\.(weight|bias)", r"wavlm.encoder.layers.\1.feed_forward.intermediate_dense.\2"),
    (r"wavlm_model\.encoder\.layers\.(\d+)\.fc2\.(weight|bias)", r"wavlm.encoder.layers.\1.feed_forward.output_dense.\2"),
    (r"wavlm_model\.encoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)", r"wavlm.encoder.layers.\1.final_layer_norm.\2"),
    (r"proj_layer\.(CE|CU|PC|PQ)\.(\d+)\.(weight|bias)", r"proj_layer.\1.\2.\3"),
    (r"layer_weights\.(CE|CU|PC|PQ)", r"layer_weights.\1"),
]


def map_published_key(name: str, weight_norm: tuple[str, str] = ("parametrizations.weight.original0",
                                                                  "parametrizations.weight.original1")) -> str:
    """A published tensor name (prefix already stripped) -> ours; ``weight_norm`` names the (g, v) tensors of the
    positional conv in this torch (``weight_g``/``weight_v`` under the old API). KeyError when unknown."""
    for pat, rep in _RULES:
        if re.fullmatch(pat, name):
            return re.sub(pat, rep, name).format(g=weight_norm[0], v=weight_norm[1])
    raise KeyError(name)


def published_to_ours(sd: Mapping[str, torch.Tensor], model: AudioboxAesthetics) -> dict[str, torch.Tensor]:
    """Rename a published state dict strictly: every published tensor must map to one of ours with the same shape,
    and every one of ours must be covered. Errors are one line (first offenders named)."""
    ours = model.state_dict()
    wn = (("weight_g", "weight_v") if "wavlm.encoder.pos_conv_embed.conv.weight_g" in ours
          else ("parametrizations.weight.original0", "parametrizations.weight.original1"))
    prefixes = {k.split(".", 1)[0] for k in sd}
    strip = next((p for p in ("model", "encoder") if prefixes == {p}), None)  # checkpoint.pt / first HF export
    return rename_strict(sd, ours, lambda k: map_published_key(k.split(".", 1)[1] if strip else k, wn),
                         "an audiobox-aesthetics")


def tiny_aesthetics(target_transform: Mapping | None = None, **over) -> AudioboxAesthetics:
    """A small random model (same topology and front end, narrow widths, 1 s windows): plumbing checks only."""
    torch.manual_seed(0)
    cfg = AestheticsConfig(**{**dict(hidden=16, layers=2, heads=2, ffn=32, conv_dim=(8,) * 7, conv_pos=16,
                                     conv_pos_groups=4, nth_layer=3, window_s=1.0, hop_s=1.0), **over})
    return AudioboxAesthetics(cfg, target_transform)
