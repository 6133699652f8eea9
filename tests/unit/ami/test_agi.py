"""AsyncAGI: result/env parsing, per-channel FIFO, hang-up failing pending commands."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from urllib.parse import quote

import pytest

from switchboard.ami.agi import (
    AgiHangup,
    AgiManager,
    AgiResult,
    AgiSession,
    agi_verb,
    parse_agi_env,
    parse_agi_result,
)
from switchboard.ami.client import AmiDisconnected
from switchboard.ami.protocol import Action, Event, Headers, Response


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        ("200%20result=49%20(timeout)%20endpos=1234%0A", AgiResult(200, "49", "timeout", 1234)),
        ("200%20result%3D0%20endpos%3D87040%0A", AgiResult(200, "0", "", 87040)),
        ("200%20result=1%0A", AgiResult(200, "1", "", None)),
        ("200%20result=123%20(timeout)%0A", AgiResult(200, "123", "timeout", None)),
        ("200%20result=-1%20endpos=0%0A", AgiResult(200, "-1", "", 0)),
        ("510%20Invalid%20or%20unknown%20command%0A", AgiResult(510, "", "Invalid or unknown command", None)),
        ("520-Invalid%20command%20syntax.%0A", AgiResult(520, "", "Invalid command syntax.", None)),
    ],
)
def test_parse_agi_result(encoded: str, expected: AgiResult) -> None:
    got = parse_agi_result(encoded)
    assert (got.code, got.result, got.data, got.endpos) == (expected.code, expected.result, expected.data,
                                                            expected.endpos)


def test_digit_and_ok() -> None:
    assert parse_agi_result("200%20result=49%20endpos=5%0A").digit == "1"
    assert parse_agi_result("200%20result=0%0A").digit is None
    assert not parse_agi_result("200%20result=-1%0A").ok


def test_parse_env() -> None:
    env = parse_agi_env(quote("agi_request: async\nagi_channel: PJSIP/trunk-0001\nagi_calleridname: Nguyễn An\n"
                              "agi_accountcode: \n\n", safe=""))
    assert env == {"agi_request": "async", "agi_channel": "PJSIP/trunk-0001", "agi_calleridname": "Nguyễn An",
                   "agi_accountcode": ""}


class RecordingAmi:
    """Stands in for AmiClient (same send/subscribe/on_resync signatures); records actions."""

    def __init__(self) -> None:
        self.sent: list[Action] = []
        self.subscribers: list[Callable[[Event], Awaitable[None] | None]] = []
        self.resync: list[Callable[[bool], None]] = []
        self.sent_event = asyncio.Event()

    async def send(self, action: Action, *, timeout: float | None = None) -> Response:
        self.sent.append(action)
        self.sent_event.set()
        return Response("Success", Headers({"Message": "Added AGI command to queue"}))

    def subscribe(self, callback: Callable[[Event], Awaitable[None] | None], *,
                  names: frozenset[str] | None = None) -> Callable[[], None]:
        self.subscribers.append(callback)
        return lambda: None

    def on_resync(self, cb: Callable[[bool], None]) -> None:
        self.resync.append(cb)

    def emit(self, name: str, **headers: str) -> None:
        for cb in self.subscribers:
            cb(Event(name, headers))

    async def next_action(self) -> Action:
        while not self.sent:
            self.sent_event.clear()
            await asyncio.wait_for(self.sent_event.wait(), 2)
        return self.sent.pop(0)


def _start(ami: RecordingAmi, uid: str = "1750000000.1") -> None:
    ami.emit("AsyncAGIStart", Channel="PJSIP/trunk-00000001", Uniqueid=uid, Linkedid=uid,
             Env=quote("agi_request: async\nagi_extension: 19009068\n\n", safe=""))


async def test_commands_run_in_order_and_resolve_by_command_id() -> None:
    ami = RecordingAmi()
    sessions: list[AgiSession] = []
    AgiManager(ami, on_start=sessions.append)
    _start(ami)
    await asyncio.sleep(0)
    (s,) = sessions
    assert s.env["agi_extension"] == "19009068" and s.linkedid == "1750000000.1" and not s.closed
    first = asyncio.create_task(s.execute('STREAM FILE welcome "#"', timeout=2))
    second = asyncio.create_task(s.execute("GET DATA menu 5000 1", timeout=2))
    a1 = await ami.next_action()
    await asyncio.sleep(0.01)
    assert ami.sent == []  # the second command waits for the first one's result
    assert a1.headers["Command"] == 'STREAM FILE welcome "#"' and a1.headers["Channel"] == s.channel
    ami.emit("AsyncAGIExec", Uniqueid=s.uniqueid, CommandId=str(a1.headers["CommandID"]),
             Result="200%20result=0%20endpos=16000%0A")
    assert (await first).endpos == 16000
    a2 = await ami.next_action()
    ami.emit("AsyncAGIExec", Uniqueid=s.uniqueid, CommandId="someone-else", Result="200%20result=9%0A")
    ami.emit("AsyncAGIExec", Uniqueid=s.uniqueid, CommandId=str(a2.headers["CommandID"]),
             Result="200%20result=2%0A")
    assert (await second).result == "2"


async def test_hangup_fails_every_pending_command() -> None:
    ami = RecordingAmi()
    sessions: list[AgiSession] = []
    AgiManager(ami, on_start=sessions.append)
    _start(ami)
    await asyncio.sleep(0)
    s = sessions[0]
    t1 = asyncio.create_task(s.execute("WAIT FOR DIGIT 5000", timeout=2))
    t2 = asyncio.create_task(s.execute("SAY DIGITS 1", timeout=2))
    await ami.next_action()
    ami.emit("Hangup", Uniqueid=s.uniqueid, Channel=s.channel, Cause="16")
    with pytest.raises(AgiHangup):
        await t1
    with pytest.raises(AgiHangup):
        await t2
    assert s.closed
    with pytest.raises(AgiHangup):
        await s.execute("NOOP", timeout=1)


async def test_break_sends_asyncagi_break_and_end_closes() -> None:
    ami = RecordingAmi()
    sessions: list[AgiSession] = []
    AgiManager(ami, on_start=sessions.append)
    _start(ami)
    await asyncio.sleep(0)
    s = sessions[0]
    t = asyncio.create_task(s.break_(timeout=2))
    action = await ami.next_action()
    assert action.name == "AGI" and action.headers["Command"] == "ASYNCAGI BREAK"
    ami.emit("AsyncAGIEnd", Uniqueid=s.uniqueid, Channel=s.channel)
    with pytest.raises(AgiHangup):
        await t
    assert s.closed


async def test_reconnect_after_blip_fails_in_flight_but_keeps_session() -> None:
    ami = RecordingAmi()
    sessions: list[AgiSession] = []
    AgiManager(ami, on_start=sessions.append)
    _start(ami)
    await asyncio.sleep(0)
    s = sessions[0]
    t = asyncio.create_task(s.execute("WAIT FOR DIGIT 5000", timeout=2))
    await ami.next_action()
    ami.resync[0](False)
    with pytest.raises(AmiDisconnected):
        await t
    assert not s.closed
    ami.resync[0](True)
    assert s.closed


@pytest.mark.parametrize(("command", "verb"), [
    ('STREAM FILE /p/vi/welcome "0123456789*#"', "STREAM FILE"),
    ("GET DATA /p/vi/menu 5000 1", "GET DATA"),
    ("EXEC Playback /p/vi/a&/p/vi/b", "EXEC Playback"),
    ('SET VARIABLE SB_TOPIC "social.pension"', "SET VARIABLE"),
    ("answer", "ANSWER"),
    ("asyncagi break", "ASYNCAGI BREAK"),
    ("", ""),
])
def test_agi_verb_drops_the_arguments(command: str, verb: str) -> None:
    assert agi_verb(command) == verb


async def test_each_command_reports_its_ack_and_result_times() -> None:
    ami = RecordingAmi()
    sessions: list[AgiSession] = []
    seen: list[tuple[str, float, float | None]] = []
    AgiManager(ami, on_start=sessions.append, observe=lambda v, a, r: seen.append((v, a, r)))
    _start(ami)
    await asyncio.sleep(0)
    s = sessions[0]
    t = asyncio.create_task(s.execute('STREAM FILE welcome "#"', timeout=2))
    action = await ami.next_action()
    await asyncio.sleep(0.05)
    ami.emit("AsyncAGIExec", Uniqueid=s.uniqueid, CommandId=str(action.headers["CommandID"]),
             Result="200%20result=0%20endpos=1%0A")
    await t
    t2 = asyncio.create_task(s.execute("WAIT FOR DIGIT 5000", timeout=2))
    await ami.next_action()
    ami.emit("Hangup", Uniqueid=s.uniqueid, Channel=s.channel, Cause="16")
    with pytest.raises(AgiHangup):
        await t2
    (verb, ack, result), (verb2, _, result2) = seen
    assert verb == "STREAM FILE" and ack < 0.05 <= result < 1.0     # the result waited for the event
    assert verb2 == "WAIT FOR" and result2 is None                  # hung up: no result time


async def test_a_standby_manager_serves_no_new_session_and_results_it_did_not_ask_are_kept() -> None:
    ami = RecordingAmi()
    sessions: list[AgiSession] = []
    leading = [False]
    manager = AgiManager(ami, on_start=sessions.append, accept=lambda: leading[0])
    _start(ami, "1750000000.7")
    await asyncio.sleep(0)
    assert sessions == [] and manager.sessions == {}          # a standby leaves it to the leader
    leading[0] = True
    _start(ami, "1750000000.7")
    await asyncio.sleep(0)
    (s,) = sessions
    # the previous owner's GET DATA finishes after the take-over: its answer is kept for the new owner
    ami.emit("AsyncAGIExec", Uniqueid=s.uniqueid, CommandId="agi-1750000000.7-3-getdata-ask_si_code",
             Result="200%20result=0123456789%0A")
    task = asyncio.create_task(s.execute("NOOP", timeout=2, tag="probe"))
    action = await ami.next_action()
    assert str(action.headers["CommandID"]).endswith("-probe")
    ami.emit("AsyncAGIExec", Uniqueid=s.uniqueid, CommandId=str(action.headers["CommandID"]),
             Result="200%20result=0%0A")
    await task
    assert [(cid, r.result) for cid, r in s.orphans] == [("agi-1750000000.7-3-getdata-ask_si_code", "0123456789")]


async def test_results_seen_before_a_channel_is_adopted_reach_its_session() -> None:
    ami = RecordingAmi()
    sessions: list[AgiSession] = []
    AgiManager(ami, on_start=sessions.append)
    # the previous owner's GET DATA finishes while nobody serves the channel yet
    ami.emit("AsyncAGIExec", Uniqueid="1750000000.9", CommandId="agi-1750000000.9-2-getdata-main_menu",
             Result="200%20result=4%0A")
    ami.emit("AsyncAGIExec", Uniqueid="1750000000.8", CommandId="agi-x", Result="200%20result=1%0A")
    ami.emit("Hangup", Uniqueid="1750000000.8")
    _start(ami, "1750000000.9")
    _start(ami, "1750000000.8")
    await asyncio.sleep(0)
    first, second = sessions
    assert [(cid, r.result) for cid, r in first.orphans] == [("agi-1750000000.9-2-getdata-main_menu", "4")]
    assert second.orphans == []   # a hung-up channel's results are forgotten


class GoneChannelAmi(RecordingAmi):
    """Asterisk's answer to ``Action: AGI`` on a channel that hung up before the action arrived."""

    async def send(self, action: Action, *, timeout: float | None = None) -> Response:
        self.sent.append(action)
        return Response("Error", Headers({"Message": f"Channel {action.headers['Channel']} does not exist."}))


async def test_a_command_for_a_channel_already_gone_is_a_hang_up_not_a_failure() -> None:
    ami = GoneChannelAmi()
    sessions: list[AgiSession] = []
    AgiManager(ami, on_start=sessions.append)
    _start(ami)
    await asyncio.sleep(0)
    (s,) = sessions
    with pytest.raises(AgiHangup, match="does not exist"):
        await s.execute("WAIT FOR DIGIT 8000", timeout=2)


async def test_keys_pressed_while_no_command_ran_are_kept_for_the_next_owner() -> None:
    """DTMFEnd (Received) after the previous owner's last result: typed into the void, handed to
    the session that adopts the channel; keys before that result were the command's; keys the
    channel sends (Direction Sent) or of other channels are not the caller's."""
    ami = RecordingAmi()
    sessions: list[AgiSession] = []
    AgiManager(ami, on_start=sessions.append)
    uid = "1750000001.1"
    ami.emit("DTMFEnd", Uniqueid=uid, Digit="4", Direction="Received")     # read by the GET DATA below
    ami.emit("AsyncAGIExec", Uniqueid=uid, CommandId="agi-1-getdata-main_menu", Result="200%20result=4%0A")
    for k in "0123":
        ami.emit("DTMFEnd", Uniqueid=uid, Digit=k, Direction="Received")
    ami.emit("DTMFEnd", Uniqueid=uid, Digit="9", Direction="Sent")
    ami.emit("DTMFEnd", Uniqueid="1750000001.2", Digit="7", Direction="Received")
    ami.emit("Hangup", Uniqueid="1750000001.2")
    _start(ami, uid)
    await asyncio.sleep(0)
    (s,) = sessions
    ami.emit("DTMFEnd", Uniqueid=uid, Digit="4", Direction="Received")     # still typing: kept too
    # the new owner's barrier keeps the keys typed before it; any other result clears them
    task = asyncio.create_task(s.execute("NOOP", timeout=2, tag="barrier"))
    action = await ami.next_action()
    ami.emit("AsyncAGIExec", Uniqueid=uid, CommandId=str(action.headers["CommandID"]), Result="200%20result=0%0A")
    await task
    assert s.typed_ahead() == "01234"
    assert s.typed_ahead() == ""                                           # taken once
    ami.emit("DTMFEnd", Uniqueid=uid, Digit="5", Direction="Received")
    task = asyncio.create_task(s.execute("WAIT FOR DIGIT 6000", timeout=2))
    action = await ami.next_action()
    ami.emit("AsyncAGIExec", Uniqueid=uid, CommandId=str(action.headers["CommandID"]), Result="200%20result=53%0A")
    await task
    assert s.typed_ahead() == ""                                           # "5" was that command's


async def test_keys_of_a_channel_served_by_nobody_are_bounded_and_forgotten_at_its_hangup() -> None:
    ami = RecordingAmi()
    sessions: list[AgiSession] = []
    AgiManager(ami, on_start=sessions.append)
    uid = "1750000001.3"
    for _ in range(100):
        ami.emit("DTMFEnd", Uniqueid=uid, Digit="1", Direction="Received")
    ami.emit("DTMFEnd", Uniqueid=uid, Digit="#", Direction="Received")
    _start(ami, uid)
    await asyncio.sleep(0)
    (s,) = sessions
    typed = s.typed_ahead()
    assert typed.endswith("1#") and len(typed) == 32
    ami.emit("DTMFEnd", Uniqueid="1750000001.4", Digit="1", Direction="Received")
    ami.emit("Hangup", Uniqueid="1750000001.4")
    _start(ami, "1750000001.4")
    await asyncio.sleep(0)
    assert sessions[1].typed_ahead() == ""
