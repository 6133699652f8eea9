#!/usr/bin/env python3
"""Render deploy/asterisk/*.conf into an Asterisk configuration folder.

Placeholders are ``${NAME}`` (string.Template); every placeholder used by a
file must be given, so a missing value is an error, not a silent blank.
Asterisk's own ``${EXTEN}``-style dialplan variables are left alone: only the
names listed in VALUES below are substituted.

Usage: render_asterisk.py OUT_DIR KEY=VALUE ... [--agents-pjsip FILE] [--agents-queue FILE]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "asterisk"
KEYS = {
    "ETC_DIR", "AMI_PORT", "AMI_USERNAME", "AMI_SECRET", "AMI_EXTRA_USERS", "SIP_PORT",
    "TRUNK_MATCH", "TRUNK_OUT", "HEARTBEAT_MAX_AGE", "RTP_START", "RTP_END",
    "TRUNK_LOCAL_OPTIONS", "PJSIP_LOCAL",
    "AST_RUN_DIR", "AST_DB_DIR", "AST_SPOOL_DIR", "AST_LOG_DIR", "NODE_OPTIONS",
}
# Values that one Asterisk (the default stack) leaves to Debian's folders; each node of a
# several-node stack gives its own (deploy/local/stack-up.sh, NODES=2).
DEFAULTS = {
    "AST_RUN_DIR": "/var/run/asterisk", "AST_DB_DIR": "/var/lib/asterisk",
    "AST_SPOOL_DIR": "/var/spool/asterisk", "AST_LOG_DIR": "/var/log/asterisk", "NODE_OPTIONS": "",
}


def render(text: str, values: dict[str, str], name: str) -> str:
    def sub(m: re.Match[str]) -> str:
        key = m.group(1)
        if key not in KEYS:
            return m.group(0)  # an Asterisk variable, not ours
        if key not in values:
            raise SystemExit(f"render_asterisk: {name}: no value for ${{{key}}}")
        return values[key]

    return re.sub(r"\$\{([A-Z_][A-Z0-9_]*)\}", sub, text)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[1])
    values: dict[str, str] = dict(DEFAULTS)
    extra: dict[str, str] = {}
    args = iter(argv[2:])
    for a in args:
        if a in ("--agents-pjsip", "--agents-queue"):
            extra[a] = Path(next(args)).read_text(encoding="utf-8")
        elif "=" in a:
            k, v = a.split("=", 1)
            values[k] = v
        else:
            raise SystemExit(f"render_asterisk: bad argument {a!r}")
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.conf"):
        old.unlink()
    for src in sorted(SRC.glob("*.conf")):
        (out / src.name).write_text(render(src.read_text(encoding="utf-8"), values, src.name), encoding="utf-8")
    (out / "pjsip_agents.conf").write_text(extra.get("--agents-pjsip", "; no agents\n"), encoding="utf-8")
    (out / "queues_members.conf").write_text(extra.get("--agents-queue", "; no members\n"), encoding="utf-8")
    for f in out.glob("*.conf"):
        f.chmod(0o640)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
