"""Finish a recipe run: half-precision copies of the teacher and the student, each with a model card.

    python recipes/model_card.py --out runs/mini --seconds 540 --recipe "CLIPS=4000 ... bash recipes/mini.sh"

``--quantize int8`` also stores the Linear weights outside the autoencoder as row-wise int8 (weight-only; the
model is dequantized to float32 when loaded): the mini models shrink from about 32 to 20 MB.

The card records what a rerun needs: the recipe line, data seed and size, the steps each stage reached, the
commit, the wall time and the machine.

``--continues teacher=FOLDER`` (and ``student=FOLDER``), for recipes/continue.sh: the run went on from that model,
so its card keeps the earlier card's history and adds this run as a "Continued" section. A student distilled afresh
from a continued teacher (no ``student=``) carries that teacher's history as its lineage. Only the folders the run
produced are exported (a continue run may skip a stage).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

from audiox.core import AudioXModel
from audiox.core.checkpoint import cast_pretrained


def _steps(run: Path) -> int | None:
    done = sorted(p for p in run.glob("**/step-*") if (p / "COMPLETE").exists() or p.is_dir())
    return int(done[-1].name.split("-")[1]) if done else None


def _machine() -> str:
    if torch.cuda.is_available():
        return f"1x {torch.cuda.get_device_name(0)}, {os.cpu_count()} CPU cores (torch {torch.__version__})"
    return f"CPU only: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (torch {torch.__version__})"


def _commit() -> str:
    if os.environ.get("AUDIOX_COMMIT"):
        return os.environ["AUDIOX_COMMIT"]
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def storage(folder: Path) -> str:
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        quant = (f.metadata() or {}).get("audiox_quantize")
    size = (folder / "model.safetensors").stat().st_size / 1e6
    if quant == "int8-rowwise":
        return (f"weights ({size:.1f} MB, `model.safetensors`) stored in float16, with the Linear weights outside the "
                "autoencoder as row-wise int8 (one float32 scale per row); dequantized to float32 when loaded")
    return f"weights ({size:.1f} MB, `model.safetensors`) stored in float16; loaded back as float32"


def parameters(model: AudioXModel) -> str:
    """Parameter counts per part, the autoencoder split into its encoder and its decoder (of the configured kind)."""
    ae = model.autoencoder
    kind = "iSTFT" if model.config.autoencoder.decoder == "istft" else "Oobleck"
    parts = []
    for k, v in model.num_parameters().items():
        part = f"{k} {v / 1e6:.2f}M"
        if k == "autoencoder":
            part += f" (encoder {_count(ae.encoder) / 1e6:.2f}M, {kind} decoder {_count(ae.decoder) / 1e6:.2f}M)"
        parts.append(part)
    return ", ".join(parts)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def history(previous: Path) -> list[str]:
    """The earlier card's sections from "## How it was made" on, ending with a blank line."""
    card_file = previous / "MODEL_CARD.md"
    text = card_file.read_text().rstrip("\n").splitlines() if card_file.is_file() else []
    start = next((i for i, line in enumerate(text) if line.startswith("## How it was made")), None)
    if start is None:
        return ["## Earlier history", "", f"- `{previous}` had no model card history", ""]
    return text[start:] + [""]


def card(name: str, folder: Path, facts: dict[str, object], previous: Path | None = None,
         fresh_from_teacher: bool = False) -> str:
    """The model card. ``previous``: the model this run went on from (its history is kept). ``fresh_from_teacher``:
    the student was distilled afresh from the teacher this run continued, so ``previous`` is that teacher and its
    history is the student's lineage."""
    model = AudioXModel.from_pretrained(folder)
    cfg = model.config
    inf = cfg.inference
    lines = [
        f"# AudioX-Mini {name}",
        "",
        "Trained by this project from scratch on the procedural synthetic world (`audiox.data.synth`): sound events",
        "with known category, count, order and timestamps, their visual counterparts, and short music clips with",
        "known instrument, tempo and mode. It knows nothing outside that world.",
        "",
        f"- sampler: `{inf.sampler}`, {inf.steps} steps, CFG {inf.guidance_scale}"
        + (f", time grid {list(inf.few_step_times)}" if inf.few_step_times else ""),
        "- parameters: " + parameters(model),
        f"- audio: {cfg.autoencoder.sample_rate} Hz, {cfg.autoencoder.audio_channels} channel(s), {cfg.duration} s",
        "- " + storage(folder),
        "",
    ]
    if previous is None:
        lines += ["## How it was made", ""]
    else:
        lines += history(previous)
        if fresh_from_teacher:
            lines += [f"## Distilled afresh from the teacher continued from `{previous}` ({facts.get('date', '')})", "",
                      "- the student started from a copy of this run's fine-tuned teacher; the history above is that "
                      "teacher's"]
        else:
            lines += [f"## Continued from `{previous}` ({facts.get('date', '')})", ""]
    lines += [f"- {k}: {v}" for k, v in facts.items() if v is not None or previous is None]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="the recipe's output folder (has teacher/ and student/)")
    ap.add_argument("--seconds", type=float, required=True, help="wall time of the recipe so far")
    ap.add_argument("--recipe", required=True, help="the command line that reproduces the run")
    ap.add_argument("--quantize", choices=["none", "int8"], default="none",
                    help="int8: also store the Linear weights outside the autoencoder as row-wise int8")
    ap.add_argument("--data", default=None, help="the corpus folder (default: OUT/data)")
    ap.add_argument("--continues", action="append", default=[], metavar="NAME=FOLDER",
                    help="teacher=FOLDER / student=FOLDER: the model this run went on from (repeatable)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    previous: dict[str, Path] = {}
    for item in args.continues:
        name, _, folder = item.partition("=")
        if name not in ("teacher", "student") or not folder:
            print(f"model_card: error: --continues wants teacher=FOLDER or student=FOLDER, got {item!r}",
                  file=sys.stderr)
            return 2
        previous[name] = Path(folder)
    names = [n for n in ("teacher", "student") if (out / n / "config.json").is_file()]
    missing = [n for n in ("teacher", "student") if n not in names]
    if (not previous and missing) or not names:
        print(f"model_card: error: {out / missing[0]} is not a model folder", file=sys.stderr)
        return 2
    data_dir = Path(args.data) if args.data else out / "data"
    data = json.loads((data_dir / "synth.json").read_text()) if (data_dir / "synth.json").is_file() else {}
    facts = {
        "recipe": f"`{args.recipe}`",
        "data": f"{data.get('clips', '?')} synthetic-world clips, seed {data.get('seed', '?')}",
    }
    if not previous:
        facts["autoencoder steps"] = _steps(out / "autoencoder")
    facts |= {
        ("teacher fine-tune steps" if previous else "teacher steps"): _steps(out / "teacher-run"),
        ("student updates (this run)" if previous else "student updates"): _steps(out / "distill-run"),
        "commit": _commit(),
        "wall time": f"{args.seconds / 60:.1f} min",
        "machine": _machine(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    for name in names:
        quantize = None if args.quantize == "none" else args.quantize
        dst = cast_pretrained(out / name, out / f"{name}-fp16", torch.float16, quantize=quantize)
        fresh = name == "student" and "student" not in previous and "teacher" in previous
        prev = previous.get("teacher") if fresh else previous.get(name)
        (dst / "MODEL_CARD.md").write_text(card(name, dst, facts, prev, fresh_from_teacher=fresh))
        print(f"{dst}: {(dst / 'model.safetensors').stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
