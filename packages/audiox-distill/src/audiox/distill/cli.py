"""``audiox-distill --teacher PATH --config PRESET_OR_FILE [key=value ...]``: AudioX-Turbo distillation."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="audiox-distill",
        description="Distil an AudioX teacher into a few-step student (DMD + diffusion discriminator, paper Sec. V).",
    )
    ap.add_argument("--teacher", required=True, help="teacher folder (config.json + model.safetensors)")
    ap.add_argument("--config", default="paper", help="distill preset (debug, paper) or a JSON file")
    ap.add_argument("--export", default="", help="write the EMA student here (turbo sampler, its T_N, no CFG)")
    ap.add_argument("--run-dir", default="", help="checkpoints and logs (default: checkpoint.dir)")
    ap.add_argument("--student", default="",
                    help="continue from this student folder (same architecture as the teacher) instead of a copy of "
                         "the teacher; the fake model still starts from the teacher")
    ap.add_argument("--synthetic", action="store_true",
                    help="train on a fixed synthetic batch instead of data.shards (smoke runs, throughput)")
    ap.add_argument("overrides", nargs="*", help="key=value, e.g. dmd.steps=4 gan.num_blocks=6 data.shards=...")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        import torch

        from audiox.core import AudioXModel
        from audiox.train import FixedBatchSource, build_source, synthetic_batch, world_info

        from audiox.distill.config import get_distill_config
        from audiox.distill.trainer import DistillTrainer

        cfg = get_distill_config(args.config, args.overrides)
        teacher_dir = Path(args.teacher)
        if not (teacher_dir / "config.json").is_file():
            raise ValueError(f"--teacher {teacher_dir} is not a model folder (no config.json)")
        teacher = AudioXModel.from_pretrained(teacher_dir, device="cpu", dtype=torch.float32)
        rank, _, world = world_info()
        if args.synthetic:
            source = FixedBatchSource(synthetic_batch(teacher.config, cfg.data.batch_size, seed=cfg.seed))
        else:
            tag = ""
            if cfg.data.latents:  # the teacher's encoder is the one that made the cache
                from audiox.train.latents import latent_tag

                tag = latent_tag(teacher)
            source = build_source(cfg.data, teacher.config, rank=rank, world_size=world, latent_tag=tag)
        student = AudioXModel.from_pretrained(args.student, dtype=torch.float32) if args.student else None
        trainer = DistillTrainer(cfg, teacher, source, run_dir=args.run_dir or None, student=student)
    except (ValueError, FileNotFoundError, TypeError) as exc:
        print(f"audiox-distill: error: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    start = trainer.step
    trainer.fit()
    rate = (trainer.step - start) / max(time.perf_counter() - t0, 1e-9)
    print(f"audiox-distill: {trainer.step} student updates, {rate:.3f} iterations/s")
    if args.export:
        path = trainer.export(args.export)
        if path is not None:
            print(f"audiox-distill: exported the EMA student to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
