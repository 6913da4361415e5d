"""Why a trained model misses its prompts: two measurements on held-out synthetic-world prompts (docs/results.md).

    uv run python scripts/diagnose.py conditioning MODEL [--n 6]    # does the velocity depend on the caption?
    uv run python scripts/diagnose.py text MODEL [--n 6]            # do the encoded captions differ between prompts?
    uv run python scripts/diagnose.py retrieval MODEL [--n 12]      # can the model tell a clip's caption from others?
    uv run python scripts/diagnose.py latent-scale MODEL [--n 6] [--steps N] [--task all]  # generated latents at the data's scale?
    uv run python scripts/diagnose.py decoder-noise MODEL [--n 24]  # does the decoder invent events from near-misses?
    uv run python scripts/diagnose.py teacher-view STUDENT --teacher TEACHER [--n 6]  # does the teacher keep their scale?

``conditioning``: the true latents of held-out category prompts, noised to time ``t`` (``z_t = t z1 + (1 - t) z0``).
It prints, per ``t``, how much the velocity changes when each clip gets another prompt's caption or no condition at
all, and the relative flow error ``|u - v| / |u|`` (``u = z1 - z0``) with the true caption, another caption and
none. A model that uses its text has a clearly lower error with the true caption at large ``t``.

``text``: how far apart the encoded captions of prompts with different sounds are. The mean cosine similarity of
the T5 outputs (mean over each caption's tokens) between prompts, the share of the context's text-token energy in
their common mean direction (1 = every token the same), and the mean cosine of MAF's global (adaLN) vector.

``retrieval``: the model as a diffusion classifier. Each held-out clip's true latents are noised (two draws per
``t``, the same for every caption) and the flow error is computed under each of the ``n`` captions. Per ``t`` and
summed over ``t``: how often the clip's own caption has the lowest error (chance ``1/n``) and its mean rank (chance
``(n - 1) / 2``). A model that uses its text ranks its own caption first far above chance.

``latent-scale``: the mean per-frame norm of generated latents (the model's own sampler and default steps, or
``--steps``) against the true latents of the same prompts, and the level of the clip's last 0.1 s. ``--task``
picks the suite's held-out prompts of one task (t2a, v2a, t2m, inpaint) or ``all`` of them, one row each.

``teacher-view``: MODEL's samples of held-out T2A prompts (and their true latents) noised to ``tau`` and denoised
by TEACHER with the caption, with CFG ``--guidance`` and with none: the frame norm of the teacher's clean estimate
over the sample's. Near 1 at every ``tau``: the teacher takes the samples' scale as plausible, so distribution
matching against it does not pull a too-loud student back.

``decoder-noise``: the true latents plus Gaussian noise (a fraction of their standard deviation), decoded and judged
by the offline T2A-bench judge: Cat/Cnt/Ord/TS-acc and the detected events per clip beyond the truth's.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from audiox.bench.judges.offline import OfflineJudge
from audiox.bench.judges.rules import aggregate
from audiox.bench.suite import inpaint_span
from audiox.core import AudioXModel
from audiox.core.types import ConditionInputs
from audiox.data.synth.prompts import clip_for_prompt, make_t2a_bench
from audiox.distill.dmd import null_drop

TIMES = (0.9, 0.7, 0.5, 0.3, 0.1)


def true_latents(model: AudioXModel, records: list[dict]) -> torch.Tensor:
    """(N, C, T) posterior means of the records' ground-truth renderings."""
    ae = model.autoencoder
    wavs = [torch.as_tensor(clip_for_prompt(r).audio, dtype=torch.float32).reshape(1, 1, -1) for r in records]
    with torch.no_grad():
        return torch.cat([ae.encode(ae.pad_to_hop(w)) for w in wavs])


@torch.no_grad()
def conditioning(model: AudioXModel, records: list[dict], seed: int = 0) -> list[dict]:
    texts = [r["prompt"] for r in records]
    z0 = true_latents(model, records)  # (N, C, T)
    tasks = ["t2a"] * len(texts)
    feats = model.encode_modalities(ConditionInputs(text=texts, task=tasks))
    own = model.fuse(feats)
    other = model.prepare_conditions(ConditionInputs(text=texts[1:] + texts[:1], task=tasks))  # each: the next one's
    null = model.unconditional(feats)
    g = torch.Generator().manual_seed(seed)
    rel = lambda a, b: float((a - b).norm() / a.norm())  # noqa: E731
    rows = []
    for t in TIMES:
        z1 = torch.randn(z0.shape, generator=g)
        zt = t * z1 + (1 - t) * z0
        tt = torch.full((len(texts),), t)
        v_own, v_other, v_null = model(zt, tt, own), model(zt, tt, other), model(zt, tt, null)
        u = z1 - z0
        rows.append({"t": t, "change_other": rel(v_own, v_other), "change_null": rel(v_own, v_null),
                     "err_own": rel(u, v_own), "err_other": rel(u, v_other), "err_null": rel(u, v_null)})
    return rows


@torch.no_grad()
def retrieval(model: AudioXModel, records: list[dict], draws: int = 2, seed: int = 0) -> list[dict]:
    n = len(records)
    texts = [r["prompt"] for r in records]
    z0 = true_latents(model, records)  # (n, C, T)
    conds = [model.prepare_conditions(ConditionInputs(text=[c] * n, task=["t2a"] * n)) for c in texts]
    g = torch.Generator().manual_seed(seed)
    err = torch.zeros(len(TIMES), n, n)  # (t, clip, caption)
    for i, t in enumerate(TIMES):
        for _ in range(draws):
            z1 = torch.randn(z0.shape, generator=g)
            zt, u, tt = t * z1 + (1 - t) * z0, z1 - z0, torch.full((n,), t)
            for j, cond in enumerate(conds):
                err[i, :, j] += (u - model(zt, tt, cond)).pow(2).flatten(1).mean(1)

    def score(e: torch.Tensor) -> tuple[float, float]:  # (clip, caption) -> top-1 %, mean rank of the own caption
        own = e.diagonal()[:, None]
        return 100 * float((e.argmin(1) == torch.arange(n)).float().mean()), float((e < own).sum(1).float().mean())

    rows = [{"t": t, **dict(zip(("top1", "rank"), score(err[i]), strict=True))} for i, t in enumerate(TIMES)]
    rows.append({"t": "all", **dict(zip(("top1", "rank"), score(err.sum(0)), strict=True))})
    return rows


def _mean_offdiag_cos(x: torch.Tensor) -> float:  # (N, D) -> mean cosine over the N (N - 1) ordered pairs
    x = torch.nn.functional.normalize(x.float(), dim=-1)
    c, n = x @ x.T, x.shape[0]
    return float((c.sum() - c.diagonal().sum()) / (n * (n - 1)))


@torch.no_grad()
def text_separation(model: AudioXModel, records: list[dict]) -> dict:
    texts = [r["prompt"] for r in records]
    emb, mask = model.text_encoder(texts)  # (N, L, D_t), (N, L)
    w = mask.to(emb.dtype)[..., None]
    pooled = (emb * w).sum(1) / w.sum(1).clamp(min=1)
    cond = model.prepare_conditions(ConditionInputs(text=texts, task=["t2a"] * len(texts)))
    n = int(mask.sum(1).max())  # H_c starts with the text columns; maf.single_null keeps only the longest caption's
    tokens = cond.context[:, :n][mask[:, :n]].float()  # the text tokens of H_c (M, D)
    shared = float(tokens.mean(0).pow(2).sum() / tokens.pow(2).sum(-1).mean())
    return {"text_cos": _mean_offdiag_cos(pooled), "context_shared": shared,
            "global_cos": _mean_offdiag_cos(cond.global_cond), "tokens_per_caption": float(mask.sum(1).float().mean())}


LATENT_TASKS = ("t2a", "v2a", "t2m", "inpaint")


def task_records(task: str, seed: int, n: int) -> list[dict]:
    """The suite's held-out records of one task (inpainting: the suite's V2A clips of ``seed + 1``)."""
    from audiox.data.synth.prompts import make_t2m_prompts, make_v2a_prompts

    if task == "t2a":
        return make_t2a_bench(seed, n)
    if task == "v2a":
        return make_v2a_prompts(seed, n)
    if task == "t2m":
        return make_t2m_prompts(seed, n)
    if task == "inpaint":
        return make_v2a_prompts(seed + 1, n)
    raise ValueError(f"unknown task {task!r} (known: {', '.join(LATENT_TASKS)})")


def _generate(pipe, task: str, record: dict, steps: int | None, seed: int):
    """One clip of ``record`` as the suite asks for it: the caption, the video, or the audio with a span to fill."""
    if task in ("t2a", "t2m"):
        return pipe(record["prompt"], task=task, steps=steps, seed=seed)
    clip = clip_for_prompt(record)
    if task == "v2a":
        video = torch.from_numpy(clip.frames).permute(0, 3, 1, 2).float() / 255.0  # (F, 3, H, W) in [0, 1]
        return pipe(video=video, task="v2a", steps=steps, seed=seed)
    span = inpaint_span(record, float(pipe.config.duration))
    return pipe(audio=torch.from_numpy(clip.audio)[None], inpaint_spans=[span], task="inpaint", steps=steps, seed=seed)


@torch.no_grad()
def latent_scale(model: AudioXModel, records: list[dict], steps: int | None = None, seed: int = 0,
                 task: str = "t2a") -> dict:
    """Mean frame norm of the clips generated for ``records`` (one ``task``) against their true latents."""
    from audiox.infer import AudioXPipeline

    pipe = AudioXPipeline(model)
    if task == "t2a":  # one batched call (the captions are all there is)
        outs = [pipe([r["prompt"] for r in records], steps=steps, seed=seed)]
    else:
        outs = [_generate(pipe, task, r, steps, seed + i) for i, r in enumerate(records)]
    gen = torch.cat([o.latents.float() for o in outs]).norm(dim=1)  # (N, T) frame norms
    true = true_latents(model, records).norm(dim=1)  # (N, T)
    if task == "inpaint":  # only the frames of the filled span (the rest is the given audio's)
        dur, keep = float(pipe.config.duration), torch.zeros_like(gen, dtype=torch.bool)
        for i, r in enumerate(records):
            a, b = inpaint_span(r, dur)
            keep[i, int(a / dur * gen.shape[-1]): math.ceil(b / dur * gen.shape[-1])] = True
        gen, true = gen[keep], true[keep]
    gen_norm, true_norm = float(gen.mean()), float(true.mean())
    audio = torch.cat([o.audio.float().reshape(-1, o.audio.shape[-1]) for o in outs])
    tail = audio[..., -round(0.1 * outs[0].sample_rate):]
    db = 20 * torch.log10(tail.pow(2).mean(-1).sqrt().clamp_min(1e-6))
    return {"task": task, "sampler": outs[0].sampler, "steps": outs[0].steps, "gen_norm": gen_norm,
            "true_norm": true_norm, "end_db": float(db.median())}


@torch.no_grad()
def teacher_view(teacher: AudioXModel, samples: torch.Tensor, records: list[dict], guidance: float = 6.0,
                 seed: int = 1) -> list[dict]:
    """How the teacher denoises given clean latents ``samples`` (N, C, T) of the T2A ``records``: each is noised to
    ``tau`` and the teacher's clean estimate ``z_tau - tau v`` (with the caption, with CFG ``guidance``, with no
    condition) is compared with it: the ratio of frame norms, 1 = the teacher keeps the sample's scale. This is
    the pull that the DM loss exerts on a student's samples (Eq. 6-10 use the CFG velocity)."""
    texts = [r["prompt"] for r in records]
    feats = teacher.encode_modalities(ConditionInputs(text=texts, task=["t2a"] * len(texts)))
    cond = teacher.fuse(feats)
    ucond = teacher.fuse(feats, null_drop(len(texts), "cpu"))
    norm = lambda z: float(z.norm(dim=1).mean())  # noqa: E731
    rows = []
    for tau in TIMES[::-1]:
        eps = torch.randn(samples.shape, generator=torch.Generator().manual_seed(seed))
        z = tau * eps + (1 - tau) * samples
        t = torch.full((len(texts),), tau)
        v_c, v_u = teacher(z, t, cond), teacher(z, t, ucond)
        v_g = v_u + guidance * (v_c - v_u)
        rows.append({"t": tau, **{k: norm(z - tau * v) / norm(samples) for k, v in (("cond", v_c), ("cfg", v_g),
                                                                                   ("uncond", v_u))}})
    return rows


@torch.no_grad()
def decoder_noise(model: AudioXModel, records: list[dict], sigmas=(0.0, 0.05, 0.1, 0.2), seed: int = 0) -> list[dict]:
    ae, judge = model.autoencoder, OfflineJudge().judge
    z = true_latents(model, records)
    std = float(z.std())
    g = torch.Generator().manual_seed(seed)
    rows = []
    for s in sigmas:
        preds, extra = [], []
        for r, zi in zip(records, z, strict=True):
            wav = ae.decode((zi + s * std * torch.randn(zi.shape, generator=g))[None])[0, 0].numpy()
            res = judge(r, wav, ae.sample_rate)
            preds.append(res["prediction"])
            extra.append(len(res["annotation"]["SED"]) - len(r["spec"]["events"]))
        rows.append({"sigma": s, **aggregate(preds)["overall"], "extra_events_per_clip": float(np.mean(extra))})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["conditioning", "text", "retrieval", "latent-scale", "decoder-noise", "teacher-view"])
    ap.add_argument("model", help="model folder (config.json + model.safetensors)")
    ap.add_argument("--n", type=int, default=None, help="held-out prompts (default: 6 / 24)")
    ap.add_argument("--seed", type=int, default=1234, help="held-out prompt seed (the suite's)")
    ap.add_argument("--steps", type=int, default=None, help="latent-scale: sampling steps (default: the model's)")
    ap.add_argument("--task", default="t2a", choices=[*LATENT_TASKS, "all"],
                    help="latent-scale: the prompts (the suite's held-out ones of that task; default t2a)")
    ap.add_argument("--teacher", default=None, help="teacher-view: the teacher that judges MODEL's samples")
    ap.add_argument("--guidance", type=float, default=6.0, help="teacher-view: the teacher's CFG scale (the DM loss's)")
    args = ap.parse_args(argv)
    model = AudioXModel.from_pretrained(args.model).eval()
    if args.what == "conditioning":
        n = args.n or 6
        recs = [r for r in make_t2a_bench(args.seed, 8 * n) if r["type"] == "category-only"][:n]
        print("| t | velocity change, other caption | velocity change, no condition | flow error, own caption "
              "| flow error, other caption | flow error, no condition |\n|---|---|---|---|---|---|")
        for r in conditioning(model, recs):
            print(f"| {r['t']} | {100 * r['change_other']:.1f} % | {100 * r['change_null']:.1f} % | {r['err_own']:.3f} "
                  f"| {r['err_other']:.3f} | {r['err_null']:.3f} |")
    elif args.what == "text":
        recs = [r for r in make_t2a_bench(args.seed, 8 * (args.n or 6)) if r["type"] == "category-only"][: args.n or 6]
        r = text_separation(model, recs)
        print("| caption cosine (T5, mean-pooled) | shared share of context text tokens | global-vector cosine | tokens per caption |"
              f"\n|---|---|---|---|\n| {r['text_cos']:.3f} | {r['context_shared']:.3f} | {r['global_cos']:.4f} "
              f"| {r['tokens_per_caption']:.1f} |")
    elif args.what == "retrieval":
        n = args.n or 12
        recs = [r for r in make_t2a_bench(args.seed, 8 * n) if r["type"] == "category-only"][:n]
        print(f"| t | own caption ranked first (chance {100 / n:.1f} %) | mean rank of the own caption (chance "
              f"{(n - 1) / 2:.1f}) |\n|---|---|---|")
        for r in retrieval(model, recs):
            print(f"| {r['t']} | {r['top1']:.1f} % | {r['rank']:.1f} |")
    elif args.what == "latent-scale":
        tasks = LATENT_TASKS if args.task == "all" else (args.task,)
        print("| task | sampler | steps | generated frame norm | true frame norm | ratio | last 0.1 s (median dBFS) |\n"
              "|---|---|---|---|---|---|---|")
        for task in tasks:
            r = latent_scale(model, task_records(task, args.seed, args.n or 6), args.steps, task=task)
            print(f"| {task} | {r['sampler']} | {r['steps']} | {r['gen_norm']:.2f} | {r['true_norm']:.2f} "
                  f"| {r['gen_norm'] / r['true_norm']:.2f} | {r['end_db']:.1f} |", flush=True)
    elif args.what == "teacher-view":
        from audiox.infer import AudioXPipeline

        if args.teacher is None:
            ap.error("teacher-view needs --teacher TEACHER (the model whose denoiser judges MODEL's samples)")
        teacher = AudioXModel.from_pretrained(args.teacher).eval()
        recs = make_t2a_bench(args.seed, args.n or 6)
        with torch.no_grad():
            gen = AudioXPipeline(model)([r["prompt"] for r in recs], steps=args.steps, seed=0).latents.float()
        print(f"| samples | frame norm | tau | teacher's clean estimate / sample: caption | CFG {args.guidance:g} "
              "| no condition |\n|---|---|---|---|---|---|")
        for name, z in (("MODEL", gen), ("truth", true_latents(teacher, recs))):
            for r in teacher_view(teacher, z, recs, args.guidance):
                print(f"| {name} | {float(z.norm(dim=1).mean()):.2f} | {r['t']} | {r['cond']:.2f} | {r['cfg']:.2f} "
                      f"| {r['uncond']:.2f} |", flush=True)
    else:
        recs = make_t2a_bench(args.seed, args.n or 24)
        print("| noise (x latent std) | Cat-acc | Cnt-acc | Ord-acc | TS-acc | extra events per clip |\n"
              "|---|---|---|---|---|---|")
        f = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
        for r in decoder_noise(model, recs):
            print(f"| {r['sigma']} | {f(r['cat_acc'])} | {f(r['cnt_acc'])} | {f(r['ord_acc'])} | {f(r['ts_acc'])} "
                  f"| {r['extra_events_per_clip']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
