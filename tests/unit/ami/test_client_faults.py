"""AmiClient under faults the real Asterisk cannot produce on demand (fake server: fake_ami.py).

Oversized frame, slow consumer, half-open link, link dropped with actions in
flight. The e2e tests cover the same client against the real Asterisk 22.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
from fake_ami import FakeAmi, event

from switchboard.ami.client import AmiClient, AmiDisconnected, AmiNotLeader
from switchboard.ami.protocol import Action, Event
from switchboard.config import AmiSettings


def _client(fake: FakeAmi, **kw: float) -> AmiClient:
    opts: dict[str, float] = {"reconnect_min": 0.05, "reconnect_max": 0.2, "ping_interval": 30.0,
                              "ping_timeout": 5.0, "action_timeout": 3.0, "connect_timeout": 2.0}
    opts.update(kw)
    settings = AmiSettings(host="127.0.0.1", port=fake.port, username=fake.username, secret=fake.secret,
                           **opts)  # type: ignore[arg-type]
    return AmiClient(settings, max_frame_size=int(kw.get("max_frame_size", 4096)))


async def _until(cond: Callable[[], bool], *, timeout: float = 5.0) -> None:
    for _ in range(int(timeout * 100)):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"condition not met within {timeout}s")


async def test_garbage_is_tolerated_but_an_oversized_frame_forces_a_reconnect(
        caplog: pytest.LogCaptureFixture) -> None:
    async with FakeAmi() as fake:
        client = _client(fake)
        resyncs: list[bool] = []
        client.on_resync(resyncs.append)
        seen: list[str] = []
        client.subscribe(lambda ev: seen.append(ev.name), names=["Newchannel"])
        await client.start(timeout=5)
        try:
            assert await fake.wait_login() == 1
            # a frame of neither kind and invalid UTF-8: skipped, the link stays up
            fake.write(b"Garbage without a colon\r\n\r\nEvent: Newchannel\r\nChannel: PJSIP/\xff\xfe\r\n\r\n")
            await _until(lambda: seen == ["Newchannel"])
            assert (await client.send(Action("Ping"), timeout=2)).headers["Ping"] == "Pong"
            assert client.protocol_errors == 0 and fake.connections == 1
            # a frame that never ends within max_frame_size: protocol error, drop, reconnect
            with caplog.at_level(logging.ERROR, logger="switchboard.ami"):
                fake.write(b"Event: Newchannel\r\nAppData: " + b"x" * 8000)
                assert await fake.wait_login() == 2
                await client.wait_connected(timeout=5)
            assert client.protocol_errors == 1
            assert any("protocol error" in r.getMessage() for r in caplog.records)
            await _until(lambda: len(resyncs) == 2)
            assert resyncs == [False, False]  # same startup time: not a restart
            assert (await client.send(Action("Ping"), timeout=2)).success
        finally:
            await client.close()


async def test_slow_consumer_is_counted_logged_and_resynced(caplog: pytest.LogCaptureFixture) -> None:
    async with FakeAmi() as fake:
        client = AmiClient(AmiSettings(host="127.0.0.1", port=fake.port, username=fake.username,
                                       secret=fake.secret, reconnect_min=0.05, reconnect_max=0.2,
                                       event_queue_size=5, ping_interval=30.0))
        gate = asyncio.Event()
        got: list[str] = []

        async def slow(ev: Event) -> None:
            await gate.wait()
            got.append(ev.get("Uniqueid") or "")

        resyncs: list[bool] = []
        client.on_resync(resyncs.append)
        client.subscribe(slow, names=["Newstate"])
        await client.start(timeout=5)
        try:
            assert await fake.wait_login() == 1
            await _until(lambda: resyncs == [False])
            with caplog.at_level(logging.ERROR, logger="switchboard.ami"):
                fake.write(b"".join(event("Newstate", n) for n in range(20)))
                assert await fake.wait_login() == 2  # dropped the link and came back
            await client.wait_connected(timeout=5)
            assert client.events_dropped >= 1
            assert any("slow consumer" in r.getMessage() for r in caplog.records)
            gate.set()
            await _until(lambda: len(resyncs) == 2)
            # what was queued before the drop is delivered in order, then the resync runs
            assert got == [f"1750000000.{n}" for n in range(len(got))] and 1 <= len(got) < 20
            assert resyncs == [False, False]
            assert client.reconnects == 1
        finally:
            await client.close()


async def test_half_open_link_is_detected_by_the_ping_watchdog() -> None:
    async with FakeAmi() as fake:
        client = _client(fake, ping_interval=0.2, ping_timeout=0.4)
        resyncs: list[bool] = []
        client.on_resync(resyncs.append)
        await client.start(timeout=5)
        try:
            assert await fake.wait_login() == 1
            await _until(lambda: resyncs == [False])  # login and CoreStatus done
            fake.answering = False  # TCP stays open, nothing comes back
            pending = asyncio.create_task(client.send(Action("Status"), timeout=10))
            await _until(lambda: client.ping_failures >= 1, timeout=3)
            with pytest.raises(AmiDisconnected):
                await pending
            fake.answering = True
            assert await fake.wait_login() >= 2
            await client.wait_connected(timeout=5)
            assert (await client.send(Action("Ping"), timeout=2)).success
            assert fake.count("Status") == 1
        finally:
            await client.close()


async def test_link_dead_right_after_login_is_caught_by_the_watchdog_not_the_action_timeout() -> None:
    """The link dies while the client still sets up (its CoreStatus unanswered): the watchdog
    runs already, so the pending CoreStatus and a caller's action fail in ping time."""
    async with FakeAmi(hold={"CoreStatus"}) as fake:
        client = _client(fake, ping_interval=0.2, ping_timeout=0.4, action_timeout=30.0)
        await client.start(timeout=5)
        try:
            assert await fake.wait_login() == 1
            await _until(lambda: fake.count("CoreStatus") == 1)
            fake.answering = False
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            pending = asyncio.create_task(client.send(Action("Status"), timeout=30))
            with pytest.raises(AmiDisconnected):
                await pending
            assert loop.time() - t0 < 10  # not the 30 s action timeout (ping: 0.2 + 0.4 s)
            assert client.ping_failures == 1
            fake.answering, fake.hold = True, set()
            await client.wait_connected(timeout=5)
            assert (await client.send(Action("Ping"), timeout=2)).success
        finally:
            await client.close()


async def test_pending_actions_fail_on_disconnect_and_are_never_resent() -> None:
    async with FakeAmi(hold={"Originate"}) as fake:
        client = _client(fake)
        await client.start(timeout=5)
        try:
            assert await fake.wait_login() == 1
            originate = Action("Originate", {"Channel": "PJSIP/agent001", "Application": "Wait", "Data": "1"})
            pending = [asyncio.create_task(client.send(originate, timeout=10)) for _ in range(3)]
            await _until(lambda: fake.count("Originate") == 3)
            fake.drop()
            for task in pending:
                with pytest.raises(AmiDisconnected):
                    await task
            with pytest.raises(AmiDisconnected):  # no queueing for later while the link is down
                await client.send(originate, timeout=1)
            assert await fake.wait_login() == 2
            await client.wait_connected(timeout=5)
            assert (await client.send(Action("Ping"), timeout=2)).success
            await asyncio.sleep(0.2)
            assert fake.count("Originate") == 3  # written once each, never re-sent
            assert all(r.connection == 1 for r in fake.received if r.name == "Originate")
        finally:
            await client.close()


async def test_restart_is_told_from_a_blip_by_the_startup_time() -> None:
    async with FakeAmi() as fake:
        client = _client(fake)
        resyncs: list[bool] = []
        client.on_resync(resyncs.append)
        await client.start(timeout=5)
        try:
            await fake.wait_login()
            await _until(lambda: len(resyncs) == 1)
            fake.drop()  # blip
            await fake.wait_login()
            await _until(lambda: len(resyncs) == 2)
            fake.startup = "2026-01-01 09:30:00"
            fake.drop()  # "restart": a new startup time
            await fake.wait_login()
            await _until(lambda: len(resyncs) == 3)
            assert resyncs == [False, False, True] and client.restarts_detected == 1
        finally:
            await client.close()


async def test_send_nowait_writes_before_it_returns_ahead_of_tasks_already_scheduled() -> None:
    async with FakeAmi() as fake:
        client = _client(fake)
        await client.start(timeout=5)
        try:
            await fake.wait_login()
            later = asyncio.create_task(client.send(Action("Setvar", {"Variable": "SB_TOPIC", "Value": "x"})))
            now = client.send_nowait(Action("Originate", {"Channel": "PJSIP/agent001", "Exten": "bridge"}))
            assert (await now).success and (await later).success
            # the task's action went out only when the task ran: after the one written at once
            assert [r.name for r in fake.received if r.name in ("Setvar", "Originate")] == ["Originate", "Setvar"]
            await client.close()
            with pytest.raises(AmiDisconnected):          # not connected: raised at once, nothing written
                client.send_nowait(Action("Ping"))
        finally:
            await client.close()


async def test_the_action_lane_carries_originates_and_the_events_session_the_rest() -> None:
    async with FakeAmi() as fake:
        settings = AmiSettings(host="127.0.0.1", port=fake.port, username=fake.username, secret=fake.secret,
                               reconnect_min=0.05, reconnect_max=0.2, ping_interval=30.0, action_timeout=3.0)
        client = AmiClient(settings, lane=True)
        await client.start(timeout=5)
        try:
            assert client.lane is not None
            await client.lane.wait_connected(timeout=5)
            logins = {r.connection: r.headers.get("Events") for r in fake.received if r.name == "Login"}
            lane_conn = next(c for c, ev in logins.items() if ev == "off")
            events_conn = next(c for c, ev in logins.items() if ev != "off")
            await client.send_nowait(Action("Originate", {"Channel": "PJSIP/agent1001", "Async": "true"}))
            await client.send(Action("Setvar", {"Channel": "PJSIP/trunk-1", "Variable": "X", "Value": "1"}))
            got = {r.name: r.connection for r in fake.received if r.name in ("Originate", "Setvar")}
            assert got == {"Originate": lane_conn, "Setvar": events_conn}
            assert client.actions_sent >= 2 and client.last_action_at > 0
            # the leadership gate of the events session holds for the lane too
            client.gate = lambda action: False
            with pytest.raises(AmiNotLeader):
                client.send_nowait(Action("Originate", {"Channel": "PJSIP/agent1002"}))
            client.gate = None
            # the lane down: Originates go on the events session
            await client.lane.close()
            await client.send_nowait(Action("Originate", {"Channel": "PJSIP/agent1003", "Async": "true"}))
            last = [r for r in fake.received if r.name == "Originate"][-1]
            assert last.connection == events_conn and last.headers["Channel"] == "PJSIP/agent1003"
            assert fake.count("Originate") == 2
        finally:
            await client.close()
