"""Every SQL statement of the service lives under ``switchboard/store/``.

Walks each module outside ``store/`` with ``ast`` and fails on a string constant (plain
or part of an f-string) that reads as an SQL statement, so a newcomer looking for a query
finds it in one package. (Method names cannot tell: AGI has its own ``execute``.)
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "switchboard"
SQL = re.compile(r"^\s*(SELECT|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|WITH\s+\w+\s+AS|SHOW)\b", re.I)


def _offences(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.match(node.value):
            found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}: SQL text {node.value.strip()[:40]!r}")
    return found


def test_no_sql_outside_store() -> None:
    offences = [o for path in sorted(ROOT.rglob("*.py")) if "store" not in path.relative_to(ROOT).parts[:1]
                for o in _offences(path)]
    assert offences == []


def test_the_check_sees_sql() -> None:
    # The walk must recognise what it forbids (guards against a check that matches nothing).
    store = [o for path in sorted((ROOT / "store").rglob("*.py")) for o in _offences(path)]
    assert len(store) > 20
    assert any("INSERT" in o for o in store) and any("SELECT" in o for o in store)
