"""`make bench`: run every benchmark in bench/ in full and record their figures.

Each benchmark prints one JSON object as its last line. This script runs them
one after another (never in parallel: they compare side by side within one
run and must not steal each other's cores), then rewrites the section
"## Latest make bench run" at the top of bench/RESULTS.md with the command,
the machine and every JSON line. The per-benchmark sections below it hold the
discussion of each.

Usage: .venv/bin/python bench/run_all.py [--quick] [NAME ...]
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "RESULTS.md"
HEADER = "## Latest make bench run"


def machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"nproc={os.cpu_count()}, CPU {cpu or platform.processor()}, Python {platform.python_version()}, "
            f"load average {load:.1f} at start")


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    names = [a for a in argv if not a.startswith("-")]
    # load.py needs the whole local stack and runs for many minutes: `make bench-load`; ha_drill.py
    # too (two service instances, SIPp callers): run on its own
    scripts = sorted(p for p in BENCH.glob("*.py")
                     if p.name not in ("run_all.py", "load.py", "appqueue.py", "ha_drill.py"))
    if names:
        scripts = [p for p in scripts if p.stem in names]
    rows: list[tuple[str, str, float, int, str]] = []
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    desc = machine()
    for script in scripts:
        cmd = [sys.executable, str(script.relative_to(BENCH.parent))] + (["--quick"] if quick else [])
        print(f"== {' '.join(cmd)}", flush=True)
        t0 = time.monotonic()
        load0 = os.getloadavg()[0]
        proc = subprocess.run(cmd, cwd=BENCH.parent, capture_output=True, text=True)
        took = time.monotonic() - t0
        load = f"{load0:.1f} / {os.getloadavg()[0]:.1f}"
        sys.stdout.write(proc.stdout[-3000:])
        last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        try:
            json.loads(last)
        except ValueError:
            last = json.dumps({"error": f"exit {proc.returncode}", "stderr": proc.stderr[-300:]})
        rows.append((script.stem, last, took, proc.returncode, load))
    lines = [HEADER, "", f"Command: `make bench` (`.venv/bin/python bench/run_all.py{' --quick' if quick else ''}`), "
             f"{started}. Machine: {desc}. The machine is shared with other sessions: the load average "
             "(1 min) at the start and end of each benchmark is in its row.", "",
             "| benchmark | seconds | exit | load start / end | figures (its last JSON line) |",
             "|---|---|---|---|---|"]
    for name, last, took, rc, load in rows:
        lines.append(f"| {name} | {took:.0f} | {rc} | {load} | `{last}` |")
    lines.append("")
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
    section = "\n".join(lines) + "\n"
    if HEADER in text:
        text = re.sub(rf"{re.escape(HEADER)}\n.*?(?=\n## |\Z)", section.rstrip("\n") + "\n", text, flags=re.S)
    else:
        head, _, rest = text.partition("\n## ")
        text = head.rstrip("\n") + "\n\n" + section + ("\n## " + rest if rest else "")
    RESULTS.write_text(text)
    print(f"updated {RESULTS}")
    return 0 if all(row[3] == 0 for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
