"""``audiox-train text-align``: pretrain a model's text encoder contrastively against the audio it describes.

The paper conditions on a frozen, pretrained T5 (Sec. IV-A): its captions arrive already encoded with meaning. A
model trained offline from scratch (the ``mini`` preset) has no such encoder; learned with the diffusion loss
alone, its T5 encodes every caption nearly alike (docs/results.md, "Where the text is lost"). This stage gives it
the missing pretraining from the corpus itself, CLAP-style (Elizalde et al. 2023; Radford et al. 2021):

- text tower: the model's own T5 encoder, mean-pooled over the caption's tokens, then a linear head;
- audio tower: a small transformer over the clip's cached latents ``(C, T)`` with sinusoidal frame positions (so
  order and timing can be encoded), mean-pooled, then a linear head;
- loss: the symmetric InfoNCE of the ``B x B`` cosine similarities scaled by a learned temperature.

Each step draws ``batch_size`` training clips and one caption variant per clip (every kind the annotator wrote:
category, count, order, timestamps, music attributes). Only the T5 weights go back into the model folder; the towers
are scaffolding. Every ``eval_every`` steps (and at the end) it reports text-to-audio retrieval over held-out clips
(R@1, R@10, mean rank), against chance, and the mean cosine between different held-out captions.

Whole-clip captions name several events, and an event of 50 ms (a click) or one that differs from another only in
its pitch contour (a rising chirp against a steady whistle) barely moves a mean-pooled clip embedding. Nothing in
the loss then keeps such words apart, and the T5 may bring them close (measured in session 25 on session 20's 320
steps: "a chirp", "a click" and "a whistle" pooled to centred cosines of 0.78-0.81, and the teacher trained on that
T5 made neither a chirp nor a click). Two options aim at it:

- ``event_crops``: a share of each batch is isolated synthetic-world events (one category per clip, one to
  ``event_max_count`` occurrences, captioned by the corpus's own caption writer), encoded once at the start from a
  seeded bank of ``event_bank`` clips per category. At most one clip per category per batch, so no two of them are
  false negatives of each other.
- the event probe (``event_probe`` held-out clips per category, always on): top-1 accuracy of matching each isolated
  event to the 13 category names, and the closest pair of category names in the pooled T5 output (centred cosine),
  so the table shows whether isolated events can still be told apart by name.

Measured (session 25, 400 steps from that T5, ``--event-crops 0.2``): event top-1 rose from 4 % to 85 %, with or
without the text head, while the closest pair of names stayed at a centred cosine of about 0.8; from a T5 that had
never been aligned (closest pair 0.50) the same run brought click~whistle to 0.81 by step 320 at 88 % event top-1.
So near-parallel pooled names can still be told apart, and a teacher fine-tuned 526 steps on the re-aligned T5 did
not make chirps or clicks more often: event crops are an option to test further, not a proven fix.

The output is the input model folder with the new T5 (every other weight bit for bit), written atomically, with
``text.freeze`` set as asked (frozen by default, as in the paper). Checkpoints under ``--ckpt-dir`` make a crashed
run resume where it stopped.
"""

from __future__ import annotations

import json
import math
import random
import tarfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from audiox.core.layers import timestep_embedding
from audiox.core.model import AudioXModel

__all__ = ["TextAlignConfig", "AudioTower", "ClipPairs", "load_pairs", "event_pairs", "retrieval", "event_retrieval",
           "TextAligner", "text_align"]


@dataclass
class TextAlignConfig:
    steps: int = 2000
    batch_size: int = 64
    lr: float = 3e-4  # towers and T5 alike
    weight_decay: float = 0.01
    warmup: int = 100  # linear warm-up steps, then cosine decay to 10 %
    embed_dim: int = 256
    # False: no text head; the loss compares the pooled T5 output itself (the audio head maps to its width), so the
    # separation the loss asks for is in the features the denoiser reads, not only after a linear map
    text_head: bool = True
    audio_width: int = 256
    audio_depth: int = 2
    audio_heads: int = 4
    audio_patch: int = 2  # latent frames per audio-tower token (2 at 25 fps: 80 ms)
    holdout: int = 256  # held-out clips for retrieval
    eval_every: int = 250
    seed: int = 0
    max_minutes: float = 0.0  # 0 = no time limit; else stop (and save) after this long
    grad_clip: float = 1.0
    event_crops: float = 0.0  # share of each batch replaced by isolated events (at most one per category)
    event_bank: int = 32  # clips per category rendered and encoded at the start for the event crops
    event_max_count: int = 3  # occurrences per event clip, 1 .. this (continuous categories: one)
    event_probe: int = 4  # held-out event clips per category for the event figures (0 = off)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 2:
            raise ValueError(f"text-align needs steps >= 1 and batch_size >= 2, got {self.steps}, {self.batch_size}")
        if self.holdout < 2:
            raise ValueError(f"text-align needs at least 2 held-out clips, got holdout={self.holdout}")
        if self.lr <= 0 or self.audio_width % self.audio_heads:
            raise ValueError(f"text-align: bad lr {self.lr} or audio width {self.audio_width} / heads {self.audio_heads}")
        if not 0 <= self.event_crops < 1:
            raise ValueError(f"text-align: event_crops must be in [0, 1), got {self.event_crops}")
        if (self.event_crops > 0 and self.event_bank < 1) or self.event_max_count < 1 or self.event_probe < 0:
            raise ValueError(f"text-align: bad event_bank {self.event_bank}, event_max_count {self.event_max_count} "
                             f"or event_probe {self.event_probe}")

    def event_share(self, categories: int) -> int:
        """Event clips per batch: ``event_crops`` of the batch, at most one per category, at least one corpus clip."""
        if self.event_crops <= 0:
            return 0
        return max(1, min(round(self.event_crops * self.batch_size), categories, self.batch_size - 1))


# Data ---------------------------------------------------------------------------------------------------------


@dataclass
class ClipPairs:
    keys: list[str]
    captions: list[list[str]]  # every caption variant of each clip
    latents: Tensor  # (N, C, T) cached latents, cropped / zero-padded to the model's length

    def __len__(self) -> int:
        return len(self.keys)

    def subset(self, idx: list[int]) -> ClipPairs:
        return ClipPairs([self.keys[i] for i in idx], [self.captions[i] for i in idx], self.latents[idx])


def load_pairs(shards: str | Path, tag: str, length: int) -> ClipPairs:
    """Every captioned clip of the shards under ``shards`` with its cached latents (``audiox-train encode-latents``
    with the same model: ``tag``). Every shard needs its latents sidecar (a brace pattern such as
    ``data/synth-{000000..000027}.tar`` picks a cached subset); clips without captions or latents are skipped."""
    from audiox.data.latents import load_sidecar
    from audiox.data.shards import list_shards
    from audiox.data.tokenizer import annotation_captions

    urls = list_shards(str(shards))
    if not urls:
        raise FileNotFoundError(f"{shards}: no shards")
    keys, caps, lats = [], [], []
    for url in urls:
        cached = load_sidecar(url, tag)
        with tarfile.open(url) as tf:
            for m in tf:
                if not m.name.endswith(".json"):
                    continue
                key = m.name[: -len(".json")]
                try:
                    ann = json.load(tf.extractfile(m))
                except json.JSONDecodeError:
                    continue
                texts = list(dict.fromkeys(annotation_captions(ann)))  # distinct variants, ``caption`` first
                if not texts or key not in cached:
                    continue
                z = cached[key][:, :length]
                if z.shape[1] < length:
                    z = F.pad(z, (0, length - z.shape[1]))
                keys.append(key)
                caps.append(texts)
                lats.append(z)
    if not keys:
        raise ValueError(f"{shards}: no captioned clip with cached latents (tag {tag})")
    return ClipPairs(keys, caps, torch.stack(lats))


def event_pairs(model: AudioXModel, per_category: int, seed: int, max_count: int = 1, chunk: int = 16) -> ClipPairs:
    """Isolated synthetic-world events: ``per_category`` clips of each category (keys ``"name/j"``, category-major),
    each holding 1 .. ``max_count`` occurrences of it (continuous categories: one) in silence, one per equal slot of
    the clip at a random offset, with every caption the corpus's caption writer gives such a clip, and the latents of
    the model's own autoencoder (posterior means, as the cache holds). Seeded: the same call gives the same pairs."""
    from audiox.data.synth.captions import audio_captions
    from audiox.data.synth.events import EVENT_NAMES, EVENTS

    ae = model.autoencoder
    sr, n, length = ae.sample_rate, model.config.num_samples, model.config.latent_length
    rng = np.random.default_rng([seed, 0xE7E7])
    keys, caps, wavs = [], [], []
    for name in EVENT_NAMES:
        cat = EVENTS[name]
        for j in range(per_category):
            count = 1 if cat.continuous else int(rng.integers(1, max_count + 1))
            x, events, slot = np.zeros(n, np.float32), [], n // count
            for i in range(count):
                m = max(1, int(min(rng.uniform(*cat.duration), 0.9 * slot / sr) * sr))
                off = i * slot + int(rng.integers(0, slot - m + 1))
                x[off:off + m] += cat.render(rng, m, sr)
                events.append({"name": name, "onset": off / sr, "offset": (off + m) / sr})
            written = audio_captions({name: None if cat.continuous else count}, events, name, rng)
            keys.append(f"{name}/{j}")
            caps.append(list(dict.fromkeys(t for variants in written.values() for t in variants)))
            wavs.append(np.clip(x, -1, 1))
    wav = torch.from_numpy(np.stack(wavs))[:, None].expand(-1, model.config.autoencoder.audio_channels, -1)
    p = next(ae.parameters())
    with torch.no_grad():
        z = torch.cat([ae.encode(ae.pad_to_hop(wav[i:i + chunk].to(p.device, p.dtype))).float().cpu()
                       for i in range(0, len(wav), chunk)])  # (N, C, T)
    z = F.pad(z[:, :, :length], (0, max(0, length - z.shape[2])))
    return ClipPairs(keys, caps, z)


def category_name_caption(name: str) -> str:
    """The probe's caption of one category: its first noun as a sentence ("A chirp.")."""
    from audiox.data.synth.events import EVENTS

    noun = EVENTS[name].nouns[0]
    return noun[:1].upper() + noun[1:] + "."


@torch.no_grad()
def event_retrieval(aligner: TextAligner, probe: ClipPairs) -> dict:
    """Each isolated event matched against every category's name (``category_name_caption``): top-1 accuracy and its
    chance; and the two category names whose pooled T5 outputs are closest (cosine after removing the mean over the
    categories: what tells one name from another), with that cosine."""
    names = list(dict.fromkeys(k.split("/")[0] for k in probe.keys))
    was = aligner.training
    aligner.eval()
    pooled = aligner.pooled_text([category_name_caption(n) for n in names])  # (K, D_t)
    t = F.normalize(aligner.text_head(pooled), dim=-1)
    a = aligner.embed_audio(probe.latents.to(t.device))  # (N, E)
    truth = torch.tensor([names.index(k.split("/")[0]) for k in probe.keys], device=t.device)
    top1 = float(((a @ t.T).argmax(1) == truth).float().mean())
    c = F.normalize(pooled - pooled.mean(0, keepdim=True), dim=-1)
    cos = (c @ c.T).fill_diagonal_(-2.0)
    i, j = divmod(int(cos.argmax()), len(names))
    aligner.train(was)
    return {"event_top1": top1, "event_chance": 1 / len(names), "closest": f"{names[i]}~{names[j]}",
            "closest_cosine": float(cos[i, j])}


# Towers -------------------------------------------------------------------------------------------------------


class AudioTower(nn.Module):
    """Latents (B, C, T) -> embedding (B, E): patches of ``patch`` frames in, sinusoidal positions, pre-norm
    transformer, mean."""

    def __init__(self, channels: int, length: int, width: int, depth: int, heads: int, embed_dim: int,
                 patch: int = 1) -> None:
        super().__init__()
        self.patch = patch
        self.inp = nn.Linear(channels * patch, width)
        n = -(-length // patch)  # tokens per clip; sinusoidal positions 0 .. n - 1
        self.register_buffer("pos", timestep_embedding(torch.arange(n), width, time_factor=1.0), persistent=False)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.body = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, embed_dim)

    def forward(self, z: Tensor) -> Tensor:
        z = F.pad(z, (0, -z.shape[2] % self.patch))
        x = rearrange(z, "b c (n p) -> b n (p c)", p=self.patch)  # (B, T / p, p C)
        x = self.inp(x) + self.pos[: x.shape[1]]  # (B, N, W)
        return self.head(self.norm(self.body(x)).mean(1))  # (B, E)


class TextAligner(nn.Module):
    """The model's text encoder plus the scaffolding of the contrastive objective."""

    def __init__(self, model: AudioXModel, cfg: TextAlignConfig) -> None:
        super().__init__()
        self.text = model.text_encoder
        self.text.freeze_(False)
        dim = cfg.embed_dim if cfg.text_head else self.text.out_dim
        self.text_head = nn.Linear(self.text.out_dim, dim) if cfg.text_head else nn.Identity()
        ae = model.config.autoencoder
        self.audio = AudioTower(ae.latent_dim, model.config.latent_length, cfg.audio_width, cfg.audio_depth,
                                cfg.audio_heads, dim, cfg.audio_patch)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def pooled_text(self, texts: list[str]) -> Tensor:
        """(B, D_t): the T5 outputs averaged over each caption's tokens. Padded to the longest caption of the batch,
        not to ``max_length``: the valid tokens' outputs are the same (T5 masks its padding), at a fraction of the
        cost."""
        ids, mask = self.text.tokenize(texts)
        n = max(1, int(mask.sum(1).max()))
        dev = self.text.t5.shared.weight.device
        ids, mask = ids[:, :n].to(dev), mask[:, :n].to(dev)
        emb = self.text.t5(input_ids=ids, attention_mask=mask.long()).last_hidden_state  # (B, n, D_t)
        w = mask.to(emb.dtype)[..., None]
        return (emb * w).sum(1) / w.sum(1).clamp(min=1.0)

    def embed_text(self, texts: list[str]) -> Tensor:  # (B, E), unit norm
        return F.normalize(self.text_head(self.pooled_text(texts)), dim=-1)

    def embed_audio(self, z: Tensor) -> Tensor:  # (B, E), unit norm
        return F.normalize(self.audio(z), dim=-1)

    def loss(self, texts: list[str], z: Tensor) -> Tensor:
        logits = self.logit_scale.exp().clamp(max=100.0) * self.embed_text(texts) @ self.embed_audio(z).T  # (B, B)
        target = torch.arange(len(texts), device=logits.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


@torch.no_grad()
def retrieval(aligner: TextAligner, pairs: ClipPairs, chunk: int = 128) -> dict[str, float]:
    """Text-to-audio retrieval over ``pairs`` with each clip's first caption: R@1, R@10, mean rank (1 = best), their
    chance levels, and the mean cosine of the pooled T5 outputs between different clips' captions. Clips with the
    same caption (one click each, say) cannot all be told apart: R@1 tops out below 100 %."""
    was = aligner.training
    aligner.eval()
    texts = [c[0] for c in pairs.captions]
    pooled = torch.cat([aligner.pooled_text(texts[i:i + chunk]) for i in range(0, len(texts), chunk)])  # (N, D_t)
    t = F.normalize(aligner.text_head(pooled), dim=-1)  # = embed_text, without pooling the captions twice
    a = torch.cat([aligner.embed_audio(pairs.latents[i:i + chunk].to(t.device)) for i in range(0, len(pairs), chunk)])
    sim = t @ a.T  # (N, N)
    ranks = (sim > sim.diag()[:, None]).sum(1) + 1  # 1 = the own clip first
    raw = F.normalize(pooled[:chunk], dim=-1)  # caption separation of the raw T5 output
    cos = raw @ raw.T
    n, m = len(pairs), raw.shape[0]
    aligner.train(was)
    return {
        "clips": n,
        "r1": float((ranks == 1).float().mean()),
        "r10": float((ranks <= 10).float().mean()),
        "mean_rank": float(ranks.float().mean()),
        "chance_r1": 1 / n,
        "chance_r10": min(10, n) / n,
        "chance_rank": (n + 1) / 2,
        "caption_cosine": float((cos.sum() - cos.diag().sum()) / (m * (m - 1))),
    }


def _lr_factor(step: int, cfg: TextAlignConfig) -> float:
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    p = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(p, 1.0)))


_HEADER = "| step | R@1 % (chance) | R@10 % (chance) | mean rank (chance) | caption cosine |"
_EVENT_HEADER = " event top-1 % (chance) | closest category names (cosine) |"


def _table_row(step: int, r: dict) -> str:
    row = (f"| {step} | {100 * r['r1']:.1f} ({100 * r['chance_r1']:.1f}) | {100 * r['r10']:.1f} "
           f"({100 * r['chance_r10']:.1f}) | {r['mean_rank']:.1f} ({r['chance_rank']:.1f}) | {r['caption_cosine']:.3f} |")
    if "event_top1" in r:
        row += (f" {100 * r['event_top1']:.1f} ({100 * r['event_chance']:.1f}) | {r['closest']} "
                f"({r['closest_cosine']:.2f}) |")
    return row


def text_align(model_dir: str | Path, shards: str | Path, out: str | Path, cfg: TextAlignConfig,
               *, freeze: bool = True, device: str = "cpu", ckpt_dir: str | Path | None = None) -> dict:
    """Run the stage; returns the last retrieval figures (and writes the model folder ``out``)."""
    from audiox.train.checkpoint import (CheckpointManager, capture_rng, flatten_optimizer_state, restore_rng,
                                         unflatten_optimizer_state)
    from audiox.train.latents import latent_tag

    torch.manual_seed(cfg.seed)
    model = AudioXModel.from_pretrained(model_dir, dtype=torch.float32)
    pairs = load_pairs(shards, latent_tag(model), model.config.latent_length)
    if len(pairs) < cfg.holdout + cfg.batch_size:
        raise ValueError(f"{shards}: {len(pairs)} captioned clips, need holdout {cfg.holdout} + batch {cfg.batch_size}")
    order = np.random.default_rng(cfg.seed).permutation(len(pairs)).tolist()
    held, train = pairs.subset(order[: cfg.holdout]), pairs.subset(order[cfg.holdout:])
    probe = event_pairs(model, cfg.event_probe, cfg.seed + 1) if cfg.event_probe else None
    bank = event_pairs(model, cfg.event_bank, cfg.seed, cfg.event_max_count) if cfg.event_crops > 0 else None
    per_cat = cfg.event_bank
    n_cats = len(bank) // per_cat if bank is not None else 0  # the bank is category-major
    n_events = cfg.event_share(n_cats)
    aligner = TextAligner(model, cfg).to(device)

    def evaluate() -> dict:
        r = retrieval(aligner, held)
        return {**r, **event_retrieval(aligner, probe)} if probe is not None else r
    opt = torch.optim.AdamW(aligner.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, cfg))
    gen = torch.Generator().manual_seed(cfg.seed)
    pyrng = random.Random(cfg.seed)

    step, first = 0, None
    ckpt = CheckpointManager(ckpt_dir, keep_last=1) if ckpt_dir else None
    if ckpt is not None and ckpt.latest() is not None:
        tensors, state = CheckpointManager.load(ckpt.latest())
        aligner.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        opt.load_state_dict(unflatten_optimizer_state(tensors, state["optim"]))
        sched.load_state_dict(state["sched"])
        restore_rng(tensors, state["rng"], {"data": gen})
        version, internal, gauss = state["pyrng"]
        pyrng.setstate((version, tuple(internal), gauss))
        step = int(state["step"])
        first = state["first"]
        print(f"resumed text-align at step {step} from {ckpt.latest()}")

    def save_ckpt() -> None:
        if ckpt is None:
            return
        ot, oskel = flatten_optimizer_state(opt.state_dict())
        rt, rmeta = capture_rng({"data": gen})
        tensors = {**{f"model.{k}": v for k, v in aligner.state_dict().items()}, **ot, **rt}
        tensors = {k: v.clone() if k.startswith("model.") else v for k, v in tensors.items()}  # tied T5 embedding
        ckpt.save(step, tensors, {"optim": oskel, "sched": sched.state_dict(), "rng": rmeta,
                                  "pyrng": list(pyrng.getstate()), "first": first, "config": asdict(cfg)})

    if bank is not None:
        print(f"event crops: {n_events} of each batch of {cfg.batch_size}, from {len(bank)} encoded isolated events")
    print(_HEADER + (_EVENT_HEADER if probe is not None else ""))
    print("|---" * (5 + 2 * (probe is not None)) + "|")
    if first is None:
        first = evaluate()
        print(_table_row(0, first), flush=True)
    t0 = time.monotonic()
    aligner.train()
    while step < cfg.steps:
        idx = torch.randperm(len(train), generator=gen)[: cfg.batch_size - n_events].tolist()
        texts = [pyrng.choice(train.captions[i]) for i in idx]
        z = train.latents[idx]  # (B - k, C, T)
        if n_events:  # k distinct categories, one bank clip of each
            cats = torch.randperm(n_cats, generator=gen)[:n_events]
            rows = (cats * per_cat + torch.randint(per_cat, (n_events,), generator=gen)).tolist()
            texts += [pyrng.choice(bank.captions[i]) for i in rows]
            z = torch.cat([z, bank.latents[rows]])
        loss = aligner.loss(texts, z.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(aligner.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        step += 1
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"text-align: loss {loss.item()} at step {step}")
        out_of_time = cfg.max_minutes > 0 and time.monotonic() - t0 > 60 * cfg.max_minutes
        if step % cfg.eval_every == 0 or step == cfg.steps or out_of_time:
            r = evaluate()
            print(_table_row(step, r) + f" loss {loss.item():.3f}", flush=True)
            save_ckpt()
        if out_of_time:
            break
    last = evaluate()
    model.config.text.freeze = freeze
    model.text_encoder.freeze_(freeze)
    model.save_pretrained(out)
    _card(Path(model_dir), Path(out), shards, cfg, step, first, last, freeze)
    print(f"wrote {out}: T5 after {step} steps (text.freeze={str(freeze).lower()}); held-out R@1 "
          f"{100 * first['r1']:.1f} % -> {100 * last['r1']:.1f} % (chance {100 * last['chance_r1']:.1f} %)"
          f"{_event_note(cfg, first, last)}")
    return last


def _card(model_dir: Path, out: Path, shards, cfg: TextAlignConfig, step: int, first: dict, last: dict,
          freeze: bool) -> None:
    """The source's ``MODEL_CARD.md`` (when it has one) plus a line on this stage, written atomically into ``out``."""
    card = model_dir / "MODEL_CARD.md"
    if not card.is_file():
        return
    line = (f"- text encoder pretrained contrastively by `audiox-train text-align` on {shards} ({step} steps, batch "
            f"{cfg.batch_size}, seed {cfg.seed}): held-out text-to-audio R@1 {100 * first['r1']:.1f} % -> "
            f"{100 * last['r1']:.1f} % over {last['clips']} clips (chance {100 * last['chance_r1']:.1f} %); "
            f"text.freeze={str(freeze).lower()}{_event_note(cfg, first, last)}\n")
    tmp = out / "MODEL_CARD.md.tmp"
    tmp.write_text(card.read_text().rstrip("\n") + "\n" + line)
    tmp.replace(out / "MODEL_CARD.md")


def _event_note(cfg: TextAlignConfig, first: dict, last: dict) -> str:
    note = f"; event crops {cfg.event_crops:g} of each batch" if cfg.event_crops > 0 else ""
    note += "" if cfg.text_head else "; no text head"
    if "event_top1" in last and "event_top1" in first:
        note += (f"; isolated events matched to their category name {100 * first['event_top1']:.1f} % -> "
                 f"{100 * last['event_top1']:.1f} % (chance {100 * last['event_chance']:.1f} %), closest names "
                 f"{last['closest']} (cosine {last['closest_cosine']:.2f})")
    return note


def text_align_main(argv: list[str]) -> int:
    import argparse

    from audiox.train.engine import resolve_device

    d = TextAlignConfig()
    p = argparse.ArgumentParser(
        prog="audiox-train text-align",
        description="Pretrain a model's T5 text encoder contrastively against the cached latents of the clips its "
        "captions describe (CLAP-style), and write the model folder with that encoder.",
    )
    p.add_argument("model", help="model folder (its autoencoder's cached latents must sit beside the shards)")
    p.add_argument("shards", help="folder of shards with cached latents (audiox-train encode-latents)")
    p.add_argument("--out", required=True, help="output model folder (written atomically)")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--holdout", type=int, default=d.holdout, help="held-out clips for the retrieval figures")
    p.add_argument("--eval-every", type=int, default=d.eval_every)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--max-minutes", type=float, default=d.max_minutes, help="stop (and save) after this long")
    p.add_argument("--event-crops", type=float, default=d.event_crops,
                   help="share of each batch replaced by isolated synthetic-world events (one per category at most)")
    p.add_argument("--event-bank", type=int, default=d.event_bank, help="encoded event clips per category")
    p.add_argument("--event-max-count", type=int, default=d.event_max_count, help="occurrences per event clip, 1 .. N")
    p.add_argument("--event-probe", type=int, default=d.event_probe,
                   help="held-out event clips per category for the event columns (0 = off)")
    p.add_argument("--no-text-head", action="store_true",
                   help="compare the pooled T5 output itself with the audio embedding (no linear text head)")
    p.add_argument("--no-freeze", action="store_true", help="leave the text encoder trainable in the output config")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    p.add_argument("--ckpt-dir", default=None, help="checkpoint folder: a rerun resumes from it")
    a = p.parse_args(argv)
    cfg = TextAlignConfig(steps=a.steps, batch_size=a.batch_size, lr=a.lr, holdout=a.holdout,
                          eval_every=a.eval_every, seed=a.seed, max_minutes=a.max_minutes, event_crops=a.event_crops,
                          event_bank=a.event_bank, event_max_count=a.event_max_count, event_probe=a.event_probe,
                          text_head=not a.no_text_head)
    text_align(a.model, a.shards, a.out, cfg, freeze=not a.no_freeze, device=str(resolve_device(a.device)),
               ckpt_dir=a.ckpt_dir)
    return 0
