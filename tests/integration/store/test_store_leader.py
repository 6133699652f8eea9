"""Leadership against a real PostgreSQL (switchboard.ha.leader, store/leader.py): one lock
holder, the epoch bumped at each take-over, acting parts started on the leader only, a hand-
over on step-down and fencing when the lock's session is killed. The AMI client is real but
never connected (its heartbeat writes fail and are logged): Asterisk's side is in
tests/e2e/test_ha_failover.py."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import asyncpg

from switchboard.ami.client import AmiClient
from switchboard.config import AmiSettings, HaSettings
from switchboard.ha.leader import Leadership, Role
from switchboard.store.leader import bump_epoch, calls_started, current_leader, try_lock


class Part:
    def __init__(self, name: str) -> None:
        self.name = name
        self.running = False

    async def start(self) -> None:
        self.running = True

    async def stop(self) -> None:
        self.running = False


async def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not true within {timeout}s")


async def test_the_lock_has_one_holder_and_the_epoch_counts_take_overs(migrated_db: str) -> None:
    key = random.randint(1, 2**31)
    one = await asyncpg.connect(migrated_db, timeout=10)
    two = await asyncpg.connect(migrated_db, timeout=10)
    try:
        assert await try_lock(one, key, timeout=2) is True
        assert await try_lock(two, key, timeout=2) is False
        assert await bump_epoch(one, instance="a", api_url="http://a:8080", timeout=2) == 1
        await one.close()
        assert await try_lock(two, key, timeout=2) is True    # the session ended: the lock is free
        assert await bump_epoch(two, instance="b", api_url="http://b:8080", timeout=2) == 2
        row = await current_leader(two, timeout=2)
        assert row is not None and (row.epoch, row.instance, row.api_url) == (2, "b", "http://b:8080")
        await two.execute("INSERT INTO call_events (call_id, seq, ts, kind, data) VALUES "
                          "('c1', 1, now(), 'call.started', '{}'), ('c2', 1, now(), 'ivr.step', '{}')")
        assert await calls_started(two, ["c1", "c2", "c3"], timeout=2) == {"c1"}
    finally:
        for c in (one, two):
            if not c.is_closed():
                await c.close()


async def test_standby_takes_over_on_hand_over_and_a_killed_lock_session_fences(migrated_db: str) -> None:
    settings = HaSettings(enabled=True, lock_key=random.randint(1, 2**31), poll_s=0.2, probe_timeout_s=1.0)
    fenced: list[str] = []
    a = Leadership(settings, migrated_db, ami=AmiClient(AmiSettings()), instance="a")
    b = Leadership(settings, migrated_db, ami=AmiClient(AmiSettings()), instance="b", on_fenced=fenced.append)
    part_a, part_b = Part("acd"), Part("acd")
    wrapped_a, wrapped_b = a.when_leading(part_a), b.when_leading(part_b)
    try:
        await a.start()
        await wrapped_a.start()
        await b.start()
        await wrapped_b.start()
        assert (a.role, a.epoch, part_a.running) == (Role.LEADER, 1, True)
        assert (b.role, part_b.running, b.acting()) == (Role.STANDBY, False, False)
        assert b.status()["leader"] == "a"
        written: list[str] = []
        b.guard(written.append)("dropped while standing by")
        await a.step_down("stopping")
        assert not a.acting()
        await wait_for(lambda: b.acting() and part_b.running)
        assert b.epoch == 2 and b.takeovers == 1 and b.takeover_s is not None
        b.guard(written.append)("kept")
        assert written == ["kept"]
        # the lock's session killed under the leader: it stops acting at once and says why
        admin = await asyncpg.connect(migrated_db, timeout=10)
        try:
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE application_name = 'switchboard-leader b'")
        finally:
            await admin.close()
        await wait_for(lambda: bool(fenced))
        assert b.role is Role.FENCED and not b.acting() and "connection" in fenced[0]
    finally:
        for x in (a, b):
            await x.stop()
