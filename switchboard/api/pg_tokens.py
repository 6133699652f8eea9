"""``TokenStore`` over PostgreSQL (table ``api_tokens``, migrations 0010 and 0011).

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
from switchboard.store.errors import TRANSIENT_DB_ERRORS

log = logging.getLogger("switchboard.api.tokens")

# A token's ancestors (a session's login token; older rows may have sessions of sessions).
_ANCESTORS = """
WITH RECURSIVE chain (root, id, parent_id, revoked_at, expires_at, depth) AS (
    SELECT id, id, parent_id, revoked_at, expires_at, 0 FROM api_tokens WHERE id = ANY($1::text[])
  UNION ALL
    SELECT c.root, t.id, t.parent_id, t.revoked_at, t.expires_at, c.depth + 1
    FROM chain c JOIN api_tokens t ON t.id = c.parent_id
    WHERE c.depth < 8
)
SELECT root FROM chain GROUP BY root
HAVING bool_and(revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()))
"""

# A token and every token opened with it, at any depth.
_REVOKE = """
WITH RECURSIVE tree (id, depth) AS (
    SELECT id, 0 FROM api_tokens WHERE id = $1
  UNION ALL
    SELECT t.id, tree.depth + 1 FROM tree JOIN api_tokens t ON t.parent_id = tree.id WHERE tree.depth < 8
)
UPDATE api_tokens SET revoked_at = now() WHERE id IN (SELECT id FROM tree) AND revoked_at IS NULL
"""


@asynccontextmanager
async def _database() -> AsyncIterator[None]:
    try:
        yield
    except TRANSIENT_DB_ERRORS as exc:
        log.warning("database unavailable (%s) while checking an API token", type(exc).__name__)
        raise UnavailableError("the database is not reachable", details={"reading": "token"}) from exc

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
        async with _database():
            rec = await self._pool.fetchrow(
                f"SELECT {_COLUMNS}, COALESCE(sip_endpoint, (SELECT p.sip_endpoint FROM api_tokens p"
                " WHERE p.id = api_tokens.parent_id)) AS sip_endpoint FROM api_tokens WHERE id = $1",
                token_id, timeout=self._timeout
            )
        return None if rec is None else _row(rec)

    async def active(self, token_ids: Iterable[str]) -> set[str]:
        """Which of ``token_ids`` are valid now, with every parent (one query)."""
        ids = sorted(set(token_ids))
        if not ids:
            return set()
        async with _database():
            recs = await self._pool.fetch(_ANCESTORS, ids, timeout=self._timeout)
        return {r["root"] for r in recs}

    async def insert(self, token: StoredToken) -> None:
        await self._pool.execute(
            "INSERT INTO api_tokens (id, secret_hash, role, agent_id, name, kind, created_at, expires_at, parent_id,"
            " sip_endpoint) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            token.id, token.secret_hash, token.role, token.agent_id, token.name, token.kind,
            token.created_at, token.expires_at, token.parent_id, token.sip_endpoint,
            timeout=self._timeout,
        )

    async def revoke(self, token_id: str) -> bool:
        async with _database():
            status = await self._pool.execute(_REVOKE, token_id, timeout=self._timeout)
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
