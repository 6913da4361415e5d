"""``audiox-bench``: T2A-bench with judges, judge validation, metrics and efficiency; writes a results folder.

    audiox-bench judge-validate --n 200 --out results/judge            # offline judge on ground truth
    audiox-bench judge-validate --task t2m --n 200 --out results/judge-t2m   # also --task v2a
    audiox-bench t2a --model path/to/model --setting euler:50:6 --setting turbo:4 --n 40 --out results/t2a
    audiox-bench efficiency --model path/to/model --setting euler:50:6 --setting turbo:4 --out results/eff
    audiox-bench run --model debug --n 8 --setting euler:4:3 --setting turbo:2 --out results/run
    audiox-bench compare --a results/old@student-4 --b results/new@student-4 --out results/cmp   # paired test
    audiox-bench metrics --ref ref_wavs/ --gen gen_wavs/ --out results/metrics [--panns cnn14.safetensors
                 --vggish vggish.safetensors --aesthetics audiobox-aesthetics/]

Every command writes ``results.json``, ``table.md`` and plots into ``--out`` (atomically, file by file).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["main", "build_parser"]


def _add_common(p: argparse.ArgumentParser, model: bool = True) -> None:
    p.add_argument("--out", required=True, type=Path, help="results folder (created)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    if model:
        p.add_argument("--model", default=None,
                       help="model folder (config.json + model.safetensors), or a preset name for random weights "
                            "(e.g. debug; plumbing checks only); repeat via --model a --model b in efficiency",
                       action="append")
        p.add_argument("--device", default="cpu")
        p.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16 (default: the model's)")
        p.add_argument("--setting", action="append", default=None,
                       help="[label=]sampler[:steps[:cfg]], e.g. base=euler:50:6 or turbo=turbo:4; repeatable")


def _add_prompts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prompts", type=Path, default=None,
                   help="T2A-bench prompt file (JSON list or JSON lines); default: the synthetic world's set")
    p.add_argument("--n", type=int, default=None, help="use the first N prompts (balanced over the 4 types)")
    p.add_argument("--seed", type=int, default=0, help="prompt-set seed (synthetic) and generation seed")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="audiox-bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("judge-validate", help="score a judge on ground-truth renderings (needs >= 98%% per attribute)")
    _add_common(p, model=False)
    _add_prompts(p)
    p.add_argument("--task", default="t2a", choices=["t2a", "v2a", "t2m"],
                   help="t2a: the offline T2A-bench judge (Cat/Cnt/Ord/TS-acc); v2a: the V2A judge (event presence "
                        "and alignment); t2m: the T2M judge (tempo, instrument, mode)")
    p.set_defaults(seed=1234)  # the suite's held-out prompt seed (the training corpora use seeds 0..)
    for name, helptext in (("t2a", "generate T2A-bench prompts with a model and judge them"),
                           ("run", "t2a plus efficiency for every setting; quality-vs-NFE plot")):
        p = sub.add_parser(name, help=helptext)
        _add_common(p)
        _add_prompts(p)
        p.add_argument("--judge", default="offline", choices=["offline", "gemini", "openai"],
                       help="offline: deterministic synthetic-world judge; gemini/openai: two-step MLLM judge "
                            "(key from GEMINI_API_KEY / OPENAI_API_KEY)")
        p.add_argument("--judge-model", default=None)
        p.add_argument("--judge-url", default=None, help="backend base URL (OpenAI-compatible servers)")
        p.add_argument("--aesthetics", type=Path, default=None,
                       help="Audiobox Aesthetics weights (HF folder or .safetensors with config.json beside it): "
                            "adds PC / PQ / CE / CU of the generated clips per setting")
        p.add_argument("--clap", type=Path, default=None,
                       help="LAION-CLAP in HF format: adds the CLAP score (clip vs its prompt) per setting")
        p.add_argument("--runs", type=int, default=3, help="(run) timed runs per setting")
        p.add_argument("--warmup", type=int, default=1, help="(run) warm-up runs per setting")
    p = sub.add_parser("efficiency", help="NFE / latency / RTF / peak memory of models and settings, with ratios")
    _add_common(p)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--duration", type=float, default=None)
    p = sub.add_parser("suite", help="every task family (T2A, V2A, T2M, inpainting, completion) and efficiency "
                                     "for several models and settings in one run (Tables II/III)")
    p.add_argument("--out", required=True, type=Path, help="results folder (created)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--model", action="append", required=True, metavar="NAME=PATH",
                   help="a model: a folder, 'default' / 'default-teacher' (the bundled ones) or a preset name for "
                        "random weights (plumbing only); repeatable")
    p.add_argument("--setting", action="append", required=True, metavar="LABEL=MODEL@SAMPLER:STEPS[:CFG]",
                   help="e.g. teacher-50=teacher@euler:50:6 or student-4=student@turbo:4; repeatable")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default=None)
    for task, n in (("t2a", 40), ("v2a", 16), ("t2m", 16), ("inpaint", 8), ("complete", 8)):
        p.add_argument(f"--n-{task}", type=int, default=n, help=f"held-out {task} clips (default {n}; 0 skips)")
    p.add_argument("--inpaint-guide", action="append", default=None, choices=("A", "A+T", "A+V", "A+T+V"),
                   help="judge inpainting with the audio alone (A, the default), plus the clip's caption (A+T), its "
                        "video (A+V) or both, as the paper's Table A.6; repeatable, one row each")
    p.add_argument("--seed", type=int, default=1234, help="held-out prompt seed and generation seed")
    p.add_argument("--runs", type=int, default=3, help="timed runs per setting")
    p.add_argument("--warmup", type=int, default=1, help="warm-up runs per setting")
    p.add_argument("--markdown", type=Path, default=None, help="also write a self-contained page here (docs/results.md)")
    p.add_argument("--paired-ref", default=None, metavar="LABEL",
                   help="compare every other setting with this one clip by clip (differences, 95%% CIs, exact p); "
                        "default: the last setting when there are several; 'none' turns it off")
    p = sub.add_parser("compare", help="paired comparison of two settings judged on the same held-out prompts: "
                                       "T2A accuracy and V2A differences, 95%% CIs and exact p-values")
    p.add_argument("--out", required=True, type=Path, help="results folder (created)")
    p.add_argument("--a", action="append", required=True, metavar="FOLDER[@LABEL]",
                   help="side A: a suite / t2a results folder and its setting label (optional when it holds one); "
                        "repeat --a/--b to pool several prompt sets, the i-th --a paired with the i-th --b")
    p.add_argument("--b", action="append", required=True, metavar="FOLDER[@LABEL]", help="side B, as --a")
    p.add_argument("--name-a", default=None, help="side A's name in the table (default: its first label)")
    p.add_argument("--name-b", default=None, help="side B's name in the table (default: its first label)")
    p = sub.add_parser("metrics", help="KL / IS / FD / FAD / PC / PQ / ImageBind AV between a reference and a "
                                       "generated folder")
    _add_common(p, model=False)
    p.add_argument("--ref", type=Path, required=True, help="reference WAV folder (ids = file stems)")
    p.add_argument("--gen", type=Path, required=True, help="generated WAV folder (same ids for paired metrics)")
    p.add_argument("--panns", type=Path, default=None, help="CNN14 weights (.safetensors); random if omitted")
    p.add_argument("--vggish", type=Path, default=None, help="VGGish weights (.safetensors); random if omitted")
    p.add_argument("--aesthetics", type=Path, default=None,
                   help="Audiobox Aesthetics weights: the HF folder facebook/audiobox-aesthetics (model.safetensors + "
                        "config.json) or a .safetensors file with config.json beside it; adds PC / PQ / CE / CU")
    p.add_argument("--video", type=Path, default=None,
                   help="folder of the conditioning videos (ids = generated file stems) for the ImageBind AV score")
    p.add_argument("--imagebind", type=Path, default=None,
                   help="imagebind_huge converted to .safetensors (docs/metrics.md); needs --video")
    p.add_argument("--clap", type=Path, default=None,
                   help="LAION-CLAP in HF format (e.g. laion/larger_clap_general downloaded beforehand); needs --captions")
    p.add_argument("--captions", type=Path, default=None,
                   help="JSON / JSON lines of {id, prompt} records (a T2A-bench prompt file works) for the CLAP score")
    p.add_argument("--tiny", action="store_true", help="small random networks (plumbing checks only)")
    return ap


class CLIError(Exception):
    pass


def _records(args) -> list[dict]:
    from audiox.bench.io import load_prompts

    if args.prompts is not None:
        if not args.prompts.is_file():
            raise CLIError(f"no such prompt file: {args.prompts}")
        recs = load_prompts(args.prompts)
    else:
        from audiox.data.synth.prompts import make_t2a_bench

        recs = make_t2a_bench(args.seed, args.n or 2000)
    if args.n is not None:
        if args.n < 1:
            raise CLIError("--n must be >= 1")
        recs = recs[: args.n]
    return recs


def _pipes(args) -> dict:
    import torch

    from audiox.core import PRESETS, AudioXModel, get_config
    from audiox.infer import AudioXPipeline

    out = {}
    for m in args.model or ["debug"]:
        if Path(m).is_dir():
            out[Path(m).name] = AudioXPipeline.from_pretrained(m, device=args.device, dtype=args.dtype)
        elif m in PRESETS:
            torch.manual_seed(0)
            out[m] = AudioXPipeline(AudioXModel(get_config(m)).to(args.device), name=f"{m} (random weights)")
        else:
            raise CLIError(f"--model {m!r} is neither a model folder nor a preset ({', '.join(PRESETS)})")
    return out


def _settings(args):
    from audiox.bench.efficiency import Setting, parse_setting

    try:
        return [parse_setting(s) for s in args.setting] if args.setting else [Setting("default")]
    except ValueError as e:
        raise CLIError(str(e)) from None


def _judge(args):
    if args.judge == "offline":
        from audiox.bench.judges.offline import OfflineJudge

        return OfflineJudge().judge
    from audiox.bench.judges.mllm import GeminiBackend, MLLMJudge, OpenAICompatibleBackend

    kw = {k: v for k, v in (("model", args.judge_model), ("base_url", args.judge_url)) if v}
    backend = GeminiBackend(**kw) if args.judge == "gemini" else OpenAICompatibleBackend(**kw)
    return MLLMJudge(backend).judge


def cmd_judge_validate(args) -> None:
    from audiox.bench.io import atomic_write_text, write_json
    from audiox.bench.judges.offline import OfflineJudge
    from audiox.bench.report import accuracy_table, plot_accuracy_bars

    if args.task != "t2a":
        _judge_validate_av_music(args)
        return
    recs = _records(args)
    if any("spec" not in r for r in recs):
        raise CLIError("judge-validate needs records with a ground-truth 'spec' (the synthetic world's prompt files)")
    from audiox.bench.t2a import judge_validate

    res = judge_validate(OfflineJudge().judge, recs, progress=not args.no_progress)
    rows = [{"label": f"ground truth ({t})", "accuracy": {"overall": res["accuracy"][t]}}
            for t in res["accuracy"] if t != "overall"]
    rows.append({"label": "ground truth (all)", "accuracy": {"overall": res["accuracy"]["overall"]}})
    how = "measured" if res["clips"] >= 2000 else "extrapolated linearly"
    table = accuracy_table(rows) + (f"\n\nJudging time: {res['judge_seconds']:.1f} s wall, {res['judge_cpu_seconds']:.1f} s CPU "
                                    f"for {res['clips']} clips ({res['seconds_per_2000_clips']:.0f} s wall per 2,000 clips, "
                                    f"{how}; rendering excluded).\n")
    write_json(args.out / "judgments.json", res.pop("judgments"))
    write_json(args.out / "results.json", res)
    atomic_write_text(args.out / "table.md", table)
    plot_accuracy_bars(rows[-1:], args.out / "accuracy_bars.png")
    print(table)


def _judge_validate_av_music(args) -> None:
    """judge-validate --task v2a | t2m: the held-out V2A / T2M prompts of ``--seed`` (or ``--prompts``)."""
    from audiox.bench.io import atomic_write_text, load_prompts, write_json
    from audiox.bench.judges.validate import validate_t2m, validate_v2a, validity_table

    if args.n is not None and args.n < 1:
        raise CLIError("--n must be >= 1")
    if args.prompts is not None:
        if not args.prompts.is_file():
            raise CLIError(f"no such prompt file: {args.prompts}")
        recs = load_prompts(args.prompts)[: args.n]
    else:
        from audiox.data.synth.prompts import make_t2m_prompts, make_v2a_prompts

        recs = (make_v2a_prompts if args.task == "v2a" else make_t2m_prompts)(args.seed, args.n or 200)
    need = "events" if args.task == "v2a" else "music"
    if not recs or any(not (r.get("spec") or {}).get(need) for r in recs):
        raise CLIError(f"judge-validate --task {args.task} needs records with a ground-truth 'spec' holding {need} "
                       f"(the synthetic world's {args.task} prompt files)")
    res = (validate_v2a if args.task == "v2a" else validate_t2m)(recs, progress=not args.no_progress)
    table = validity_table(res) + "\n"
    judgments = res.pop("judgments")
    res["seed"] = None if args.prompts is not None else args.seed
    write_json(args.out / "judgments.json", judgments)
    write_json(args.out / "results.json", res)
    atomic_write_text(args.out / "table.md", table)
    print(table)


def cmd_t2a(args, with_efficiency: bool = False) -> None:
    from audiox.bench.io import atomic_write_text, write_json
    from audiox.bench.report import accuracy_table, plot_accuracy_bars, plot_quality_vs_nfe
    from audiox.bench.t2a import run_t2a

    aes = None
    if args.aesthetics is not None:
        from audiox.bench.embeddings.aesthetics import AudioboxAesthetics

        aes = AudioboxAesthetics.from_pretrained(args.aesthetics)  # fail before generating
    clap = None
    if args.clap is not None:
        from audiox.bench.embeddings.clap import ClapScorer

        clap = ClapScorer.from_pretrained(str(args.clap))  # fail before generating
    recs, pipes, settings, judge = _records(args), _pipes(args), _settings(args), _judge(args)
    results = []
    for name, pipe in pipes.items():
        for s in settings:
            label = s.label if len(pipes) == 1 else f"{name}/{s.label}"
            r = run_t2a(pipe, recs, args.out, judge, label=label.replace("/", "_"), sampler=s.sampler, steps=s.steps,
                        guidance_scale=s.guidance_scale, seed=args.seed, progress=not args.no_progress)
            r["label"] = label
            if aes is not None:
                from audiox.bench.evaluate import aesthetics_folder, aesthetics_summary

                per = aesthetics_folder(args.out / "audio" / label.replace("/", "_"), aes, progress=not args.no_progress)
                r["aesthetics"] = aesthetics_summary(per)
                write_json(args.out / f"aesthetics_{label.replace('/', '_')}.json", per)
            if clap is not None:
                from audiox.bench.evaluate import clap_folder

                c = clap_folder(args.out / "audio" / label.replace("/", "_"), clap,
                                {x["id"]: x["prompt"] for x in recs}, progress=not args.no_progress)
                r["clap"] = c["score"]
                write_json(args.out / f"clap_{label.replace('/', '_')}.json", c["per_clip"])
            results.append(r)
    out = {"prompts": len(recs), "judge": args.judge, "runs": results}
    table = accuracy_table(results)
    if aes is not None:
        table += "\n\n| Method | NFE | PC | PQ ↑ | CE ↑ | CU ↑ |\n|---|---|---|---|---|---|\n" + "\n".join(
            f"| {r['label']} | {r['nfe']} | " + " | ".join(f"{r['aesthetics'][a]:.2f}" for a in ("PC", "PQ", "CE", "CU")) + " |"
            for r in results)
    if clap is not None:
        table += "\n\n| Method | NFE | CLAP ↑ |\n|---|---|---|\n" + "\n".join(
            f"| {r['label']} | {r['nfe']} | {r['clap']:.3f} |" for r in results)
    if with_efficiency:
        from audiox.bench.efficiency import compare_efficiency, efficiency_table

        rows = compare_efficiency(pipes, settings, runs=args.runs, warmup=args.warmup, progress=not args.no_progress)
        out["efficiency"] = rows
        table += "\n\n" + efficiency_table(rows)
    points = []
    for r in results:
        vals = [v for k, v in r["accuracy"]["overall"].items() if k != "n" and v is not None]
        points.append({"label": r["label"], "nfe": r["nfe"], "quality": sum(vals) / len(vals)})
    out["quality_vs_nfe"] = points
    write_json(args.out / "results.json", out)
    atomic_write_text(args.out / "table.md", table + "\n")
    plot_accuracy_bars(results, args.out / "accuracy_bars.png")
    plot_quality_vs_nfe(points, args.out / "quality_vs_nfe.png")
    print(table)


def cmd_efficiency(args) -> None:
    from audiox.bench.efficiency import compare_efficiency, efficiency_table
    from audiox.bench.io import atomic_write_text, write_json

    pipes, settings = _pipes(args), _settings(args)
    rows = compare_efficiency(pipes, settings, runs=args.runs, warmup=args.warmup, duration=args.duration,
                              progress=not args.no_progress)
    table = efficiency_table(rows)
    write_json(args.out / "results.json", {"efficiency": rows})
    atomic_write_text(args.out / "table.md", table + "\n")
    print(table)


def cmd_metrics(args) -> None:
    from audiox.bench.evaluate import evaluate_folders

    evaluate_folders(args.ref, args.gen, args.out, panns=args.panns, vggish=args.vggish, aesthetics=args.aesthetics,
                     imagebind=args.imagebind, video=args.video, clap=args.clap, captions=args.captions, tiny=args.tiny,
                     progress=not args.no_progress)


def cmd_suite(args) -> None:
    import torch

    from audiox.bench.io import atomic_write_text, write_json
    from audiox.bench.suite import (parse_suite_setting, provenance, run_suite, suite_markdown, suite_plots,
                                    suite_tables)
    from audiox.core import PRESETS, AudioXModel, get_config
    from audiox.infer import AudioXPipeline
    from audiox.infer.defaults import BUNDLED_MODELS, bundled_model

    for task in ("t2a", "v2a", "t2m", "inpaint", "complete"):
        if getattr(args, f"n_{task}") < 0:
            raise CLIError(f"--n-{task} must be >= 0")
    if args.runs < 1 or args.warmup < 0:
        raise CLIError("--runs must be >= 1 and --warmup >= 0")
    pipes, where, folders = {}, {}, {}
    for spec in args.model:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise CLIError(f"--model {spec!r}: expected NAME=PATH")
        if path in BUNDLED_MODELS:
            folder = bundled_model(path)
            if folder is None:
                raise CLIError(f"the bundled model {path!r} is not installed")
            path = str(folder)
        if Path(path).is_dir():
            pipes[name] = AudioXPipeline.from_pretrained(path, device=args.device, dtype=args.dtype)
        elif path in PRESETS:
            torch.manual_seed(0)
            pipes[name] = AudioXPipeline(AudioXModel(get_config(path)).to(args.device), name=f"{path} (random weights)")
        else:
            raise CLIError(f"--model {spec!r}: {path!r} is neither a model folder nor a preset ({', '.join(PRESETS)})")
        where[name] = spec.partition("=")[2]
        folders[name] = path
    settings = [parse_suite_setting(s) for s in args.setting]
    paired_ref = args.paired_ref if args.paired_ref != "none" else None
    if args.paired_ref is None and len(settings) > 1:
        paired_ref = settings[-1].label
    t0 = time.perf_counter()
    prov = provenance(folders)  # before the run: the commit and weights that were measured
    res = run_suite(pipes, settings, n_t2a=args.n_t2a, n_v2a=args.n_v2a, n_t2m=args.n_t2m, n_inpaint=args.n_inpaint,
                    n_complete=args.n_complete, seed=args.seed, runs=args.runs, warmup=args.warmup,
                    progress=not args.no_progress, paired_ref=paired_ref,
                    inpaint_guides=tuple(args.inpaint_guide or ("A",)))
    res["counts"] = {t: getattr(args, f"n_{t}") for t in ("t2a", "v2a", "t2m", "inpaint", "complete")}
    res["provenance"] = prov
    table = suite_tables(res)
    write_json(args.out / "judgments.json", res.pop("judgments"))  # per T2A clip: the prompt, its judgment, the events
    write_json(args.out / "v2a_judgments.json", res.pop("v2a_judgments"))  # per V2A clip: its events, false alarms
    write_json(args.out / "results.json", res)
    atomic_write_text(args.out / "table.md", table + "\n")
    suite_plots(res, args.out)
    if args.markdown is not None:
        atomic_write_text(args.markdown, suite_markdown(res, where, time.perf_counter() - t0))
    print(table)


def cmd_compare(args) -> None:
    from audiox.bench.compare import (compare_pairs, compare_table, compare_v2a, load_judgments, load_v2a, pair_rows,
                                      pair_v2a, split_spec)
    from audiox.bench.io import atomic_write_text, write_json

    if len(args.a) != len(args.b):
        raise CLIError(f"{len(args.a)} --a for {len(args.b)} --b: give them in pairs")
    pairs, v2a, sides = [], [], []
    for i, (sa, sb) in enumerate(zip(args.a, args.b, strict=True)):
        (la, ra), (lb, rb) = load_judgments(sa), load_judgments(sb)
        where = f"pair {i + 1} ({sa} vs {sb}): "
        pairs.append(pair_rows(ra, rb, where=where))
        sides.append({"a": sa, "b": sb, "label_a": la, "label_b": lb, "clips": len(pairs[-1]),
                      "unpaired": [len(ra) - len(pairs[-1]), len(rb) - len(pairs[-1])]})
        va, vb = load_v2a(f"{split_spec(sa)[0]}@{la}"), load_v2a(f"{split_spec(sb)[0]}@{lb}")
        if va is not None and vb is not None:
            v2a.append(pair_v2a(va, vb, where=where))
            sides[-1]["v2a_clips"] = len(v2a[-1])
    name_a, name_b = args.name_a or sides[0]["label_a"], args.name_b or sides[0]["label_b"]
    stats = compare_pairs(pairs)
    if v2a:  # pooled over the pairs that have V2A judgments on both sides
        stats.update(compare_v2a(v2a))
    table = compare_table(stats, name_a, name_b)
    write_json(args.out / "results.json", {"a": name_a, "b": name_b, "pairs": sides, "metrics": stats})
    atomic_write_text(args.out / "table.md", table + "\n")
    for s in sides:
        if any(s["unpaired"]):
            print(f"note: {s['a']} vs {s['b']}: {s['unpaired'][0]} / {s['unpaired'][1]} clips had no partner",
                  file=sys.stderr)
    print(table)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    try:
        if args.cmd == "judge-validate":
            cmd_judge_validate(args)
        elif args.cmd == "t2a":
            cmd_t2a(args)
        elif args.cmd == "run":
            cmd_t2a(args, with_efficiency=True)
        elif args.cmd == "efficiency":
            cmd_efficiency(args)
        elif args.cmd == "metrics":
            cmd_metrics(args)
        elif args.cmd == "suite":
            cmd_suite(args)
        elif args.cmd == "compare":
            cmd_compare(args)
    except (CLIError, ValueError, FileNotFoundError) as e:
        print(f"audiox-bench: error: {e}", file=sys.stderr)
        return 2
    print(f"results in {args.out} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
