"""Reference vs generated folders -> KL (softmax, sigmoid), IS, FD (PANNs), FAD (VGGish), the per-clip
Audiobox Aesthetics scores PC / PQ / CE / CU (means over clips, each side) and, with a folder of the conditioning
videos, the ImageBind AV score, and with captions the CLAP score (LAION-CLAP text-audio cosine): docs/metrics.md.

Ids are file stems. Paired metrics (KL) need the same ids on both sides (else reported as null, with the
reason, like audioldm_eval's unpaired mode); IS uses the generated side only; FD / FAD are distribution-level;
the aesthetics scores are per clip, averaged over each folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from audiox.bench.embeddings import Cnn14, Cnn14Config, VGGish, VGGishConfig
from audiox.bench.embeddings.aesthetics import AXES, AudioboxAesthetics, tiny_aesthetics
from audiox.bench.embeddings.clap import ClapScorer, tiny_clap
from audiox.bench.embeddings.imagebind import ImageBindAV, ImageBindConfig
from audiox.bench.io import atomic_write_text, load_captions, read_wav, write_json
from audiox.bench.metrics import frechet_distance_from_embeddings, inception_score, kl_sigmoid, kl_softmax, paired_cosine_score

__all__ = ["EmbeddingSet", "embed_folder", "aesthetics_folder", "aesthetics_summary", "clap_folder", "imagebind_av_score",
           "read_video", "compute_metrics", "evaluate_folders", "tiny_cnn14", "tiny_vggish", "tiny_imagebind"]

AUDIO_EXT = (".wav", ".flac", ".ogg")
VIDEO_EXT = (".mp4", ".mov", ".mkv", ".webm", ".avi")


def tiny_cnn14() -> Cnn14:
    """A small random CNN14 (same front end and topology, narrow channels): plumbing checks only."""
    torch.manual_seed(0)
    return Cnn14(Cnn14Config(channels=(8, 8, 16, 16, 32, 32)))


def tiny_vggish() -> VGGish:
    torch.manual_seed(0)
    return VGGish(VGGishConfig(widths=(4, 8, 8, 16), hidden=64))


def tiny_imagebind() -> ImageBindAV:
    torch.manual_seed(0)
    return ImageBindAV(ImageBindConfig(embed_dim=16, audio_width=32, audio_depth=1, audio_heads=2, vision_width=32,
                                       vision_depth=1, vision_heads=2, image_size=28, patch=14))


class EmbeddingSet(dict):
    """id -> {"logits": (527,), "panns": (2048,), "vggish": (N, 128)}"""


def _files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder: {folder}")
    files = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in AUDIO_EXT}
    if not files:
        raise ValueError(f"{folder}: no audio files ({', '.join(AUDIO_EXT)})")
    return files


def embed_folder(folder: str | Path, panns: Cnn14, vggish: VGGish, progress: bool = True) -> EmbeddingSet:
    out = EmbeddingSet()
    for key, path in tqdm(_files(Path(folder)).items(), desc=f"embed {Path(folder).name}", disable=not progress):
        wav, sr = read_wav(path)
        p = panns.embed(wav, sr)
        out[key] = {"logits": p.logits[0].double().cpu().numpy(), "panns": p.embedding[0].double().cpu().numpy(),
                    "vggish": vggish.embed(wav, sr).double().cpu().numpy()}
    return out


def aesthetics_folder(folder: str | Path, model: AudioboxAesthetics, progress: bool = True) -> dict[str, dict[str, float]]:
    """id -> {"CE", "CU", "PC", "PQ"} for every clip of a folder."""
    out = {}
    for key, path in tqdm(_files(Path(folder)).items(), desc=f"aesthetics {Path(folder).name}", disable=not progress):
        wav, sr = read_wav(path)
        out[key] = model.score(wav, sr)
    return out


def clap_folder(folder: str | Path, scorer: ClapScorer, texts: dict[str, str], progress: bool = True) -> dict:
    """CLAP score of a folder against its captions, paired by id: ``{"score": mean cosine, "per_clip": id -> cosine}``.
    Every clip needs a caption (a missing one is an error, not a skipped clip)."""
    files = _files(Path(folder))
    missing = sorted(set(files) - set(texts))
    if missing:
        raise ValueError(f"{folder}: no caption for {len(missing)} clip(s), e.g. {missing[:3]}")
    clips = {k: read_wav(p) for k, p in tqdm(files.items(), desc=f"clap {Path(folder).name}", disable=not progress)}
    audio, text = scorer.audio_embeddings(clips), scorer.text_embeddings({k: texts[k] for k in files})
    per = {k: float(audio[k] @ text[k] / (np.linalg.norm(audio[k]) * np.linalg.norm(text[k]))) for k in files}
    return {"score": paired_cosine_score(audio, text), "per_clip": per}


def read_video(path: str | Path, model: ImageBindAV) -> tuple[torch.Tensor, float]:
    """Decode every frame (PyAV), shorter side scaled to the model's size as ImageBind's ShortSideScale (kept as
    float16 to bound memory) -> ``(F, 3, H, W)`` and the stream's average frame rate (frame i shown at i / fps)."""
    import av

    frames, fps = [], 0.0
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise ValueError(f"{path}: no video stream")
            stream = c.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            for f in c.decode(stream):
                x = torch.from_numpy(f.to_ndarray(format="rgb24")).permute(2, 0, 1)[None].float() / 255.0
                frames.append(model.scale_short_side(x.to(model.img_mean.device), "bilinear").half())
    except av.error.FFmpegError as e:
        raise ValueError(f"cannot read video {path}: {e}") from None
    if not frames or fps <= 0:
        raise ValueError(f"{path}: no frames or no frame rate")
    return torch.cat(frames), fps


def imagebind_av_score(audio: str | Path, video: str | Path, model: ImageBindAV, progress: bool = True) -> dict:
    """Mean ImageBind cosine between each clip of ``audio`` and the video of the same id in ``video``."""
    wavs = _files(Path(audio))
    vids = {p.stem: p for p in sorted(Path(video).iterdir()) if p.suffix.lower() in VIDEO_EXT}
    if set(wavs) != set(vids):
        raise ValueError(f"{video}: video ids do not match {audio} (missing videos {sorted(set(wavs) - set(vids))[:3]}, "
                         f"extra videos {sorted(set(vids) - set(wavs))[:3]})")
    a_emb, v_emb = {}, {}
    for key in tqdm(sorted(wavs), desc=f"imagebind {Path(audio).name}", disable=not progress):
        wav, sr = read_wav(wavs[key])
        frames, fps = read_video(vids[key], model)
        a_emb[key] = model.embed_audio(wav, sr).double().cpu().numpy()
        v_emb[key] = model.embed_video(frames, fps).double().cpu().numpy()
    return {"score": paired_cosine_score(a_emb, v_emb),
            "per_clip": {k: float(a_emb[k] @ v_emb[k]) for k in sorted(a_emb)}}


def aesthetics_summary(per_clip: dict[str, dict[str, float]]) -> dict[str, float]:
    """Per-axis mean over clips (the paper's PC / PQ columns; CE / CU alongside)."""
    return {a: float(np.mean([v[a] for v in per_clip.values()], dtype=np.float64)) for a in AXES}


def compute_metrics(ref: EmbeddingSet, gen: EmbeddingSet, is_splits: int = 10) -> dict:
    res: dict = {"n_ref": len(ref), "n_gen": len(gen)}
    if set(ref) == set(gen):
        res["kl_softmax"] = kl_softmax({k: v["logits"] for k, v in ref.items()}, {k: v["logits"] for k, v in gen.items()})
        res["kl_sigmoid"] = kl_sigmoid({k: v["logits"] for k, v in ref.items()}, {k: v["logits"] for k, v in gen.items()})
    else:
        res["kl_softmax"] = res["kl_sigmoid"] = None
        res["kl_note"] = "unpaired: reference and generated ids differ"
    logits = np.stack([v["logits"] for v in gen.values()])
    splits = min(is_splits, len(logits))
    res["is_mean"], res["is_std"] = inception_score(logits, splits=splits)
    res["is_splits"] = splits
    res["fd_panns"] = frechet_distance_from_embeddings(np.stack([v["panns"] for v in ref.values()]),
                                                       np.stack([v["panns"] for v in gen.values()]))
    res["fad_vggish"] = frechet_distance_from_embeddings(np.concatenate([v["vggish"] for v in ref.values()]),
                                                         np.concatenate([v["vggish"] for v in gen.values()]))
    return res


def metrics_table(res: dict, label: str = "generated") -> str:
    f = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    aes = res.get("aesthetics") or {}
    gen, ref = aes.get("generated", {}), aes.get("reference", {})
    ib = res.get("imagebind") or {}
    clap = res.get("clap") or {}
    cols = " | ".join(f(gen.get(a)) for a in ("PC", "PQ", "CE", "CU"))
    rows = ("| Method | KL ↓ | KL-sig ↓ | IS ↑ | FD ↓ | FAD ↓ | PC | PQ ↑ | CE ↑ | CU ↑ | IB ↑ | CLAP ↑ |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
            f"| {label} | {f(res['kl_softmax'])} | {f(res['kl_sigmoid'])} | {f(res['is_mean'])} | "
            f"{f(res['fd_panns'])} | {f(res['fad_vggish'])} | {cols} | {f(ib.get('generated'))} | {f(clap.get('generated'))} |")
    if ref or ib.get("reference") is not None or clap.get("reference") is not None:
        rows += ("\n| reference | - | - | - | - | - | " + " | ".join(f(ref.get(a)) for a in ("PC", "PQ", "CE", "CU"))
                 + f" | {f(ib.get('reference'))} | {f(clap.get('reference'))} |")
    return rows


def evaluate_folders(ref: Path, gen: Path, out: Path, *, panns: Path | None = None, vggish: Path | None = None,
                     aesthetics: Path | None = None, imagebind: Path | None = None, video: Path | None = None,
                     clap: Path | None = None, captions: Path | None = None, tiny: bool = False,
                     progress: bool = True) -> dict:
    """``captions``: a JSON / JSON-lines file of ``{"id", "prompt"}`` records (a T2A-bench prompt file works) for the
    CLAP score with ``clap`` (an HF-format LAION-CLAP folder; a random tiny CLAP with ``tiny``). ``aesthetics``: the published Audiobox Aesthetics folder / safetensors file (PC / PQ / CE / CU); without it the
    aesthetics columns are computed only with ``tiny`` (random, uncalibrated), else left out. ``video``: the
    conditioning videos, one per generated clip (same ids), for the ImageBind AV score with ``imagebind`` weights
    (converted ``imagebind_huge``; random tiny towers with ``tiny``)."""
    if video is not None and not Path(video).is_dir():
        raise FileNotFoundError(f"no such video folder: {video}")
    if video is not None and imagebind is None and not tiny:
        raise ValueError("--video needs --imagebind (the converted imagebind_huge weights) or --tiny")
    if imagebind is not None and video is None:
        raise ValueError("--imagebind needs --video (a folder of the conditioning videos, ids = generated file stems)")
    if video is not None:  # pairing checked before any network runs
        vid_ids, gen_ids = {p.stem for p in Path(video).iterdir() if p.suffix.lower() in VIDEO_EXT}, set(_files(Path(gen)))
        if vid_ids != gen_ids:
            raise ValueError(f"{video}: video ids do not match {gen} (missing videos {sorted(gen_ids - vid_ids)[:3]}, "
                             f"extra videos {sorted(vid_ids - gen_ids)[:3]})")
    if clap is not None and captions is None:
        raise ValueError("--clap needs --captions (the prompt of every generated clip, paired by id)")
    texts = load_captions(captions) if captions is not None else None
    if texts is not None:  # pairing checked before any network runs
        missing = sorted(set(_files(Path(gen))) - set(texts))
        if missing:
            raise ValueError(f"{captions}: no caption for generated clip(s) {missing[:3]}")
        if clap is None and not tiny:
            raise ValueError("--captions needs --clap (an HF-format LAION-CLAP folder) or --tiny")
    c_net = None if texts is None else (ClapScorer.from_pretrained(str(clap)) if clap is not None else tiny_clap())
    a_net = AudioboxAesthetics.from_pretrained(aesthetics) if aesthetics is not None else (tiny_aesthetics() if tiny else None)
    i_net = None if video is None else (ImageBindAV.from_pretrained(imagebind) if imagebind is not None else tiny_imagebind())
    p_net = tiny_cnn14() if tiny else Cnn14()
    v_net = tiny_vggish() if tiny else VGGish()
    if panns is not None:
        p_net.load_weights(panns)
    if vggish is not None:
        v_net.load_weights(vggish)
    res = compute_metrics(embed_folder(ref, p_net, v_net, progress), embed_folder(gen, p_net, v_net, progress))
    res["weights"] = {"panns": str(panns) if panns else "random", "vggish": str(vggish) if vggish else "random",
                      "aesthetics": str(aesthetics) if aesthetics else ("random" if a_net is not None else "not computed"),
                      "imagebind": str(imagebind) if imagebind else ("random" if i_net is not None else "not computed"),
                      "clap": str(clap) if clap else ("random" if c_net is not None else "not computed")}
    if c_net is not None:
        cg = clap_folder(gen, c_net, texts, progress)
        res["clap"] = {"generated": cg["score"], "per_clip": {"generated": cg["per_clip"]}}
        if not set(_files(Path(ref))) - set(texts):  # captioned reference clips: the ceiling to compare with
            cr = clap_folder(ref, c_net, texts, progress)
            res["clap"]["reference"], res["clap"]["per_clip"]["reference"] = cr["score"], cr["per_clip"]
    if i_net is not None:
        av_gen = imagebind_av_score(gen, video, i_net, progress)
        res["imagebind"] = {"generated": av_gen["score"], "per_clip": {"generated": av_gen["per_clip"]}}
        if set(_files(Path(ref))) == vid_ids:  # the reference audio of the same videos: the ceiling to compare with
            av_ref = imagebind_av_score(ref, video, i_net, progress)
            res["imagebind"]["reference"] = av_ref["score"]
            res["imagebind"]["per_clip"]["reference"] = av_ref["per_clip"]
    if a_net is not None:
        per_gen, per_ref = aesthetics_folder(gen, a_net, progress), aesthetics_folder(ref, a_net, progress)
        res["aesthetics"] = {"generated": aesthetics_summary(per_gen), "reference": aesthetics_summary(per_ref),
                             "per_clip": {"generated": per_gen, "reference": per_ref}}
    table = metrics_table(res, Path(gen).name)
    if panns is None or vggish is None or (a_net is not None and aesthetics is None) or (i_net is not None and imagebind is None) or (c_net is not None and clap is None):
        table += "\n\nWARNING: random embedding weights (plumbing only; numbers are not comparable to the literature).\n"
    if a_net is None:
        table += "\nPC / PQ / CE / CU not computed: pass --aesthetics (the published Audiobox Aesthetics weights).\n"
    write_json(Path(out) / "results.json", res)
    atomic_write_text(Path(out) / "table.md", table + "\n")
    print(table)
    return res
