"""``switchboard purge [--dry-run]``: apply the retention periods and report what went."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from switchboard.config import Settings


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "purge", help="remove call records and recordings older than the retention periods")
    p.add_argument("--dry-run", action="store_true", help="count only, remove nothing")
    p.set_defaults(func=_purge)


def _purge(args: argparse.Namespace, settings: Settings) -> int:
    import asyncpg

    from switchboard.store.errors import TRANSIENT_DB_ERRORS
    from switchboard.store.retention import forget_missing_session_recordings, purge_recordings, purge_records

    db = settings.database
    cutoff = datetime.now(UTC) - timedelta(days=db.retention_days_calls)

    async def main() -> dict[str, Any]:
        conn = await asyncpg.connect(db.dsn, timeout=db.command_timeout)
        try:
            counts = await purge_records(conn, older_than=cutoff, dry_run=args.dry_run)
        finally:
            await conn.close(timeout=5)
        return asdict(counts)

    async def forget() -> int:
        conn = await asyncpg.connect(db.dsn, timeout=db.command_timeout)
        try:
            return await forget_missing_session_recordings(conn, settings.paths.recordings_dir,
                                                           dry_run=args.dry_run)
        finally:
            await conn.close(timeout=5)

    try:
        records = asyncio.run(main())
    except (*TRANSIENT_DB_ERRORS, asyncpg.PostgresError) as exc:
        print(f"switchboard purge: database error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    # session recordings are files under recordings/sessions/: the same walk, the same period
    recs = purge_recordings(settings.paths.recordings_dir, older_than_days=db.retention_days_recordings,
                            keep=(settings.paths.prompts_dir,), dry_run=args.dry_run)
    try:
        forgotten = 0 if args.dry_run else asyncio.run(forget())
    except (*TRANSIENT_DB_ERRORS, asyncpg.PostgresError) as exc:
        print(f"switchboard purge: database error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({
        "dry_run": args.dry_run,
        "records_cutoff": cutoff.isoformat(), "retention_days_calls": db.retention_days_calls,
        "records": records,
        "retention_days_recordings": db.retention_days_recordings,
        "recordings": asdict(recs),
        "session_recordings_forgotten": forgotten,
    }, ensure_ascii=False))
    return 0 if recs.errors == 0 else 1
