"""The SIP plumbing of a NODES=2 stack on real parts, without the switchboard service:
Kamailio dispatches the trunk's callers over Asterisk nodes a and b (hash over Call-ID),
is the agents' registrar (either node reaches an agent registered there), sends the
numbers a node dials to the PSTN, keeps the media trunk and the agents' own calls apart
from the trunk on the nodes, and stops sending callers to a node that no longer answers
its OPTIONS, until it answers again.

The nodes run the shipped dialplan: with no service heartbeat a caller goes to the
fallback queue (answered), so a SIPp caller gets a 200 OK from whichever node took it;
the node is read from the AMI events of each node (SystemName, uniqueid prefix).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from e2e_service import free_port, start_media_caller
from two_nodes import NODES, dispatcher_flags, node_cli, node_client, node_script, two_node_stack

from switchboard.acd.agents import sip_password
from switchboard.ami.client import AmiClient
from switchboard.ami.protocol import Event
from switchboard.demo.sipp import (
    HangUp,
    Pause,
    SippAgent,
    agent_scenario,
    caller_scenario,
    feature_code_scenario,
    register_scenario,
    run_sipp,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def nodes_env(stack_env: dict[str, str]) -> Iterator[dict[str, str]]:
    with two_node_stack(stack_env) as env:
        yield env


class Landings:
    """The channels of one endpoint each node creates: node -> [(SystemName, Uniqueid)]."""

    def __init__(self) -> None:
        self.seen: dict[str, list[tuple[str, str]]] = {n: [] for n in NODES}
        self.clients: list[AmiClient] = []
        self.contexts: list[str] = []

    async def watch(self, env: dict[str, str], nodes: tuple[str, ...] = NODES, *,
                    endpoint: str = "trunk") -> None:
        for node in nodes:
            client = await node_client(env, node)

            def on_new(ev: Event, node: str = node) -> None:
                channel = ev.headers.get("Channel", "")
                if channel.startswith(f"PJSIP/{endpoint}-") and channel[len(endpoint) + 7:].isalnum():
                    self.seen[node].append((ev.headers.get("SystemName", ""), ev.headers.get("Uniqueid", "")))
                    self.contexts.append(ev.headers.get("Context", ""))

            client.subscribe(on_new, names=["Newchannel"])
            self.clients.append(client)

    def count(self) -> dict[str, int]:
        return {n: len(v) for n, v in self.seen.items()}

    async def close(self) -> None:
        for c in self.clients:
            await c.close()


@pytest.fixture
async def landings() -> AsyncIterator[Landings]:
    lands = Landings()
    yield lands
    await lands.close()


async def call(env: dict[str, str], calls: int) -> None:
    """``calls`` SIPp callers (one Call-ID each) to Kamailio's port; each is answered, then hangs up."""
    scen = caller_scenario([Pause(0.3), HangUp()], caller="02437650001")
    res = await run_sipp(scen, remote=f"127.0.0.1:{env['STACK_KAMAILIO_PORT']}", service="19009068",
                         calls=calls, rate=10, timeout=60)
    assert res.ok, res.errors or res.stderr


async def until(check, what: str, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.25)


async def unregister(kamailio: str, user: str, password: str) -> None:
    """REGISTER ``Contact: *`` with Expires: 0 (digest auth): Kamailio drops every contact of the phone."""
    scen = register_scenario(user=user, password=password, expires=0, stay=0.1)
    scen = scen.replace(f"Contact: <sip:{user}@[local_ip]:[local_port];transport=[transport]>", "Contact: *")
    assert "Contact: *" in scen
    res = await run_sipp(scen, remote=kamailio, timeout=20)
    assert res.ok, res.errors or res.stderr


async def unavailable_everywhere(env: dict[str, str], aor: str) -> bool:
    """Not registered at Kamailio: its answer to each node's qualify is 480 and the nodes count only 2xx."""
    for node in NODES:
        if " Unavail " not in await node_cli(env, node, f"pjsip show aor {aor}"):
            return False
    return True


async def test_callers_spread_over_both_nodes_and_events_name_the_node(
        nodes_env: dict[str, str], landings: Landings) -> None:
    await landings.watch(nodes_env)
    total = 0
    while min(landings.count().values()) == 0:   # hash over Call-ID: 2**-(n-1) that n calls all land on one
        assert total < 24, f"all callers on one node: {landings.count()}"
        await call(nodes_env, 6)
        total += 6
        await asyncio.sleep(0.5)
    for node, seen in landings.seen.items():
        for system_name, uniqueid in seen:
            assert system_name == node
            assert uniqueid.startswith(f"{node}-"), uniqueid
    assert sum(landings.count().values()) == total


async def test_an_agent_registered_at_kamailio_is_reached_from_both_nodes(
        nodes_env: dict[str, str], tmp_path: Path) -> None:
    secret = Path(nodes_env["STACK_SIP_AGENTS_SECRET_FILE"]).read_text().strip()  # noqa: ASYNC240 - a few bytes, once
    password = sip_password(secret, "agent1001")
    kamailio = f"127.0.0.1:{nodes_env['STACK_KAMAILIO_PORT']}"
    await unregister(kamailio, "agent1001", password)   # a phone left by an earlier run on a reused stack
    await until(lambda: unavailable_everywhere(nodes_env, "agent1001"), "agent1001 unavailable before it registers")
    agent = SippAgent(endpoint="agent1001", password=password, remote=kamailio, port=free_port(),
                      answer_after=0.5, workdir=tmp_path)
    await agent.start()
    clients = [await node_client(nodes_env, n, admin=True) for n in NODES]
    try:
        # each node qualifies the agent's contact at Kamailio: 200 once the phone is registered there
        for node in NODES:
            async def avail(node: str = node) -> bool:
                return " Avail " in await node_cli(nodes_env, node, "pjsip show aor agent1001")
            await until(avail, f"agent1001 reachable from node {node}")
        for client in clients:
            resp = await client.send({"Action": "Originate", "Channel": "PJSIP/agent1001", "Application": "Wait",
                                      "Data": "1", "Timeout": "15000", "CallerID": "plumbing <100>"}, timeout=25)
            assert resp.success, resp.message
        async def both_answered() -> bool:
            return agent.calls_answered() == 2
        await until(both_answered, "the agent answering both nodes' calls")
    finally:
        for c in clients:
            await c.close()
        await agent.stop()
    await unregister(kamailio, "agent1001", password)
    await until(lambda: unavailable_everywhere(nodes_env, "agent1001"), "agent1001 unavailable once unregistered")


async def test_a_killed_node_gets_no_callers_until_it_is_back(nodes_env: dict[str, str], landings: Landings) -> None:
    await node_script(nodes_env, "kill", "b")
    try:
        async def b_down() -> bool:
            return (await dispatcher_flags(nodes_env)).get("b", "").startswith("I")
        await until(b_down, "Kamailio marking node b down (OPTIONS unanswered)")
        await landings.watch(nodes_env, ("a",))
        await call(nodes_env, 8)
        await asyncio.sleep(0.5)
        assert landings.count()["a"] == 8      # every caller answered, all on a
    finally:
        await node_script(nodes_env, "start", "b")
    async def b_up() -> bool:
        return (await dispatcher_flags(nodes_env)).get("b", "") == "AP"
    await until(b_up, "Kamailio marking node b up again")
    await landings.watch(nodes_env, ("b",))
    total = 0
    while landings.count()["b"] == 0:
        assert total < 24, "node b takes no callers after its restart"
        await call(nodes_env, 6)
        total += 6
        await asyncio.sleep(0.5)
    assert all(s == ("b", s[1]) and s[1].startswith("b-") for s in landings.seen["b"])


async def test_numbers_dialled_on_a_node_reach_the_pstn_through_kamailio(nodes_env: dict[str, str]) -> None:
    """Callbacks, campaign calls and transfers out dial PJSIP/<number>@trunk on the caller's
    node: Kamailio sends a number that is no registered phone to the carrier (the test PSTN)."""
    pstn = asyncio.create_task(run_sipp(
        agent_scenario(answer_after=0.3, expect_number="0912345677"), remote="127.0.0.1:9",
        local_port=int(nodes_env["STACK_TRUNK_OUT_PORT"]), calls=2, timeout=40))
    await asyncio.sleep(0.5)   # SIPp listening
    clients = [await node_client(nodes_env, n, admin=True) for n in NODES]
    try:
        for client in clients:
            resp = await client.send({"Action": "Originate", "Channel": "PJSIP/0912345677@trunk", "Application": "Wait",
                                      "Data": "1", "Timeout": "15000", "CallerID": "plumbing <100>"}, timeout=25)
            assert resp.success, resp.message
        result = await asyncio.wait_for(pstn, 45)
        assert result.ok, result.errors or result.stderr
    finally:
        pstn.cancel()
        for c in clients:
            await c.close()


async def test_the_media_trunk_keeps_its_endpoint_through_kamailio(nodes_env: dict[str, str],
                                                                  landings: Landings) -> None:
    """Callers from the media trunk's address (127.0.0.2) reach a node from Kamailio's media side
    (127.0.0.4): the node's trunk-media endpoint, with the shipped RTP timeouts."""
    await landings.watch(nodes_env, endpoint="trunk-media")
    proc = await start_media_caller(nodes_env, caller_scenario([Pause(0.5), HangUp()], caller="02439000501"),
                                    ip=nodes_env.get("STACK_MEDIA_TRUNK_IP", "127.0.0.2"))
    assert await asyncio.wait_for(proc.wait(), 30) == 0
    await asyncio.sleep(0.5)
    assert sum(landings.count().values()) == 1, landings.seen


async def test_an_agents_own_call_is_authenticated_by_kamailio_and_is_the_agent_on_the_node(
        nodes_env: dict[str, str], landings: Landings) -> None:
    """A feature code (*20) from an agent's phone: Kamailio challenges it (401, the phone's
    password) and sends it to a node, where it is the agent's endpoint (context agents) -
    the node takes it from Kamailio's address without a challenge of its own. With no
    service the call waits in AGI: the test hangs it up."""
    secret = Path(nodes_env["STACK_SIP_AGENTS_SECRET_FILE"]).read_text().strip()  # noqa: ASYNC240 - a few bytes
    await landings.watch(nodes_env, endpoint="agent1002")
    code = asyncio.create_task(run_sipp(
        feature_code_scenario(user="agent1002", password=sip_password(secret, "agent1002"), code="*20"),
        remote=f"127.0.0.1:{nodes_env['STACK_KAMAILIO_PORT']}", timeout=20))
    try:
        async def arrived() -> bool:
            return sum(landings.count().values()) == 1
        await until(arrived, "agent1002's call on a node")
        assert landings.contexts == ["agents"]
        node = next(n for n, seen in landings.seen.items() if seen)
        admin = await node_client(nodes_env, node, admin=True)
        try:
            await admin.send({"Action": "Hangup", "Channel": "/^PJSIP/agent1002-/"}, timeout=10)
        finally:
            await admin.close()
        await asyncio.wait_for(code, 30)   # ends (not answered: the test hung it up)
    finally:
        code.cancel()
