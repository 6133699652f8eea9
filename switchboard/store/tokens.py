"""API tokens in PostgreSQL (table ``api_tokens``, migrations 0010 and 0011): the queries.

Rows come back as asyncpg records; the API's ``PgTokenStore``
(``switchboard/api/pg_tokens.py``) turns them into ``StoredToken`` and a database
that is away into a 503. Only hashes of secrets are ever stored here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from switchboard.store.pool import Db

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

COLUMNS = "id, secret_hash, role, agent_id, name, kind, created_at, expires_at, revoked_at, parent_id"


async def fetch_token(db: Db, token_id: str, *, timeout: float) -> asyncpg.Record | None:
    # A session has no endpoint of its own: it takes its login token's (the binding stays in one row).
    return await db.fetchrow(
        f"SELECT {COLUMNS}, COALESCE(sip_endpoint, (SELECT p.sip_endpoint FROM api_tokens p"
        " WHERE p.id = api_tokens.parent_id)) AS sip_endpoint FROM api_tokens WHERE id = $1",
        token_id, timeout=timeout
    )


async def active_ids(db: Db, ids: Sequence[str], *, timeout: float) -> set[str]:
    """Which of ``ids`` are valid now, with every parent (one query)."""
    recs = await db.fetch(_ANCESTORS, ids, timeout=timeout)
    return {r["root"] for r in recs}


async def insert_token(db: Db, *, id: str, secret_hash: bytes, role: str, agent_id: str | None, name: str,
                       kind: str, created_at: datetime, expires_at: datetime | None, parent_id: str | None,
                       sip_endpoint: str | None, timeout: float) -> None:
    await db.execute(
        "INSERT INTO api_tokens (id, secret_hash, role, agent_id, name, kind, created_at, expires_at, parent_id,"
        " sip_endpoint) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        id, secret_hash, role, agent_id, name, kind,
        created_at, expires_at, parent_id, sip_endpoint,
        timeout=timeout,
    )


async def revoke_token(db: Db, token_id: str, *, timeout: float) -> bool:
    """Revoke a token and every token opened with it; False when none was active."""
    status = await db.execute(_REVOKE, token_id, timeout=timeout)
    return int(status.split()[-1]) > 0


async def list_api_tokens(db: Db, *, timeout: float) -> list[Any]:
    return list(await db.fetch(
        f"SELECT {COLUMNS}, sip_endpoint FROM api_tokens WHERE kind = 'api' ORDER BY created_at", timeout=timeout
    ))


async def purge_sessions(db: Db, *, timeout: float) -> int:
    """Delete expired sessions; returns how many."""
    status = await db.execute(
        "DELETE FROM api_tokens WHERE kind = 'session' AND expires_at < now()", timeout=timeout
    )
    return int(status.split()[-1])
