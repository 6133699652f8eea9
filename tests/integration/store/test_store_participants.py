"""The CRM look-up against the real PostgreSQL: fields, the cache, its own bounded pool, the deadline."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from switchboard.config import DatabaseSettings
from switchboard.geo import load_provinces, normalize_number
from switchboard.store.participants import LookupUnavailable, ParticipantLookup
from switchboard.store.seed import seed_demo

KNOWN_CODE = "0100000001"     # a seeded participant: Hà Nội, last paid June 2025


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def seeded(migrated_db: str) -> AsyncIterator[str]:
    conn = await asyncpg.connect(migrated_db, timeout=10)
    try:
        assert await seed_demo(conn) == 20
    finally:
        await conn.close(timeout=5)
    yield migrated_db


def _lookup(dsn: str, clock: Clock | None = None, **settings: object) -> ParticipantLookup:
    provinces = load_provinces()

    def province_id(name: str) -> str | None:
        unit = provinces.find(name)
        return unit.id if unit is not None else None

    db = dataclasses.replace(DatabaseSettings(), dsn=dsn, **settings)  # type: ignore[arg-type]
    return ParticipantLookup(db, province_id=province_id, normalize=normalize_number,
                             **({"clock": clock} if clock is not None else {}))


async def test_found_fields_then_the_cache_until_its_ttl(seeded: str) -> None:
    clock = Clock()
    lookup = _lookup(seeded, clock, lookup_cache_ttl_s=60.0)
    await lookup.start()
    try:
        found = await lookup("si_code", KNOWN_CODE)
        assert found is not None and found["id"] == KNOWN_CODE and found["province"] == "ha-noi"
        assert (found["paid_month"], found["paid_year"]) == ("06", "2025")
        assert await lookup("si_code", "0199999999") is None
        conn = await asyncpg.connect(seeded, timeout=10)
        try:
            await conn.execute("UPDATE participants SET full_name = 'Renamed' WHERE insurance_code = $1", KNOWN_CODE)
        finally:
            await conn.close(timeout=5)
        assert (await lookup("si_code", KNOWN_CODE) or {})["name"] == found["name"]   # from the cache
        clock.t += 61
        assert (await lookup("si_code", KNOWN_CODE) or {})["name"] == "Renamed"       # read again
        assert lookup.cache.hits == 1
    finally:
        await lookup.stop()


async def test_concurrent_lookups_hold_at_most_their_share_of_connections(seeded: str) -> None:
    lookup = _lookup(seeded, lookup_pool_max=3, lookup_cache_size=0)
    await lookup.start()
    watcher = await asyncpg.connect(seeded, timeout=10)
    try:
        results = await asyncio.gather(*(lookup("phone", f"09010000{i:02d}") for i in range(1, 21)))
        assert sum(r is not None for r in results) == 20
        opened = await watcher.fetchval("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                                        "'switchboard-lookup' AND datname = current_database()")
        assert 1 <= opened <= 3
    finally:
        await watcher.close(timeout=5)
        await lookup.stop()


async def test_a_locked_table_gives_lookup_unavailable_at_the_deadline(seeded: str) -> None:
    lookup = _lookup(seeded, lookup_timeout_s=0.5)
    await lookup.start()
    locker = await asyncpg.connect(seeded, timeout=10)
    tx = locker.transaction()
    await tx.start()
    try:
        await locker.execute("LOCK TABLE participants IN ACCESS EXCLUSIVE MODE")
        t0 = time.monotonic()
        with pytest.raises(LookupUnavailable):
            await lookup("si_code", KNOWN_CODE)
        assert 0.4 < time.monotonic() - t0 < 3.0
        await tx.rollback()
        found = await lookup("si_code", KNOWN_CODE)     # the database answers again: so does the look-up
        assert found is not None and found["id"] == KNOWN_CODE
    finally:
        await locker.close(timeout=5)
        await lookup.stop()
