"""Leadership against a real PostgreSQL (switchboard.ha.leader, store/leader.py): one lock
holder, the epoch bumped at each take-over, acting parts started on the leader only, a hand-
over on step-down, a leader that loses its lock's session acting on (and taking the lock back,
or fenced by a standby's higher epoch). Asterisk's global heartbeat is a stand-in here (one
dict both instances read and write through their own gate); the real one is in
tests/e2e/test_ha_failover.py."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

import asyncpg
from store_helpers import TcpProxy, host_port

from switchboard.ami.client import AmiNotLeader
from switchboard.ami.protocol import Action, Headers, Response
from switchboard.config import HaSettings
from switchboard.ha.leader import Leadership, Role
from switchboard.store.leader import bump_epoch, calls_started, current_leader, try_lock
from switchboard.telephony import heartbeat
from switchboard.telephony.heartbeat import Heartbeat


class Part:
    def __init__(self, name: str) -> None:
        self.name = name
        self.running = False

    async def start(self) -> None:
        self.running = True

    async def stop(self) -> None:
        self.running = False


class Globals:
    """Asterisk's global variables as two AMI links see them (Getvar, Setvar), each link behind
    its instance's gate, as ``AmiClient.send`` does."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.sent: list[tuple[str, str]] = []   # (instance, value) of every Setvar that got through

    def link(self, instance: str) -> Link:
        return Link(self, instance)


class Link:
    connected = True

    def __init__(self, globals_: Globals, instance: str) -> None:
        self.globals = globals_
        self.instance = instance
        self.gate: Callable[[Action], bool] | None = None
        self.confirm: Callable[[Action], Awaitable[bool]] | None = None

    async def send(self, action: dict[str, str], *, timeout: float) -> Response:
        act = Action.from_dict(action)
        if act.name != "Getvar" and self.confirm is not None and not await self.confirm(act):
            raise AmiNotLeader(f"not the leader; {act.name} not sent")
        if act.name != "Getvar" and self.gate is not None and not self.gate(act):
            raise AmiNotLeader(f"not the leader; {act.name} not sent")
        await asyncio.sleep(0.001)
        name = str(act.headers["Variable"])
        if act.name == "Setvar":
            self.globals.values[name] = str(act.headers["Value"])
            self.globals.sent.append((self.instance, str(act.headers["Value"])))
            return Response("Success", Headers({}))
        return Response("Success", Headers({"Value": self.globals.values.get(name, "")}))


def instance(settings: HaSettings, dsn: str, globals_: Globals, name: str, **kw: object) -> Leadership:
    link = globals_.link(name)
    leadership = Leadership(settings, dsn, ami=link, instance=name, **kw)  # type: ignore[arg-type]
    link.gate, link.confirm = leadership.may_send, leadership.confirm
    return leadership


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


async def test_standby_takes_over_on_hand_over_and_a_leader_that_loses_its_lock_takes_it_back(migrated_db: str) -> None:
    settings = HaSettings(enabled=True, lock_key=random.randint(1, 2**31), poll_s=0.2, probe_timeout_s=1.0)
    fenced: list[str] = []
    asterisk = Globals()
    a = instance(settings, migrated_db, asterisk, "a")
    b = instance(settings, migrated_db, asterisk, "b", on_fenced=fenced.append)
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
        asterisk.values[heartbeat.VARIABLE] = f"{int(time.time())}:1"   # a beats: a crash would need the grace
        await a.step_down("stopping")
        assert not a.acting() and a.handed_over
        await wait_for(lambda: b.acting() and part_b.running)
        assert b.epoch == 2 and b.takeovers == 1 and b.takeover_s is not None
        # a clean hand-over (gate closed, then the release marked, then the lock let go): no grace
        assert b.grace_s == 0 and b.grace_skipped_why == "instance a handed over epoch 1 cleanly"
        b.guard(written.append)("kept")
        assert written == ["kept"]
        # the lock's session killed under the leader with no standby running: it acts on and takes
        # the lock back with the same epoch
        await kill_lock_session(migrated_db, "b")
        await wait_for(lambda: b.lock_lost_at is not None)
        assert b.acting() and b.lock_losses == 1 and not b.holds_lock()
        await wait_for(lambda: b.holds_lock())
        assert b.acting() and b.epoch == 2 and not fenced
    finally:
        for x in (a, b):
            await x.stop()


async def kill_lock_session(dsn: str, name: str) -> None:
    """The lock's session of instance ``name`` ended by PostgreSQL (its client sees the link close)."""
    admin = await asyncpg.connect(dsn, timeout=10)
    try:
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = $1", f"switchboard-leader {name}")
    finally:
        await admin.close()


async def test_a_leader_without_its_lock_acts_until_a_standby_writes_a_higher_epoch(migrated_db: str) -> None:
    """The leader cut from PostgreSQL (its lock's session gone, no way back), a standby ready: it
    takes the lock, writes epoch 2 into the heartbeat, waits the grace and only then acts; the old
    leader reads epoch 2 and is fenced before the new one acts; no beat of epoch 1 is written after
    epoch 2. (With the session merely killed, the old leader may take its lock back first: both try
    every ``poll_s``; the test before this one shows that path.)"""
    settings = HaSettings(enabled=True, lock_key=random.randint(1, 2**31), poll_s=0.2, probe_timeout_s=1.0,
                          fence_watch_s=0.05, takeover_grace_s=0.3)
    fenced: list[tuple[str, float]] = []
    asterisk = Globals()
    host, port = host_port(migrated_db)
    a_link = TcpProxy(host, port)
    await a_link.start()
    a = instance(settings, a_link.dsn(migrated_db), asterisk, "a",
                 on_fenced=lambda r: fenced.append((r, time.monotonic())))
    b = instance(settings, migrated_db, asterisk, "b")
    beats = [Heartbeat(x.ami, interval=0.1, leader_epoch=lambda x=x: x.epoch, check=x.may_beat,
                       clear_on_stop=False) for x in (a, b)]
    part_b = Part("acd")
    led_at: list[float] = []

    async def note_lead() -> None:
        led_at.append(time.monotonic())

    b.on_lead.append(note_lead)
    try:
        await a.start()
        assert a.acting() and a.epoch == 1
        await b.start()
        await b.when_leading(part_b).start()
        for beat in beats:
            await beat.start()
        assert not b.acting()
        await asyncio.sleep(0.3)
        a_link.cut()   # a's lock session ends and a cannot reach PostgreSQL again: b takes the lock
        await wait_for(lambda: b.acting() and part_b.running)
        assert b.grace_s == settings.takeover_grace_s and not b.grace_skipped_why   # a cut: the grace is waited
        assert b.epoch == 2 and a.role is Role.FENCED and a.lock_losses == 1
        assert "epoch 2" in fenced[0][0] and fenced[0][1] < led_at[0], (fenced, led_at)
        values = [v for _, v in asterisk.sent]
        first_2 = next(i for i, v in enumerate(values) if v.endswith(":2"))
        assert all(v.endswith(":2") for v in values[first_2:]), values
        assert all(who == "b" for who, _ in asterisk.sent[first_2:])
        # an old leader's beat that raced the take-over (written between its read and its write):
        # the new leader finds the lower epoch and writes its own over it
        asterisk.values[heartbeat.VARIABLE] = f"{int(time.time())}:1"
        await wait_for(lambda: b.beats_rewritten == 1)   # found before the beat that follows writes
        await wait_for(lambda: asterisk.values[heartbeat.VARIABLE].endswith(":2"))
        assert b.beats_rewritten == 1 and b.acting() and not a.acting()
    finally:
        for beat in beats:
            await beat.stop()
        for x in (a, b):
            await x.stop()
        await a_link.close()
