"""Dependencies run one way: rascal_cli -> rascal_geom -> rascal_train, function-level imports
included.

Every import statement of every module is read from its syntax tree (so an import inside a
function counts as much as one at the top), and an import that points up the stack fails.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Each package with the directory it lives in and the packages it may import.
LAYERS = {
    "rascal_train": (ROOT / "rascal_train", {"rascal_train"}),
    "rascal_geom": (ROOT / "rascal_geom", {"rascal_geom", "rascal_train"}),
    "rascal_cli": (ROOT / "cli", {"rascal_cli", "rascal_geom", "rascal_train"}),
}


def imported_packages(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import in the file at ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def back_edges(package: str) -> list[str]:
    folder, allowed = LAYERS[package]
    ours = set(LAYERS)
    return [f"{path.relative_to(ROOT)}:{line} imports {target}"
            for path in sorted(folder.rglob("*.py"))
            for line, target in imported_packages(path)
            if target in ours and target not in allowed]


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_no_import_against_the_direction(package):
    assert back_edges(package) == []


def test_the_walk_sees_function_level_imports(tmp_path):
    # The check itself must catch a lazy import inside a function body, the form the old code used.
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from rascal_geom.metrics import knn_accuracy\n"
                      "    import rascal_cli.main\n")
    assert imported_packages(module) == [(2, "rascal_geom"), (3, "rascal_cli")]
