"""Finish a recipe run: half-precision copies of the teacher and the student, each with a model card.

    python recipes/model_card.py --out runs/mini --seconds 540 --recipe "CLIPS=4000 ... bash recipes/mini.sh"

``--quantize int8`` also stores the Linear weights outside the autoencoder as row-wise int8 (weight-only; the
model is dequantized to float32 when loaded): the mini models shrink from about 32 to 20 MB.

The card records what a rerun needs: the recipe line, data seed and size, the steps each stage reached, the
commit, the wall time and the machine.
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


def card(name: str, folder: Path, facts: dict[str, object]) -> str:
    model = AudioXModel.from_pretrained(folder)
    cfg = model.config
    counts = model.num_parameters()
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
        "- parameters: " + ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in counts.items()),
        f"- audio: {cfg.autoencoder.sample_rate} Hz, {cfg.autoencoder.audio_channels} channel(s), {cfg.duration} s",
        "- " + storage(folder),
        "",
        "## How it was made",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in facts.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="the recipe's output folder (has teacher/ and student/)")
    ap.add_argument("--seconds", type=float, required=True, help="wall time of the recipe so far")
    ap.add_argument("--recipe", required=True, help="the command line that reproduces the run")
    ap.add_argument("--quantize", choices=["none", "int8"], default="none",
                    help="int8: also store the Linear weights outside the autoencoder as row-wise int8")
    args = ap.parse_args(argv)
    out = Path(args.out)
    for need in ("teacher", "student"):
        if not (out / need / "config.json").is_file():
            print(f"model_card: error: {out / need} is not a model folder", file=sys.stderr)
            return 2
    data = json.loads((out / "data" / "synth.json").read_text()) if (out / "data" / "synth.json").is_file() else {}
    facts = {
        "recipe": f"`{args.recipe}`",
        "data": f"{data.get('clips', '?')} synthetic-world clips, seed {data.get('seed', '?')}",
        "autoencoder steps": _steps(out / "autoencoder"),
        "teacher steps": _steps(out / "teacher-run"),
        "student updates": _steps(out / "distill-run"),
        "commit": _commit(),
        "wall time": f"{args.seconds / 60:.1f} min",
        "machine": _machine(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    for name in ("teacher", "student"):
        quantize = None if args.quantize == "none" else args.quantize
        dst = cast_pretrained(out / name, out / f"{name}-fp16", torch.float16, quantize=quantize)
        (dst / "MODEL_CARD.md").write_text(card(name, dst, facts))
        print(f"{dst}: {(dst / 'model.safetensors').stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
