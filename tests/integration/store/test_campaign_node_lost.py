"""Campaign attempts on a lost Asterisk node (issue 18's AmiNodes, issue 19's dialer): the real
dialer, the real PostgreSQL, the real ``AmiNodes`` over two in-process AMI servers (the faithful
fake of tests/unit/ami/fake_ami.py: a node that dies is what the real Asterisk cannot show here).

A node lost means no event will ever come for its calls: the attempts placed there close
``failed`` (detail ``node_lost``) and follow the retry rules (the spacing for ``failed``), are
redialled on the node that is left, never while the first attempt is open, and a late event
from the node when it comes back changes nothing.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit" / "ami"))
from test_nodes import ev, two_nodes

from switchboard.campaigns.dialer import CampaignDialer
from switchboard.campaigns.model import Campaign, Mode, RetryRules, State, Targets
from switchboard.campaigns.targets import Contact
from switchboard.config import CampaignSettings
from switchboard.store import campaigns as sc
from switchboard.telephony.numbers import default_callback_numbers

CAMP = Campaign(campaign_id="lost", flow="reminder-card", mode=Mode.MESSAGE, max_attempts=3,
                retry=RetryRules(no_answer_s=600, busy_s=600, failed_s=60), targets=Targets(csv="x.csv"))
NUMBERS = ["0912345601", "0912345602"]


class Clock:
    def __init__(self) -> None:
        self.at, self.t0 = datetime(2026, 3, 3, 3, 0, tzinfo=UTC), time.monotonic()

    def move(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)

    def __call__(self) -> datetime:
        return self.at + timedelta(seconds=time.monotonic() - self.t0)


class Open:
    def is_open(self, now: datetime) -> bool:
        return True

    def next_open(self, now: datetime) -> datetime | None:
        return now


class NoAgents:
    def agents(self) -> list[Any]:
        return []

    def waiting_calls(self) -> list[Any]:
        return []


async def _until(pred: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not (await pred() if asyncio.iscoroutinefunction(pred) else pred()):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_attempts_on_a_lost_node_close_failed_and_are_retried_by_the_rules(migrated_db: str) -> None:
    pool = await asyncpg.create_pool(migrated_db, min_size=1, max_size=4, timeout=10)
    assert pool is not None
    clock = Clock()
    async with pool.acquire() as conn:
        await sc.upsert_campaign(conn, CAMP, source="test")
        await sc.add_contacts(conn, "lost", [Contact(n) for n in NUMBERS], now=clock())
        await sc.set_state(conn, "lost", State.RUNNING, by="test")

    async def attempts() -> list[Any]:
        async with pool.acquire() as conn:
            return list(await conn.fetch("SELECT * FROM campaign_attempts ORDER BY claimed_at"))

    async with two_nodes() as (nodes, fa, fb, _):
        dialer = CampaignDialer(settings=CampaignSettings(tick_s=3600), pool=pool, ami=nodes,
                                policy=default_callback_numbers().policy, runner=None, acd=NoAgents(),
                                window_for=lambda c: Open(), wall=clock)
        await dialer.start()
        try:
            async def two_open() -> bool:
                rows = await attempts()
                return len(rows) == 2 and all(r["originated_at"] for r in rows)
            await _until(two_open)
            first = {r["number"]: r for r in await attempts()}
            on_node = {r["attempt_id"].split("-", 1)[0]: r for r in first.values()}
            assert set(on_node) == {"a", "b"}           # one placed on each node, the attempt id says which
            assert [h["ChannelId"] for h in (r.headers for r in fb.received if r.name == "Originate")] == [
                on_node["b"]["attempt_id"]]
            lost_number = on_node["b"]["number"]

            fb.hold.add("Challenge")                    # b does not come back
            fb.drop()

            async def b_closed() -> bool:
                rows = await attempts()
                return any(r["result"] for r in rows)
            await _until(b_closed)
            rows = {r["attempt_id"]: r for r in await attempts()}
            closed = rows[on_node["b"]["attempt_id"]]
            assert (closed["result"], closed["detail"]) == ("failed", "node_lost")
            assert rows[on_node["a"]["attempt_id"]]["result"] is None        # the call on a goes on
            assert on_node["b"]["attempt_id"] not in dialer.live
            async with pool.acquire() as conn:
                contact = await conn.fetchrow("SELECT * FROM campaign_contacts WHERE number = $1", lost_number)
            assert contact["status"] == "pending" and contact["last_result"] == "failed"
            assert contact["next_at"] >= closed["ended_at"] + timedelta(seconds=60)     # the failed spacing

            # not redialled before the spacing
            dialer.wake()
            await asyncio.sleep(0.5)
            assert len(await attempts()) == 2
            # past it: dialled again, on the node that is left, as attempt 2
            clock.move(61)
            dialer.wake()

            async def redialled() -> bool:
                return len(await attempts()) == 3
            await _until(redialled)
            again = (await attempts())[-1]
            assert (again["number"], again["attempt_no"], again["result"]) == (lost_number, 2, None)
            assert again["attempt_id"].startswith("a-")
            assert len([r for r in fa.received if r.name == "Originate"]) == 2

            # b comes back and says the old leg hung up: nothing changes
            fb.hold.discard("Challenge")
            await _until(lambda: nodes.up_nodes() == ["a", "b"])
            fb.write(ev("Hangup", "b", Uniqueid=closed["attempt_id"], Channel="PJSIP/trunk-00000001", Cause="16"))
            await asyncio.sleep(0.3)
            rows = {r["attempt_id"]: r for r in await attempts()}
            assert (rows[closed["attempt_id"]]["result"], rows[closed["attempt_id"]]["detail"]) == (
                "failed", "node_lost")
            # never two calls to a number at once: one open attempt per number at every point
            numbers_open = [r["number"] for r in rows.values() if r["result"] is None]
            assert sorted(numbers_open) == sorted(NUMBERS)
        finally:
            await dialer.stop()
    await pool.close()
