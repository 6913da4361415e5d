"""Give trained models a fine-tuned autoencoder decoder without retraining them (recipes/decoder.sh).

    python recipes/swap_decoder.py extract MODEL_DIR ae.safetensors
    python recipes/swap_decoder.py replace ae_finetuned.safetensors MODEL_DIR OUT_DIR --note "1200 steps on ..."

``extract`` writes a model folder's autoencoder as a float32 file that ``model.autoencoder.pretrained=`` loads.
``replace`` copies ``MODEL_DIR`` to ``OUT_DIR`` with every ``autoencoder.decoder.*`` tensor taken from the
fine-tuned file, stored in the folder's own dtype. It refuses a file whose *encoder* differs from the model's
(after casting to the stored dtype): a decoder fine-tuned with ``autoencoder.train_encoder=false`` inverts the same
latents the model was trained on, any other would not. Everything except the decoder is copied bit for bit; the
folder is written atomically, and ``MODEL_CARD.md`` gets a line saying what changed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from audiox.core.checkpoint import CONFIG_NAME, WEIGHTS_NAME, atomic_dir

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


def replace(ae_file: Path, model_dir: Path, out_dir: Path, note: str = "") -> Path:
    sd, meta = _weights(model_dir)
    new = load_file(str(ae_file))
    dec = {k: v for k, v in new.items() if k.startswith("decoder.")}
    old_dec = {k[len(PREFIX):] for k in sd if k.startswith(PREFIX + "decoder.")}
    if set(dec) != old_dec:
        raise ValueError(f"{ae_file}: decoder tensors do not match {model_dir}'s "
                         f"(missing {sorted(old_dec - set(dec))[:3]}, unknown {sorted(set(dec) - old_dec)[:3]})")
    for k, v in new.items():  # the encoder must be the model's: the latents it was trained on
        if k.startswith("encoder."):
            mine = sd.get(PREFIX + k)
            if mine is None or mine.shape != v.shape or not torch.equal(v.to(mine.dtype), mine):
                raise ValueError(f"{ae_file}: encoder tensor {k} differs from {model_dir}'s; fine-tune with "
                                 "autoencoder.train_encoder=false starting from `extract`'s file")
    out = dict(sd)
    for k, v in dec.items():
        dtype = sd[PREFIX + k].dtype
        cast = v.to(dtype)
        if cast.is_floating_point() and not torch.isfinite(cast).all():
            raise ValueError(f"decoder tensor {k} does not fit in {dtype}")
        out[PREFIX + k] = cast.contiguous()
    with atomic_dir(out_dir) as tmp:
        for p in model_dir.iterdir():
            if p.is_file() and p.name != WEIGHTS_NAME:
                shutil.copy2(p, tmp / p.name)
        save_file(out, str(tmp / WEIGHTS_NAME), metadata=meta)
        card = tmp / "MODEL_CARD.md"
        if card.is_file() and note:
            card.write_text(card.read_text().rstrip("\n") + f"\n- decoder fine-tuned on frozen latents: {note}\n")
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
    args = ap.parse_args(argv)
    try:
        if args.cmd == "extract":
            print(extract(args.model_dir, args.out))
        else:
            print(replace(args.ae_file, args.model_dir, args.out_dir, args.note))
    except (ValueError, OSError) as e:
        print(f"swap_decoder: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
