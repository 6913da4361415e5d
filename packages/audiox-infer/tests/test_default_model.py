"""The bundled default model: AudioX-Mini Turbo (4-step student) and its teacher, trained by recipes/mini.sh."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from audiox.infer import AudioXPipeline
from audiox.infer.defaults import DEFAULT_MODEL_DIR, DEFAULT_TEACHER_DIR, bundled_model

pytestmark = pytest.mark.skipif(bundled_model("default") is None, reason="no bundled model in this checkout")


def test_bundled_folders_are_small_complete_and_marked():
    for d in (DEFAULT_MODEL_DIR, DEFAULT_TEACHER_DIR):
        assert (d / "MODEL_CARD.md").is_file()
        assert (d / "model.safetensors").stat().st_size < 30e6  # fits a repo and a wheel (issue 8: under 30 MB)
    student = json.loads((DEFAULT_MODEL_DIR / "config.json").read_text())["inference"]
    teacher = json.loads((DEFAULT_TEACHER_DIR / "config.json").read_text())["inference"]
    # a 4-step student without CFG: DMD's denoise-renoise sampler on its T_N, or Euler for a guided student
    assert student["steps"] == 4 and student["guidance_scale"] == 1.0 and student["sampler"] in ("turbo", "euler")
    if student["sampler"] == "turbo":
        assert len(student["few_step_times"]) == 5
    assert teacher["sampler"] == "euler" and teacher["steps"] == 50 and teacher["guidance_scale"] > 1


def test_default_student_generates_ten_seconds_in_four_forward_passes():
    pipe = AudioXPipeline.from_pretrained(DEFAULT_MODEL_DIR)
    out = pipe("a bell rings twice", seed=0)
    assert out.nfe == 4 and out.sample_rate == 16000
    audio = out.audio if isinstance(out.audio, torch.Tensor) else torch.as_tensor(np.asarray(out.audio))
    assert audio.shape[-1] == 160000 and torch.isfinite(audio).all()
    rms = audio.float().pow(2).mean().sqrt().item()
    assert 1e-3 < rms < 0.9  # a trained model makes sound, not silence or clipping
    again = pipe("a bell rings twice", seed=0).audio
    assert torch.equal(torch.as_tensor(np.asarray(again)), torch.as_tensor(np.asarray(out.audio)))  # seeded
