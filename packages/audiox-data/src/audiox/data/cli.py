"""``audiox-data``: synth | curate | annotate | stats | tokenizer. Bad input: one-line error, exit status 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

__all__ = ["main"]


def _synth(a: argparse.Namespace) -> None:
    from audiox.data.shards import synth_shards
    from audiox.data.synth.world import SynthConfig

    cfg = SynthConfig(
        sample_rate=a.sample_rate,
        duration=a.duration,
        fps=a.fps,
        image_size=a.image_size,
        music_fraction=a.music_fraction,
        video=not a.no_video,
    )
    m = synth_shards(
        a.out,
        a.clips,
        a.seed,
        a.shard_size,
        a.workers,
        cfg,
        prompts={"t2a_bench": a.t2a_prompts, "v2a": a.v2a_prompts, "t2m": a.t2m_prompts},
        progress=not a.quiet,
    )
    print(f"{m['clips']} clips in {len(m['shards'])} shards, prompts {m['prompts']} -> {a.out}")


def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="render the synthetic world to WebDataset shards + held-out prompt files",
        description="Render N training clips (sound events with video, and music) into tar shards "
        "of K clips, plus prompts/t2a_bench.jsonl, v2a.jsonl, t2m.jsonl from held-out seed streams. "
        "Idempotent and resumable: finished shards are kept, unfinished ones re-rendered.",
    )
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--clips", type=int, required=True, help="number of training clips")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shard-size", type=int, default=100, help="clips per shard")
    p.add_argument("--workers", type=int, default=1, help="parallel processes")
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--duration", type=float, default=10.0, help="seconds per clip")
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--music-fraction", type=float, default=0.3)
    p.add_argument("--no-video", action="store_true", help="audio + annotations only")
    p.add_argument("--t2a-prompts", type=int, default=2000)
    p.add_argument("--v2a-prompts", type=int, default=200)
    p.add_argument("--t2m-prompts", type=int, default=200)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_synth)


_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_synth]


_SUBCOMMAND_MODULES: tuple[str, ...] = ("curate", "annotate", "stats", "tokenizer")  # modules with an ``add_cli(subparsers)``


def _register_optional() -> None:
    import importlib

    for name in _SUBCOMMAND_MODULES:
        mod = importlib.import_module(f"audiox.data.{name}")
        if mod.add_cli not in _COMMANDS:
            _COMMANDS.append(mod.add_cli)


def build_parser() -> argparse.ArgumentParser:
    _register_optional()
    parser = argparse.ArgumentParser(
        prog="audiox-data",
        description="AudioX data tools: the synthetic world, "
        "stage-1 curation, stage-2 annotation/augmentation, dataset statistics.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in _COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, NotADirectoryError, PermissionError) as e:
        print(f"audiox-data {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
