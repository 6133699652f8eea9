"""Split the stack tests (integration, security, e2e, browser) into shards of about equal time.

`make test` runs two shards side by side, each on its own local stack (its own Asterisk, the
same PostgreSQL server, a database per pytest process): the e2e tests spend most of their time
waiting on calls, so two stacks on two cores halve the wall time without crowding the CPU.

Weights are seconds per test file from the last full run (``tests/shard_weights.txt``: refresh
it with ``python tests/shard.py --update artifacts/junit-*.xml``); a file not listed counts
``DEFAULT_S``. Files go largest first to the lighter shard (stable: the same inputs, the same split).

Usage: python tests/shard.py N K DIR...   prints the test files of shard K (1-based) of N
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WEIGHTS = REPO / "tests" / "shard_weights.txt"
DEFAULT_S = 60.0


def weights() -> dict[str, float]:
    out: dict[str, float] = {}
    if WEIGHTS.is_file():
        for line in WEIGHTS.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                seconds, path = line.split(None, 1)
                out[path] = float(seconds)
    return out


def files(dirs: list[str]) -> list[str]:
    found: list[str] = []
    for d in dirs:
        found += sorted(str(p.relative_to(REPO)) for p in (REPO / d).rglob("test_*.py"))
    return found


def split(paths: list[str], n: int, w: dict[str, float]) -> list[list[str]]:
    shards: list[list[str]] = [[] for _ in range(n)]
    load = [0.0] * n
    for path in sorted(paths, key=lambda p: (-w.get(p, DEFAULT_S), p)):
        i = min(range(n), key=lambda k: (load[k], k))
        shards[i].append(path)
        load[i] += w.get(path, DEFAULT_S)
    return shards


def update(junit_files: list[str]) -> None:
    per_file: dict[str, float] = defaultdict(float)
    for f in junit_files:
        for case in ET.parse(f).getroot().iter("testcase"):
            cls = case.get("classname", "")
            path = cls.replace(".", "/")
            while path and not (REPO / f"{path}.py").is_file():
                path = path.rpartition("/")[0]
            if path:
                per_file[f"{path}.py"] += float(case.get("time", "0"))
    lines = ["# seconds per stack test file in the last full run (tests/shard.py --update); read by make test"]
    lines += [f"{s:8.1f}  {p}" for p, s in sorted(per_file.items(), key=lambda kv: -kv[1])]
    WEIGHTS.write_text("\n".join(lines) + "\n")


def main(argv: list[str]) -> int:
    if argv[:1] == ["--update"]:
        update(argv[1:])
        return 0
    n, k, dirs = int(argv[0]), int(argv[1]), argv[2:]
    w = weights()
    shard = split(files(dirs), n, w)[k - 1]
    print(" ".join(shard))
    print(f"shard {k}/{n}: {len(shard)} files, about {sum(w.get(p, DEFAULT_S) for p in shard) / 60:.0f} min",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
