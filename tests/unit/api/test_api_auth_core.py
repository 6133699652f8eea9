"""Tokens, hashing, access rules and the failed-login limiter (no server)."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta

from api_fakes import FakeTokens

from switchboard.api import auth
from switchboard.api.auth import Access, FailureLimiter, Principal


async def test_token_is_stored_as_hash_only() -> None:
    store = FakeTokens()
    token, row = await auth.create_token(store, role="supervisor", name="sup")
    token_id, secret = auth.parse_token(token) or ("", "")
    assert row.id == token_id
    assert row.secret_hash == hashlib.sha256(secret.encode()).digest()
    for value in dataclasses.asdict(store.rows[token_id]).values():
        assert secret not in str(value)
        assert token not in str(value)


async def test_verify_accepts_the_token_and_rejects_variants() -> None:
    store = FakeTokens()
    token, _ = await auth.create_token(store, role="agent", agent_id="a1")
    p = await auth.verify_token(store, token)
    assert p is not None and p.role == "agent" and p.agent_id == "a1"
    assert await auth.verify_token(store, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert await auth.verify_token(store, "sb_000000000000." + "x" * 43) is None
    assert await auth.verify_token(store, "garbage") is None
    assert await auth.verify_token(store, "") is None


async def test_revoked_and_expired_tokens_are_refused() -> None:
    store = FakeTokens()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    token, _row = await auth.create_token(store, role="admin", ttl=timedelta(hours=1), now=now)
    assert await auth.verify_token(store, token, now=now + timedelta(minutes=59)) is not None
    assert await auth.verify_token(store, token, now=now + timedelta(hours=1)) is None
    token2, row2 = await auth.create_token(store, role="admin")
    assert await store.revoke(row2.id)
    assert await auth.verify_token(store, token2) is None


async def test_agent_token_needs_agent_and_roles_are_checked() -> None:
    store = FakeTokens()
    for kwargs in ({"role": "agent"}, {"role": "root"}):
        try:
            await auth.create_token(store, **kwargs)  # type: ignore[arg-type]
        except ValueError:
            pass
        else:
            raise AssertionError(f"accepted {kwargs}")
    assert store.rows == {}


def test_access_rules() -> None:
    agent = Principal("t1", "agent", "a1", "", "api")
    sup = Principal("t2", "supervisor", None, "", "api")
    admin = Principal("t3", "admin", None, "", "api")
    assert auth.may_access(agent, Access.SELF, "a1")
    assert not auth.may_access(agent, Access.SELF, "a2")
    assert not auth.may_access(sup, Access.SELF, "a1")
    assert auth.may_access(sup, Access.SELF_OR_SUPERVISOR, "a1")
    assert not auth.may_access(agent, Access.SELF_OR_SUPERVISOR, "a2")
    assert not auth.may_access(agent, Access.SUPERVISOR, None)
    assert auth.may_access(admin, Access.SUPERVISOR, None)
    assert not auth.may_access(sup, Access.ADMIN, None)
    assert auth.may_access(admin, Access.ADMIN, None)


def test_limiter_blocks_after_max_failures_and_unblocks_later() -> None:
    now = [1000.0]
    lim = FailureLimiter(max_failures=3, window_s=60, clock=lambda: now[0])
    for _ in range(2):
        lim.failed("ip:1")
    assert lim.retry_after("ip:1") == 0
    lim.failed("ip:1")
    assert 59 <= lim.retry_after("ip:1") <= 60
    assert lim.retry_after("ip:2") == 0
    now[0] += 61
    assert lim.retry_after("ip:1") == 0
    lim.failed("ip:1")
    lim.succeeded("ip:1")
    assert lim.retry_after("ip:1") == 0


def test_limiter_memory_is_bounded() -> None:
    lim = FailureLimiter(max_failures=1, window_s=60, max_keys=100)
    for i in range(1000):
        lim.failed(f"ip:{i}")
    assert len(lim._failures) == 100
    assert lim.retry_after("ip:999") > 0
