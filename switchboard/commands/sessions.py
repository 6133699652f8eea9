"""``switchboard sessions``: scheduled policy Q&A sessions from the command line (docs/sessions.md).

``list`` (every session, its times and whether it ended); ``attendance ID [--format
table|csv|json]`` (one line per stay in the conference: who, when, how long, hands, floor);
``validate [PATH]`` (every problem at file:line:column, exit 1 if any). Read from PostgreSQL
(``store/sessions.py``); the live side (who is in now, unmute, end) is the running service's API.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

from switchboard.config import Settings

ATTENDANCE_COLUMNS = ("call_id", "caller", "role", "joined_via", "participant_id", "joined_at", "left_at", "seconds",
                      "hands", "hand_raised_at", "unmuted_at", "unmuted_s", "left_reason")


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("sessions", help="Q&A sessions: list, attendance, validate")
    cmds = p.add_subparsers(dest="sessions_command", metavar="ACTION", required=True)
    cmds.add_parser("list", help="sessions stored in the database").set_defaults(func=_run)
    att = cmds.add_parser("attendance", help="who attended one session, for how long, who spoke")
    att.add_argument("session_id")
    att.add_argument("--format", choices=("table", "csv", "json"), default="table")
    att.set_defaults(func=_run)
    val = cmds.add_parser("validate", help="check session files (default: the sessions folder)")
    val.add_argument("path", nargs="?")
    val.set_defaults(func=_validate)


def _validate(args: argparse.Namespace, settings: Settings) -> int:
    from switchboard.ivr.yaml_marks import FlowLoadError
    from switchboard.sessions.model import load_session, load_sessions

    path = Path(args.path or settings.sessions.sessions_dir)
    if not path.exists():
        print(f"{path}: no such file or folder", file=sys.stderr)
        return 2
    try:
        found = load_sessions(path) if path.is_dir() else [load_session(path)]
    except FlowLoadError as exc:
        for e in exc.errors:
            print(e)
        return 1
    print(f"{path}: ok ({', '.join(s.session_id for s in found) or 'no session'})")
    return 0


def _run(args: argparse.Namespace, settings: Settings) -> int:
    import asyncpg

    from switchboard.store import sessions as ss

    async def main() -> str:
        conn = await asyncpg.connect(settings.database.dsn, timeout=settings.database.command_timeout)
        try:
            if args.sessions_command == "list":
                listed = [[r.session.session_id, r.session.starts.isoformat(), r.session.ends.isoformat(),
                         r.session.moderator, r.session.capacity, r.ended_at.isoformat() if r.ended_at else "",
                         r.session.title] for r in await ss.session_rows(conn)]
                return _table(["session", "starts", "ends", "moderator", "capacity", "ended", "title"], listed)
            if await ss.get_session(conn, args.session_id) is None:
                raise LookupError(f"no session {args.session_id}")
            rows = await ss.attendance(conn, args.session_id)
        finally:
            await conn.close(timeout=5)
        if args.format == "json":
            return json.dumps(rows, default=str, ensure_ascii=False, indent=1)
        cells = [[r[c] for c in ATTENDANCE_COLUMNS] for r in rows]
        if args.format == "csv":
            out = io.StringIO()
            w = csv.writer(out)
            w.writerow(ATTENDANCE_COLUMNS)
            w.writerows(cells)
            return out.getvalue().rstrip("\n")
        return _table(list(ATTENDANCE_COLUMNS), [[f"{v:.0f}" if isinstance(v, float) else v for v in r]
                                                 for r in cells])

    try:
        print(asyncio.run(main()))
    except LookupError as exc:
        print(f"switchboard sessions: {exc}", file=sys.stderr)
        return 1
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"switchboard sessions: database error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


def _table(columns: list[str], rows: list[list[Any]]) -> str:
    cells = [columns] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells)
