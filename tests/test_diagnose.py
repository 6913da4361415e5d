"""scripts/diagnose.py: the conditioning and decoder-noise measurements on a small random model."""

import math

import torch

from audiox.core import AudioXModel, get_config
from audiox.data.synth.prompts import make_t2a_bench


def _model(*overrides: str) -> AudioXModel:
    torch.manual_seed(0)
    model = AudioXModel(get_config("debug", ["autoencoder.sample_rate=16000", *overrides])).eval()
    with torch.no_grad():  # a fresh DiT's zero-initialized gates and output give v = 0: open them, as training does
        for p in [*model.dit.parameters(), *model.maf.parameters()]:
            p.add_(0.05 * torch.randn_like(p))
    return model


def test_conditioning_sees_a_caption_change_and_none_when_captions_agree(recipe_tool):
    diag = recipe_tool("scripts/diagnose")
    model = _model()
    recs = [r for r in make_t2a_bench(5, 16) if r["type"] == "category-only"][:3]
    rows = diag.conditioning(model, recs)
    assert [r["t"] for r in rows] == list(diag.TIMES)
    assert all(math.isfinite(v) and v >= 0 for r in rows for v in r.values())
    assert all(r["change_null"] > 0 for r in rows)  # dropping every condition changes the velocity
    # the same caption for every clip: "another prompt's caption" is the clip's own, so nothing may change
    same = [dict(r, prompt=recs[0]["prompt"]) for r in recs]
    for r in diag.conditioning(model, same):
        assert r["change_other"] == 0.0 and r["err_own"] == r["err_other"]


def test_decoder_noise_judges_each_noise_level(recipe_tool):
    diag = recipe_tool("scripts/diagnose")
    recs = make_t2a_bench(5, 4)
    rows = diag.decoder_noise(_model(), recs, sigmas=(0.0, 0.5))
    assert [r["sigma"] for r in rows] == [0.0, 0.5] and all(r["n"] == 4 for r in rows)
    assert all(0 <= r["cat_acc"] <= 100 and math.isfinite(r["extra_events_per_clip"]) for r in rows)


def test_text_separation_reads_the_encoded_captions(recipe_tool):
    diag = recipe_tool("scripts/diagnose")
    model = _model()
    recs = [r for r in make_t2a_bench(5, 16) if r["type"] == "category-only"][:3]
    r = diag.text_separation(model, recs)
    assert -1 <= r["text_cos"] < 1 and 0 < r["context_shared"] <= 1 and -1 <= r["global_cos"] <= 1
    same = diag.text_separation(model, [dict(x, prompt=recs[0]["prompt"]) for x in recs])
    assert math.isclose(same["text_cos"], 1.0, abs_tol=1e-5) and math.isclose(same["global_cos"], 1.0, abs_tol=1e-5)
    assert same["context_shared"] > r["context_shared"]  # the same caption three times shares more
    model.maf.cfg.single_null = True  # a shorter H_c (unattended columns dropped), the same text tokens in it
    short = diag.text_separation(model, recs)
    assert short["text_cos"] == r["text_cos"] and math.isclose(short["context_shared"], r["context_shared"], rel_tol=1e-4)


def test_latent_scale_compares_generated_and_true_latents(recipe_tool):
    diag = recipe_tool("scripts/diagnose")
    model = _model()
    r = diag.latent_scale(model, make_t2a_bench(5, 2), steps=2)
    assert r["steps"] == 2 and r["gen_norm"] > 0 and r["true_norm"] > 0 and math.isfinite(r["end_db"])


def test_retrieval_ranks_captions_per_clip(recipe_tool):
    diag = recipe_tool("scripts/diagnose")
    model = _model()
    recs = [r for r in make_t2a_bench(5, 24) if r["type"] == "category-only"][:3]
    rows = diag.retrieval(model, recs, draws=1)
    assert [r["t"] for r in rows] == [*diag.TIMES, "all"]
    assert all(0 <= r["top1"] <= 100 and 0 <= r["rank"] <= 2 for r in rows)
    # one caption for every clip: all errors tie, so no other caption is strictly better than the own one
    same = [dict(r, prompt=recs[0]["prompt"]) for r in recs]
    assert all(r["rank"] == 0 for r in diag.retrieval(model, same, draws=1))


def test_latent_scale_runs_every_task(recipe_tool):
    diag = recipe_tool("scripts/diagnose")
    model = _model("duration=10")  # the suite's clips are 10 s: an inpainting span may start after 1 s
    rows = {}
    for task in diag.LATENT_TASKS:
        rows[task] = diag.latent_scale(model, diag.task_records(task, 5, 1), steps=1, task=task)
        assert rows[task]["task"] == task and rows[task]["steps"] == 1, rows[task]
        assert rows[task]["gen_norm"] > 0 and rows[task]["true_norm"] > 0, rows[task]
    # inpainting is measured over the filled span alone, whose truth differs from the whole clip's
    assert rows["inpaint"]["true_norm"] != diag.latent_scale(model, diag.task_records("inpaint", 5, 1), steps=1,
                                                             task="v2a")["true_norm"]


def test_teacher_view_of_clean_latents(recipe_tool):
    diag = recipe_tool("scripts/diagnose")
    model = _model()
    recs = make_t2a_bench(5, 2)
    z = torch.randn(2, model.config.autoencoder.latent_dim, model.config.latent_length)
    rows = diag.teacher_view(model, z, recs, guidance=1.0)
    assert [r["t"] for r in rows] == list(diag.TIMES[::-1])
    assert all(math.isfinite(r[k]) and r[k] > 0 for r in rows for k in ("cond", "cfg", "uncond"))
    assert all(r["cfg"] == r["cond"] for r in rows)  # CFG 1 is the conditional velocity
    # a teacher with v = z1 - z0 exactly (it knows z0) returns the sample itself: ratio 1
    class Oracle(torch.nn.Module):
        def encode_modalities(self, inputs):
            return model.encode_modalities(inputs)

        def fuse(self, feats, drop=None):
            return model.fuse(feats, drop)

        def forward(self, z_t, t, cond):
            tb = t.view(-1, 1, 1)
            return (z_t - z) / tb  # z_t = t eps + (1 - t) z  ->  z_t - t v = z
    for r in diag.teacher_view(Oracle(), z, recs, guidance=6.0):
        assert all(math.isclose(r[k], 1.0, rel_tol=1e-4) for k in ("cond", "cfg", "uncond")), r
