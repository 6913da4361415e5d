"""Import-light constants (no torch): the CLI checks its arguments before importing the model stack."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEFAULT_MODEL_DIR"]

#: The model folder the wheel ships (``config.json`` + ``model.safetensors``), used when no model is given.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "default_model"
