"""The honest proof on a known distribution: teacher@4 (Euler+CFG), teacher@50 (Euler+CFG), student@4.

A flow-matching teacher (with label dropout for CFG) is trained on a class-conditional mixture of Gaussians,
then distilled with this package's DistillTrainer (the same code path as AudioXModel) into a 4-step student.
Samples are scored against the true distribution: per-class energy distance (lower is better), mode coverage
and precision. Also compares the update ratios (paper 5 student : 1 fake vs DMD2 1 student : 5 fake).

    uv run python packages/audiox-distill/scripts/toy_proof.py --quick --compare-ratios   # ~3 CPU minutes
    uv run python packages/audiox-distill/scripts/toy_proof.py --fast          # what the test runs (~50 s)

Defaults (see docs/distillation.md for why): CFG 1.0 (the toy teacher is near exact, so any scale > 1 moves the
distillation target away from the true distribution: teacher@50 energy 0.049 at CFG 3 vs 0.012 at CFG 1, floor
0.016), DMD2's 1 student : 5 fake updates, DM loss only (the GAN term made every toy run worse).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from audiox.distill.config import get_distill_config
from audiox.distill.pairs import make_pairs
from audiox.distill.toy import (
    GaussianMixture, ToySource, energy_distance, euler_cfg, mmd_rbf, mode_coverage, train_toy_teacher, turbo_sample,
)
from audiox.distill.trainer import DistillTrainer


def score(samples: torch.Tensor, labels: torch.Tensor, mix: GaussianMixture, seed: int = 123) -> dict[str, float]:
    g = torch.Generator().manual_seed(seed)
    ed, mmd = [], []
    for c in range(mix.num_classes):
        sel = labels == c
        ref = mix.sample(labels[sel], g)
        ed.append(energy_distance(samples[sel], ref))
        mmd.append(mmd_rbf(samples[sel], ref, 2 * mix.std))
    cov, prec = mode_coverage(samples, labels, mix)
    n = mix.num_classes
    return {"energy": sum(ed) / n, "mmd": sum(mmd) / n, "coverage": cov, "precision": prec,
            "mode_share_err": mode_share_error(samples, labels, mix)}


def mode_share_error(samples: torch.Tensor, labels: torch.Tensor, mix: GaussianMixture) -> float:
    """Per-class mode coverage as a number: max over (class, mode) of |share of the class's samples nearest that
    mode - 1/modes| (0 = every mode gets its fair share; 1/modes = a mode is missed entirely)."""
    mu = mix.means()
    idx = (samples.flatten(1).float()[:, None, :] - mu[labels]).norm(dim=-1).argmin(-1)
    err = 0.0
    for c in range(mix.num_classes):
        if not bool((labels == c).any()):
            continue
        share = torch.bincount(idx[labels == c], minlength=mix.modes).float() / int((labels == c).sum())
        err = max(err, float((share - 1.0 / mix.modes).abs().max()))
    return err


def distill(teacher, mix, *, steps: int, student_updates: int, fake_updates: int, guidance: float, lr: float,
            batch: int, gan: bool, seed: int = 0, overrides: tuple[str, ...] = (),
            pairs: int = 32) -> tuple[DistillTrainer, float]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = get_distill_config("debug", [
            "device=cpu", f"max_steps={steps}", f"checkpoint.dir={tmp}", f"checkpoint.every={steps}",
            f"dmd.student_updates={student_updates}", f"dmd.fake_updates={fake_updates}",
            f"dmd.guidance_scale={guidance}", f"optim.lr={lr}", "optim.weight_decay=0.0", f"data.batch_size={batch}",
            f"gan.enabled={gan}", "gan.num_blocks=2", "gan.head_hidden=64", "ema.decay=0.95", f"seed={seed}",
            "log.every=1000000", f"regression.pairs={tmp}/pairs", *overrides,  # teacher@50 pairs, made below
        ])
        if cfg.regression.weight > 0 and cfg.regression.pairs == f"{tmp}/pairs":  # DMD's regression term
            make_pairs(teacher, ToySource(mix, batch, seed=seed + 100), lambda b: b, cfg.regression.pairs, pairs,
                       steps=50, guidance=guidance, seed=seed)
        tr = DistillTrainer(cfg, teacher, ToySource(mix, batch, seed=seed), prepare=lambda b: b)
        t0 = time.perf_counter()
        tr.fit()
        rate = steps / (time.perf_counter() - t0)
        tr.ema.copy_to(tr.student)
        tr.student.eval()
    return tr, rate


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the small version (teacher 1200 steps, 300 updates)")
    ap.add_argument("--fast", action="store_true", help="the fast-test version (teacher 600 steps, 300 updates, ~50 s)")
    ap.add_argument("--guidance", type=float, default=1.0, help="teacher CFG, also inside the DM loss")
    ap.add_argument("--compare-ratios", action="store_true", help="also run 1:1 and the paper's 5:1")
    ap.add_argument("--gan", action="store_true", help="add the diffusion-discriminator term (Eq. 13-15)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a distill config override for every student, e.g. gan.match_rms=true (repeatable)")
    ap.add_argument("--pairs", type=int, default=32,
                    help="with --set regression.weight=W: batches of teacher@50 pairs made for DMD's regression term")
    ap.add_argument("--teacher-cache", default="", help="reuse/save the toy teacher's weights (safetensors)")
    ap.add_argument("--steps", type=int, default=0, help="distillation steps (default: 300 quick, 600 full)")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--ratio", default="", help="student:fake, e.g. 5:1 (default DMD2's 1:5; --compare-ratios adds 1:1, 5:1)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    mix = GaussianMixture()
    t_steps, d_steps, width, depth = (600, 300, 64, 3) if args.fast else (1200, 300, 64, 3) if args.quick else (4000, 600, 128, 4)
    per_class, batch = (300, 64) if args.fast else (600, 128)
    t0 = time.perf_counter()
    if args.steps:
        d_steps = args.steps
    import os

    from safetensors.torch import load_file, save_file

    from audiox.distill.toy import ToyVelocity

    if args.teacher_cache and os.path.exists(args.teacher_cache):
        teacher = ToyVelocity(mix.num_classes, width=width, depth=depth)
        teacher.load_state_dict(load_file(args.teacher_cache))
        teacher.eval().requires_grad_(False)
    else:
        teacher = train_toy_teacher(mix, steps=t_steps, batch=256, width=width, depth=depth)
        if args.teacher_cache:
            save_file(teacher.state_dict(), args.teacher_cache)
    print(f"teacher trained in {time.perf_counter() - t0:.1f}s")
    labels = torch.arange(mix.num_classes).repeat_interleave(per_class)
    g = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    res = {
        "teacher@4": score(euler_cfg(teacher, labels, 4, args.guidance, g()), labels, mix),
        "teacher@50": score(euler_cfg(teacher, labels, 50, args.guidance, g()), labels, mix),
    }
    first = tuple(int(x) for x in args.ratio.split(":")) if args.ratio else (1, 5)
    ratios = [first] + ([r for r in ((1, 1), (5, 1)) if r != first] if args.compare_ratios else [])
    for s_up, f_up in ratios:
        tr, rate = distill(teacher, mix, steps=d_steps, student_updates=s_up, fake_updates=f_up, guidance=args.guidance,
                           lr=args.lr, batch=batch, gan=args.gan, overrides=tuple(args.set), pairs=args.pairs)
        if tr.cfg.guided.weight > 0:  # a guided student samples like its teacher: Euler on T_N, but without CFG
            out = score(euler_cfg(tr.student, labels, tr.cfg.dmd.steps, 1.0, g()), labels, mix)
        else:
            out = score(turbo_sample(tr.student, labels, tr.grid.cpu(), g()), labels, mix)
        out["iters_per_s"] = rate
        res[f"student@4 ({s_up} student : {f_up} fake)"] = out
    for name, r in res.items():
        print(f"{name:32s} " + "  ".join(f"{k}={v:.4f}" for k, v in r.items()))
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
