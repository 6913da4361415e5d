"""Packages depend only downward, and every import is declared.

For each workspace member, every module under ``src/`` may import only: the standard library, itself, and
distributions reachable from its own ``pyproject.toml`` dependencies (directly or through the chain of
their requirements). A module that imports an undeclared package fails here, with the file named.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").is_file())
# The intended layering (DESIGN.md); a member may depend only on members listed here for it.
ALLOWED_MEMBERS = {
    "audiox-core": set(),
    "audiox-infer": {"audiox-core"},
    "audiox-data": {"audiox-core"},
    "audiox-train": {"audiox-core", "audiox-data"},
    "audiox-distill": {"audiox-core", "audiox-data", "audiox-train"},
    "audiox-bench": {"audiox-core", "audiox-infer", "audiox-data"},
}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _req_name(req: str) -> str:
    return _norm(re.split(r"[\s<>=!~;\[(]", req.strip(), maxsplit=1)[0])


def _declared(pyproject: Path) -> set[str]:
    data = tomllib.loads(pyproject.read_text())
    return {_req_name(r) for r in data["project"].get("dependencies", [])}


def _closure(names: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        for r in reqs:
            if "extra ==" in r:  # optional extras are not part of the chain
                continue
            todo.append(_req_name(r))
    return seen


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    mods: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            mods.add(node.module)
    return mods


# Optional integrations a package uses only when the user installed them (lazy import inside the feature
# that needs it, with a one-line error naming the package otherwise). Each entry says why it is not declared.
OPTIONAL_UNDECLARED = {
    "audiox-data": {"demucs": "music source separation in `audiox-data curate --separator demucs`; heavy, optional"},
}
_GUARDS = ("ImportError", "ModuleNotFoundError", "Exception")


def _optional_imports(path: Path) -> set[str]:
    """Imports guarded by ``try: ... except ImportError`` (or a broader handler) are optional; they are allowed."""
    tree = ast.parse(path.read_text(), filename=str(path))
    mods: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            h.type is None
            or isinstance(h.type, ast.Name) and h.type.id in _GUARDS
            or isinstance(h.type, ast.Tuple)
            and any(isinstance(e, ast.Name) and e.id in _GUARDS for e in h.type.elts)
            for h in node.handlers
        ):
            for sub in node.body:
                for n in ast.walk(sub):
                    if isinstance(n, ast.Import):
                        mods.update(a.name for a in n.names)
                    elif isinstance(n, ast.ImportFrom) and n.level == 0 and n.module:
                        mods.add(n.module)
    return mods


def _extras(pyproject: Path) -> set[str]:
    data = tomllib.loads(pyproject.read_text())
    out: set[str] = set()
    for reqs in data["project"].get("optional-dependencies", {}).values():
        out |= {_req_name(r) for r in reqs}
    return out


def _dists_for(module: str, mapping: dict[str, list[str]]) -> set[str] | None:
    top = module.split(".")[0]
    if top == "audiox":
        parts = module.split(".")
        return {f"audiox-{parts[1]}"} if len(parts) > 1 else set()
    if top in sys.stdlib_module_names or top == "__future__":
        return set()
    if top in mapping:
        return {_norm(d) for d in mapping[top]}
    return None


@pytest.mark.parametrize("pkg", PACKAGES, ids=lambda p: p.name)
def test_imports_are_declared(pkg: Path) -> None:
    name = pkg.name
    declared = _declared(pkg / "pyproject.toml")
    members = {d for d in declared if d.startswith("audiox-")}
    assert members <= ALLOWED_MEMBERS[name], f"{name} depends on {members - ALLOWED_MEMBERS[name]} (upward)"
    allowed = _closure(declared | {name}) | _extras(pkg / "pyproject.toml")
    mapping = md.packages_distributions()
    problems = []
    for path in sorted((pkg / "src").rglob("*.py")):
        optional = _optional_imports(path)
        for mod in sorted(_imports(path)):
            dists = _dists_for(mod, mapping)
            top = mod.split(".")[0]
            if top in OPTIONAL_UNDECLARED.get(name, {}) or (_norm(top) in allowed and mod in optional):
                continue
            if dists is None:
                if mod in optional:
                    continue
                problems.append(f"{path.relative_to(ROOT)}: imports {mod!r}, which no installed distribution provides")
            elif dists and not (dists & allowed) and mod not in optional:
                problems.append(f"{path.relative_to(ROOT)}: imports {mod!r} from {sorted(dists)}, not declared by {name}")
    assert not problems, "\n".join(problems)


def test_layering_matches_design() -> None:
    for pkg in PACKAGES:
        assert pkg.name in ALLOWED_MEMBERS, f"unknown member {pkg.name}"
    # the negative case: the checker must catch an undeclared import
    assert _dists_for("deepspeed", md.packages_distributions()) == {"deepspeed"}
    assert "deepspeed" not in _closure(_declared(ROOT / "packages/audiox-infer/pyproject.toml"))


def test_infer_does_not_pull_training_stack() -> None:
    closure = _closure(_declared(ROOT / "packages/audiox-infer/pyproject.toml"))
    for heavy in ("deepspeed", "webdataset", "tensorboard", "audiox-train", "audiox-data"):
        assert heavy not in closure, f"audiox-infer pulls {heavy}"
