"""The CRM look-up: the bounded TTL cache, copies, normalised phone numbers, and its deadline.

The pool is a stand-in with asyncpg's behaviour that matters here (``acquire`` waits while
every connection is out; a query can stall); tests/integration/store/test_store_participants.py
runs the same look-up against the real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

from switchboard.config import DatabaseSettings
from switchboard.store.participants import (
    SQL_BY_PHONE,
    SQL_BY_SI_CODE,
    LookupUnavailable,
    ParticipantLookup,
    TtlCache,
)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


ROW = {"insurance_code": "0100000001", "full_name": "Nguyễn Văn An", "province": "Hà Nội",
       "contribution_status": "active", "months_contributed": 120, "last_contribution": date(2025, 6, 1),
       "health_card_valid_to": None}


class Pool:
    """Like an asyncpg pool: ``acquire()`` waits while all ``size`` connections are out
    (``stall``: the database never answers), ``fetchrow`` answers from ``rows``."""

    def __init__(self, rows: dict[str, dict[str, Any]], *, size: int = 1, stall: bool = False) -> None:
        self.rows = rows
        self.free = asyncio.Semaphore(size)
        self.stall = stall
        self.queries: list[tuple[str, str]] = []

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[Pool]:
        async with self.free:
            yield self

    async def fetchrow(self, sql: str, value: str) -> dict[str, Any] | None:
        self.queries.append((sql, value))
        if self.stall:
            await asyncio.sleep(3600)
        return self.rows.get(value)

    async def close(self) -> None:
        return None


def _lookup(pool: Pool, clock: Clock, **settings: Any) -> ParticipantLookup:
    db = dataclasses.replace(DatabaseSettings(), **{"lookup_timeout_s": 0.2, **settings})
    lookup = ParticipantLookup(db, province_id=lambda name: "ha-noi" if name == "Hà Nội" else None,
                               normalize=lambda v: "0" + v[3:] if v.startswith("+84") else v, clock=clock,
                               connect=lambda *a, **kw: pool)
    return lookup


def test_ttl_cache_expires_and_stays_bounded() -> None:
    clock = Clock()
    cache = TtlCache(max_entries=2, clock=clock)
    cache.put("a", 1, ttl=10)
    cache.put("b", 2, ttl=10)
    assert cache.get("a") == (True, 1)             # a is now the most recently used
    cache.put("c", 3, ttl=10)
    assert cache.get("b") == (False, None)         # the least recently used went first
    assert len(cache) == 2
    clock.t += 10
    assert cache.get("a") == (False, None) and cache.get("c") == (False, None)
    assert len(cache) == 0
    cache.put("none", None, ttl=5)
    assert cache.get("none") == (True, None)       # "not found" is cached too
    TtlCache(max_entries=0).put("x", 1, ttl=10)    # a size of 0 caches nothing


async def test_found_rows_are_served_from_the_cache_until_the_ttl() -> None:
    clock, pool = Clock(), Pool({"0100000001": ROW})
    lookup = _lookup(pool, clock, lookup_cache_ttl_s=60.0)
    await lookup.start()
    first = await lookup("si_code", "0100000001")
    assert first == {"id": "0100000001", "name": "Nguyễn Văn An", "province": "ha-noi", "status": "active",
                     "months": "120", "paid_month": "06", "paid_year": "2025"}
    first["name"] = "changed by the flow"          # the cache hands out copies
    assert await lookup("si_code", "0100000001") == {**first, "name": "Nguyễn Văn An"}
    assert pool.queries == [(SQL_BY_SI_CODE, "0100000001")]
    clock.t += 61
    await lookup("si_code", "0100000001")
    assert len(pool.queries) == 2


async def test_not_found_is_cached_briefly_and_phone_numbers_are_normalised() -> None:
    clock, pool = Clock(), Pool({})
    lookup = _lookup(pool, clock)
    await lookup.start()
    assert await lookup("phone", "+84912000001") is None
    assert await lookup("phone", "0912000001") is None        # same key once normalised: cached
    assert pool.queries == [(SQL_BY_PHONE, "0912000001")]
    clock.t += 11                                              # "not found" lives 10 s at most
    pool.rows["0912000001"] = ROW
    assert (await lookup("phone", "0912000001") or {})["id"] == "0100000001"


async def test_a_stalled_database_raises_lookup_unavailable_within_the_deadline() -> None:
    clock, pool = Clock(), Pool({"0100000001": ROW}, size=1, stall=True)
    lookup = _lookup(pool, clock)
    await lookup.start()
    t0 = time.monotonic()
    results = await asyncio.gather(*(lookup("si_code", "0100000001") for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, LookupUnavailable) for r in results)   # the query and the two waiting for the pool
    assert time.monotonic() - t0 < 1.0
    assert lookup.failures == 3 and len(pool.queries) == 1
    assert len(lookup.cache) == 0                                    # a failure is not cached
