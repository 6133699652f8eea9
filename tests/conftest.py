"""Shared test fixtures.

Integration tests use a real PostgreSQL: the server named by SWITCHBOARD_DSN
(or by ``run/stack.env``, written by ``deploy/local/stack-up.sh``), else the
machine's server on 127.0.0.1:5432. Each test session works in a database of
its own, created here and dropped at the end.

End-to-end tests use the local stack (real Asterisk 22 + SIPp); its addresses
and secrets come from ``run/stack.env``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from switchboard.config import read_env_file

REPO = Path(__file__).resolve().parent.parent
# SB_STACK_ENV: the stack of this pytest process (make test runs two shards, each on its own stack)
STACK_ENV = Path(os.environ.get("SB_STACK_ENV") or REPO / "run" / "stack.env")


def read_stack_env() -> dict[str, str]:
    return read_env_file(STACK_ENV) if STACK_ENV.is_file() else {}


def base_dsn() -> str:
    return (
        os.environ.get("SWITCHBOARD_DSN")
        or read_stack_env().get("SWITCHBOARD_DSN")
        or "postgresql://postgres@127.0.0.1:5432/postgres"
    )


def _with_db(dsn: str, db: str) -> str:
    head, _, tail = dsn.rpartition("/")
    if "?" in tail:
        return f"{head}/{db}?{tail.split('?', 1)[1]}"
    return f"{head}/{db}"


@pytest.fixture(scope="session")
def stack_env() -> dict[str, str]:
    """The local stack's settings (run/stack.env); fails clearly when the stack is not up."""
    env = read_stack_env()
    if not env:
        pytest.fail("run/stack.env is missing: bring the stack up with `make stack-up` (make test does this)")
    return env


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A DSN to a fresh, empty database for this test session (dropped afterwards)."""
    import asyncio

    import asyncpg

    admin = base_dsn()
    name = f"sbtest_{os.getpid()}_{uuid.uuid4().hex[:8]}"

    async def create() -> None:
        conn = await asyncpg.connect(admin, timeout=10)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(admin, timeout=10)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(create())
    try:
        yield _with_db(admin, name)
    finally:
        asyncio.run(drop())


@pytest.fixture
async def fresh_db(pg_dsn: str) -> AsyncIterator[str]:
    """A DSN to a brand-new empty database for one test."""
    import asyncpg

    admin = base_dsn()
    name = f"sbt_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin, timeout=10)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield _with_db(admin, name)
    finally:
        conn = await asyncpg.connect(admin, timeout=10)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
