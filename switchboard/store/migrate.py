"""Plain SQL migrations applied in order, each in its own transaction.

Files are ``migrations/NNNN_name.sql``; the number orders them. What ran is
recorded in ``schema_migrations`` so a re-run is a no-op. A failing file rolls
back completely and raises ``MigrationError`` naming it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from switchboard.store.errors import MigrationError

log = logging.getLogger("switchboard.store.migrate")

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

# A fixed key so two services migrating at once take turns.
_LOCK_KEY = 0x5357_4D49  # "SWMI"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    path: Path

    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Migration files in order; two files with one number is an error."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise MigrationError(path.name, ValueError("name must be NNNN_lower_snake.sql"))
        version = int(m.group(1))
        if version in found:
            raise MigrationError(path.name, ValueError(f"number {version:04d} used twice"))
        found[version] = Migration(version, path.name, path)
    return [found[v] for v in sorted(found)]


_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


async def applied_versions(conn: asyncpg.Connection, *, timeout: float = 10.0) -> set[int]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL", timeout=timeout)
    if not exists:
        return set()
    rows = await conn.fetch("SELECT version FROM schema_migrations", timeout=timeout)
    return {r["version"] for r in rows}


async def apply_migrations(
    conn: asyncpg.Connection,
    *,
    directory: Path = MIGRATIONS_DIR,
    timeout: float = 60.0,
) -> list[str]:
    """Apply every migration not yet recorded; returns the names applied now."""
    migrations = discover(directory)
    await conn.execute(_CREATE_TABLE, timeout=timeout)
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY, timeout=timeout)
    applied_now: list[str] = []
    try:
        done = await applied_versions(conn, timeout=timeout)
        for mig in migrations:
            if mig.version in done:
                continue
            log.info("applying migration %s", mig.name)
            for attempt in (1, 2, 3):
                try:
                    async with conn.transaction():
                        await conn.execute(mig.sql(), timeout=timeout)
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                            mig.version, mig.name, timeout=timeout,
                        )
                    break
                except asyncpg.DeadlockDetectedError as exc:
                    # a running service's writer took its locks first: the migration rolled back whole
                    if attempt == 3:
                        raise MigrationError(mig.name, exc) from exc
                    log.warning("migration %s hit a deadlock (attempt %d), retrying: %s", mig.name, attempt, exc)
                except asyncpg.PostgresError as exc:
                    log.error("migration %s failed and was rolled back: %s", mig.name, exc)
                    raise MigrationError(mig.name, exc) from exc
            applied_now.append(mig.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY, timeout=timeout)
    return applied_now


async def server_version(conn: asyncpg.Connection, *, timeout: float = 10.0) -> str:
    return str(await conn.fetchval("SHOW server_version", timeout=timeout))


async def current_level(
    conn: asyncpg.Connection, *, directory: Path = MIGRATIONS_DIR, timeout: float = 10.0
) -> tuple[int, int]:
    """(applied, available) migration counts, for ``switchboard doctor``."""
    available = {m.version for m in discover(directory)}
    done = await applied_versions(conn, timeout=timeout)
    return (len(done & available), len(available))
