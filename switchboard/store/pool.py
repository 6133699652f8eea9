"""The PostgreSQL connection pool: open it (sized and time-limited from the settings),
close it (gracefully, then terminate), run it as a part of the composition root
(:class:`PoolPart`, :class:`LazyPool` for services built before it starts), borrow a
connection from a pool or use a connection as it is, and read with a logged fallback
when the database is away (:func:`read_or_log`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeAlias, TypeVar

import asyncpg

from switchboard.config import DatabaseSettings, Settings, redact_dsn
from switchboard.store.errors import TRANSIENT_DB_ERRORS

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


async def close_connection(conn: asyncpg.Connection | None) -> None:
    """Close a connection of its own gracefully (2 s), else terminate it; nothing when it is
    None or already closed (the writer's and the agent state log's)."""
    if conn is None or conn.is_closed():
        return
    try:
        await conn.close(timeout=2.0)
    except (*TRANSIENT_DB_ERRORS, asyncpg.PostgresError):
        conn.terminate()


T = TypeVar("T")


async def read_or_log(pool: Any, read: Callable[[asyncpg.Connection], Awaitable[T]], *, log: logging.Logger,
                      level: int, failed: str, timeout: float = 5.0) -> T | None:
    """``read(conn)`` on a connection borrowed from ``pool`` (within ``timeout``). Any failure
    (the database away, no pool yet) is logged as ``failed % exc`` at ``level`` on ``log`` and
    gives None: the caller carries on without the data and tries again later."""
    try:
        async with pool.acquire(timeout=timeout) as conn:
            return await read(conn)
    except Exception as exc:
        log.log(level, failed, exc)
        return None


class PoolPart:
    """The asyncpg pool as a part. It connects lazily, so the service starts
    (and spools call events) while the database is away."""

    name = "database-pool"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pool: Any = None

    async def start(self) -> None:
        # pool_min 0: no connection is opened (or waited for) until one is needed.
        db = self.settings.database
        self.pool = await create_pool(dataclasses.replace(db, pool_min=0, pool_max=max(1, db.pool_max)))

    async def stop(self) -> None:
        if self.pool is not None:
            await close_pool(self.pool, timeout=5)


class LazyPool:
    """Hands the pool part's pool to services built before it started."""

    def __init__(self, part: PoolPart) -> None:
        self._part = part

    def __getattr__(self, name: str) -> Any:
        return getattr(self._part.pool, name)
