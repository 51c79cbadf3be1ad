"""docs/architecture.md's module map lists exactly the modules of the package: none missing, none that is gone."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "aws_array_plugin"


def _modules_in_tree() -> set[str]:
    found = set()
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "_proto" or rel.name == "__main__.py":
            continue
        if rel.name == "__init__.py":
            if len(rel.parts) > 1 and rel.parent.name != "faces":  # a package with code of its own
                found.add(f"{rel.parent.as_posix()}/__init__")
            continue
        found.add(rel.with_suffix("").as_posix())
    return found


def _modules_in_doc() -> set[str]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    rows = re.findall(r"^\| `([a-z0-9_/]+)` \|", text, flags=re.MULTILINE)
    return {row for row in rows if not row.endswith("/")}


def test_the_module_map_lists_every_module_and_no_other() -> None:
    tree, doc = _modules_in_tree(), _modules_in_doc()
    assert sorted(tree - doc) == [], "modules missing from docs/architecture.md"
    assert sorted(doc - tree) == [], "docs/architecture.md lists modules that do not exist"


def test_the_check_sees_the_package() -> None:
    tree = _modules_in_tree()
    assert {"core", "monitor", "faces/flyte1", "submissions/__init__"} <= tree
