"""Import-light constants (no torch): the CLI checks its arguments before importing the model stack."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEFAULT_MODEL_DIR", "DEFAULT_TEACHER_DIR", "BUNDLED_MODELS", "bundled_model"]

#: The model folder the wheel ships (``config.json`` + ``model.safetensors``), used when no model is given:
#: AudioX-Mini Turbo, the 4-step student (``MODEL_CARD.md`` beside the weights says how it was made).
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "default_model"
#: Its teacher (AudioX-Mini Base: Euler, 50 steps, CFG), shipped alongside for comparisons.
DEFAULT_TEACHER_DIR = DEFAULT_MODEL_DIR / "teacher"

#: Names that ``--model`` accepts for the bundled weights.
BUNDLED_MODELS = {"default": DEFAULT_MODEL_DIR, "default-teacher": DEFAULT_TEACHER_DIR}


def bundled_model(name: str) -> Path | None:
    """The folder of a bundled model by name (``default``, ``default-teacher``) when it is installed."""
    d = BUNDLED_MODELS.get(name)
    if d is not None and (d / "config.json").is_file() and (d / "model.safetensors").is_file():
        return d
    return None
