"""The sans-I/O AMI core: framing, decoding, message types, bounds, action serialization.

Every test here runs twice: with the C splitter (switchboard/ami/_speedups.c) and with the
pure-Python path (what SWITCHBOARD_NO_EXTENSIONS=1 selects).
"""

from __future__ import annotations

import importlib
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switchboard.ami import protocol
from switchboard.ami.protocol import (
    Action,
    AmiParser,
    Banner,
    Event,
    HeaderInjectionError,
    Headers,
    ListComplete,
    LocalProtocolError,
    RemoteProtocolError,
    Response,
    serialize_action,
)
from switchboard.ami.samples import BANNER, call_frames

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ami"
# imported directly, so the C path is tested even under SWITCHBOARD_NO_EXTENSIONS=1
_C_MODULE = importlib.import_module("switchboard.ami._speedups")


@pytest.fixture(autouse=True, scope="module", params=["c", "python"])
def parser_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Module-scoped (hypothesis refuses function-scoped fixtures around @given)."""
    protocol._c = _C_MODULE if request.param == "c" else None
    yield request.param
    protocol._c = _C_MODULE

LOGIN = (
    b"Asterisk Call Manager/9.0.0\r\n"
    b"Response: Success\r\nActionID: 1\r\nMessage: Authentication accepted\r\n\r\n"
    b"Event: FullyBooted\r\nPrivilege: system,all\r\nTimestamp: 1750000000.123456\r\nUptime: 12\r\n"
    b"LastReload: 12\r\nStatus: Fully Booted\r\n\r\n"
)


def _stream() -> bytes:
    """A small realistic stream: login, one call, a list action, command output."""
    import random

    frames = call_frames(1, random.Random(1))
    text = "".join(f + "\r\n" for f in frames)
    tail = (
        "Response: Success\r\nActionID: 7\r\nEventList: start\r\nMessage: Channels will follow\r\n\r\n"
        "Event: CoreShowChannel\r\nActionID: 7\r\nChannel: PJSIP/a-00000001\r\nUniqueid: 1.1\r\n"
        "ChanVariable: SB_CALL_ID=1.1\r\nChanVariable: SB_TOPIC=health/card\r\n\r\n"
        "Event: CoreShowChannelsComplete\r\nActionID: 7\r\nEventList: Complete\r\nListItems: 1\r\n\r\n"
        "Response: Success\r\nActionID: 8\r\nMessage: Command output follows\r\nOutput: Uptime: 3 minutes\r\n"
        "Output: Last reload: 3 minutes\r\n\r\n"
        "Event: VarSet\r\nPrivilege: dialplan,all\r\nChannel: PJSIP/a-00000001\r\nVariable: CALLER\r\n"
        "Value: Nguyễn Thị Hồng – Huế\r\nUniqueid: 1.1\r\n\r\n"
    )
    return LOGIN + (text + tail).encode("utf-8")


def _captures() -> list[bytes]:
    return [p.read_bytes() for p in sorted(FIXTURES.glob("*.ami"))]


def test_banner_response_event_types() -> None:
    msgs = AmiParser().feed(LOGIN)
    assert msgs[0] == Banner(version="9.0.0", raw="Asterisk Call Manager/9.0.0")
    assert isinstance(msgs[1], Response)
    assert msgs[1].success and msgs[1].action_id == "1" and msgs[1].message == "Authentication accepted"
    assert isinstance(msgs[2], Event) and not isinstance(msgs[2], ListComplete)
    assert msgs[2].name == "FullyBooted"
    assert msgs[2]["Uptime"] == "12"
    assert msgs[2].get("Status") == "Fully Booted"
    assert "Event" not in msgs[2].headers


def test_error_response_is_not_success() -> None:
    (msg,) = AmiParser(expect_banner=False).feed(
        b"Response: Error\r\nActionID: 3\r\nMessage: Authentication failed\r\n\r\n"
    )
    assert isinstance(msg, Response) and msg.status == "Error" and not msg.success


def test_list_start_and_completion_and_repeated_headers() -> None:
    msgs = [m for m in AmiParser().feed(_stream()) if not isinstance(m, Banner)]
    start = next(m for m in msgs if isinstance(m, Response) and m.action_id == "7")
    assert start.is_list_start
    item = next(m for m in msgs if isinstance(m, Event) and m.name == "CoreShowChannel")
    assert item.headers.get_all("ChanVariable") == ["SB_CALL_ID=1.1", "SB_TOPIC=health/card"]
    assert item.get("ChanVariable") == "SB_CALL_ID=1.1"
    done = next(m for m in msgs if isinstance(m, ListComplete))
    assert done.name == "CoreShowChannelsComplete" and done.action_id == "7"


def test_command_output_headers_and_legacy_follows() -> None:
    msgs = AmiParser().feed(_stream())
    cmd = next(m for m in msgs if isinstance(m, Response) and m.action_id == "8")
    assert cmd.output == ("Uptime: 3 minutes", "Last reload: 3 minutes")
    (old,) = AmiParser(expect_banner=False).feed(
        b"Response: Follows\r\nPrivilege: Command\r\nActionID: 9\r\n"
        b"Name/username             Host\r\nagent001/agent001  127.0.0.1\r\n--END COMMAND--\r\n\r\n"
    )
    assert isinstance(old, Response) and old.success and old.action_id == "9"
    assert old.output == ("Name/username             Host", "agent001/agent001  127.0.0.1")


def test_utf8_split_across_chunks_is_kept() -> None:
    data = _stream()
    split_at = data.index("ễ".encode()) + 1  # in the middle of the 3-byte character
    p = AmiParser()
    msgs = p.feed(data[:split_at]) + p.feed(data[split_at:])
    varset = [m for m in msgs if isinstance(m, Event) and m.name == "VarSet" and m.get("Variable") == "CALLER"]
    assert varset[0]["Value"] == "Nguyễn Thị Hồng – Huế"


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    (msg,) = AmiParser(expect_banner=False).feed(b"Event: X\r\nName: a\xff\xfeb\r\n\r\n")
    assert isinstance(msg, Event) and msg["Name"] == "a\ufffd\ufffdb"


def test_lazy_get_equals_eager_headers() -> None:
    data = _stream()
    eager = AmiParser().feed(data)
    lazy = AmiParser().feed_filtered(data, frozenset({"VarSet", "Newchannel", "AsyncAGIStart", "Hangup"}))
    by_raw = {m.raw: m for m in eager if isinstance(m, Event)}
    assert lazy
    for ev in lazy:
        if isinstance(ev, Event):
            ref = by_raw[ev.raw]
            for name in ref.headers:
                assert ev.get(name) == ref.headers[name]
            assert ev.get("NoSuchHeader") is None
            assert ev.get("uniqueid") == ref.headers.get("Uniqueid")
            assert ev == ref


def test_filtered_skips_unwanted_events_but_keeps_responses_and_list_items() -> None:
    p = AmiParser()
    msgs = p.feed_filtered(_stream(), frozenset({"Hangup"}))
    names = {m.name for m in msgs if isinstance(m, Event)}
    assert names == {"Hangup", "CoreShowChannel", "CoreShowChannelsComplete"}
    assert sum(isinstance(m, Response) for m in msgs) == 3
    assert p.skipped > 10
    assert p.frames == len(AmiParser().feed(_stream())) - 1  # every frame counted, banner excluded


def _reference(data: bytes) -> list[object]:
    return AmiParser().feed(data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_chunking_gives_the_same_messages(data: st.DataObject) -> None:
    stream = _stream()
    ref = _reference(stream)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=30)))
    p = AmiParser()
    got: list[object] = []
    prev = 0
    for c in [*cuts, len(stream)]:
        got += p.feed(stream[prev:c])
        prev = c
    assert got == ref
    assert p.buffered == 0


@pytest.mark.parametrize("source", ["synthetic", "captured"])
def test_split_at_every_byte_position(source: str) -> None:
    streams = [_stream()] if source == "synthetic" else _captures()
    assert streams, "tests/fixtures/ami/*.ami missing"
    for stream in streams:
        stream = stream[:6000]
        ref = _reference(stream)
        for i in range(len(stream) + 1):
            p = AmiParser()
            assert p.feed(stream[:i]) + p.feed(stream[i:]) == ref, i


def test_oversized_frame_is_a_protocol_error_and_buffer_is_released() -> None:
    p = AmiParser(max_frame_size=4096, expect_banner=False)
    p.feed(b"Event: Ok\r\nA: 1\r\n\r\nEvent: Big\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        for _ in range(100):
            p.feed(b"X: " + b"y" * 1000 + b"\r\n")
    assert p.buffered == 0 and p.broken
    with pytest.raises(RemoteProtocolError):
        p.feed(b"Event: After\r\n\r\n")
    assert info.value.messages == ()


def test_oversized_complete_frame_keeps_earlier_messages() -> None:
    p = AmiParser(max_frame_size=256, expect_banner=False)
    data = b"Event: Ok\r\nA: 1\r\n\r\nEvent: Big\r\nX: " + b"y" * 400 + b"\r\n\r\n"
    with pytest.raises(RemoteProtocolError) as info:
        p.feed(data)
    assert [m.name for m in info.value.messages if isinstance(m, Event)] == ["Ok"]


def test_no_banner_within_limit() -> None:
    p = AmiParser(max_frame_size=128)
    with pytest.raises(RemoteProtocolError):
        p.feed(b"x" * 200)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000), st.integers(1, 64))
def test_garbage_never_crashes(garbage: bytes, chunk: int) -> None:
    p = AmiParser(max_frame_size=512)
    try:
        for i in range(0, len(garbage), chunk):
            for m in p.feed(garbage[i:i + chunk]):
                if isinstance(m, Event):
                    _ = m.headers, m.get("Uniqueid"), repr(m)
    except RemoteProtocolError:
        assert p.buffered == 0
    assert p.buffered <= 512 + chunk


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_frames_never_crash(data: st.DataObject) -> None:
    stream = bytearray(_stream())
    for _ in range(data.draw(st.integers(1, 20))):
        pos = data.draw(st.integers(0, len(stream) - 1))
        stream[pos] = data.draw(st.sampled_from([0, 10, 13, 32, 58, 0xC3, 0xFF, 0x41]))
    p = AmiParser(max_frame_size=4096)
    try:
        for m in p.feed(bytes(stream)):
            if isinstance(m, Event):
                _ = m.headers, m.get("Channel"), m.action_id
            elif isinstance(m, Response):
                _ = m.output, m.success
    except RemoteProtocolError:
        assert p.buffered == 0


def test_memory_stays_bounded_under_endless_unterminated_input() -> None:
    p = AmiParser(max_frame_size=64 * 1024, expect_banner=False)
    tracemalloc.start()
    try:
        with pytest.raises(RemoteProtocolError):
            for _ in range(10_000):
                p.feed(b"Z" * 8192)  # no frame end, ever
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024


def test_headers_multidict() -> None:
    h = Headers.from_pairs([("Variable", "a=1"), ("Channel", "X"), ("Variable", "b=2")])
    assert h["Variable"] == "a=1" and h.get_all("Variable") == ["a=1", "b=2"]
    assert h.get_all("variable") == ["a=1", "b=2"] and h.get("CHANNEL") == "X"
    assert h.get_all("Missing") == [] and "Channel" in h and len(h) == 2


def test_serialize_action() -> None:
    wire = serialize_action(Action("Originate", {"Channel": "PJSIP/agent001", "Variable": ["A=1", "B=2"]}), "42")
    assert wire == (
        b"Action: Originate\r\nActionID: 42\r\nChannel: PJSIP/agent001\r\nVariable: A=1\r\nVariable: B=2\r\n\r\n"
    )
    assert Action.from_dict({"action": "Ping"}) == Action("Ping", {})


@pytest.mark.parametrize(
    "action",
    [
        Action("Setvar", {"Value": "x\r\nAction: Hangup"}),
        Action("Setvar", {"Value": "x\nAction: Hangup"}),
        Action("Setvar", {"Value": "x\rEvil: 1"}),
        Action("Setvar", {"Bad\r\nName": "x"}),
        Action("Setvar", {"Bad: Name": "x"}),
        Action("Setvar", {"": "x"}),
        Action("Ping\r\nAction: Hangup", {}),
        Action("Setvar", {"Variable": ["ok=1", "bad=\r\n"]}),
    ],
)
def test_header_injection_rejected(action: Action) -> None:
    with pytest.raises(HeaderInjectionError):
        serialize_action(action, "1")


def test_action_id_from_caller_is_refused() -> None:
    with pytest.raises(LocalProtocolError):
        serialize_action(Action("Ping", {"ActionID": "mine"}), "1")
    with pytest.raises(HeaderInjectionError):
        serialize_action(Action("Ping", {}), "1\r\n")


def test_events_are_immutable() -> None:
    (ev,) = AmiParser(expect_banner=False).feed(b"Event: X\r\nA: 1\r\n\r\n")
    with pytest.raises(AttributeError):
        ev.name = "Y"  # type: ignore[misc]


def test_samples_banner_is_what_the_parser_expects() -> None:
    assert isinstance(AmiParser().feed(BANNER)[0], Banner)


def test_captured_login_list_corestatus_replays_exactly() -> None:
    path = FIXTURES / "login_ping_list_corestatus.ami"
    msgs = AmiParser().feed(path.read_bytes())
    assert isinstance(msgs[0], Banner) and msgs[0].raw.startswith("Asterisk Call Manager/")
    responses = {m.action_id: m for m in msgs if isinstance(m, Response)}
    assert responses["c1"].headers["Challenge"].isdigit()
    assert responses["l1"].message == "Authentication accepted"
    assert responses["p1"].headers["Ping"] == "Pong"
    assert responses["s1"].is_list_start
    assert responses["st1"].headers["CoreStartupDate"].count("-") == 2
    done = [m for m in msgs if isinstance(m, ListComplete)]
    assert [(d.name, d.action_id) for d in done] == [("CoreShowChannelsComplete", "s1")]
    booted = [m for m in msgs if isinstance(m, Event) and m.name == "FullyBooted"]
    assert booted and booted[0]["Uptime"].isdigit()
