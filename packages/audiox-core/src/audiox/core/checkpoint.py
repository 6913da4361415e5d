"""``save_pretrained`` / ``from_pretrained``: a folder with ``config.json`` + ``model.safetensors``.

- Written atomically: everything goes to a temporary sibling folder that replaces the target in one rename,
  so a crash mid-write leaves the previous folder (or nothing) behind, never a half-written one.
- Exact round trip: every tensor is stored as is (tied tensors are stored once per name), unless a smaller
  file is asked for: ``dtype=torch.float16`` halves it; ``quantize="int8"`` also stores the weight of every
  ``nn.Linear`` outside the autoencoder as int8 with one float32 scale per output row (weight-only: the model is
  dequantized when loaded and runs in float; the autoencoder's convolutions stay in the float type).
- A model whose text encoder uses a tokenizer other than the file-free ``byt5`` keeps it beside the weights, in
  ``tokenizer/`` (``transformers``' ``save_pretrained`` layout), and its ``config.json`` names it ``"tokenizer"``:
  the folder can be moved or packaged and still loads offline. In memory the name is the absolute path of the
  folder it was loaded from, so a model built again from ``model.config`` (fine-tuning, distillation) finds it.
- Loading never unpickles: safetensors only. Errors are one line and name what is wrong: a missing folder or
  file, weights that do not match the config (missing / unexpected keys, wrong shapes), or a config written by a
  newer format version.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from audiox.core.config import FORMAT_VERSION, AudioXConfig
from audiox.core.io import current_umask

if TYPE_CHECKING:
    from audiox.core.model import AudioXModel

__all__ = [
    "CONFIG_NAME", "WEIGHTS_NAME", "save_pretrained", "cast_pretrained", "from_pretrained", "resolve_model_path",
    "atomic_dir", "quantize_rowwise_int8", "dequantize_rowwise_int8", "TOKENIZER_DIR",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
#: The text tokenizer's folder inside a model folder (absent for the file-free ``byt5``).
TOKENIZER_DIR = "tokenizer"
#: ``<name>`` holds the int8 codes of a quantized weight and ``<name>@scale`` its per-row scales.
SCALE_SUFFIX = "@scale"
QUANT_KINDS = ("int8",)


def quantize_rowwise_int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric row-wise int8: ``w[i, :] ~= q[i, :] * scale[i]`` with ``|q| <= 127``; each element is off by at
    most ``scale[i] / 2``. Returns ``(q int8 (out, in), scale float32 (out,))``; an all-zero row gets scale 1."""
    w = w.detach().float()
    absmax = w.abs().amax(dim=1)
    scale = torch.where(absmax > 0, absmax / 127.0, torch.ones_like(absmax))
    q = torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8)
    return q, scale


def dequantize_rowwise_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """float32 ``q * scale`` per row, the inverse of :func:`quantize_rowwise_int8` up to its rounding."""
    return q.float() * scale.float()[:, None]


def _int8_weight_names(model: AudioXModel) -> set[str]:
    """The weights ``quantize="int8"`` stores as int8: every ``nn.Linear`` outside the autoencoder, whose
    convolutions reconstruct the waveform and keep the float type."""
    return {
        f"{name}.weight"
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and not name.startswith("autoencoder.")
    }


class atomic_dir:
    """Context manager yielding a temp folder that atomically becomes ``target`` on success."""

    def __init__(self, target: str | Path) -> None:
        self.target = Path(target)

    def __enter__(self) -> Path:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.tmp-", dir=self.target.parent))
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        mask = current_umask()
        for f in self.tmp.rglob("*"):  # flush file contents before the rename makes them visible
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
                os.chmod(f, 0o666 & ~mask)  # safetensors writes 0600 files
        os.chmod(self.tmp, 0o777 & ~mask)  # mkdtemp makes a 0700 folder: give it a normal folder's mode
        old = None
        if self.target.exists():
            old = self.target.parent / f".{self.target.name}.old-{os.getpid()}"
            os.replace(self.target, old)
        os.replace(self.tmp, self.target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _config_for_saving(config: AudioXConfig, version: int) -> AudioXConfig:
    # the folder holds every weight: the encoders' source checkpoints (often machine-local paths) are not kept
    cfg = _without_pretrained_paths(config)
    cfg.format_version = version
    return cfg


def save_pretrained(
    model: AudioXModel, path: str | Path, *, state_dict: dict[str, torch.Tensor] | None = None,
    dtype: torch.dtype | None = None, quantize: str | None = None,
) -> Path:
    """Write ``config.json`` and ``model.safetensors`` to ``path`` atomically. ``state_dict`` overrides the
    model's own weights (e.g. EMA weights at export); ``dtype`` stores floating-point tensors in that type
    (``torch.float16`` halves a shipped model; ``from_pretrained`` casts back to the model's type);
    ``quantize="int8"`` stores the Linear weights outside the autoencoder as row-wise int8 (format version 2)."""
    if quantize is not None and quantize not in QUANT_KINDS:
        raise ValueError(f"quantize must be one of {QUANT_KINDS} or None, got {quantize!r}")
    path = Path(path)
    sd = model.state_dict() if state_dict is None else state_dict
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in sd.items()}
    int8 = _int8_weight_names(model) & set(tensors) if quantize == "int8" else set()
    scales = {}
    for k in sorted(int8):
        tensors[k], scales[k + SCALE_SUFFIX] = quantize_rowwise_int8(tensors[k])
    if dtype is not None:
        tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    tensors.update(scales)  # the scales stay float32 whatever ``dtype`` is
    version = 2 if int8 else 1
    meta = {"format": "pt", "audiox_format_version": str(version)}
    if int8:
        meta["audiox_quantize"] = "int8-rowwise"
    cfg = _config_for_saving(model.config, version)
    with atomic_dir(path) as tmp:
        if cfg.text.tokenizer != "byt5":  # keep the tokenizer with the weights (loads it if not loaded yet)
            model.text_encoder.tokenizer.save_pretrained(str(tmp / TOKENIZER_DIR))
            cfg.text.tokenizer = TOKENIZER_DIR
        (tmp / CONFIG_NAME).write_text(cfg.to_json() + "\n")
        save_file(tensors, str(tmp / WEIGHTS_NAME), metadata=meta)
    return path


def cast_pretrained(src: str | Path, dst: str | Path, dtype: torch.dtype, quantize: str | None = None) -> Path:
    """Rewrite a model folder with its floating-point weights stored as ``dtype`` (atomically, ``dst`` may be
    ``src``), and its Linear weights as int8 with ``quantize="int8"``. Refuses a cast that overflows: every
    weight must stay finite. A quantized source is dequantized first: quantizing it again is exact."""
    model = from_pretrained(src)
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor.to(dtype)).all():
            raise ValueError(f"{name} does not fit in {dtype}: casting it gives inf/nan")
    return save_pretrained(model, dst, dtype=dtype, quantize=quantize)


def resolve_model_path(path_or_id: str | Path) -> Path:
    """A local folder, or a hub id (``org/name``) fetched with ``huggingface_hub`` when online."""
    p = Path(path_or_id).expanduser()
    if p.exists():
        if not p.is_dir():
            raise FileNotFoundError(f"model path {p} is a file; expected a folder with {CONFIG_NAME} and {WEIGHTS_NAME}")
        return p
    text = str(path_or_id)
    if text.count("/") == 1 and not text.startswith((".", "/", "~")):
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(repo_id=text, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, f"{TOKENIZER_DIR}/*"]))
        except Exception as exc:  # offline, unknown repo, no access
            raise FileNotFoundError(f"model {text!r} is not a local folder and could not be fetched from the hub: {exc.__class__.__name__}") from None
    raise FileNotFoundError(f"no model folder at {p}")


def load_config(path: Path) -> AudioXConfig:
    cfg_path = path / CONFIG_NAME
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path} is missing: not an audiox model folder")
    try:
        data = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{cfg_path} is not valid JSON: {exc}") from None
    return AudioXConfig.from_dict(data)


def _without_pretrained_paths(cfg: AudioXConfig) -> AudioXConfig:
    """The folder holds every weight: build the encoders from the config, not from their source checkpoints."""
    cfg = copy.deepcopy(cfg)
    cfg.text.pretrained = None
    cfg.video.pretrained = None
    cfg.sync.pretrained = None
    cfg.autoencoder.pretrained = None
    return cfg


def from_pretrained(
    path: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> AudioXModel:
    """Load a model folder. ``overrides`` (``maf.single_null=true``) change its config first, for fine-tuning with a
    switch: every saved weight must still fit, and parameters the switch adds must start at zero (so the added path
    starts silent, as ``maf.global_text`` does); anything else is refused with the key that does not fit."""
    from audiox.core.config import apply_overrides
    from audiox.core.model import AudioXModel

    folder = resolve_model_path(path)
    config = load_config(folder)
    if config.text.tokenizer == TOKENIZER_DIR:  # saved beside the weights
        tok_dir = folder / TOKENIZER_DIR
        if not tok_dir.is_dir():
            raise FileNotFoundError(f"{tok_dir} is missing: {CONFIG_NAME} names the tokenizer saved with the model")
        config.text.tokenizer = str(tok_dir.resolve())
    saved_keys: set[str] | None = None
    if overrides:  # the keys the folder must hold: its own config's model, built without memory (meta device)
        with torch.device("meta"):
            saved_keys = set(AudioXModel(_without_pretrained_paths(config)).state_dict())
        apply_overrides(config, list(overrides))
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} is missing: not an audiox model folder")
    saved_cfg = copy.deepcopy(config)
    saved_cfg.format_version = FORMAT_VERSION  # in memory the model is in the current format (dequantized)
    model = AudioXModel(_without_pretrained_paths(config))
    model.config = saved_cfg
    own = model.state_dict()
    with safe_open(str(weights), framework="pt", device="cpu") as f:
        meta = f.metadata() or {}
        version = int(meta.get("audiox_format_version", FORMAT_VERSION))
        if version > FORMAT_VERSION:
            raise ValueError(f"{weights} was written by format version {version}, newer than {FORMAT_VERSION}; upgrade audiox")
        scaled = {k[: -len(SCALE_SUFFIX)] for k in f.keys() if k.endswith(SCALE_SUFFIX)}
        keys = set(f.keys()) - {k + SCALE_SUFFIX for k in scaled}
        missing = sorted(set(own) - keys)
        unexpected = sorted((keys - set(own)) | (scaled - keys))
        # the parameters a switch adds: absent from the folder's own config's model, and zero-initialised
        added = [k for k in missing if saved_keys is not None and k not in saved_keys and not own[k].any()]
        missing = [k for k in missing if k not in added]
        if missing or unexpected:
            raise ValueError(
                f"{weights} does not match {CONFIG_NAME}: missing {len(missing)} keys {missing[:3]}, "
                f"unexpected {len(unexpected)} keys {unexpected[:3]}"
            )
        state = {k: own[k] for k in added}
        for k in own:
            if k in added:
                continue
            shape = tuple(f.get_slice(k).get_shape())
            if shape != tuple(own[k].shape):
                raise ValueError(f"{weights} does not match {CONFIG_NAME}: {k} has shape {shape}, config gives {tuple(own[k].shape)}")
            state[k] = f.get_tensor(k)
            if k in scaled:
                scale = f.get_tensor(k + SCALE_SUFFIX)
                if state[k].dtype != torch.int8 or state[k].dim() != 2 or tuple(scale.shape) != shape[:1]:
                    raise ValueError(f"{weights}: {k} has a scale but is not a row-wise int8 matrix with one scale per row")
                state[k] = dequantize_rowwise_int8(state[k], scale).to(own[k].dtype)
    model.load_state_dict(state, strict=True)
    model.to(device=device)
    if dtype is not None:
        model.to(dtype=dtype)
    model.eval()
    return model
