"""``audiox-distill --teacher PATH --config PRESET_OR_FILE [key=value ...]``: AudioX-Turbo distillation.

``audiox-distill pairs --teacher PATH --out DIR --batches N [key=value ...]``: the teacher's multi-step CFG samples
from stored noise, for DMD's regression loss (``regression.weight``, ``regression.pairs=DIR``)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from audiox.core import AudioXModel
    from audiox.distill.config import DistillConfig

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="audiox-distill",
        description="Distil an AudioX teacher into a few-step student (DMD + diffusion discriminator, paper Sec. V).",
        epilog="`audiox-distill pairs --help`: the teacher samples for DMD's regression loss (regression.pairs).",
    )
    ap.add_argument("--teacher", required=True, help="teacher folder (config.json + model.safetensors)")
    ap.add_argument("--config", default="paper", help="distill preset (debug, paper) or a JSON file")
    ap.add_argument("--export", default="", help="write the EMA student here (turbo sampler on its T_N, or Euler for guided.weight > 0; no CFG)")
    ap.add_argument("--run-dir", default="", help="checkpoints and logs (default: checkpoint.dir)")
    ap.add_argument("--student", default="",
                    help="continue from this student folder (same architecture as the teacher) instead of a copy of "
                         "the teacher; the fake model still starts from the teacher")
    ap.add_argument("--synthetic", action="store_true",
                    help="train on a fixed synthetic batch instead of data.shards (smoke runs, throughput)")
    ap.add_argument("overrides", nargs="*", help="key=value, e.g. dmd.steps=4 gan.num_blocks=6 data.shards=...")
    return ap


def _pairs_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="audiox-distill pairs",
        description="Write the teacher's Euler + CFG samples from stored noise, one safetensors shard per data batch "
                    "(DMD's regression pairs; resumes: existing shards are kept).",
    )
    ap.add_argument("--teacher", required=True, help="teacher folder (config.json + model.safetensors)")
    ap.add_argument("--out", required=True, help="pair folder to write (pairs.json + pairs-NNNNNN.safetensors)")
    ap.add_argument("--batches", type=int, required=True, help="how many data batches (shards) to pair")
    ap.add_argument("--steps", type=int, default=0, help="teacher Euler steps (default: the teacher's inference steps)")
    ap.add_argument("--guidance", type=float, default=None, help="teacher CFG (default: the config's dmd.guidance_scale)")
    ap.add_argument("--config", default="paper", help="distill preset or JSON file: its data.* and seed choose the batches")
    ap.add_argument("--synthetic", action="store_true", help="pair a fixed synthetic batch instead of data.shards")
    ap.add_argument("overrides", nargs="*", help="key=value, e.g. data.shards=... data.batch_size=8 data.latents=true")
    return ap


def _build_source(args: argparse.Namespace, cfg: DistillConfig, teacher: AudioXModel) -> Any:
    from audiox.train import FixedBatchSource, build_source, synthetic_batch, world_info

    if args.synthetic:
        return FixedBatchSource(synthetic_batch(teacher.config, cfg.data.batch_size, seed=cfg.seed))
    rank, _, world = world_info()
    tag = ""
    if cfg.data.latents:  # the teacher's encoder is the one that made the cache
        from audiox.train.latents import latent_tag

        tag = latent_tag(teacher)
    return build_source(cfg.data, teacher.config, rank=rank, world_size=world, latent_tag=tag)


def _load_teacher(path: str) -> AudioXModel:
    import torch

    from audiox.core import AudioXModel

    teacher_dir = Path(path)
    if not (teacher_dir / "config.json").is_file():
        raise ValueError(f"--teacher {teacher_dir} is not a model folder (no config.json)")
    return AudioXModel.from_pretrained(teacher_dir, device="cpu", dtype=torch.float32)


def pairs_main(argv: list[str]) -> int:
    args = _pairs_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        from audiox.core.io import file_sha256
        from audiox.train import resolve_device

        from audiox.distill.config import get_distill_config
        from audiox.distill.pairs import make_pairs
        from audiox.distill.trainer import audiox_prepare

        if args.batches < 1:
            raise ValueError(f"--batches must be >= 1, got {args.batches}")
        cfg = get_distill_config(args.config, args.overrides)
        teacher = _load_teacher(args.teacher)
        device = resolve_device(cfg.device)
        teacher = teacher.to(device).eval().requires_grad_(False)
        inf = teacher.config.inference
        steps = args.steps or inf.steps
        guidance = cfg.dmd.guidance_scale if args.guidance is None else args.guidance
        if steps < 1:
            raise ValueError(f"--steps must be >= 1, got {steps}")
        source = _build_source(args, cfg, teacher)
        t0 = time.perf_counter()
        paths = make_pairs(teacher, source, audiox_prepare(teacher, device), args.out, args.batches, steps=steps,
                           guidance=guidance, shift=inf.time_shift, seed=cfg.seed,
                           info={"teacher": str(Path(args.teacher).resolve()), "batch_size": cfg.data.batch_size,
                                 "teacher_sha256": file_sha256(Path(args.teacher) / "model.safetensors")})
    except (ValueError, OSError, TypeError) as exc:
        print(f"audiox-distill pairs: error: {exc}", file=sys.stderr)
        return 2
    print(f"audiox-distill pairs: {len(paths)} shards in {args.out} ({steps} steps, CFG {guidance:g}, "
          f"{time.perf_counter() - t0:.1f}s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["pairs"]:
        return pairs_main(argv[1:])
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        import torch

        from audiox.core import AudioXModel

        from audiox.distill.config import get_distill_config
        from audiox.distill.trainer import DistillTrainer

        cfg = get_distill_config(args.config, args.overrides)
        teacher = _load_teacher(args.teacher)
        source = _build_source(args, cfg, teacher)
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
