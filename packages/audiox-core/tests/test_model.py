import itertools

import pytest
import torch

from audiox.core import AudioXModel, ConditionInputs, get_config
from audiox.core.layers import apply_rope, rope_cos_sin
from audiox.core.mmdit import MMDiTBlock


def make_inputs(cfg, b, text=True, video=True, audio=True):
    gv, ga = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    return ConditionInputs(
        text=["a bell rings twice, then a dog barks"] * b if text else [None] * b,
        task=["tv2a"] * b,
        video=torch.rand(b, cfg.video_frames, 3, 32, 32, generator=gv) if video else None,
        audio=0.1 * torch.randn(b, 1, cfg.num_samples, generator=ga) if audio else None,
    )


@pytest.mark.parametrize("text,video,audio", list(itertools.product([True, False], repeat=3)))
def test_shapes_for_every_modality_combination(debug_model, text, video, audio):
    cfg = debug_model.config
    inputs = make_inputs(cfg, 2, text, video, audio)
    feats = debug_model.encode_modalities(inputs)
    assert feats.video_present.tolist() == [video] * 2 and feats.audio_present.tolist() == [audio] * 2
    cond = debug_model.fuse(feats)
    n_ctx = cfg.text.max_length + cfg.sync_frames + cfg.latent_length + cfg.maf.num_queries
    assert cond.context.shape == (2, n_ctx, cfg.dit.hidden_size)
    assert cond.context_mask.shape == (2, n_ctx) and cond.global_cond.shape == (2, cfg.dit.hidden_size)
    z = torch.randn(2, cfg.autoencoder.latent_dim, cfg.latent_length)
    v = debug_model(z, torch.rand(2), cond)
    assert v.shape == z.shape and torch.isfinite(v).all()


def test_absent_modality_equals_dropped_and_differs_from_present():
    torch.manual_seed(0)
    model = AudioXModel(get_config("debug")).eval()
    for p in model.dit.parameters():  # leave adaLN-Zero so that conditions reach the output
        torch.nn.init.normal_(p, std=0.05)
    cfg = model.config
    full = model.encode_modalities(make_inputs(cfg, 1))
    none_video = model.encode_modalities(make_inputs(cfg, 1, video=False))
    z, t = torch.randn(1, cfg.autoencoder.latent_dim, cfg.latent_length), torch.full((1,), 0.5)
    drop_video = torch.tensor([[False, True, False]])
    v_drop = model(z, t, model.fuse(full, drop_video))
    v_absent = model(z, t, model.fuse(none_video))
    v_full = model(z, t, model.fuse(full))
    torch.testing.assert_close(v_drop, v_absent)
    assert (v_full - v_drop).abs().max() > 1e-4


def test_gradients_reach_trainable_and_not_frozen():
    cfg = get_config("debug", ["text.freeze=true"])
    model = AudioXModel(cfg).train()
    # non-zero init of the zero-initialised layers so that every parameter is on the gradient path
    for p in [*model.dit.parameters(), *model.maf.gate[-1].parameters()]:
        torch.nn.init.normal_(p, std=0.05)
    inputs = make_inputs(cfg, 2)
    # the second sample drops every modality, so the learned null tokens are on the gradient path too
    cond = model.prepare_conditions(inputs, drop=torch.tensor([[False] * 3, [True] * 3]))
    z = torch.randn(2, cfg.autoencoder.latent_dim, cfg.latent_length)
    model(z, torch.rand(2), cond).pow(2).mean().backward()
    trainable = {id(p) for p in model.denoiser_parameters()}
    for name, p in model.named_parameters():
        if id(p) in trainable:
            assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient for trainable {name}"
        else:
            assert p.grad is None, f"frozen {name} received a gradient"
            assert not p.requires_grad
    assert not model.text_encoder.training and not model.autoencoder.training  # frozen stay in eval


def test_unfrozen_encoder_trains():
    cfg = get_config("debug", ["text.freeze=false"])
    model = AudioXModel(cfg).train()
    names = {n for n, p in model.named_parameters() if any(p is q for q in model.denoiser_parameters())}
    assert any(n.startswith("text_encoder.") for n in names)
    assert not any(n.startswith("autoencoder.") for n in names)


def test_zeroed_adaln_block_is_identity():
    cfg = get_config("debug").dit
    block = MMDiTBlock(cfg)
    torch.nn.init.zeros_(block.mod.lin.weight)
    torch.nn.init.zeros_(block.mod.lin.bias)
    torch.nn.init.zeros_(block.cross.proj.weight)
    torch.nn.init.zeros_(block.cross.proj.bias)
    x = torch.randn(2, 9, cfg.hidden_size)
    ctx = torch.randn(2, 4, cfg.hidden_size)
    rope = rope_cos_sin(torch.arange(9), cfg.hidden_size // cfg.num_heads)
    out = block(x, torch.randn(2, cfg.hidden_size), ctx, torch.ones(2, 4, dtype=torch.bool), rope)
    torch.testing.assert_close(out, x)
    # and the full model at init (initialize_weights) outputs zero velocity
    model = AudioXModel(get_config("debug")).eval()
    cond = model.prepare_conditions(make_inputs(model.config, 1))
    z = torch.randn(1, model.config.autoencoder.latent_dim, model.config.latent_length)
    assert model(z, torch.rand(1), cond).abs().max() == 0
    assert all(b.mod.lin.weight.abs().sum() == 0 for b in model.dit.blocks)


def test_rope_is_relative():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 1, 1, 16, generator=g), torch.randn(1, 1, 1, 16, generator=g)

    def score(i, j):
        ci, si = rope_cos_sin(torch.tensor([i]), 16)
        cj, sj = rope_cos_sin(torch.tensor([j]), 16)
        return (apply_rope(q, ci, si) * apply_rope(k, cj, sj)).sum()

    torch.testing.assert_close(score(3, 7), score(3 + 11, 7 + 11), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(score(0, 5), score(20, 25), rtol=1e-5, atol=1e-5)
    assert (score(3, 7) - score(3, 8)).abs() > 1e-3  # but positions do matter
    # rotation keeps norms
    c, s = rope_cos_sin(torch.arange(5), 16)
    x = torch.randn(1, 1, 5, 16)
    torch.testing.assert_close(apply_rope(x, c, s).norm(dim=-1), x.norm(dim=-1))


def _maf_variant(**kw):
    overrides = [f"maf.{k}={str(v).lower()}" for k, v in kw.items()]
    torch.manual_seed(0)
    return AudioXModel(get_config("debug", overrides)).eval()


def test_table_v_switches_change_the_module():
    full, no_gate, no_query, no_maf = _maf_variant(), _maf_variant(use_gate=False), _maf_variant(use_query=False), _maf_variant(enabled=False)
    names = lambda m: {n for n, _ in m.maf.named_parameters()}  # noqa: E731
    assert any(n.startswith("gate.") for n in names(full)) and not any(n.startswith("gate.") for n in names(no_gate))
    assert "queries" in names(full) and "queries" not in names(no_query)
    assert not any(n.startswith(("gate.", "queries", "fusion.")) for n in names(no_maf))
    n = lambda m: sum(p.numel() for p in m.maf.parameters())  # noqa: E731
    assert n(full) > n(no_gate) > n(no_maf) and n(full) > n(no_query) > n(no_maf)
    cfg = full.config
    inputs = make_inputs(cfg, 2)
    c_full = full.prepare_conditions(inputs)
    c_noq = no_query.prepare_conditions(inputs)
    assert c_full.context.shape[1] - c_noq.context.shape[1] == cfg.maf.num_queries
    # gate: perturb the gate MLP output layer; without a gate nothing changes because there is none
    with torch.no_grad():
        torch.nn.init.normal_(full.maf.gate[-1].weight, std=1.0)
    c_full2 = full.prepare_conditions(inputs)
    assert (c_full2.context - c_full.context).abs().max() > 1e-3
    # every variant is trainable: gradients flow into its MAF parameters
    for variant in (full, no_gate, no_query, no_maf):
        variant.train()
        c = variant.prepare_conditions(inputs)
        (c.context.square().mean() + c.global_cond.square().mean()).backward()
        assert all(p.grad is not None for p in variant.maf.parameters() if p.requires_grad and p is not variant.maf.null_embed)


def test_global_text_starts_as_the_query_global_and_carries_the_caption():
    torch.manual_seed(0)
    base = AudioXModel(get_config("debug")).eval()
    gt = AudioXModel(get_config("debug", ["maf.global_text=true"])).eval()
    missing, unexpected = gt.load_state_dict(base.state_dict(), strict=False)
    assert set(missing) == {"maf.global_text.weight", "maf.global_text.bias"} and not unexpected
    inputs = ConditionInputs(text=["a bell rings twice", "steady rain"], task=["t2a", "t2a"])
    a, b = base.prepare_conditions(inputs), gt.prepare_conditions(inputs)
    assert torch.equal(a.global_cond, b.global_cond)  # zero-initialised: fine-tuning starts where the model was
    with torch.no_grad():
        torch.nn.init.normal_(gt.maf.global_text.weight, std=0.1)
        b = gt.prepare_conditions(inputs)
    delta = b.global_cond - a.global_cond  # the pooled caption's projection, per sample
    assert (delta[0] - delta[1]).abs().max() > 1e-3  # different captions, different global vectors
    with torch.no_grad():  # the masked mean of the caption's projected tokens (type embedding included), projected
        feats = gt.encode_modalities(inputs)
        text = gt.maf.proj_text(feats.text) + gt.maf.type_embed[0]
        w = feats.text_mask.float()[..., None]
        pooled = (text * w).sum(1) / w.sum(1)
        torch.testing.assert_close(delta, gt.maf.global_text(pooled), rtol=1e-5, atol=1e-5)


def test_single_null_is_one_null_token_per_absent_modality():
    """With ``maf.single_null`` an absent stream attends as its one null token: the conditions and the velocity equal
    those of the same weights fed streams one frame long (identical copies only add -log L to their logits)."""
    torch.manual_seed(0)
    model = AudioXModel(get_config("debug", ["maf.single_null=true"])).eval()
    for p in model.dit.parameters():  # leave adaLN-Zero so that the context reaches the output
        torch.nn.init.normal_(p, std=0.05)
    cfg = model.config
    inputs = ConditionInputs(text=["a bell rings twice", None], task=["t2a", "inpaint"])
    drop = torch.tensor([[False, False, False], [True, True, True]])  # a caption; everything dropped (CFG's null)
    z, t = torch.randn(2, cfg.autoencoder.latent_dim, cfg.latent_length), torch.tensor([0.9, 0.4])
    with torch.no_grad():
        feats = model.encode_modalities(inputs)
        cond = model.fuse(feats, drop)
        # kept columns: the caption's tokens (the dropped text's null is its first), one null per absent stream, queries
        assert cond.context.shape[1] == int(feats.text_mask[0].sum()) + 2 + cfg.maf.num_queries
        assert cond.context_mask.sum(1).tolist() == [cond.context.shape[1], 3 + cfg.maf.num_queries]
        short = type(feats)(**{**vars(feats), "video": feats.video[:, :1], "sync": feats.sync[:, :1],
                               "audio": feats.audio[:, :1]})
        model.maf.cfg.single_null = False  # the plain MAF over one-frame streams: the reference
        ref0 = model.fuse(short.index(slice(0, 1)))
        ref1 = model.fuse(type(short)(**{**vars(short.index(slice(1, 2))), "text": short.text[1:2, :1],
                                           "text_mask": short.text_mask[1:2, :1]}), drop[1:])
        torch.testing.assert_close(cond.global_cond, torch.cat([ref0.global_cond, ref1.global_cond]))
        v = model(z, t, cond)
        torch.testing.assert_close(v[:1], model(z[:1], t[:1], ref0), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(v[1:], model(z[1:], t[1:], ref1), rtol=1e-4, atol=1e-5)
        both = type(cond).cat([ref0, cond])  # CFG batches contexts of different lengths: padded, masked, same result
        torch.testing.assert_close(model(torch.cat([z[:1], z]), torch.cat([t[:1], t]), both)[1:], v, rtol=1e-4, atol=1e-5)
        model.maf.cfg.single_null = True
        plain = AudioXModel(cfg).eval()  # the flag changes the attention of a trained model: not a no-op
        plain.load_state_dict(model.state_dict())
        plain.maf.cfg.single_null = False
        assert (plain(z, t, plain.fuse(feats, drop)) - v).abs().max() > 1e-4


def test_conditions_are_reused_deterministically(debug_model):
    cfg = debug_model.config
    cond = debug_model.prepare_conditions(make_inputs(cfg, 2))
    z = torch.randn(2, cfg.autoencoder.latent_dim, cfg.latent_length)
    t = torch.tensor([0.3, 0.9])
    assert torch.equal(debug_model(z, t, cond), debug_model(z, t, cond))
    feats = debug_model.forward_features(z, t, cond, num_blocks=2)
    assert len(feats) == 2 and feats[0].shape == (2, cfg.latent_length, cfg.dit.hidden_size)
    with pytest.raises(ValueError):
        debug_model.forward_features(z, t, cond, num_blocks=3)


def test_missing_text_uses_task_sentence(debug_model):
    from audiox.core.conditioning import fill_text

    assert fill_text([None, "", "rain"], ["v2m", "t2a", "t2a"]) == ["Generate music for the video.", "Generate general audio.", "rain"]
    with pytest.raises(ValueError, match="unknown task"):
        fill_text(["x"], ["x2y"])


def test_drop_mask_rates():
    from audiox.core.conditioning import sample_drop_mask

    g = torch.Generator().manual_seed(0)
    d = sample_drop_mask(40000, p_text=0.1, p_video=0.2, p_audio=0.3, p_all=0.05, generator=g)
    all3 = d.all(1).float().mean().item()
    assert abs(all3 - (0.05 + 0.95 * 0.1 * 0.2 * 0.3)) < 0.006
    rates = d.float().mean(0)
    for got, p in zip(rates.tolist(), (0.1, 0.2, 0.3)):
        assert abs(got - (p + 0.05 - p * 0.05)) < 0.01


def test_audio_prompt_encoded_only_where_present(debug_model):
    """A batch where some samples have no audio prompt encodes only the others (the encoder runs at the audio
    rate): their features equal a full-batch encode, the absent rows are zero."""
    cfg = debug_model.config
    inputs = make_inputs(cfg, 3, text=True, video=False, audio=True)
    full = debug_model.encode_modalities(inputs).audio
    calls = []
    enc = debug_model.autoencoder.encode

    def spy(wav, *a, **k):
        calls.append(wav.shape[0])
        return enc(wav, *a, **k)

    debug_model.autoencoder.encode = spy
    try:
        inputs.audio_present = torch.tensor([True, False, True])
        part = debug_model.encode_modalities(inputs)
        inputs.audio_present = torch.tensor([False, False, False])
        none = debug_model.encode_modalities(inputs)
    finally:
        del debug_model.autoencoder.encode
    assert calls == [2]  # two present rows, then nothing to encode
    torch.testing.assert_close(part.audio[[0, 2]], full[[0, 2]], rtol=1e-5, atol=1e-6)
    assert torch.equal(part.audio[1], torch.zeros_like(part.audio[1])) and not none.audio.any()
    assert part.audio_present.tolist() == [True, False, True]
