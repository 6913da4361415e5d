"""Give a trained model another tokenizer: a fresh T5 text encoder over it, every other weight kept.

    python recipes/retokenize.py MODEL_DIR TOKENIZER_DIR OUT_DIR [--max-length 96] [--seed 0]

The bundled mini models were trained with the byte-level ``byt5`` tokenizer and a T5 learned from scratch; they
barely separate their prompts (docs/results.md). ``audiox-data tokenizer`` learns a BPE from a corpus's captions;
this tool puts it into an existing model so that training can continue from everything else the model has learned
(the autoencoder, the MMDiT, MAF, the video encoders) instead of starting over. The new T5 has the old one's sizes,
except its embedding (the tokenizer's size rounded up to a multiple of 64) and ``max_length``; its weights are
freshly initialised (``--seed``), so the output must be trained further (``recipes/continue.sh TOKENIZER=...``)
before it is used. MAF's text projection is kept: the T5 width is unchanged.

``OUT_DIR`` is written atomically with the tokenizer inside (``tokenizer/``), and ``MODEL_CARD.md``, when the source
has one, gets a line saying what changed.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch


def retokenize(model_dir: Path, tokenizer_dir: Path, out_dir: Path, max_length: int | None = None, seed: int = 0) -> Path:
    from transformers import AutoTokenizer

    from audiox.core import AudioXModel

    if not tokenizer_dir.is_dir():
        raise ValueError(f"{tokenizer_dir} is not a tokenizer folder (audiox-data tokenizer writes one)")
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    base = AudioXModel.from_pretrained(model_dir)
    cfg = copy.deepcopy(base.config)
    cfg.text.tokenizer = str(tokenizer_dir.resolve())
    cfg.text.vocab_size = -(-len(tok) // 64) * 64
    if max_length is not None:
        cfg.text.max_length = max_length
    cfg.text.pretrained = None
    torch.manual_seed(seed)
    model = AudioXModel(cfg)
    kept = {k: v for k, v in base.state_dict().items() if not k.startswith("text_encoder.")}
    missing, unexpected = model.load_state_dict(kept, strict=False)
    assert not unexpected and all(k.startswith("text_encoder.") for k in missing), (missing[:3], unexpected[:3])
    model.save_pretrained(out_dir)
    card = model_dir / "MODEL_CARD.md"
    if card.is_file():
        line = (f"- text encoder re-initialised (seed {seed}) over the corpus tokenizer {tokenizer_dir.name} "
                f"({len(tok)} tokens, max_length {cfg.text.max_length}) by recipes/retokenize.py; every other weight "
                f"from {model_dir}: train it further before use\n")
        tmp = out_dir / "MODEL_CARD.md.tmp"
        tmp.write_text(card.read_text().rstrip("\n") + "\n" + line)
        tmp.replace(out_dir / "MODEL_CARD.md")
    return out_dir


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("tokenizer_dir", type=Path)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--max-length", type=int, default=None, help="tokens kept per caption (default: the model's)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the new text encoder's initialisation")
    args = ap.parse_args(argv)
    try:
        print(retokenize(args.model_dir, args.tokenizer_dir, args.out_dir, args.max_length, args.seed))
    except (ValueError, OSError) as e:
        print(f"retokenize: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
