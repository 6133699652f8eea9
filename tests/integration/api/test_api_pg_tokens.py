"""Tokens in real PostgreSQL: migration, CLI, hashing, and the app authenticating against it."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from switchboard.api import auth
from switchboard.api.app import create_app
from switchboard.api.pg_tokens import PgTokenStore
from switchboard.config import Settings
from switchboard.store.migrate import apply_migrations

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit" / "api"))
from api_fakes import make_world

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
async def db(fresh_db: str) -> AsyncIterator[str]:
    conn = await asyncpg.connect(fresh_db, timeout=10)
    try:
        await apply_migrations(conn)
        await conn.execute("INSERT INTO agents (id, name, sip_endpoint) VALUES ('a1', 'An', 'PJSIP/a1')",
                           timeout=10)
    finally:
        await conn.close(timeout=5)
    yield fresh_db


def _cli(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"SWITCHBOARD_DSN": dsn, "PATH": "/usr/bin:/bin"}
    return subprocess.run([str(REPO / ".venv/bin/python"), "-m", "switchboard", *args], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=60, check=False)


async def test_cli_creates_a_token_stored_only_as_hash(db: str) -> None:
    done = _cli(db, "tokens", "create", "--role", "agent", "--agent", "a1", "--name", "An's phone")
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    token_id, secret = auth.parse_token(token) or ("", "")
    assert token_id and secret not in done.stderr
    conn = await asyncpg.connect(db, timeout=10)
    try:
        rows = await conn.fetch("SELECT * FROM api_tokens", timeout=10)
        assert len(rows) == 1
        assert bytes(rows[0]["secret_hash"]) == hashlib.sha256(secret.encode()).digest()
        dump = await conn.fetchval("SELECT string_agg(t::text, ' ') FROM api_tokens t", timeout=10)
        assert secret not in dump and token not in dump
        store = PgTokenStore(conn)
        p = await auth.verify_token(store, token)
        assert p is not None and (p.role, p.agent_id, p.name) == ("agent", "a1", "An's phone")
    finally:
        await conn.close(timeout=5)
    listed = _cli(db, "tokens", "list")
    assert token_id in listed.stdout and secret not in listed.stdout
    assert _cli(db, "tokens", "revoke", token_id).returncode == 0
    assert _cli(db, "tokens", "revoke", token_id).returncode == 1


async def test_cli_refuses_agent_token_without_a_known_agent(db: str) -> None:
    assert _cli(db, "tokens", "create", "--role", "agent").returncode == 2
    done = _cli(db, "tokens", "create", "--role", "agent", "--agent", "ghost")
    assert done.returncode == 1 and "ghost" in done.stderr


async def test_schema_refuses_an_agent_token_without_agent_and_a_short_hash(db: str) -> None:
    conn = await asyncpg.connect(db, timeout=10)
    try:
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("INSERT INTO api_tokens (id, secret_hash, role) VALUES ('0123456789ab', "
                               "sha256('x'), 'agent')", timeout=10)
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("INSERT INTO api_tokens (id, secret_hash, role) VALUES ('0123456789ab', "
                               "'\\x00', 'admin')", timeout=10)
    finally:
        await conn.close(timeout=5)


async def test_app_authenticates_and_revokes_against_postgres(db: str, tmp_path: Path) -> None:
    pool = await asyncpg.create_pool(db, min_size=1, max_size=2, timeout=10)
    assert pool is not None
    try:
        store = PgTokenStore(pool)
        world = make_world()
        services = world.services.__class__(**{**world.services.__dict__, "tokens": store})
        token, row = await auth.create_token(store, role="agent", agent_id="a1")
        app = create_app(settings=Settings(), services=services)
        async with TestClient(TestServer(app)) as client:
            h = {"Authorization": f"Bearer {token}"}
            assert (await client.get("/api/agents/a1", headers=h)).status == 200
            assert (await client.get("/api/agents/a2", headers=h)).status == 403
            resp = await client.post("/api/session", json={"agent_id": "a1", "token": token})
            assert resp.status == 201
            session = (await resp.json())["token"]
            kinds = await pool.fetch("SELECT kind, expires_at IS NOT NULL AS exp FROM api_tokens ORDER BY kind",
                                     timeout=10)
            assert [(r["kind"], r["exp"]) for r in kinds] == [("api", False), ("session", True)]
            assert (await client.get("/api/agents/a1", headers={"Authorization": f"Bearer {session}"})).status == 200
            # revoking the login token ends the sessions opened with it
            assert await store.revoke(row.id)
            assert (await client.get("/api/agents/a1", headers=h)).status == 401
            assert (await client.get("/api/agents/a1", headers={"Authorization": f"Bearer {session}"})).status == 401
    finally:
        await pool.close()


async def test_revocation_ends_the_whole_tree_and_active_checks_parents(db: str) -> None:
    from datetime import timedelta

    conn = await asyncpg.connect(db, timeout=10)
    try:
        store = PgTokenStore(conn)
        root, root_row = await auth.create_token(store, role="agent", agent_id="a1")
        _, session = await auth.create_token(store, role="agent", agent_id="a1", kind="session",
                                             ttl=timedelta(hours=1), parent_id=root_row.id)
        # a session of a session, as versions before the fix could mint
        _, grandchild = await auth.create_token(store, role="agent", agent_id="a1", kind="session",
                                                ttl=timedelta(hours=1), parent_id=session.id)
        _, other = await auth.create_token(store, role="supervisor")
        ids = {root_row.id, session.id, grandchild.id, other.id}
        assert await store.active(ids) == ids
        # only the parent revoked by hand: the children are no longer active though their rows are not
        await conn.execute("UPDATE api_tokens SET revoked_at = now() WHERE id = $1", root_row.id, timeout=10)
        assert await store.active(ids) == {other.id}
        assert await auth.active_ids(store, ids) == {other.id}
        await conn.execute("UPDATE api_tokens SET revoked_at = NULL", timeout=10)
        assert await store.revoke(root_row.id)
        revoked = {r["id"] for r in await conn.fetch("SELECT id FROM api_tokens WHERE revoked_at IS NOT NULL",
                                                     timeout=10)}
        assert revoked == {root_row.id, session.id, grandchild.id}
        assert await auth.verify_token(store, root) is None
    finally:
        await conn.close(timeout=5)


async def test_supervisor_phone_is_bound_to_the_token_and_its_sessions(db: str) -> None:
    done = _cli(db, "tokens", "create", "--role", "supervisor", "--sip-endpoint", "sup1", "--name", "Tâm")
    assert done.returncode == 0 and "PJSIP/sup1" in done.stderr, done.stderr
    token = done.stdout.strip()
    refused = [_cli(db, "tokens", "create", "--role", "agent", "--agent", "a1", "--sip-endpoint", "sup1"),
               _cli(db, "tokens", "create", "--role", "supervisor", "--sip-endpoint", "sup1@trunk")]
    assert [r.returncode for r in refused] == [2, 2] and all(not r.stdout for r in refused)
    conn = await asyncpg.connect(db, timeout=10)
    try:
        store = PgTokenStore(conn)
        p = await auth.verify_token(store, token)
        assert p is not None and (p.role, p.sip_endpoint) == ("supervisor", "sup1")
        session, _ = await auth.create_token(store, role="supervisor", name="Tâm", kind="session",
                                             parent_id=p.token_id)
        s = await auth.verify_token(store, session)
        assert s is not None and (s.kind, s.sip_endpoint) == ("session", "sup1")   # taken from its login token
        with pytest.raises(asyncpg.CheckViolationError):   # the database refuses a free-form target too
            await conn.execute("UPDATE api_tokens SET sip_endpoint = 'x@trunk' WHERE id = $1", p.token_id)
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("INSERT INTO api_tokens (id, secret_hash, role, agent_id, sip_endpoint) "
                               "VALUES ('0123456789ab', $1, 'agent', 'a1', 'sup1')", b"x" * 32)
    finally:
        await conn.close(timeout=5)
