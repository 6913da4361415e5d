"""Why a trained model misses its prompts: two measurements on held-out synthetic-world prompts (docs/results.md).

    uv run python scripts/diagnose.py conditioning MODEL [--n 6]    # does the velocity depend on the caption?
    uv run python scripts/diagnose.py decoder-noise MODEL [--n 24]  # does the decoder invent events from near-misses?

``conditioning``: the true latents of held-out category prompts, noised to time ``t`` (``z_t = t z1 + (1 - t) z0``).
It prints, per ``t``, how much the velocity changes when each clip gets another prompt's caption or no condition at
all, and the relative flow error ``|u - v| / |u|`` (``u = z1 - z0``) with the true caption, another caption and
none. A model that uses its text has a clearly lower error with the true caption at large ``t``.

``decoder-noise``: the true latents plus Gaussian noise (a fraction of their standard deviation), decoded and judged
by the offline T2A-bench judge: Cat/Cnt/Ord/TS-acc and the detected events per clip beyond the truth's.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from audiox.bench.judges.offline import OfflineJudge
from audiox.bench.judges.rules import aggregate
from audiox.core import AudioXModel
from audiox.core.types import ConditionInputs
from audiox.data.synth.prompts import clip_for_prompt, make_t2a_bench

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
    ap.add_argument("what", choices=["conditioning", "decoder-noise"])
    ap.add_argument("model", help="model folder (config.json + model.safetensors)")
    ap.add_argument("--n", type=int, default=None, help="held-out prompts (default: 6 / 24)")
    ap.add_argument("--seed", type=int, default=1234, help="held-out prompt seed (the suite's)")
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
