"""One switchboard over two Asterisk nodes behind Kamailio (issue 18, docs/scale.md).

Real Kamailio (dispatcher + registrar), two real Asterisk 22 nodes from the same root, SIPp
callers and agents, the service with ``ami.nodes``. A caller is placed on a chosen node either
through Kamailio with a Call-ID its dispatcher hashes to that node, or straight at the node
from Kamailio's trunk-side address (127.0.0.3: the node's trunk identifies that address), when
the test must pin the node (the order of service across nodes)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest
from e2e_service import (
    HOTLINE,
    PENSION,
    Service,
    agents_secret,
    free_port,
    run_caller,
    running_service,
    until,
)
from two_nodes import dispatcher_flags, node_cli, node_script, two_node_stack

from switchboard.acd.agents import sip_password
from switchboard.demo.sipp import Dtmf, HangUp, Pause, SippAgent, Step, caller_scenario

pytestmark = pytest.mark.e2e

TRUNK_SIDE_IP = "127.0.0.3"     # Kamailio's address towards the nodes: the nodes' trunk identifies it
#: Call-IDs Kamailio's dispatcher (hash over Call-ID, both nodes up) sends to each node
CALL_IDS = {"a": "sb-scale-1@e2e", "b": "sb-scale-2@e2e"}


@pytest.fixture(scope="module")
def nodes_env(stack_env: dict[str, str]) -> Iterator[dict[str, str]]:
    with two_node_stack(stack_env) as env:
        yield env


def ivr(keys: str) -> list[Pause | Dtmf]:
    steps: list[Pause | Dtmf] = []
    for k in keys:
        steps += [Pause(2.5), Dtmf(k)]
    return steps


def node_sip(env: dict[str, str], node: str) -> int:
    return int(env[f"STACK_NODE_{node.upper()}_SIP_PORT"])


def call_via_kamailio(svc: Service, steps: list[Step], *, caller: str, call_id: str) -> asyncio.Task:  # type: ignore[type-arg]
    task = asyncio.create_task(run_caller(caller_scenario(steps, caller=caller),
                                          remote=f"127.0.0.1:{svc.env['STACK_SIP_PORT']}", service=HOTLINE,
                                          timeout=90, call_id=call_id))
    svc.callers.append(task)
    return task


def call_on_node(svc: Service, node: str, steps: list[Step], *, caller: str) -> asyncio.Task:  # type: ignore[type-arg]
    """Straight at ``node``, from the trunk's address (as if Kamailio had chosen it)."""
    task = asyncio.create_task(run_caller(caller_scenario(steps, caller=caller),
                                          remote=f"127.0.0.1:{node_sip(svc.env, node)}", service=HOTLINE,
                                          timeout=90, ip=TRUNK_SIDE_IP))
    svc.callers.append(task)
    return task


async def agent_via_kamailio(svc: Service, endpoint: str, *, ready: bool = True,
                             talk: float | None = None) -> SippAgent:
    """A SIPp softphone registered at Kamailio; idle for the service once a node reaches it."""
    secret = agents_secret(svc.env)
    sipp = SippAgent(endpoint=endpoint, password=sip_password(secret, endpoint),
                     remote=f"127.0.0.1:{svc.env['STACK_SIP_PORT']}", port=free_port(socket.SOCK_DGRAM),
                     talk=talk)
    await sipp.start()
    svc.agents.append(sipp)
    await until(lambda: svc.acd.states[endpoint].device.value == "NOT_INUSE", timeout=20,
                what=f"{endpoint} reachable through Kamailio")
    if ready:
        svc.acd.ready(endpoint)
    return sipp


async def channels_on(env: dict[str, str], node: str) -> str:
    return await node_cli(env, node, "core show channels concise")


async def test_callers_on_both_nodes_reach_agents_through_kamailio_bridged_on_their_node(
        nodes_env: dict[str, str], pg_dsn: str) -> None:
    async with running_service(nodes_env, pg_dsn) as svc:
        assert sorted(svc.app.context["client"].up_nodes()) == ["a", "b"]
        await agent_via_kamailio(svc, "agent1009")      # Hồ Chí Minh City
        await agent_via_kamailio(svc, "agent1001")      # Hà Nội
        south, north = "02838700001", "02438700002"
        on_a = call_via_kamailio(svc, [*ivr(PENSION), Pause(12), HangUp()], caller=south, call_id=CALL_IDS["a"])
        on_b = call_via_kamailio(svc, [*ivr(PENSION), Pause(12), HangUp()], caller=north, call_id=CALL_IDS["b"])
        cid_a, cid_b = await svc.wait_call_id(south), await svc.wait_call_id(north)
        # Kamailio spread them; the call id (the linkedid, under systemname) says the node
        assert (cid_a.split("-")[0], cid_b.split("-")[0]) == ("a", "b"), (cid_a, cid_b)
        started = {c: svc.of(c, "call.started")[0].data for c in (cid_a, cid_b)}
        assert (started[cid_a]["asterisk_node"], started[cid_b]["asterisk_node"]) == ("a", "b")
        answered_a = await svc.wait_event(cid_a, "call.answered", timeout=30)
        answered_b = await svc.wait_event(cid_b, "call.answered", timeout=30)
        assert (answered_a.data["agent_id"], answered_b.data["agent_id"]) == ("agent1009", "agent1001")
        # each agent's leg was originated on its caller's node (the bridge is local), to the AOR via Kamailio
        legs = {c: svc.of(c, "agent.offer")[0].data["leg_uniqueid"] for c in (cid_a, cid_b)}
        assert legs[cid_a].startswith("a-") and legs[cid_b].startswith("b-"), legs
        on_node_a, on_node_b = await channels_on(nodes_env, "a"), await channels_on(nodes_env, "b")
        assert "PJSIP/agent1009-" in on_node_a and "PJSIP/agent1009-" not in on_node_b, (on_node_a, on_node_b)
        assert "PJSIP/agent1001-" in on_node_b and "PJSIP/agent1001-" not in on_node_a, (on_node_a, on_node_b)
        assert (await on_a).ok and (await on_b).ok
        for cid, node, agent in ((cid_a, "a", "agent1009"), (cid_b, "b", "agent1001")):
            row, timeline = await svc.record(cid)
            assert (row["outcome"], row["agent_id"], row["asterisk_node"]) == ("answered", agent, node)
            seqs = [e["seq"] for e in timeline]
            assert seqs == sorted(set(seqs))


async def test_the_caller_who_waited_longest_is_served_first_whatever_its_node(
        nodes_env: dict[str, str], pg_dsn: str) -> None:
    async with running_service(nodes_env, pg_dsn) as svc:
        agent = await agent_via_kamailio(svc, "agent1009", ready=False)   # nobody free: both wait
        first, second = "02838700011", "02838700012"
        # the first caller waits on node b, the second (later) on node a
        early = call_on_node(svc, "b", [*ivr(PENSION), Pause(30), HangUp()], caller=first)
        cid_first = await svc.wait_call_id(first)
        await svc.wait_event(cid_first, "queue.joined", timeout=25)
        late = call_on_node(svc, "a", [Pause(1), *ivr(PENSION), Pause(40), HangUp()], caller=second)
        cid_second = await svc.wait_call_id(second)
        await svc.wait_event(cid_second, "queue.joined", timeout=25)
        assert (cid_first[:2], cid_second[:2]) == ("b-", "a-")
        assert [w.call_id for w in svc.acd.waiting_calls()] == [cid_first, cid_second]
        svc.acd.ready("agent1009")
        got_first = await svc.wait_event(cid_first, "call.answered", timeout=20)
        assert got_first.data["agent_id"] == "agent1009"
        assert svc.of(cid_first, "agent.offer")[0].data["leg_uniqueid"].startswith("b-")
        assert not svc.of(cid_second, "agent.offer")      # the later caller on node a waits its turn
        assert (await early).ok
        got_second = await svc.wait_event(cid_second, "call.answered", timeout=30)
        assert got_second.ts > got_first.ts
        assert svc.of(cid_second, "agent.offer")[0].data["leg_uniqueid"].startswith("a-")
        assert (await late).ok
        assert agent.calls_answered() == 2


async def test_a_node_killed_its_calls_fail_agents_return_and_it_rejoins_when_back(
        nodes_env: dict[str, str], pg_dsn: str) -> None:
    async with running_service(nodes_env, pg_dsn, ami={"node_lost_after_s": 2.0}) as svc:
        nodes = svc.app.context["client"]
        agent = await agent_via_kamailio(svc, "agent1009")
        talking, menu = "02838700021", "02838700022"
        bridged = call_on_node(svc, "b", [*ivr(PENSION), Pause(60), HangUp()], caller=talking)
        cid_bridged = await svc.wait_call_id(talking)
        await svc.wait_event(cid_bridged, "call.answered", timeout=30)
        in_menu = call_on_node(svc, "b", [Pause(60), HangUp()], caller=menu)
        cid_menu = await svc.wait_call_id(menu)
        assert svc.status("agent1009") == "on_call"
        await node_script(nodes_env, "kill", "b")
        # the service: node b lost, its calls closed as failed with the cause, the agent freed
        lost_a = await svc.wait_event(cid_bridged, "call.ended", timeout=20)
        lost_m = await svc.wait_event(cid_menu, "call.ended", timeout=5)
        assert (lost_a.data["outcome"], lost_a.data["cause"]) == ("failed", "node_lost")
        assert (lost_m.data["outcome"], lost_m.data["cause"]) == ("failed", "node_lost")
        assert nodes.lost == {"b"} and nodes.up_nodes() == ["a"]
        assert svc.of(cid_bridged, "agent.ended")[0].data["agent_id"] == "agent1009"
        await until(lambda: svc.status("agent1009") == "ready", timeout=15, what="agent1009 ready again")
        for task in (bridged, in_menu):
            task.cancel()
        # Kamailio's OPTIONS find b down: the Call-ID that went to b goes to a now
        await until(lambda: _flags_down(nodes_env, "b"), timeout=20, what="Kamailio marks node b down")
        caller = "02838700023"
        rerouted = call_via_kamailio(svc, [*ivr(PENSION), Pause(15), HangUp()], caller=caller, call_id=CALL_IDS["b"])
        cid = await svc.wait_call_id(caller)
        assert cid.startswith("a-")
        assert (await svc.wait_event(cid, "call.answered", timeout=30)).data["agent_id"] == "agent1009"
        assert (await rerouted).ok
        # node b back: the service reconnects and takes it back; Kamailio sends it callers again
        await node_script(nodes_env, "start", "b")
        await until(lambda: nodes.up_nodes() == ["a", "b"], timeout=30, what="node b back in the service")
        await until(lambda: _flags_up(nodes_env, "b"), timeout=20, what="Kamailio marks node b up")
        caller = "02838700024"
        back = call_via_kamailio(svc, [*ivr(PENSION), Pause(15), HangUp()], caller=caller, call_id=CALL_IDS["b"])
        cid = await svc.wait_call_id(caller)
        assert cid.startswith("b-")
        await until(lambda: svc.status("agent1009") == "ready", timeout=15, what="agent1009 ready")
        assert (await svc.wait_event(cid, "call.answered", timeout=30)).data["agent_id"] == "agent1009"
        assert (await back).ok
        for c, node, outcome in ((cid_bridged, "b", "failed"), (cid_menu, "b", "failed")):
            row, _ = await svc.record(c)
            assert (row["outcome"], row["hangup_cause"], row["asterisk_node"]) == (outcome, "node_lost", node)
        assert agent.calls_answered() == 3


async def _flags_down(env: dict[str, str], node: str) -> bool:
    return "I" in (await dispatcher_flags(env)).get(node, "") or "D" in (await dispatcher_flags(env)).get(node, "")


async def _flags_up(env: dict[str, str], node: str) -> bool:
    return (await dispatcher_flags(env)).get(node, "").startswith("A")
