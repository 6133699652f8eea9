"""``switchboard migrate [--status] [--seed-demo]``: bring the database schema up to date."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from switchboard.config import Settings


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("migrate", help="apply database migrations")
    p.add_argument("--status", action="store_true", help="only show applied/available, change nothing")
    p.add_argument("--seed-demo", action="store_true", help="also load the demo CRM participants")
    p.set_defaults(func=_migrate)


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    import asyncpg

    from switchboard.store.errors import TRANSIENT_DB_ERRORS, MigrationError
    from switchboard.store.migrate import apply_migrations, current_level
    from switchboard.store.seed import seed_demo

    async def main() -> int:
        conn = await asyncpg.connect(settings.database.dsn, timeout=settings.database.command_timeout)
        try:
            if not args.status:
                applied = await apply_migrations(conn)
                for name in applied:
                    print(f"applied {name}")
                if not applied:
                    print("schema up to date")
                if args.seed_demo:
                    n = await seed_demo(conn)
                    print(f"seeded {n} demo participants")
            done, available = await current_level(conn)
            print(f"migrations: {done}/{available} applied")
            return 0 if done == available else 1
        finally:
            await conn.close(timeout=5)

    try:
        return asyncio.run(main())
    except MigrationError as exc:
        print(f"switchboard migrate: {exc}", file=sys.stderr)
        return 1
    except (*TRANSIENT_DB_ERRORS, asyncpg.PostgresError) as exc:
        print(f"switchboard migrate: database error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
