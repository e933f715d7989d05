"""The package layout reads as the data flow: no module imports from a layer above its own
(docs/architecture.md). Imports inside functions count too."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "unihand"

#: Layers, lowest first: a package may import its own modules and those of lower layers only.
LAYERS = [
    {"errors"},
    {"files", "config", "progress"},
    {"hand"},
    {"geometry"},
    {"data"},
    {"models"},
    {"diffusion", "refine"},
    {"pipeline", "camera", "viz"},
    {"export", "eval", "train"},
    {"video"},
    {"cli"},
    {"__main__", "__init__"},
]
LEVEL = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}


def _package(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    return rel.parts[0]


def _imports(path: Path) -> set[str]:
    """First component under ``unihand.`` of every import in the file."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [])
        for name in names:
            parts = name.split(".")
            if parts[0] == "unihand" and len(parts) > 1:
                out.add(parts[1])
    return out


def test_every_package_has_a_layer() -> None:
    packages = {_package(p) for p in ROOT.rglob("*.py")}
    assert packages <= set(LEVEL), f"packages without a layer: {sorted(packages - set(LEVEL))}"


def test_no_module_imports_from_a_layer_above() -> None:
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        own = _package(path)
        for target in _imports(path):
            if target != own and LEVEL.get(target, -1) >= LEVEL[own]:
                bad.append(f"{path.relative_to(ROOT.parent)} imports unihand.{target}")
    assert not bad, "\n".join(bad)
