"""Distillation throughput of a preset on this machine: student iterations/s of DistillTrainer.

Builds a random-weight teacher of the given model preset (debug by default), then times ``--iters`` student
updates of the distill preset on a fixed synthetic batch (no data loading, no checkpoint writes inside the timed
window), for each student:fake ratio asked for. Prints a table and one JSON line.

    uv run python packages/audiox-distill/scripts/bench_throughput.py                      # debug, 1:1 and 5:1 and 1:5
    uv run python packages/audiox-distill/scripts/bench_throughput.py --ratios 1:1 --iters 20 --threads 2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

import torch


def bench(model_preset: str, distill_preset: str, ratio: tuple[int, int], iters: int, warmup: int,
          overrides: list[str]) -> float:
    from audiox.core import AudioXModel, get_config
    from audiox.train import FixedBatchSource, synthetic_batch

    from audiox.distill.config import get_distill_config
    from audiox.distill.trainer import DistillTrainer

    torch.manual_seed(0)
    teacher = AudioXModel(get_config(model_preset))
    with tempfile.TemporaryDirectory() as tmp:
        cfg = get_distill_config(distill_preset, ["device=cpu", f"checkpoint.dir={tmp}", f"max_steps={iters + warmup}",
                                                  f"dmd.student_updates={ratio[0]}", f"dmd.fake_updates={ratio[1]}",
                                                  *overrides])
        source = FixedBatchSource(synthetic_batch(teacher.config, cfg.data.batch_size, seed=cfg.seed))
        tr = DistillTrainer(cfg, teacher, source)
        for _ in range(warmup):
            tr.train_step()
        t0 = time.perf_counter()
        for _ in range(iters):
            tr.train_step()
        return iters / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="debug", help="AudioXModel preset of the random teacher")
    ap.add_argument("--config", default="debug", help="distill preset")
    ap.add_argument("--ratios", default="1:1,5:1,1:5", help="student:fake ratios, comma separated")
    ap.add_argument("--iters", type=int, default=10, help="timed student updates per ratio")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("overrides", nargs="*", help="distill config key=value overrides")
    args = ap.parse_args(argv)
    try:
        ratios = [tuple(int(x) for x in r.split(":")) for r in args.ratios.split(",")]
        if any(len(r) != 2 or min(r) < 1 for r in ratios) or args.iters < 1 or args.warmup < 0:
            raise ValueError
    except ValueError:
        print(f"bench_throughput: error: bad --ratios {args.ratios!r} or --iters/--warmup", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = {}
    for r in ratios:
        try:
            rows[f"{r[0]}:{r[1]}"] = bench(args.model, args.config, r, args.iters, args.warmup, args.overrides)
        except ValueError as exc:
            print(f"bench_throughput: error: {exc}", file=sys.stderr)
            return 2
    print(f"model={args.model} distill={args.config} threads={torch.get_num_threads()}")
    print("| student:fake | student iterations/s |\n|---|---|")
    for k, v in rows.items():
        print(f"| {k} | {v:.3f} |")
    print(json.dumps({"model": args.model, "config": args.config, "iters_per_s": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
