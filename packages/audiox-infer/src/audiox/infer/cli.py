"""The ``audiox`` command: ``generate``, ``info``, ``bench-latency``.

Every bad input ends with one line ``audiox: error: ...`` on stderr, a nonzero exit and no output file
(inputs are checked before any work; outputs are written atomically after generation succeeded).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

__all__ = ["main", "build_parser"]

log = logging.getLogger("audiox.infer")

EXAMPLES_GENERATE = """examples:
  audiox generate "rain on a tin roof" --out rain.wav --seed 0
  audiox generate "upbeat piano" --task t2m --steps 50 --cfg 6 --out piano.flac
  audiox generate --video clip.mp4 --out clip.wav --mux clip_with_audio.mp4       (v2a)
  audiox generate "a dog barks" --video clip.mp4 --out dog.wav                     (tv2a)
  audiox generate --image beach.jpg --out beach.wav                                (i2a)
  audiox generate --audio take.wav --inpaint "1.0-2.5,4-5" --out fixed.wav         (inpaint)
  audiox generate --audio intro.flac --task complete --out next.wav                (music completion)
  audiox generate --model student/ --sampler turbo --steps 4 "thunder" --out t.wav
  audiox generate --batch-file prompts.jsonl --out outdir/
      (one JSON object a line: {"prompt": ..., "video"/"image"/"audio": path, "inpaint": "1-2",
       "task": ..., "seed": ..., "duration": ..., "out": "name.wav"}; relative paths are resolved
       against the JSONL file's folder, "out" against --out)
"""

EXAMPLES_BENCH = """examples:
  audiox bench-latency --preset mini --sampler euler --steps 50 --cfg 6        (teacher, NFE 100)
  audiox bench-latency --preset mini --sampler turbo --steps 4                 (student, NFE 4)
  audiox bench-latency --model path/to/model --device cuda --dtype bf16 --json lat.json
"""


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model folder (config.json + model.safetensors), hub id, or a bundled model: "
                                   "'default' (AudioX-Mini Turbo, 4 steps; used when --model is omitted) or "
                                   "'default-teacher' (its 50-step teacher)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    p.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16 (default: as saved / float32)")
    p.add_argument("--compile", action="store_true", help="torch.compile the denoiser (CUDA graphs on a GPU)")


def _add_sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sampler", choices=["euler", "heun", "turbo"], help="default: the model's config.inference")
    p.add_argument("--steps", type=int, help="sampling steps (default: the model's config.inference)")
    p.add_argument("--cfg", type=float, help="classifier-free guidance scale (ignored by turbo)")
    p.add_argument("--duration", type=float, help="seconds of audio (default: the model's duration)")
    p.add_argument("--seed", type=int, help="random seed (same seed -> same audio); default: random, recorded")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audiox", description="Generate audio and music from text, video, images and audio (AudioX-Turbo).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="run `audiox COMMAND --help` for the options and examples of each command",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more (info level)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    g = sub.add_parser("generate", help="generate audio", epilog=EXAMPLES_GENERATE,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Generate audio for one prompt or a JSONL batch. The task is inferred "
                                   "from the inputs unless --task is given (music tasks need --task).")
    g.add_argument("prompt", nargs="?", help="text prompt (optional for video/image/audio tasks)")
    g.add_argument("--batch-file", type=Path, help="JSONL file: one generation per line (see examples)")
    g.add_argument("--video", type=Path, help="video file (mp4, mov, mkv, webm)")
    g.add_argument("--image", type=Path, help="still image (png, jpg): image-to-audio")
    g.add_argument("--audio", type=Path, help="audio file (wav, flac, mp3, ogg): inpainting or completion")
    g.add_argument("--inpaint", help='time spans to regenerate in --audio, seconds: "1.0-2.5,4-5"')
    g.add_argument("--task", help="t2a t2m v2a v2m tv2a tv2m i2a inpaint complete (default: inferred)")
    g.add_argument("--batch-size", type=int, default=1, help="clips per prompt (out.wav -> out_0.wav, ...)")
    g.add_argument("--out", type=Path, help="output .wav/.flac (a folder with --batch-file); default audiox.wav")
    g.add_argument("--mux", type=Path, help="also write a copy of --video with the generated audio (AAC)")
    g.add_argument("--force", action="store_true", help="overwrite existing output files")
    g.add_argument("--no-sidecar", action="store_true", help="do not write the JSON sidecar next to the audio")
    _add_model_args(g)
    _add_sampling_args(g)

    i = sub.add_parser("info", help="describe a model folder",
                       description="Print a model's configuration, sizes, parameter counts and sampling defaults.")
    i.add_argument("model", nargs="?", help="model folder or hub id (default: the bundled model)")
    i.add_argument("--json", action="store_true", help="print the whole config as JSON")

    b = sub.add_parser("bench-latency", help="latency / RTF / NFE / peak memory (Table II protocol)",
                       epilog=EXAMPLES_BENCH, formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Mean +- std latency over --runs runs after --warmup runs, RTF, NFE counted "
                                   "by hooking the model's forward, and peak memory per stage.")
    b.add_argument("--preset", help="benchmark a random-weight model of this preset (debug, mini, paper) "
                                    "instead of --model")
    b.add_argument("--runs", type=int, default=20)
    b.add_argument("--warmup", type=int, default=5)
    b.add_argument("--batch-size", type=int, default=1)
    b.add_argument("--prompt", default="a dog barks twice, then rain falls")
    b.add_argument("--json", type=Path, help="also write the report as JSON here")
    _add_model_args(b)
    _add_sampling_args(b)
    return parser


# Helpers ------------------------------------------------------------------------------------------------


def _storage_note(weights: Path) -> str:
    from safetensors import safe_open

    with safe_open(str(weights), "pt") as f:
        quant = (f.metadata() or {}).get("audiox_quantize")
    return f" ({quant} Linear weights, dequantized when loaded)" if quant else ""


def _model_path(arg: str | None) -> str:
    from audiox.infer import defaults

    if arg in defaults.BUNDLED_MODELS:
        d = defaults.bundled_model(arg)
        if d is None:
            raise CLIError(f"the bundled model {arg!r} is not installed with this audiox-infer; pass --model PATH")
        return str(d)
    if arg:
        p = Path(arg).expanduser()
        looks_local = p.exists() or arg.startswith((".", "/", "~")) or arg.count("/") != 1
        if looks_local and not p.is_dir():
            raise CLIError(f"model folder not found: {arg}")
        return arg
    d = defaults.bundled_model("default")
    if d is not None:
        return str(d)
    raise CLIError("no default model is bundled with this audiox-infer; pass --model PATH")


def _load_pipeline(args: argparse.Namespace, model: str | None = None):
    import torch

    from audiox.infer.pipeline import AudioXPipeline, parse_dtype

    dtype = parse_dtype(args.dtype)
    try:
        device = torch.device(args.device)
    except RuntimeError as exc:
        raise CLIError(f"bad --device {args.device!r}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {args.device} asked for CUDA but no GPU is available")
    path = model if model is not None else _model_path(args.model)
    pipe = AudioXPipeline.from_pretrained(path, device=device, dtype=dtype)
    if getattr(args, "compile", False):
        pipe.compile()
    return pipe


@dataclass
class Job:
    """One generation: inputs, options and the files it will write."""

    prompt: str | None
    out: Path
    video: Path | None = None
    image: Path | None = None
    audio: Path | None = None
    inpaint: str | None = None
    task: str | None = None
    seed: int | None = None
    duration: float | None = None
    steps: int | None = None
    cfg: float | None = None
    mux: Path | None = None
    outputs: list[Path] = field(default_factory=list)


def _outputs(job: Job, batch_size: int, sidecar: bool) -> list[Path]:
    if job.out.suffix.lower() not in (".wav", ".flac"):
        raise CLIError(f"output must end in .wav or .flac: {job.out}")
    audio = [job.out] if batch_size == 1 else [job.out.with_name(f"{job.out.stem}_{i}{job.out.suffix}")
                                               for i in range(batch_size)]
    files = list(audio)
    if sidecar:
        files.append(job.out.with_suffix(".json"))
    if job.mux is not None:
        if job.video is None:
            raise CLIError("--mux needs a --video to copy")
        if job.mux.suffix.lower() not in (".mp4", ".mov", ".mkv"):
            raise CLIError(f"--mux output must end in .mp4, .mov or .mkv: {job.mux}")
        if batch_size != 1:
            raise CLIError("--mux works with --batch-size 1")
        files.append(job.mux)
    return files


def _check_job(job: Job) -> None:
    from audiox.core.config import TASKS
    from audiox.infer.pipeline import parse_spans

    for flag, p in (("--video", job.video), ("--image", job.image), ("--audio", job.audio)):
        if p is not None:
            if not p.is_file():
                raise CLIError(f"{flag} file not found: {p}")
            if p.stat().st_size == 0:
                raise CLIError(f"{flag} file is empty (zero bytes): {p}")
    if job.task is not None and job.task not in TASKS:
        raise CLIError(f"unknown task {job.task!r}; expected one of {', '.join(TASKS)}")
    if job.inpaint is not None:
        parse_spans(job.inpaint)  # ValueError -> one-line error
        if job.audio is None:
            raise CLIError("--inpaint needs --audio")
    if job.duration is not None and not job.duration > 0:
        raise CLIError(f"--duration must be > 0, got {job.duration}")
    if job.steps is not None and job.steps < 1:
        raise CLIError(f"--steps must be >= 1, got {job.steps}")


def _read_batch(path: Path, out_dir: Path, args: argparse.Namespace) -> list[Job]:
    if not path.is_file():
        raise CLIError(f"--batch-file not found: {path}")
    known = {"prompt", "video", "image", "audio", "inpaint", "task", "seed", "duration", "steps", "cfg", "out", "mux"}
    jobs: list[Job] = []
    base = path.parent
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CLIError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
        if not isinstance(d, dict):
            raise CLIError(f"{path}:{n}: each line must be a JSON object")
        unknown = set(d) - known
        if unknown:
            raise CLIError(f"{path}:{n}: unknown keys {sorted(unknown)}; known: {sorted(known)}")

        def rel(key: str, root: Path = base) -> Path | None:
            return None if d.get(key) is None else (root / str(d[key]))

        seed = d.get("seed", None if args.seed is None else args.seed + len(jobs))
        jobs.append(Job(prompt=d.get("prompt"), out=rel("out", out_dir) or out_dir / f"{len(jobs):05d}.wav",
                        video=rel("video"), image=rel("image"), audio=rel("audio"), inpaint=d.get("inpaint"),
                        task=d.get("task"), seed=seed, duration=d.get("duration", args.duration),
                        steps=d.get("steps", args.steps), cfg=d.get("cfg", args.cfg), mux=rel("mux", out_dir)))
    if not jobs:
        raise CLIError(f"--batch-file {path} has no generations")
    return jobs


def _run_job(pipe: Any, job: Job, args: argparse.Namespace, model_name: str) -> None:
    from audiox.infer import media

    out = pipe(job.prompt, video=job.video, image=job.image, audio=job.audio, task=job.task,
               duration=job.duration, steps=job.steps, guidance_scale=job.cfg, seed=job.seed,
               batch_size=args.batch_size, inpaint_spans=job.inpaint, sampler=args.sampler)
    audio_files = job.outputs[: args.batch_size]
    if job.mux is not None:  # the riskiest write first: if it fails nothing else is written
        media.mux_audio(job.video, out.audio[0], out.sample_rate, job.mux)
    for path, wav in zip(audio_files, out.audio):
        media.save_audio(path, wav, out.sample_rate)
    if not args.no_sidecar:
        meta = {"prompt": job.prompt, "seed": job.seed if out.seeds is None else out.seeds[0],
                "model": model_name, **out.metadata(),
                "inputs": {k: None if v is None else str(v) for k, v in
                           (("video", job.video), ("image", job.image), ("audio", job.audio))},
                "inpaint": job.inpaint, "files": [str(p) for p in audio_files], "mux": None if job.mux is None else str(job.mux)}
        media.write_json(job.out.with_suffix(".json"), meta)


# Commands -----------------------------------------------------------------------------------------------


def cmd_generate(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.batch_file is not None:
        if args.prompt or args.video or args.image or args.audio or args.inpaint or args.mux:
            raise CLIError("--batch-file takes its inputs from the file; drop the prompt / --video / --image / --audio")
        jobs = _read_batch(args.batch_file, args.out or Path("audiox_out"), args)
    else:
        if args.prompt is None and args.video is None and args.image is None and args.audio is None:
            raise CLIError("nothing to condition on: give a prompt, --video, --image or --audio")
        jobs = [Job(prompt=args.prompt, out=args.out or Path("audiox.wav"), video=args.video, image=args.image,
                    audio=args.audio, inpaint=args.inpaint, task=args.task, seed=args.seed, duration=args.duration,
                    steps=args.steps, cfg=args.cfg, mux=args.mux)]
    model_name = _model_path(args.model)  # cheap checks first: no torch import before them
    seen: set[Path] = set()
    for job in jobs:
        _check_job(job)
        job.outputs = _outputs(job, args.batch_size, not args.no_sidecar)
        for p in job.outputs:
            rp = p.resolve()
            if rp in seen:
                raise CLIError(f"two generations would write the same file {p}")
            seen.add(rp)
            if p.exists() and not args.force:
                raise CLIError(f"{p} exists; pass --force to overwrite")
    pipe = _load_pipeline(args, model_name)
    if len(jobs) == 1:
        _run_job(pipe, jobs[0], args, model_name)
    else:
        from tqdm import tqdm

        for job in tqdm(jobs, desc="generate", unit="clip"):
            _run_job(pipe, job, args, model_name)
    for job in jobs:
        print(" ".join(str(p) for p in job.outputs))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import torch

    from audiox.core import AudioXModel
    from audiox.core.checkpoint import load_config, resolve_model_path

    folder = resolve_model_path(_model_path(args.model))
    cfg = load_config(folder)
    if args.json:
        print(cfg.to_json())
        return 0
    with torch.device("meta"):
        counts = AudioXModel(cfg).num_parameters()
    weights = folder / "model.safetensors"
    ae, inf = cfg.autoencoder, cfg.inference
    lines = [
        f"model        {folder}",
        f"preset       {cfg.name} (format {cfg.format_version})",
        f"weights      {weights.name} {weights.stat().st_size / 2**20:.1f} MiB{_storage_note(weights)}" if weights.is_file() else "weights      MISSING",
        f"audio        {cfg.duration:g} s at {ae.sample_rate} Hz, {ae.audio_channels} channel(s)",
        f"latent       {ae.latent_dim} x {cfg.latent_length} frames ({ae.latent_rate:g}/s, hop {ae.hop_length})",
        f"video        CLIP {cfg.video.model_name} at {cfg.video.fps:g} fps, {cfg.video.image_size}px; "
        f"sync at {cfg.sync.fps:g} fps, {cfg.sync.image_size}px",
        f"MMDiT        depth {cfg.dit.depth}, width {cfg.dit.hidden_size}, heads {cfg.dit.num_heads}",
        "parameters   " + ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in counts.items()),
        f"sampling     {inf.sampler}, {inf.steps} steps, CFG {inf.guidance_scale:g}"
        + (f", T_N {list(inf.few_step_times)}" if inf.few_step_times else ""),
    ]
    print("\n".join(lines))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from audiox.core import AudioXModel, get_config
    from audiox.infer.latency import bench_latency
    from audiox.infer.pipeline import AudioXPipeline, parse_dtype

    if args.preset:
        if args.model:
            raise CLIError("give --preset or --model, not both")
        torch.manual_seed(0)
        model = AudioXModel(get_config(args.preset)).to(args.device, parse_dtype(args.dtype) or torch.float32)
        pipe, name = AudioXPipeline(model), f"{args.preset} (random weights)"
    else:
        pipe = _load_pipeline(args)
        name = pipe.name
    if args.preset and args.compile:
        pipe.compile()
    report = bench_latency(pipe, text=args.prompt, sampler=args.sampler, steps=args.steps,
                           guidance_scale=args.cfg, duration=args.duration, runs=args.runs, warmup=args.warmup,
                           batch_size=args.batch_size, seed=args.seed or 0, model_name=name, progress=True)
    print(report.table())
    if args.json is not None:
        from audiox.infer import media

        media.write_json(args.json, report.to_dict())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="audiox: %(levelname)s: %(message)s")
    handlers = {"generate": cmd_generate, "info": cmd_info, "bench-latency": cmd_bench}
    import av

    user_errors: tuple[type[BaseException], ...] = (CLIError, ValueError, OSError, RuntimeError, av.error.FFmpegError)
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        print("audiox: interrupted", file=sys.stderr)
        return 130
    except user_errors as exc:  # one line, no traceback (--verbose shows it)
        if args.verbose:
            raise
        msg = " ".join(str(exc).split()) or exc.__class__.__name__
        print(f"audiox: error: {msg}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
