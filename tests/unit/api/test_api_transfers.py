"""The transfer routes over the real ACD (``acd.transfers``) with the faked AMI link: who may
transfer whose call, the targets offered, the refusals and their stable error ids."""

from __future__ import annotations

from api_fakes import Client, Tokens, World, bearer
from fake_asterisk import Channel

from switchboard.acd.agents import SupervisorRecord
from switchboard.acd.directory import Directory, DirectoryEntry
from switchboard.acd.model import VAR_CALLER, VAR_JOINED, VAR_LANGUAGE, VAR_PRIORITY, VAR_PROVINCE, VAR_TOPIC


async def _talking(client: Client, world: World, tokens: Tokens, agent_id: str = "a1") -> str:
    await client.post(f"/api/agents/{agent_id}/ready", json={}, headers=bearer(getattr(tokens, agent_id)))
    call_id = await world.caller_waits(caller="02438123456")
    leg = await world.ringing(agent_id)
    world.asterisk.agent_answers(leg)
    await world.settle()
    assert world.acd.states[agent_id].status.value == "on_call"
    return call_id


async def test_an_agent_transfers_its_own_call_to_a_topic(client: Client, tokens: Tokens, world: World) -> None:
    call_id = await _talking(client, world, tokens)
    h = bearer(tokens.a1)
    targets = await (await client.get("/api/agents/a1/transfer-targets", headers=h)).json()
    assert targets["topics"] == ["social/pension"] and targets["directory"] == []
    resp = await client.post("/api/agents/a1/transfer", json={"kind": "topic", "target": "social/pension"},
                             headers=h)
    assert resp.status == 400          # the target's pattern: no '/' (topics use '.' on the real hotline)
    world.acd.records["a1"].skills["social.pension"] = 3
    resp = await client.post("/api/agents/a1/transfer", json={"kind": "topic", "target": "social.pension"},
                             headers=h)
    body = await resp.json()
    assert resp.status == 202, body
    assert (body["call_id"], body["kind"], body["from_agent"], body["state"]) == (call_id, "topic", "a1", "requested")
    redirect = next(a for a in world.asterisk.actions if a["Action"] == "Redirect")
    assert (redirect["Context"], redirect["Exten"]) == ("transfer-line", "requeue")
    (requested,) = world.of("transfer.requested")
    assert (requested.call_id, requested.data["target"], requested.data["by"]) == (call_id, "social.pension", "a1")
    # a second transfer of the same call while the first is under way
    resp = await client.post("/api/agents/a1/transfer", json={"kind": "topic", "target": "social.pension"},
                             headers=h)
    assert resp.status == 409 and (await resp.json())["error_id"] == "transfer-in-progress"


async def test_refusals_have_stable_error_ids(client: Client, tokens: Tokens, world: World) -> None:
    h = bearer(tokens.a1)
    resp = await client.post("/api/agents/a1/transfer", json={"kind": "topic", "target": "general"}, headers=h)
    assert resp.status == 409 and (await resp.json())["error_id"] == "agent-not-on-call"
    call_id = await _talking(client, world, tokens)
    resp = await client.post("/api/agents/a1/transfer", json={"kind": "number", "target": "0912345678"}, headers=h)
    assert resp.status == 409 and (await resp.json())["error_id"] == "not-in-directory"
    resp = await client.post("/api/agents/a1/transfer", json={"kind": "topic", "target": "nobody.serves"},
                             headers=h)
    assert resp.status == 409 and (await resp.json())["error_id"] == "unknown-transfer-target"
    resp = await client.post("/api/agents/a1/transfer", json={"kind": "agent", "target": "a1"}, headers=h)
    assert resp.status == 409 and (await resp.json())["error_id"] == "unknown-transfer-target"
    resp = await client.post("/api/agents/a1/transfer", json={"kind": "number", "target": "+84912345678"},
                             headers=h)
    assert resp.status == 400          # never a number: the target is a code
    resp = await client.post("/api/agents/a1/transfer", json={"kind": "fax", "target": "x"}, headers=h)
    assert resp.status == 400
    assert [e.data["reason"] for e in world.of("transfer.refused") if e.call_id == call_id] == [
        "not-in-directory", "unknown-transfer-target", "unknown-transfer-target"]
    assert not any(a["Action"] == "Redirect" for a in world.asterisk.actions)
    assert world.acd.states["a1"].status.value == "on_call"


async def test_a_supervisor_transfers_an_agents_call_to_a_directory_entry(client: Client, tokens: Tokens,
                                                                          world: World) -> None:
    world.acd.transfers.directory = Directory((DirectoryEntry("ha-noi", "BHXH Hà Nội", "02439000001",
                                                              "02439000001"),))
    call_id = await _talking(client, world, tokens)
    sup = bearer(tokens.supervisor)
    targets = await (await client.get("/api/agents/a1/transfer-targets", headers=sup)).json()
    assert targets["directory"] == [{"code": "ha-noi", "name": "BHXH Hà Nội"}]   # no number shown
    resp = await client.post("/api/agents/a1/transfer", json={"kind": "number", "target": "ha-noi"}, headers=sup)
    assert resp.status == 202
    redirect = next(a for a in world.asterisk.actions if a["Action"] == "Redirect")
    assert (redirect["Context"], redirect["Exten"]) == ("transfer-out", "02439000001")
    (requested,) = world.of("transfer.requested")
    assert (requested.call_id, requested.data["number"]) == (call_id, "02439000001")


async def test_an_agent_cannot_transfer_a_colleagues_call(client: Client, tokens: Tokens, world: World) -> None:
    await _talking(client, world, tokens, "a2")
    resp = await client.post("/api/agents/a2/transfer", json={"kind": "topic", "target": "general"},
                             headers=bearer(tokens.a1))
    assert resp.status == 403
    assert not world.of("transfer.requested")


def test_transfer_metrics_count_kind_and_result() -> None:
    from datetime import UTC, datetime

    from switchboard.events import CallEvent
    from switchboard.metrics import Metrics

    m = Metrics()
    now = datetime.now(UTC)
    for seq, (kind, data) in enumerate([
        ("transfer.completed", {"kind": "topic", "fell_back": False}),
        ("transfer.completed", {"kind": "agent", "fell_back": True}),
        ("transfer.failed", {"kind": "agent", "reason": "not_answered"}),
        ("transfer.refused", {"kind": "number", "reason": "not-in-directory"}),
        ("call.transfer", {"target": "PJSIP/0912345678@trunk"}),
    ], start=1):
        m.observe_event(CallEvent("c1", seq, now, kind, data))
    text = m.scrape().decode()
    for kind, result in [("topic", "completed"), ("agent", "fallback"), ("agent", "failed"),
                         ("number", "refused"), ("ivr", "completed")]:
        assert f'switchboard_transfers_total{{kind="{kind}",result="{result}"}} 1.0' in text, text


async def test_consult_then_complete_over_the_api(client: Client, tokens: Tokens, world: World) -> None:
    call_id = await _talking(client, world, tokens)
    first_leg = next(iter(world.acd.talking))
    await client.post("/api/agents/a2/ready", json={}, headers=bearer(tokens.a2))
    h = bearer(tokens.a1)
    resp = await client.post("/api/agents/a1/consult-end", json={"action": "complete"}, headers=h)
    assert resp.status == 409 and (await resp.json())["error_id"] == "no-consult"
    resp = await client.post("/api/agents/a1/consult", json={"kind": "agent", "target": "a2"}, headers=h)
    body = await resp.json()
    assert resp.status == 202, body
    assert (body["call_id"], body["colleague"], body["state"]) == (call_id, "a2", "ringing")
    hold = next(a for a in world.asterisk.actions if a["Action"] == "Redirect")
    assert (hold["Context"], hold["ExtraChannel"], hold["ExtraContext"]) == ("consult-hold", first_leg, "consult-agent")
    resp = await client.post("/api/agents/a1/consult-end", json={"action": "complete"}, headers=h)
    assert resp.status == 409 and (await resp.json())["error_id"] == "consult-not-answered"
    leg = await world.ringing("a2")
    world.asterisk.agent_answers(leg)
    await world.settle()
    assert world.acd.states["a2"].status.value == "on_call"
    resp = await client.post("/api/agents/a1/consult-end", json={"action": "complete"}, headers=h)
    assert resp.status == 200, await resp.json()
    await world.settle()
    assert world.acd.states["a1"].status.value == "wrap_up"          # its leg was hung up
    assert world.acd.offer_lifecycle.current_agent(call_id) == "a2"
    (done,) = world.of("transfer.completed")
    assert (done.data["kind"], done.data["to_agent"], done.data["result"]) == ("consult", "a2", "completed")
    assert [e.data["agent_id"] for e in world.of("call.answered")] == ["a1", "a2"]


async def test_consult_not_answered_brings_the_agent_back(client: Client, tokens: Tokens, world: World) -> None:
    await _talking(client, world, tokens)
    first_leg = next(iter(world.acd.talking))
    await client.post("/api/agents/a2/ready", json={}, headers=bearer(tokens.a2))
    resp = await client.post("/api/agents/a1/consult", json={"kind": "agent", "target": "a2"},
                             headers=bearer(tokens.a1))
    assert resp.status == 202
    leg = await world.ringing("a2")
    world.asterisk.agent_hangs_up(leg)                 # the colleague's phone gives up before answering
    await world.settle()
    await world.settle()
    (failed,) = world.of("transfer.failed")
    assert (failed.data["then"], failed.data["to_agent"]) == ("back_to_agent", "a2")
    back = [a for a in world.asterisk.actions if a["Action"] == "Redirect"][-1]
    assert (back["Channel"], back["Context"]) == (first_leg, "agent-leg")
    assert world.acd.states["a1"].status.value == "on_call" and world.acd.states["a2"].status.value == "ready"
    assert not world.acd.consults.consults


async def test_a_caller_who_hangs_up_on_the_way_fails_the_transfer(client: Client, tokens: Tokens,
                                                                    world: World) -> None:
    call_id = await _talking(client, world, tokens)
    world.acd.records["a1"].skills["social.pension"] = 3
    resp = await client.post("/api/agents/a1/transfer", json={"kind": "topic", "target": "social.pension"},
                             headers=bearer(tokens.a1))
    assert resp.status == 202
    world.asterisk.caller_hangs_up(world.acd.transfers.pending[call_id].uniqueid)
    await world.settle()
    (failed,) = world.of("transfer.failed")
    assert (failed.call_id, failed.data["reason"]) == (call_id, "caller_gone")
    assert not world.acd.transfers.pending


async def test_a_call_taken_over_after_a_restart_is_transferred_from_its_channels_place(
        client: Client, tokens: Tokens, world: World) -> None:
    """A restarted service finds the call bridged: the caller's place in line comes back from the
    SB_* channel variables written when it joined, so the transfer keeps its join time and priority."""
    acd = world.acd
    # Asterisk kept the caller's channel (bridged with a1's leg) through the restart
    world.asterisk.channels["1700000000.1"] = Channel(uniqueid="1700000000.1", name="PJSIP/trunk-00000001")
    acd.records["a1"].skills["social.pension"] = 3
    joined = acd.wall() - 95.0
    values = {VAR_TOPIC: "general", VAR_PROVINCE: "ha-noi", VAR_PRIORITY: "2", VAR_LANGUAGE: "vi",
              VAR_JOINED: f"{joined:.3f}", VAR_CALLER: "02438123456"}
    place = acd.place_of_bridged("call-r1", channel="PJSIP/trunk-00000001", uniqueid="1700000000.1", values=values)
    assert place is not None
    assert (place.call.topic, place.call.province, place.call.priority, place.joined_wall) == \
        ("general", "ha-noi", 2, float(f"{joined:.3f}"))
    assert acd.clock() - place.call.joined_at > 94.0          # waited since it first joined, not since now
    acd.adopt_talking("sb-adopted01", call_id="call-r1", agent_id="a1", talked_s=30.0, caller=place)
    # without its place (a channel that does not hold it): refused, nothing moved
    acd.adopt_talking("sb-adopted02", call_id="call-r2", agent_id="a2", talked_s=30.0,
                      caller=acd.place_of_bridged("call-r2", channel="PJSIP/trunk-2", uniqueid="1.2", values={}))
    resp = await client.post("/api/agents/a2/transfer", json={"kind": "topic", "target": "social.pension"},
                             headers=bearer(tokens.a2))
    assert resp.status == 409 and (await resp.json())["error_id"] == "call-not-transferable"
    resp = await client.post("/api/agents/a2/consult", json={"kind": "agent", "target": "a1"},
                             headers=bearer(tokens.a2))
    assert resp.status == 409 and (await resp.json())["error_id"] == "call-not-transferable"
    resp = await client.post("/api/agents/a1/transfer", json={"kind": "topic", "target": "social.pension"},
                             headers=bearer(tokens.a1))
    assert resp.status == 202, await resp.text()
    redirect = next(a for a in world.asterisk.actions if a["Action"] == "Redirect")
    assert (redirect["Channel"], redirect["Context"]) == ("PJSIP/trunk-00000001", "transfer-line")
    p = acd.transfers.pending["call-r1"]
    assert (p.topic, p.province, p.priority, p.joined_wall) == ("social.pension", "ha-noi", 2, place.joined_wall)


async def test_a_transfer_to_a_supervisor_rings_only_a_configured_phone(client: Client, tokens: Tokens,
                                                                       world: World) -> None:
    world.acd.transfers.supervisors = {"sup1": SupervisorRecord("sup1", "Đỗ Thanh Tâm", "sup1-desk")}
    call_id = await _talking(client, world, tokens)
    h = bearer(tokens.a1)
    targets = await (await client.get("/api/agents/a1/transfer-targets", headers=h)).json()
    assert targets["supervisors"] == [{"id": "sup1", "name": "Đỗ Thanh Tâm"}]     # no endpoint shown
    for target in ("sup2", "sup1-desk", "a2"):        # not a configured supervisor (its endpoint is no id)
        resp = await client.post("/api/agents/a1/transfer", json={"kind": "supervisor", "target": target}, headers=h)
        assert resp.status == 409 and (await resp.json())["error_id"] == "unknown-transfer-target"
    resp = await client.post("/api/agents/a1/transfer", json={"kind": "supervisor", "target": "PJSIP/x@trunk"},
                             headers=h)
    assert resp.status == 400
    assert not any(a["Action"] == "Redirect" or a.get("Variable") == "SB_XFER_SUP" for a in world.asterisk.actions)
    resp = await client.post("/api/agents/a1/transfer", json={"kind": "supervisor", "target": "sup1"}, headers=h)
    assert resp.status == 202, await resp.text()
    sets = {a["Variable"]: a["Value"] for a in world.asterisk.actions if a["Action"] == "Setvar"}
    assert (sets["SB_XFER_SUP"], sets["SB_XFER_RING"]) == ("sup1-desk", str(int(world.acd.transfers.ring_s)))
    redirect = next(a for a in world.asterisk.actions if a["Action"] == "Redirect")
    assert (redirect["Context"], redirect["Exten"]) == ("transfer-supervisor", "ring")
    (requested,) = world.of("transfer.requested")
    assert (requested.call_id, requested.data["kind"], requested.data["target"]) == (call_id, "supervisor", "sup1")
    assert [e.data["reason"] for e in world.of("transfer.refused")] == ["unknown-transfer-target"] * 3


async def test_consult_a_supervisor_then_complete_hands_the_caller_to_its_phone(
        client: Client, tokens: Tokens, world: World) -> None:
    """A supervisor is no ACD agent: consulted on its configured phone only, no agent state, its
    times in consult.ended; complete hands the caller to it and the record follows until it hangs up."""
    world.acd.transfers.supervisors = {"sup1": SupervisorRecord("sup1", "Đỗ Thanh Tâm", "sup1-desk")}
    call_id = await _talking(client, world, tokens)
    h = bearer(tokens.a1)
    resp = await client.post("/api/agents/a1/consult", json={"kind": "supervisor", "target": "sup9"}, headers=h)
    assert resp.status == 409 and (await resp.json())["error_id"] == "unknown-transfer-target"
    resp = await client.post("/api/agents/a1/consult", json={"kind": "supervisor", "target": "sup1"}, headers=h)
    body = await resp.json()
    assert resp.status == 202, body
    assert (body["colleague"], body["state"]) == ("sup1", "ringing")
    originate = next(a for a in world.asterisk.actions if a["Action"] == "Originate" and a.get("Context") == "consult-leg")
    assert originate["Channel"] == "PJSIP/sup1-desk"
    leg = world.asterisk.ringing_leg("sup1-desk")
    assert leg == originate["ChannelId"]
    world.asterisk.agent_answers(leg)
    await world.settle()
    assert [e.data["agent_id"] for e in world.of("consult.answered")] == ["sup1"]
    resp = await client.post("/api/agents/a1/consult-end", json={"action": "complete"}, headers=h)
    assert resp.status == 200, await resp.json()
    await world.settle()
    assert world.acd.states["a1"].status.value == "wrap_up"
    (done,) = world.of("transfer.completed")
    assert (done.data["to_agent"], done.data["to_supervisor"], done.data["result"]) == (None, "sup1", "completed")
    assert [e.data["agent_id"] for e in world.of("call.answered")] == ["a1"]   # no agent took it over
    assert world.acd.consults.consults[call_id].state == "handed"
    world.asterisk.agent_hangs_up(leg)                 # the supervisor ends the call with the caller
    await world.settle()
    (ended,) = world.of("consult.ended")
    assert (ended.data["agent_id"], ended.data["result"]) == ("sup1", "completed") and ended.data["talk_s"] >= 0
    assert not [e for e in world.of("agent.ended") if e.data["agent_id"] == "sup1"]
    assert not world.acd.consults.consults
