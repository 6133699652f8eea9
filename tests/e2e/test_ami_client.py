"""AMI client against the real Asterisk 22 of the local stack.

The restart and SIGSTOP tests disturb the shared Asterisk and always restore
it (SIGCONT in ``finally``; a restart brings it back by itself).
Set ``SB_CAPTURE_AMI=1`` to (re)write the captured fixtures in tests/fixtures/ami/.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
from pathlib import Path

import pytest
from e2e_stack import ami_settings, asterisk_pid, stop_process

from switchboard.ami.capture import AmiRecorder, frames_of_calls
from switchboard.ami.client import AmiClient, AmiDisconnected, ListResponse
from switchboard.ami.protocol import Action, AmiParser, Banner, Event, HeaderInjectionError, Response
from switchboard.config import AmiSettings

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ami"


def _asterisk_pid(env: dict[str, str]) -> int:
    # var/run in the root is an absolute link to /run: on the host it would name the host's /run.
    pid = asterisk_pid(env)
    assert "asterisk" in Path(f"/proc/{pid}/comm").read_text(), f"pid {pid} is not Asterisk"
    return pid



async def test_md5_login_ping_and_list_action(stack_env: dict[str, str]) -> None:
    client = AmiClient(ami_settings(stack_env), event_classes="call,agi,system")
    resyncs: list[bool] = []
    client.on_resync(resyncs.append)
    await client.start(timeout=10)
    try:
        assert client.connected and client.asterisk_version
        pong = await client.send({"Action": "Ping"}, timeout=3)
        assert pong.success and pong.headers.get("Ping") == "Pong"
        listing = await client.send(Action("CoreShowChannels"), timeout=5)
        assert isinstance(listing, ListResponse) and listing.complete is not None
        assert int(listing.complete.get("ListItems") or -1) == len(listing.events)
        with pytest.raises(HeaderInjectionError):
            await client.send(Action("Setvar", {"Variable": "X", "Value": "a\r\nAction: Logoff"}), timeout=3)
        assert (await client.send({"Action": "Ping"}, timeout=3)).success  # still logged in
        for _ in range(50):
            if resyncs:
                break
            await asyncio.sleep(0.05)
        assert resyncs == [False]
    finally:
        await client.close()


async def test_wrong_secret_is_refused(stack_env: dict[str, str]) -> None:
    good = ami_settings(stack_env)
    bad = AmiSettings(host=good.host, port=good.port, username=good.username, secret="wrong-secret-xyz",
                      reconnect_min=5, reconnect_max=5)
    client = AmiClient(bad)
    try:
        with pytest.raises(Exception, match="not connected"):
            await client.start(timeout=3)
        assert "login refused" in client.last_disconnect_reason
    finally:
        await client.close()


async def test_half_open_link_detected_by_ping_watchdog(stack_env: dict[str, str]) -> None:
    client = AmiClient(ami_settings(stack_env, ping_interval=0.5, ping_timeout=1.0, reconnect_min=0.2,
                                 reconnect_max=1.0))
    resyncs: list[bool] = []
    client.on_resync(resyncs.append)
    await client.start(timeout=10)
    pid = _asterisk_pid(stack_env)
    try:
        try:
            stop_process(pid)
            pending = asyncio.create_task(client.send({"Action": "Ping"}, timeout=10))
            with pytest.raises(AmiDisconnected):
                await pending
            assert client.ping_failures >= 1 and not client.connected
        finally:
            os.kill(pid, signal.SIGCONT)
        await client.wait_connected(timeout=15)
        for _ in range(100):
            if len(resyncs) >= 2:
                break
            await asyncio.sleep(0.05)
        assert resyncs[:2] == [False, False]  # same Asterisk: a network fault, not a restart
        assert client.reconnects >= 1
    finally:
        await client.close()


def _recorder(env: dict[str, str]) -> AmiRecorder:
    s = ami_settings(env)
    return AmiRecorder(s.host, s.port, s.username, s.resolved_secret())


async def test_restart_under_the_client(stack_env: dict[str, str]) -> None:
    """Also records the service user's raw bytes around the restart (fixtures restart_*.ami)."""
    client = AmiClient(ami_settings(stack_env, reconnect_min=0.5, reconnect_max=2.0, ping_interval=1.0))
    resyncs: list[bool] = []
    client.on_resync(resyncs.append)
    await client.start(timeout=10)
    admin = AmiClient(ami_settings(stack_env, admin=True))
    await admin.start(timeout=10)
    before = _recorder(stack_env)
    await before.start()
    try:
        before.send(b"Action: CoreStatus\r\nActionID: st-before\r\n\r\n")
        # an action that stays pending until an event or its own timeout
        pending = asyncio.create_task(client.send({"Action": "WaitEvent", "Timeout": "30"}, timeout=40))
        await asyncio.sleep(0.3)
        try:
            await admin.send({"Action": "Command", "Command": "core restart now"}, timeout=5)
        except AmiDisconnected:
            pass
        # WaitEvent may be answered by the Shutdown event just before the link drops;
        # if it was still pending, it must have failed with AmiDisconnected (never hang).
        try:
            outcome: object = await pending
        except AmiDisconnected as exc:
            outcome = exc
        assert isinstance(outcome, (Response, AmiDisconnected))
        for _ in range(100):
            if not client.connected:
                break
            await asyncio.sleep(0.05)
        assert not client.connected
        with pytest.raises(AmiDisconnected):  # nothing is queued for later while the link is down
            await client.send({"Action": "Ping"}, timeout=5)
        await before.wait_closed(timeout=10)
        await client.wait_connected(timeout=60)
        for _ in range(200):
            if True in resyncs:
                break
            await asyncio.sleep(0.1)
        assert resyncs[0] is False and True in resyncs
        assert client.restarts_detected == 1
        assert (await client.send({"Action": "Ping"}, timeout=5)).success
        after = _recorder(stack_env)
        await after.start()
        after.send(b"Action: CoreStatus\r\nActionID: st-after\r\n\r\n"
                   b"Action: CoreShowChannels\r\nActionID: ch-after\r\n\r\n")
        await asyncio.sleep(1.0)
        after_data = frames_of_calls(await after.stop(), ())
    finally:
        before_data = frames_of_calls(await before.stop(), ())
        await admin.close()
        await client.close()
    assert before.closed_by_peer
    msgs_before = AmiParser().feed(before_data)
    shutdown = [m for m in msgs_before if isinstance(m, Event) and m.name == "Shutdown"]
    assert shutdown and shutdown[-1].get("Restart") == "True"
    msgs_after = AmiParser().feed(after_data)
    assert isinstance(msgs_after[0], Banner)
    booted = [m for m in msgs_after if isinstance(m, Event) and m.name == "FullyBooted"]
    assert booted and int(booted[0]["Uptime"]) < 120
    stamps = {m.action_id: (m.headers["CoreStartupDate"], m.headers["CoreStartupTime"])
              for m in msgs_before + msgs_after if isinstance(m, Response) and m.action_id in ("st-before", "st-after")}
    assert stamps["st-before"] != stamps["st-after"]
    if os.environ.get("SB_CAPTURE_AMI") == "1":
        (FIXTURES / "restart_before.ami").write_bytes(before_data)
        (FIXTURES / "restart_after.ami").write_bytes(after_data)


async def _raw_session(env: dict[str, str], actions: list[bytes], *, linger: float) -> bytes:
    """Log in with MD5 on a raw socket, send actions, record every byte Asterisk sends."""
    s = ami_settings(env)
    reader, writer = await asyncio.wait_for(asyncio.open_connection(s.host, s.port), 5)
    got = bytearray()

    async def read_for(seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                while data := await reader.read(65536):
                    got.extend(data)
        except TimeoutError:
            pass

    writer.write(b"Action: Challenge\r\nActionID: c1\r\nAuthType: MD5\r\n\r\n")
    await read_for(0.5)
    msgs = AmiParser().feed(bytes(got))
    challenge = next(m for m in msgs if isinstance(m, Response)).headers["Challenge"]
    key = hashlib.md5((challenge + s.resolved_secret()).encode()).hexdigest()
    writer.write(f"Action: Login\r\nActionID: l1\r\nUsername: {s.username}\r\nAuthType: MD5\r\nKey: {key}\r\n"
                 "Events: on\r\n\r\n".encode())
    await read_for(0.5)
    for a in actions:
        writer.write(a)
        await read_for(0.3)
    await read_for(linger)
    writer.close()
    return bytes(got)


async def test_capture_login_and_list(stack_env: dict[str, str]) -> None:
    """Real bytes of login, Ping, CoreShowChannels, CoreStatus; kept as a replay fixture."""
    data = await _raw_session(stack_env, [
        b"Action: Ping\r\nActionID: p1\r\n\r\n",
        b"Action: CoreShowChannels\r\nActionID: s1\r\n\r\n",
        b"Action: CoreStatus\r\nActionID: st1\r\n\r\n",
    ], linger=0.5)
    msgs = AmiParser().feed(data)
    assert isinstance(msgs[0], Banner)
    kinds = {m.action_id for m in msgs if isinstance(m, Response)}
    assert {"c1", "l1", "p1", "s1", "st1"} <= kinds
    if os.environ.get("SB_CAPTURE_AMI") == "1":
        FIXTURES.mkdir(parents=True, exist_ok=True)
        (FIXTURES / "login_ping_list_corestatus.ami").write_bytes(data)
