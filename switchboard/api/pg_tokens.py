"""``TokenStore`` over PostgreSQL (table ``api_tokens``, migrations 0010 and 0011): a thin
adapter over the queries of ``switchboard/store/tokens.py``.

A database that is away raises the API's ``UnavailableError`` (503), never a
raw driver error (which would be a 500 on every authenticated request).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from switchboard.api.services import StoredToken, UnavailableError
from switchboard.store import tokens as sql
from switchboard.store.errors import TRANSIENT_DB_ERRORS

log = logging.getLogger("switchboard.api.tokens")


@asynccontextmanager
async def _database() -> AsyncIterator[None]:
    try:
        yield
    except TRANSIENT_DB_ERRORS as exc:
        log.warning("database unavailable (%s) while checking an API token", type(exc).__name__)
        raise UnavailableError("the database is not reachable", details={"reading": "token"}) from exc


def _row(rec: Any) -> StoredToken:
    return StoredToken(
        id=rec["id"],
        secret_hash=bytes(rec["secret_hash"]),
        role=rec["role"],
        agent_id=rec["agent_id"],
        name=rec["name"],
        kind=rec["kind"],
        created_at=rec["created_at"],
        expires_at=rec["expires_at"],
        revoked_at=rec["revoked_at"],
        parent_id=rec["parent_id"],
        sip_endpoint=rec["sip_endpoint"],
    )


class PgTokenStore:
    def __init__(self, pool: asyncpg.Pool | asyncpg.Connection, *, timeout: float = 5.0) -> None:
        self._pool = pool
        self._timeout = timeout

    async def fetch(self, token_id: str) -> StoredToken | None:
        async with _database():
            rec = await sql.fetch_token(self._pool, token_id, timeout=self._timeout)
        return None if rec is None else _row(rec)

    async def active(self, token_ids: Iterable[str]) -> set[str]:
        """Which of ``token_ids`` are valid now, with every parent (one query)."""
        ids = sorted(set(token_ids))
        if not ids:
            return set()
        async with _database():
            return await sql.active_ids(self._pool, ids, timeout=self._timeout)

    async def insert(self, token: StoredToken) -> None:
        await sql.insert_token(
            self._pool, id=token.id, secret_hash=token.secret_hash, role=token.role, agent_id=token.agent_id,
            name=token.name, kind=token.kind, created_at=token.created_at, expires_at=token.expires_at,
            parent_id=token.parent_id, sip_endpoint=token.sip_endpoint, timeout=self._timeout)

    async def revoke(self, token_id: str) -> bool:
        async with _database():
            return await sql.revoke_token(self._pool, token_id, timeout=self._timeout)

    async def list_tokens(self) -> Sequence[StoredToken]:
        return [_row(r) for r in await sql.list_api_tokens(self._pool, timeout=self._timeout)]

    async def purge_sessions(self) -> int:
        """Delete expired sessions; returns how many."""
        return await sql.purge_sessions(self._pool, timeout=self._timeout)
