"""The package's import layering (docs/DESIGN.md §0): an arrow the design forbids fails here.

Every ``espnet_avsr`` import in every module counts, including imports inside functions,
so a lazy import cannot hide an arrow that runs back up.
"""
import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "espnet_avsr"

#: folder -> the folders it may import (besides itself). ``bin`` is the top: it may import all.
ALLOWED = {
    "common": set(),
    "corpus": {"common"},
    "dataprep": {"common"},
    "data": {"common"},
    "eval": {"common"},
    "models": {"common", "data"},
    "tasks": {"common", "data", "models"},
    "analysis": {"common", "data", "models", "tasks", "eval"},
    "bin": None,
}


def _imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            if node.module == "espnet_avsr":
                yield from (n for n in names[1:])
            else:
                yield node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names)


def arrows():
    """(module path, importing folder, imported folder) for every cross-folder import."""
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG)
        if len(rel.parts) < 2:
            continue
        src = rel.parts[0]
        for mod in _imports(path):
            parts = mod.split(".")
            if parts[0] != "espnet_avsr" or len(parts) < 2:
                continue
            dst = parts[1]
            if dst != src:
                yield str(rel), src, dst


def test_every_folder_has_a_layer():
    folders = {p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert folders == set(ALLOWED), f"add new folders to ALLOWED and docs/DESIGN.md: {folders ^ set(ALLOWED)}"


def test_no_forbidden_import_arrow():
    bad = [f"{rel}: {src} -> {dst}" for rel, src, dst in arrows()
           if ALLOWED[src] is not None and dst not in ALLOWED[src]]
    assert not bad, "imports the layering forbids:\n" + "\n".join(bad)


def test_the_check_sees_a_forbidden_arrow(tmp_path):
    # the checker itself: a lazy import inside a function is still an arrow
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from espnet_avsr.tasks.avsr import AVSRTask\n", encoding="utf-8")
    assert "espnet_avsr.tasks.avsr" in set(_imports(f))
