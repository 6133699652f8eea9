from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from switchboard.store.migrate import apply_migrations


@pytest.fixture
async def migrated_db(fresh_db: str) -> AsyncIterator[str]:
    """A fresh database with every migration applied."""
    conn = await asyncpg.connect(fresh_db, timeout=10)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close(timeout=5)
    yield fresh_db


@pytest.fixture
async def db(migrated_db: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(migrated_db, timeout=10)
    try:
        yield conn
    finally:
        await conn.close(timeout=5)
