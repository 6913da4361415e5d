"""Shared fixtures of the cross-package tests."""

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def recipe_tool():
    """``recipe_tool(name)``: ``recipes/<name>.py`` (a script, not a package) imported as a fresh module;
    ``recipe_tool("scripts/name")`` imports ``scripts/name.py``."""

    def load(name: str) -> ModuleType:
        path = ROOT / f"{name}.py" if "/" in name else ROOT / "recipes" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(Path(name).name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    return load
