"""``audiox-train``: train the teacher (default), the autoencoder, or benchmark a training step.

Examples::

    audiox-train --config debug data.shards=synthetic max_steps=200          # smoke run on generated tones
    audiox-train --config mini data.shards='data/train-{000000..000099}.tar'   # the shipped model's teacher
    audiox-train autoencoder --config mini data.shards='data/train-*.tar' max_steps=20000
    audiox-train bench --config mini                                         # samples/s and tokens/s here
    audiox-train encode-latents --config mini init_from=models/t data.shards=...  # cache target latents once
    torchrun --nproc_per_node 8 -m audiox.train.cli --config paper data.shards=...   # one 8-GPU node (ZeRO-2)

``data.shards=synthetic`` trains on a fixed batch of generated tones (for smoke tests and benchmarks).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

__all__ = ["main", "build_parser"]

COMMANDS = ("teacher", "autoencoder", "bench", "export", "encode-latents")

EPILOG = """examples:
  audiox-train --config debug data.shards=synthetic max_steps=200
  audiox-train --config mini data.shards='data/train-{000000..000099}.tar' checkpoint.dir=runs/mini
  audiox-train autoencoder --config mini data.shards='data/train-*.tar'
  audiox-train bench --config mini --steps 5
  audiox-train export --config mini checkpoint.dir=runs/mini --out models/mini-teacher
  audiox-train encode-latents --config mini model.autoencoder.pretrained=ae.safetensors data.shards=data
  audiox-train --config mini model.autoencoder.pretrained=ae.safetensors data.shards=data data.latents=true
  audiox-train text-align models/mini-teacher data --out models/mini-teacher-aligned --steps 2000
multi-GPU (DeepSpeed ZeRO, see docs/training.md):
  torchrun --nproc_per_node 8 -m audiox.train.cli --config paper data.shards=...
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="audiox-train",
        description="Train the AudioX-Base teacher with flow matching (paper Sec. IV-B), or its autoencoder.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG,
    )
    p.add_argument("command", nargs="?", default="teacher",
                   help="teacher (default), autoencoder, bench, export, encode-latents or text-align (own options: "
                   "audiox-train text-align -h)")
    p.add_argument("--config", default="debug", help="train preset (debug, mini, paper) or a JSON file")
    p.add_argument("--out", default=None, help="export folder (teacher/export: written when training ends)")
    p.add_argument("--steps", type=int, default=5, help="bench: timed steps (after 2 warm-up steps)")
    p.add_argument("overrides", nargs="*", help="key=value config overrides, e.g. optim.lr=3e-4 model.dit.depth=4")
    return p


def _source(cfg, rank: int, world: int, tag: str = ""):
    from audiox.train.sources import FixedBatchSource, build_source
    from audiox.train.testing import synthetic_batch

    if cfg.data.shards == "synthetic":
        return FixedBatchSource(synthetic_batch(cfg.model, cfg.data.batch_size, seed=cfg.seed + rank))
    return build_source(cfg.data, cfg.model, rank=rank, world_size=world, latent_tag=tag)


def _val_source(cfg, tag: str = ""):
    from audiox.train.sources import build_source

    if cfg.data.val_shards:
        return build_source(cfg.data, cfg.model, shards=cfg.data.val_shards, latent_tag=tag)
    return None


def _encode_latents(args, cfg) -> int:
    from audiox.train.engine import resolve_device
    from audiox.train.latents import encode_shards

    if not cfg.data.shards or cfg.data.shards == "synthetic":
        raise ValueError("encode-latents needs data.shards=PATTERN (the corpus to cache)")
    model = _model(args, cfg, always=True)
    r = encode_shards(model, cfg.data.shards, batch_size=cfg.data.batch_size, device=resolve_device(cfg.device),
                      progress=cfg.log.progress)
    print(f"encode-latents: tag {r.tag}: {r.clips} clips in {r.shards} shard(s), {r.skipped_shards} already cached, "
          f"{r.bad_clips} undecodable, {r.seconds:.1f} s; train with data.latents=true and the same autoencoder")
    return 0


def _model(args, cfg, *, always: bool = False):
    """The model a run starts from: the ``init_from`` folder (its config replaces model.*, with this run's model.*
    overrides on top: switches such as ``model.maf.single_null=true`` whose weights still fit), a fresh one built as
    TeacherTrainer would build it when ``always`` (e.g. to fingerprint its encoder), else None."""
    import torch

    from audiox.core.model import AudioXModel

    if cfg.init_from:
        switches = [o[len("model."):] for o in args.overrides if o.split("=", 1)[0].startswith("model.")]
        model = AudioXModel.from_pretrained(cfg.init_from, dtype=torch.float32, overrides=switches)
        cfg.model = model.config  # the folder's architecture, so the data pipeline and checkpoints agree with it
        print(f"initialised from {cfg.init_from} (its config replaces model.*" + (f", then {' '.join(switches)})"
                                                                              if switches else ")"))
        return model
    if always:
        torch.manual_seed(cfg.seed)  # the same initialisation as inside TeacherTrainer
        return AudioXModel(cfg.model)
    return None


def _teacher(args, cfg) -> int:
    from audiox.train.engine import world_info
    from audiox.train.trainer import TeacherTrainer

    rank, _, world = world_info()
    model = _model(args, cfg, always=cfg.data.latents and cfg.data.shards != "synthetic")
    tag = ""
    if model is not None and cfg.data.latents:
        from audiox.train.latents import latent_tag

        tag = latent_tag(model)
    trainer = TeacherTrainer(cfg, _source(cfg, rank, world, tag), model=model, val_source=_val_source(cfg, tag))
    trainer.fit()
    out = args.out or str(Path(cfg.checkpoint.dir) / "export")
    path = trainer.export(out)
    if path is not None:
        print(f"exported EMA weights to {path}")
    trainer.engine.close()
    return 0


def _bench(args, cfg) -> int:
    import torch

    from audiox.train.sources import FixedBatchSource
    from audiox.train.testing import synthetic_batch
    from audiox.train.trainer import TeacherTrainer

    cfg.checkpoint.resume = False
    cfg.log.tensorboard = False
    cfg.log.progress = False
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        batch = synthetic_batch(cfg.model, cfg.data.batch_size)
        trainer = TeacherTrainer(cfg, FixedBatchSource(batch), run_dir=tmp)
        if cfg.data.latents:  # time a step that reads cached target latents (encode-latents) instead of encoding
            ae = trainer.model.autoencoder
            with torch.no_grad():
                batch.latents = ae.encode(ae.pad_to_hop(batch.audio.to(trainer.device))).cpu()
        for _ in range(2):
            trainer.train_step()
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(args.steps):
            trainer.train_step()
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        dt = (time.perf_counter() - t0) / args.steps
    samples = cfg.data.batch_size * cfg.optim.grad_accum
    tokens = samples * cfg.model.latent_length
    n_params = sum(p.numel() for _, p in trainer.engine.named_params)
    flops = 6 * n_params * tokens  # forward + backward of the denoiser, per optimiser step (latent tokens only)
    targets = "cached" if cfg.data.latents else "encoded"
    print("| preset | device | batch | target latents | step time (s) | samples/s | latent tokens/s | model TFLOP/s |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {cfg.name} | {trainer.device} | {samples} | {targets} | {dt:.3f} | {samples / dt:.2f} | {tokens / dt:.0f} "
          f"| {flops / dt / 1e12:.4f} |")
    return 0


def _export(args, cfg) -> int:
    from audiox.train.trainer import TeacherTrainer

    if not args.out:
        raise ValueError("export needs --out FOLDER")
    from audiox.train.sources import FixedBatchSource
    from audiox.train.testing import synthetic_batch

    model = _model(args, cfg)  # a fine-tuning run (init_from): the folder's architecture and frozen weights
    trainer = TeacherTrainer(cfg, FixedBatchSource(synthetic_batch(cfg.model, 1)), model=model, log=False)
    if not trainer.maybe_resume():
        raise FileNotFoundError(f"no complete checkpoint under {trainer.ckpt.dir}")
    print(f"exported step {trainer.step} EMA weights to {trainer.export(args.out)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = "teacher"
    if argv and argv[0] in (*COMMANDS, "text-align"):
        command = argv.pop(0)
    if command != "text-align":  # text-align has its own options
        args = build_parser().parse_intermixed_args(["teacher", *argv])
        args.command = command
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if command == "text-align":
            from audiox.train.text_align import text_align_main

            return text_align_main(argv)
        if args.command == "autoencoder":
            from audiox.train.autoencoder import autoencoder_main

            return autoencoder_main(args)
        from audiox.train.config import get_train_config

        cfg = get_train_config(args.config, args.overrides)
        commands = {"teacher": _teacher, "bench": _bench, "export": _export, "encode-latents": _encode_latents}
        return commands[args.command](args, cfg)
    except (ValueError, FileNotFoundError) as exc:
        print(f"audiox-train: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
