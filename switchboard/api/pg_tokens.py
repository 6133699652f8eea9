"""``TokenStore`` over PostgreSQL (table ``api_tokens``, migrations 0010 and 0011)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from switchboard.api.services import StoredToken

_COLUMNS = "id, secret_hash, role, agent_id, name, kind, created_at, expires_at, revoked_at, parent_id"


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
        # A session has no endpoint of its own: it takes its login token's (the binding stays in one row).
        rec = await self._pool.fetchrow(
            f"SELECT {_COLUMNS}, COALESCE(sip_endpoint, (SELECT p.sip_endpoint FROM api_tokens p"
            " WHERE p.id = api_tokens.parent_id)) AS sip_endpoint FROM api_tokens WHERE id = $1",
            token_id, timeout=self._timeout
        )
        return None if rec is None else _row(rec)

    async def insert(self, token: StoredToken) -> None:
        await self._pool.execute(
            "INSERT INTO api_tokens (id, secret_hash, role, agent_id, name, kind, created_at, expires_at, parent_id,"
            " sip_endpoint) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            token.id, token.secret_hash, token.role, token.agent_id, token.name, token.kind,
            token.created_at, token.expires_at, token.parent_id, token.sip_endpoint,
            timeout=self._timeout,
        )

    async def revoke(self, token_id: str) -> bool:
        status = await self._pool.execute(
            "UPDATE api_tokens SET revoked_at = now() WHERE (id = $1 OR parent_id = $1) AND revoked_at IS NULL",
            token_id, timeout=self._timeout,
        )
        return int(status.split()[-1]) > 0

    async def list_tokens(self) -> Sequence[StoredToken]:
        recs = await self._pool.fetch(
            f"SELECT {_COLUMNS}, sip_endpoint FROM api_tokens WHERE kind = 'api' ORDER BY created_at", timeout=self._timeout
        )
        return [_row(r) for r in recs]

    async def purge_sessions(self) -> int:
        """Delete expired sessions; returns how many."""
        status = await self._pool.execute(
            "DELETE FROM api_tokens WHERE kind = 'session' AND expires_at < now()", timeout=self._timeout
        )
        return int(status.split()[-1])
