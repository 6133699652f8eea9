"""Several Asterisk nodes seen as one link (switchboard.ami.nodes): two real AmiClients, each
logged in to its own in-process AMI server (tests/unit/ami/fake_ami.py, the faithful fake of
the faults the real Asterisk cannot show: here, which node an action reached and a node that
dies). The real two-node stack behind Kamailio is driven in tests/e2e/test_scale_nodes.py."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable

import pytest
from fake_ami import FakeAmi

from switchboard.ami.client import AmiClient, AmiError, current_node, node_hint
from switchboard.ami.nodes import AmiNodes, merge_device_states, node_of_id
from switchboard.ami.protocol import Event
from switchboard.calls import CallBook, CallEventBus
from switchboard.config import AmiSettings


def test_ids_made_under_systemname_say_their_node() -> None:
    nodes = ("a", "b")
    assert node_of_id("a-1764840000.12", nodes) == "a"
    assert node_of_id("b-1764840000.3", nodes) == "b"
    assert node_of_id("1764840000.12", nodes) is None          # no systemname
    assert node_of_id("c-1764840000.1", nodes) is None         # not one of ours
    assert node_of_id("sb-0a1b2c", nodes) is None
    assert node_of_id("a-b", nodes) is None                     # not an id
    assert node_of_id("PJSIP/a-00000001", nodes) is None


def test_device_states_merge_to_the_busiest_then_the_most_reachable() -> None:
    assert merge_device_states(["NOT_INUSE", "INUSE"]) == "INUSE"
    assert merge_device_states(["UNAVAILABLE", "NOT_INUSE"]) == "NOT_INUSE"   # reached through one node
    assert merge_device_states(["RINGING", "NOT_INUSE"]) == "RINGING"
    assert merge_device_states(["UNAVAILABLE", "UNAVAILABLE"]) == "UNAVAILABLE"
    assert merge_device_states(["SOMETHING_NEW"]) == "UNKNOWN"
    assert merge_device_states([]) == "UNKNOWN"


def ev(name: str, node: str, **headers: str) -> bytes:
    lines = [f"Event: {name}", "Privilege: call,all", f"SystemName: {node}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@contextlib.asynccontextmanager
async def two_nodes(*, probe_answers: bool = False, lost_after_s: float = 0.3) -> AsyncIterator[
        tuple[AmiNodes, FakeAmi, FakeAmi, list[str]]]:
    probed: list[str] = []

    async def probe(host: str, port: int) -> bool:
        probed.append(f"{host}:{port}")
        return probe_answers

    async with FakeAmi() as fa, FakeAmi() as fb:
        base = AmiSettings(secret=fa.secret, reconnect_min=0.05, reconnect_max=0.1, ping_interval=60,
                           connect_timeout=0.5, action_timeout=0.5)
        clients = [AmiClient(dataclasses.replace(base, port=fa.port), name="a"),
                   AmiClient(dataclasses.replace(base, port=fb.port), name="b")]
        nodes = AmiNodes(clients, lost_after_s=lost_after_s, sip={"b": ("127.0.0.1", 5999)}, probe=probe,
                         watch_interval_s=0.05)
        await nodes.start(timeout=5)
        try:
            yield nodes, fa, fb, probed
        finally:
            await nodes.close()


async def until(pred: Callable[[], bool], timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def names(fake: FakeAmi, action: str) -> list[dict[str, str]]:
    return [r.headers for r in fake.received if r.name == action]


async def test_actions_go_to_the_node_their_call_or_channel_is_on() -> None:
    async with two_nodes() as (nodes, fa, fb, _):
        assert nodes.connected and nodes.up_nodes() == ["a", "b"]
        # a hint wins
        await nodes.send({"Action": "Redirect", "Channel": "PJSIP/trunk-00000000", "Context": "x"}, node="b")
        # an id made under systemname says its node
        await nodes.send({"Action": "Hangup", "Channel": "a-1764840000.7"})
        await nodes.send({"Action": "Setvar", "Channel": "b-1764840000.9-x", "Variable": "V", "Value": "1"})
        assert [h["Channel"] for h in names(fa, "Hangup")] == ["a-1764840000.7"]
        assert [h["Channel"] for h in names(fb, "Redirect")] == ["PJSIP/trunk-00000000"]
        assert [h["Channel"] for h in names(fb, "Setvar")] == ["b-1764840000.9-x"]
        # node_hint: what the ACD gives send() for a call id
        assert node_hint(nodes, "b-1764840000.9") == {"node": "b"}
        assert node_hint(object(), "b-1764840000.9") == {}


async def test_a_channel_name_is_routed_only_where_it_lives_and_never_guessed() -> None:
    async with two_nodes() as (nodes, fa, fb, _):
        fa.write(ev("Newchannel", "a", Channel="PJSIP/trunk-00000000", Uniqueid="a-1.1"))
        fb.write(ev("Newchannel", "b", Channel="PJSIP/agent1001-00000004", Uniqueid="b-1.4"))
        await until(lambda: nodes.node_for("PJSIP/agent1001-00000004") == "b")
        await nodes.send({"Action": "Hangup", "Channel": "PJSIP/agent1001-00000004"})
        assert len(names(fb, "Hangup")) == 1 and not names(fa, "Hangup")
        # each node counts its channels from zero: the same name on both is refused without a hint
        fb.write(ev("Newchannel", "b", Channel="PJSIP/trunk-00000000", Uniqueid="b-1.5"))
        await until(lambda: nodes.channel_count("b") == 2)
        with pytest.raises(AmiError, match="which Asterisk node"):
            await nodes.send({"Action": "Hangup", "Channel": "PJSIP/trunk-00000000"})
        # gone from one node: the name is the other's again
        fa.write(ev("Hangup", "a", Channel="PJSIP/trunk-00000000", Uniqueid="a-1.1"))
        await until(lambda: nodes.node_for("PJSIP/trunk-00000000") == "b")
        # an unknown channel and no hint: refused, not sent anywhere
        with pytest.raises(AmiError):
            await nodes.send({"Action": "Redirect", "Channel": "PJSIP/nobody-00000001"})
        assert not names(fa, "Redirect") and not names(fb, "Redirect")


async def test_originates_place_on_the_named_node_or_the_least_busy_one() -> None:
    async with two_nodes() as (nodes, fa, fb, _):
        # an agent's leg named after the caller's node goes there (the bridge is local)
        await nodes.send({"Action": "Originate", "Channel": "PJSIP/agent1001", "ChannelId": "b-1764840000.abc"})
        assert len(names(fb, "Originate")) == 1
        # a callback (no channel of ours): the node with fewer channels
        fa.write(ev("Newchannel", "a", Channel="PJSIP/trunk-00000000", Uniqueid="a-1.1"))
        await until(lambda: nodes.channel_count("a") == 1)
        assert nodes.place() == "b"
        await nodes.send({"Action": "Originate", "Channel": "PJSIP/0912345678@trunk", "ChannelId": "cmp-1"})
        assert len(names(fb, "Originate")) == 2 and not names(fa, "Originate")
        assert nodes.placements == {"a": 0, "b": 2}


async def test_globals_go_to_every_node_and_events_say_which_node_they_came_from() -> None:
    async with two_nodes() as (nodes, fa, fb, _):
        await nodes.send({"Action": "Setvar", "Variable": "SWITCHBOARD_HEARTBEAT", "Value": "1:3"})
        assert len(names(fa, "Setvar")) == 1 and len(names(fb, "Setvar")) == 1
        heard: list[tuple[str, str]] = []
        nodes.subscribe(lambda e: heard.append((current_node(), e.get("Uniqueid") or "")), names=("Newstate",))
        fa.write(ev("Newstate", "a", Channel="PJSIP/trunk-00000000", Uniqueid="a-1.1"))
        fb.write(ev("Newstate", "b", Channel="PJSIP/trunk-00000000", Uniqueid="b-1.1"))
        await until(lambda: len(heard) == 2)
        assert sorted(heard) == [("a", "a-1.1"), ("b", "b-1.1")]


async def test_an_agent_busy_on_one_node_is_busy_for_the_router() -> None:
    async with two_nodes() as (nodes, fa, fb, _):
        states: list[tuple[str, str]] = []

        def seen(e: Event) -> None:
            states.append((e.get("Device") or "", e.get("State") or ""))

        nodes.subscribe(seen, names=("DeviceStateChange",))
        fa.write(ev("DeviceStateChange", "a", Device="PJSIP/agent1001", State="NOT_INUSE"))
        await until(lambda: len(states) == 1)
        fb.write(ev("DeviceStateChange", "b", Device="PJSIP/agent1001", State="INUSE"))
        await until(lambda: len(states) == 2)
        fa.write(ev("DeviceStateChange", "a", Device="PJSIP/agent1001", State="NOT_INUSE"))
        await until(lambda: len(states) == 3)
        assert states == [("PJSIP/agent1001", "NOT_INUSE"), ("PJSIP/agent1001", "INUSE"),
                          ("PJSIP/agent1001", "INUSE")]        # still in use on b
        fb.write(ev("DeviceStateChange", "b", Device="PJSIP/agent1001", State="NOT_INUSE"))
        await until(lambda: len(states) == 4)
        assert states[-1] == ("PJSIP/agent1001", "NOT_INUSE")


async def test_a_node_whose_link_and_sip_are_gone_is_lost_and_its_calls_close_failed() -> None:
    async with two_nodes() as (nodes, _fa, fb, probed):
        ended: list[tuple[str, dict[str, object]]] = []
        book = CallBook(CallEventBus([lambda e: ended.append((e.call_id, e.data)) if e.kind == "call.ended"
                                      else None]), flow_grace_s=0)
        book.asterisk_node = nodes.node_for
        book.started(call_id="a-1.1", uniqueid="a-1.1", caller="0912345678", dialed="1900", channel="x")
        book.started(call_id="b-1.1", uniqueid="b-1.1", caller="0912345679", dialed="1900", channel="y")
        lost: list[tuple[str, str]] = []
        nodes.on_lost.append(lambda n: lost.append((n, current_node())))
        nodes.on_lost.append(book.node_lost)
        fb.hold.add("Challenge")      # b does not come back
        fb.drop()
        await until(lambda: bool(lost), timeout=5)
        assert lost == [("b", "b")] and probed and nodes.lost == {"b"}
        assert nodes.up_nodes() == ["a"] and nodes.connected
        assert [c for c, _ in ended] == ["b-1.1"]
        assert ended[0][1]["outcome"] == "failed" and ended[0][1]["cause"] == "node_lost"
        assert "a-1.1" in book.calls
        # nothing more goes to the lost node; new calls are placed on a
        assert nodes.place() == "a"
        with pytest.raises(AmiError):
            await nodes.send({"Action": "Hangup", "Channel": "b-1.1"})
        # b comes back: no longer lost
        fb.hold.discard("Challenge")
        await until(lambda: nodes.up_nodes() == ["a", "b"], timeout=5)   # up as soon as its link is
        await until(lambda: not nodes.lost, timeout=2)                     # and off the lost list


async def test_a_node_that_still_answers_sip_is_not_lost_when_only_its_ami_link_drops() -> None:
    async with two_nodes(probe_answers=True) as (nodes, _fa, fb, probed):
        lost: list[str] = []
        nodes.on_lost.append(lost.append)
        fb.hold.add("Challenge")
        fb.drop()
        await until(lambda: len(probed) >= 3, timeout=5)
        assert lost == [] and nodes.lost == set()
        assert nodes.up_nodes() == ["a"]      # not connected: nothing is sent there meanwhile
