"""The PostgreSQL connection pool: open it (sized and time-limited from the settings),
close it (gracefully, then terminate), and borrow a connection from a pool or use a
connection as it is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeAlias

import asyncpg

from switchboard.config import DatabaseSettings, redact_dsn

# The logger keeps the name it had in the API's services, so operators' filters still match.
log = logging.getLogger("switchboard.api.services")

#: A pool, a connection, or a lazy proxy of a pool (anything with ``acquire``).
Db: TypeAlias = "asyncpg.Pool | asyncpg.Connection"


@asynccontextmanager
async def acquire(db: Db, *, timeout: float) -> AsyncIterator[asyncpg.Connection]:
    """A connection: ``db`` itself when it is one, else one borrowed from it for the block."""
    # A connection is used as it is; anything else is a pool (the service hands a lazy
    # proxy of one, which is no asyncpg.Pool instance).
    if isinstance(db, asyncpg.Connection):
        yield db
    else:
        async with db.acquire(timeout=timeout) as conn:
            yield conn


async def create_pool(
    settings: DatabaseSettings,
    *,
    dsn: str | None = None,
    connect_timeout: float = 5.0,
    application_name: str = "switchboard",
) -> asyncpg.Pool:
    """A connection pool sized by ``database.pool_min``/``pool_max``; every connection
    attempt is limited to ``connect_timeout`` and every query to ``command_timeout``."""
    target = dsn or settings.dsn
    pool = asyncpg.create_pool(
        target,
        min_size=settings.pool_min,
        max_size=max(settings.pool_max, settings.pool_min),
        timeout=connect_timeout,
        command_timeout=settings.command_timeout,
        max_inactive_connection_lifetime=300.0,
        server_settings={"application_name": application_name},
    )
    try:
        async with asyncio.timeout(connect_timeout * max(1, settings.pool_min) + 1.0):
            await pool
    except BaseException:
        pool.terminate()
        raise
    log.info("database pool ready (%s, %d-%d connections)", redact_dsn(target), settings.pool_min,
             settings.pool_max)
    return pool


async def close_pool(pool: asyncpg.Pool, *, timeout: float = 5.0) -> None:
    """Close gracefully (waits for connections in use), then terminate what is left."""
    try:
        await asyncio.wait_for(pool.close(), timeout=timeout)
    except TimeoutError:
        log.warning("database pool did not close within %.1fs: terminating", timeout)
        pool.terminate()
