"""The strict key map from imagebind_huge.pth's names (synthetic state dicts named like the published checkpoint,
tiny and full size; extra modalities skipped; missing / unknown / wrong-shape tensors are one-line errors)."""

import pytest
import torch
from safetensors.torch import save_file

from audiox.bench.embeddings.imagebind import ImageBindAV, ImageBindConfig, imagebind_to_ours

TINY = ImageBindConfig(embed_dim=16, audio_width=32, audio_depth=2, audio_heads=2, vision_width=48, vision_depth=3,
                       vision_heads=4, image_size=28, patch=14)


def _trunk(prefix: str, width: int, depth: int, bias_kv: bool) -> dict[str, tuple[int, ...]]:
    """ImageBind SimpleTransformer blocks (BlockWithMasking + nn.MultiheadAttention) written out by hand."""
    s = {}
    for i in range(depth):
        b = f"{prefix}.blocks.{i}."
        s[b + "attn.in_proj_weight"], s[b + "attn.in_proj_bias"] = (3 * width, width), (3 * width,)
        s[b + "attn.out_proj.weight"], s[b + "attn.out_proj.bias"] = (width, width), (width,)
        if bias_kv:
            s[b + "attn.bias_k"] = s[b + "attn.bias_v"] = (1, 1, width)
        for n in ("norm_1", "norm_2"):
            s[b + f"{n}.weight"] = s[b + f"{n}.bias"] = (width,)
        s[b + "mlp.fc1.weight"], s[b + "mlp.fc1.bias"] = (4 * width, width), (4 * width,)
        s[b + "mlp.fc2.weight"], s[b + "mlp.fc2.bias"] = (width, 4 * width), (width,)
    return s


def _published_shapes(c: ImageBindConfig, text_width: int = 8) -> dict[str, tuple[int, ...]]:
    aw, vw = c.audio_width, c.vision_width
    gh, gw = (c.n_mels - c.audio_patch) // c.audio_stride + 1, (c.frames - c.audio_patch) // c.audio_stride + 1
    s = {
        "modality_preprocessors.vision.cls_token": (1, 1, vw),
        "modality_preprocessors.vision.rgbt_stem.proj.1.weight": (vw, 3, c.tubelet, c.patch, c.patch),
        "modality_preprocessors.vision.pos_embedding_helper.pos_embed": (1, 1 + (c.image_size // c.patch) ** 2, vw),
        "modality_preprocessors.audio.cls_token": (1, 1, aw),
        "modality_preprocessors.audio.rgbt_stem.proj.weight": (aw, 1, c.audio_patch, c.audio_patch),
        "modality_preprocessors.audio.rgbt_stem.norm_layer.weight": (aw,),
        "modality_preprocessors.audio.rgbt_stem.norm_layer.bias": (aw,),
        "modality_preprocessors.audio.pos_embedding_helper.pos_embed": (1, 1 + gh * gw, aw),
        "modality_trunks.vision.pre_transformer_layer.0.weight": (vw,),
        "modality_trunks.vision.pre_transformer_layer.0.bias": (vw,),
        "modality_heads.vision.0.weight": (vw,), "modality_heads.vision.0.bias": (vw,),
        "modality_heads.vision.2.weight": (c.embed_dim, vw),
        "modality_heads.audio.0.weight": (aw,), "modality_heads.audio.0.bias": (aw,),
        "modality_heads.audio.2.weight": (c.embed_dim, aw),
        "modality_postprocessors.audio.1.log_logit_scale": (),
        # other modalities in the same file (skipped by the loader)
        "modality_preprocessors.text.token_embedding.weight": (11, text_width),
        "modality_preprocessors.text.pos_embed": (1, 77, text_width),
        "modality_preprocessors.text.mask": (77, 77),
        "modality_heads.text.proj.0.weight": (text_width,),
        "modality_postprocessors.text.1.log_logit_scale": (),
        "modality_preprocessors.depth.rgbt_stem.proj.weight": (4, 1, 2, 2),
        "modality_trunks.imu.blocks.0.attn.bias_k": (1, 1, 4),
        "modality_postprocessors.thermal.1.log_logit_scale": (),
    }
    s.update(_trunk("modality_trunks.vision", vw, c.vision_depth, bias_kv=False))
    s.update(_trunk("modality_trunks.audio", aw, c.audio_depth, bias_kv=True))
    s.update(_trunk("modality_trunks.text", text_width, 1, bias_kv=False))
    return s


def _published_sd(c: ImageBindConfig) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {k: torch.randn(shape, generator=g) for k, shape in _published_shapes(c).items()}


def test_published_names_load_into_our_modules(tmp_path):
    sd = _published_sd(TINY)
    save_file(sd, str(tmp_path / "imagebind.safetensors"))
    net = ImageBindAV.from_pretrained(tmp_path / "imagebind.safetensors", TINY)
    a, v = net.audio, net.vision
    pairs = [
        ("modality_preprocessors.audio.rgbt_stem.proj.weight", a.stem.weight),
        ("modality_preprocessors.audio.rgbt_stem.norm_layer.bias", a.stem_norm.bias),
        ("modality_preprocessors.audio.cls_token", a.cls),
        ("modality_preprocessors.audio.pos_embedding_helper.pos_embed", a.pos),
        ("modality_preprocessors.vision.rgbt_stem.proj.1.weight", v.stem.weight),
        ("modality_preprocessors.vision.pos_embedding_helper.pos_embed", v.pos),
        ("modality_trunks.vision.pre_transformer_layer.0.weight", v.pre_norm.weight),
        ("modality_trunks.vision.blocks.2.attn.in_proj_weight", v.blocks[2].attn.in_proj_weight),
        ("modality_trunks.vision.blocks.1.attn.out_proj.bias", v.blocks[1].attn.out_proj.bias),
        ("modality_trunks.audio.blocks.1.attn.bias_k", a.blocks[1].attn.bias_k),
        ("modality_trunks.audio.blocks.0.attn.bias_v", a.blocks[0].attn.bias_v),
        ("modality_trunks.audio.blocks.1.norm_1.weight", a.blocks[1].norm1.weight),
        ("modality_trunks.audio.blocks.1.norm_2.bias", a.blocks[1].norm2.bias),
        ("modality_trunks.vision.blocks.0.mlp.fc2.weight", v.blocks[0].mlp.fc2.weight),
        ("modality_heads.audio.0.weight", a.head_norm.weight),
        ("modality_heads.vision.2.weight", v.head.weight),
    ]
    for name, param in pairs:
        torch.testing.assert_close(param.detach(), sd[name], msg=name)
    assert torch.isfinite(net.embed_audio(torch.randn(16000) * 0.1, 16000)).all()


def test_strict_errors():
    net = ImageBindAV(TINY)
    sd = _published_sd(TINY)
    with pytest.raises(ValueError, match=r"missing \['audio.blocks.1.attn.bias_k'\]"):
        imagebind_to_ours({k: v for k, v in sd.items() if k != "modality_trunks.audio.blocks.1.attn.bias_k"}, net)
    with pytest.raises(ValueError, match=r"unknown \['modality_trunks.audio.blocks.0.layer_scale_gamma1'\]"):
        imagebind_to_ours({**sd, "modality_trunks.audio.blocks.0.layer_scale_gamma1": torch.ones(1, 1, 32)}, net)
    with pytest.raises(ValueError, match="unknown"):  # a block beyond this config's depth
        imagebind_to_ours({**sd, "modality_trunks.audio.blocks.2.norm_1.weight": torch.ones(32)}, net)
    with pytest.raises(ValueError, match=r"shape \['modality_heads.audio.2.weight"):
        imagebind_to_ours({**sd, "modality_heads.audio.2.weight": torch.ones(8, 32)}, net)
    with pytest.raises(ValueError, match="missing"):  # an audio-only file misses the whole vision tower
        imagebind_to_ours({k: v for k, v in sd.items() if ".vision." not in k}, net)


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such ImageBind weights"):
        ImageBindAV.from_pretrained(tmp_path / "missing.safetensors", TINY)
    (tmp_path / "x.pth").write_bytes(b"\x80\x04pickle")
    with pytest.raises(ValueError, match="not a safetensors file"):
        ImageBindAV.from_pretrained(tmp_path / "x.pth", TINY)


def test_full_size_imagebind_huge_layout_maps_completely():
    c = ImageBindConfig()
    with torch.device("meta"):
        net = ImageBindAV(c)
        sd = {k: torch.empty(s) for k, s in _published_shapes(c).items()}
    out = imagebind_to_ours(sd, net)
    assert set(out) == set(net.state_dict())
    n = sum(p.numel() for p in net.parameters())
    assert 700e6 < n < 720e6  # imagebind_huge: vision ViT-H 630M + audio ViT-B 86M (plus the bias_kv / heads)
