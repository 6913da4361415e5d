"""Give trained models a fine-tuned autoencoder decoder without retraining them (recipes/decoder.sh).

    python recipes/swap_decoder.py extract MODEL_DIR ae.safetensors
    python recipes/swap_decoder.py replace ae_finetuned.safetensors MODEL_DIR OUT_DIR --note "1200 steps on ..."
    python recipes/swap_decoder.py replace ae_istft.safetensors MODEL_DIR OUT_DIR --set decoder=istft --set istft_dim=192

``extract`` writes a model folder's autoencoder as a float32 file that ``model.autoencoder.pretrained=`` loads.
``replace`` copies ``MODEL_DIR`` to ``OUT_DIR`` with every ``autoencoder.decoder.*`` tensor taken from the
fine-tuned file, stored in the folder's own dtype. It refuses a file whose *encoder* differs from the model's
(after casting to the stored dtype): a decoder fine-tuned with ``autoencoder.train_encoder=false`` inverts the same
latents the model was trained on, any other would not. ``--set key=value`` changes the folder's autoencoder config
(e.g. another decoder kind, ``decoder=istft``): the old decoder's tensors are dropped and the file's must be exactly
the new decoder's. Everything except the decoder is copied bit for bit; the folder is written atomically, and
``MODEL_CARD.md`` gets a line saying what changed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from audiox.core.autoencoder import AudioAutoencoder
from audiox.core.checkpoint import CONFIG_NAME, TOKENIZER_DIR, WEIGHTS_NAME, atomic_dir, load_config
from audiox.core.config import apply_overrides

PREFIX = "autoencoder."


def _weights(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    path = folder / WEIGHTS_NAME
    if not path.is_file() or not (folder / CONFIG_NAME).is_file():
        raise ValueError(f"{folder} is not a model folder ({CONFIG_NAME} + {WEIGHTS_NAME})")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    return load_file(str(path)), meta


def extract(model_dir: Path, out: Path) -> Path:
    sd, _ = _weights(model_dir)
    ae = {k[len(PREFIX):]: v.float().contiguous() for k, v in sd.items() if k.startswith(PREFIX)}
    if not ae:
        raise ValueError(f"{model_dir} has no autoencoder weights")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    save_file(ae, str(tmp))
    tmp.replace(out)
    return out


def replace(ae_file: Path, model_dir: Path, out_dir: Path, note: str = "", settings: list[str] | None = None) -> Path:
    sd, meta = _weights(model_dir)
    new = load_file(str(ae_file))
    dec = {k: v for k, v in new.items() if k.startswith("decoder.")}
    dtype = next(v.dtype for k, v in sd.items() if k.startswith(PREFIX + "decoder.") and v.is_floating_point())
    config_json = None
    if settings:  # another decoder config: the expected tensors are the new decoder's, built from the config
        cfg = load_config(model_dir)
        apply_overrides(cfg, [f"autoencoder.{kv}" for kv in settings])
        cfg.autoencoder.pretrained = None
        with torch.device("meta"):  # shapes only
            ref = {f"decoder.{k}": tuple(v.shape) for k, v in AudioAutoencoder(cfg.autoencoder).decoder.state_dict().items()}
        config_json = cfg.to_json() + "\n"
    else:
        ref = {k[len(PREFIX):]: tuple(v.shape) for k, v in sd.items() if k.startswith(PREFIX + "decoder.")}
    if set(dec) != set(ref) or any(tuple(dec[k].shape) != ref[k] for k in ref):
        raise ValueError(f"{ae_file}: decoder tensors do not match {model_dir}'s "
                         f"(missing {sorted(set(ref) - set(dec))[:3]}, unknown {sorted(set(dec) - set(ref))[:3]}, "
                         f"wrong shape {sorted(k for k in set(ref) & set(dec) if tuple(dec[k].shape) != ref[k])[:3]})")
    for k, v in new.items():  # the encoder must be the model's: the latents it was trained on
        if k.startswith("encoder."):
            mine = sd.get(PREFIX + k)
            if mine is None or mine.shape != v.shape or not torch.equal(v.to(mine.dtype), mine):
                raise ValueError(f"{ae_file}: encoder tensor {k} differs from {model_dir}'s; fine-tune with "
                                 "autoencoder.train_encoder=false starting from `extract`'s file")
    out = {k: v for k, v in sd.items() if not k.startswith(PREFIX + "decoder.")}
    for k, v in dec.items():  # stored in the folder's own floating dtype
        cast = v.to(dtype) if v.is_floating_point() else v
        if cast.is_floating_point() and not torch.isfinite(cast).all():
            raise ValueError(f"decoder tensor {k} does not fit in {cast.dtype}")
        out[PREFIX + k] = cast.contiguous()
    with atomic_dir(out_dir) as tmp:
        for p in model_dir.iterdir():
            if p.is_file() and p.name != WEIGHTS_NAME:
                shutil.copy2(p, tmp / p.name)
            elif p.is_dir() and p.name == TOKENIZER_DIR:  # a corpus tokenizer saved with the model
                shutil.copytree(p, tmp / p.name)
        if config_json is not None:
            (tmp / CONFIG_NAME).write_text(config_json)
        save_file(out, str(tmp / WEIGHTS_NAME), metadata=meta)
        card = tmp / "MODEL_CARD.md"
        if card.is_file() and note:
            card.write_text(card.read_text().rstrip("\n") + f"\n- decoder trained on the frozen encoder's latents: {note}\n")
    return out_dir


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("extract", help="a model folder's autoencoder as a float32 safetensors file")
    p.add_argument("model_dir", type=Path)
    p.add_argument("out", type=Path)
    p = sub.add_parser("replace", help="a copy of a model folder with the fine-tuned decoder")
    p.add_argument("ae_file", type=Path)
    p.add_argument("model_dir", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--note", default="", help="appended to MODEL_CARD.md (steps, minutes, machine, commit)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="change the autoencoder config (e.g. decoder=istft istft_dim=192) for a decoder of another kind")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "extract":
            print(extract(args.model_dir, args.out))
        else:
            print(replace(args.ae_file, args.model_dir, args.out_dir, args.note, args.set))
    except (ValueError, OSError) as e:
        print(f"swap_decoder: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
