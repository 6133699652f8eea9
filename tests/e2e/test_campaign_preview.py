"""Agent first on the real stack (issue 19): a **preview** campaign driven over the HTTP API by
two agents (SIPp softphones), and a **progressive agent-first** campaign; the contacts are one
SIPp UAS behind the trunk, the results asserted in PostgreSQL and in SIPp's own log.

What is shown: the agent sees the contact (masked number, why) and the same contact is never
previewed to two agents; the client cannot pass a number; the agent's phone is answered before
the contact's number is dialled (``OriginateResponse`` of the agent's leg, then ``DialBegin`` of
that leg to the trunk); answered, busy, skipped and do-not-call contacts end as they should;
nothing is previewed outside the calling window; agent first never abandons an answer.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from campaign_contacts import contact_scenario, invited_numbers, run_contacts
from e2e_metrics_service import create_token
from e2e_service import demo_agents, running_service, sip_remote, until
from test_campaigns import MovableClock, _local

from switchboard.api.keys import SERVICES
from switchboard.campaigns.model import State

pytestmark = pytest.mark.e2e

A1, A2 = "agent1002", "agent1004"           # both have the health.card skill
P_ANSWER, P_BUSY, P_SKIP, P_DNC = "0912345101", "0912345102", "0912345103", "0912345104"

PREVIEW = """\
campaign: e2e-preview
description: "Thẻ BHYT sắp hết hạn"
flow: reminder-card
mode: preview
topic: health.card
window: "07:30-20:00"
max_attempts: 2
retry: {busy: 600, no_answer: 0, failed: 0}
ring_seconds: 10
caller_id: "19009068"
targets: {csv: contacts.csv}
"""

AGENT_FIRST = """\
campaign: e2e-agent-first
flow: reminder-card
mode: progressive
connect: agent_first
topic: health.card
window: "07:30-20:00"
max_attempts: 1
retry: {busy: 0, no_answer: 0, failed: 0}
ring_seconds: 5
targets: {csv: contacts.csv}
"""


class Events:
    """The AMI events of our legs, in arrival order (the service's own client)."""

    def __init__(self, client: Any) -> None:
        self.seen: list[tuple[str, str, str]] = []      # (event, uniqueid, detail)
        self.stop = client.subscribe(self.on, names=("OriginateResponse", "DialBegin", "DialEnd", "Newstate"))

    def on(self, ev: Any) -> None:
        detail = ev.get("Response") or ev.get("DestChannel") or ev.get("DialStatus") or ""
        if ev.name == "DialEnd":
            detail = f"{ev.get('DestChannel') or ''} {ev.get('DialStatus') or ''}"
        if ev.name == "Newstate":
            detail = ev.get("ChannelStateDesc") or ""
        self.seen.append((ev.name, ev.get("Uniqueid") or "", detail))

    def of(self, uid: str) -> list[tuple[str, str]]:
        return [(n, d) for n, u, d in self.seen if u == uid]


def assert_agent_first(events: Events, attempt_id: str) -> None:
    """The agent's leg (ChannelId = the attempt id) answered before it dialled the trunk: its
    ``Newstate`` Up comes before its ``DialBegin`` (both on the channel's own topic, so in the
    order they happened; ``OriginateResponse`` comes from the originating thread and may arrive
    on either side of the ``DialBegin``)."""
    seen = events.of(attempt_id)
    names = [n for n, _ in seen]
    assert "OriginateResponse" in names and "DialBegin" in names, seen
    up = [i for i, (n, d) in enumerate(seen) if n == "Newstate" and d == "Up"]
    assert up and up[0] < names.index("DialBegin"), seen
    assert seen[names.index("OriginateResponse")][1] == "Success", seen
    assert seen[names.index("DialBegin")][1].startswith("PJSIP/trunk-"), seen


async def _attempts(svc: Any, campaign: str) -> list[Any]:
    return await svc.fetch("SELECT a.*, c.name FROM campaign_attempts a JOIN campaign_contacts c USING (contact_id) "
                           "WHERE a.campaign_id = $1 ORDER BY a.claimed_at", campaign)


async def _contact(svc: Any, number: str) -> Any:
    rows = await svc.fetch("SELECT * FROM campaign_contacts WHERE number = $1 AND campaign_id = 'e2e-preview'",
                           number)
    return rows[0]


async def test_an_agent_previews_then_starts_the_call_its_phone_ringing_first(stack_env: dict[str, str],
                                                                            pg_dsn: str) -> None:
    clock = MovableClock(_local(2026, 3, 3, 10, 0))          # a Tuesday, 10:00: the window is open
    async with running_service(stack_env, pg_dsn, clock=clock, routing={"wrap_up_s": 1.0, "ring_timeout_s": 8.0},
                               campaigns={"tick_s": 0.5, "preview_hold_s": 60}) as svc:
        campaigns = svc.app.context["api_app"][SERVICES].campaigns
        events = Events(svc.app.context["client"])
        records = {a.id: a for a in demo_agents()}
        tok = {a: await create_token(svc.dsn, role="agent", agent=records[a], name=f"e2e {a}") for a in (A1, A2)}
        for agent in (A1, A2):
            await svc.agent(agent, answer_after=0.5, talk=4.0)
        numbers = [P_ANSWER, P_BUSY, P_SKIP, P_DNC]
        csv = "number,name,card_valid_to\n" + "".join(f"{n},Người {n[-1]},2026-09-20\n" for n in numbers)
        await campaigns.create(PREVIEW, contacts_csv=csv, by="e2e")
        await campaigns.set_state("e2e-preview", State.RUNNING, by="e2e")
        contacts = asyncio.create_task(run_contacts(contact_scenario(busy=[P_BUSY]), remote=sip_remote(stack_env),
                                                    port=int(stack_env["STACK_TRUNK_OUT_PORT"]), calls=2,
                                                    timeout=240))
        svc.callers.append(contacts)   # type: ignore[arg-type]
        base = f"http://127.0.0.1:{svc.app.context['api'].bound_port}/api/agents"

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            async def req(method: str, agent: str, path: str, *, as_: str | None = None,
                          body: Any = None) -> tuple[int, Any]:
                headers = {"Authorization": f"Bearer {tok[as_ or agent]}"}
                async with http.request(method, f"{base}/{agent}/campaign-preview{path}", headers=headers,
                                        json=body if method == "POST" else None) as r:
                    return r.status, (await r.json() if r.status not in (204,) else None)

            # each agent sees its own contact, the number masked; the same one while held
            s1, first = await req("GET", A1, "")
            assert s1 == 200 and first["name"] == "Người 1" and first["why"] == "Thẻ BHYT sắp hết hạn", first
            assert first["number"] == "091****101" and first["data"]["card_valid_to"] == "2026-09-20"
            assert (await req("GET", A1, ""))[1]["contact_id"] == first["contact_id"]
            s2, second = await req("GET", A2, "")
            assert s2 == 200 and second["contact_id"] != first["contact_id"] and second["number"] == "091****102"
            # an agent acts only on itself; the client never gives a number
            assert (await req("GET", A2, "", as_=A1))[0] == 403
            cid1 = first["contact_id"]
            assert (await req("POST", A2, f"/{second['contact_id']}/call", as_=A1, body={}))[0] == 403
            status, err = await req("POST", A1, f"/{cid1}/call", body={"number": "0987654321"})
            assert status in (400, 422) and err["error_id"], err
            assert (await req("POST", A1, f"/{second['contact_id']}/call", body={}))[0] == 409   # held by A2

            # A1 starts its call: its phone rings first, then the contact's number, then they talk
            status, started = await req("POST", A1, f"/{cid1}/call", body={})
            assert status == 202 and started["contact_id"] == cid1, started
            status, busy = await req("POST", A2, f"/{second['contact_id']}/call", body={})
            assert status == 202, busy

            async def both_done() -> bool:
                rows = await _attempts(svc, "e2e-preview")
                return len(rows) == 2 and all(r["result"] for r in rows)
            await until(both_done, timeout=90, what="both preview calls ended", interval=0.5)
            rows = {r["number"]: r for r in await _attempts(svc, "e2e-preview")}
            answered, rung_busy = rows[P_ANSWER], rows[P_BUSY]
            assert (answered["result"], answered["agent_id"], answered["abandoned"]) == (
                "transferred_to_agent", A1, False)
            assert answered["answered_at"] is not None and answered["originated_at"] is not None
            assert (rung_busy["result"], rung_busy["agent_id"]) == ("busy", A2)
            assert_agent_first(events, answered["attempt_id"])
            assert_agent_first(events, rung_busy["attempt_id"])
            assert (await _contact(svc, P_ANSWER))["final_result"] == "transferred_to_agent"
            busy_contact = await _contact(svc, P_BUSY)
            assert busy_contact["status"] == "pending" and busy_contact["next_at"] > clock() + timedelta(seconds=500)
            # the agents went through wrap-up as after any call, and are ready again
            await until(lambda: svc.status(A1) == "ready" and svc.status(A2) == "ready", timeout=20,
                        what="both agents ready after wrap-up")

            # A1 skips the next contact with a reason
            _, nxt = await req("GET", A1, "")
            assert nxt["number"] == "091****103", nxt
            assert (await req("POST", A1, f"/{nxt['contact_id']}/skip", body={"reason": "Đã gia hạn"}))[0] == 200
            skipped = await _contact(svc, P_SKIP)
            assert (skipped["status"], skipped["final_result"], skipped["skip_reason"]) == (
                "done", "skipped", "Đã gia hạn")
            assert (await req("POST", A1, f"/{nxt['contact_id']}/call", body={}))[0] == 409

            # a number put on the do-not-call list while it is previewed is never dialled
            _, last = await req("GET", A1, "")
            assert last["number"] == "091****104", last
            await campaigns.add_dnc(P_DNC, by="e2e")
            status, err = await req("POST", A1, f"/{last['contact_id']}/call", body={})
            assert status == 409 and err["error_id"] == "preview-not-held", err      # the list closed it
            assert (await _contact(svc, P_DNC))["final_result"] == "do_not_call"

            # nothing due; and after 20:00 nothing is previewed at all (the busy one's retry moved past)
            assert (await req("GET", A1, ""))[0] == 204
            clock.set(_local(2026, 3, 3, 21, 0))
            assert (await req("GET", A2, ""))[0] == 204

        code, log = await contacts
        assert code == 0, log[-3000:]
        assert Counter(invited_numbers(log)) == Counter({P_ANSWER: 1, P_BUSY: 1})
        registry = svc.app.context["metrics"].registry
        assert [registry.get_sample_value("switchboard_campaign_previews_total",
                                          {"campaign": "e2e-preview", "outcome": o}) for o in ("called", "skipped")] \
            == [2.0, 1.0]
        await campaigns.set_state("e2e-preview", State.STOPPED, by="e2e")   # its busy contact is not for later tests
        events.stop()


async def test_agent_first_progressive_rings_the_agent_before_each_contact(stack_env: dict[str, str],
                                                                           pg_dsn: str) -> None:
    numbers = [f"09123452{i:02d}" for i in range(1, 7)]
    busy, no_answer = numbers[0], numbers[1]
    clock = MovableClock(_local(2026, 3, 4, 9, 0))
    async with running_service(stack_env, pg_dsn, clock=clock, routing={"wrap_up_s": 1.0, "ring_timeout_s": 8.0},
                               campaigns={"tick_s": 0.5, "max_lines": 6}) as svc:
        campaigns = svc.app.context["api_app"][SERVICES].campaigns
        dialer = svc.app.context["campaign_dialer"]
        events = Events(svc.app.context["client"])
        for agent in (A1, A2):
            await svc.agent(agent, answer_after=0.5, talk=3.0)
        csv = "number,name\n" + "".join(f"{n},K{n[-2:]}\n" for n in numbers)
        await campaigns.create(AGENT_FIRST, contacts_csv=csv, by="e2e")
        contacts = asyncio.create_task(run_contacts(
            contact_scenario(busy=[busy], no_answer=[no_answer]), remote=sip_remote(stack_env),
            port=int(stack_env["STACK_TRUNK_OUT_PORT"]), calls=len(numbers), timeout=300))
        svc.callers.append(contacts)   # type: ignore[arg-type]
        await campaigns.set_state("e2e-agent-first", State.RUNNING, by="e2e")
        peak = 0

        async def all_done() -> bool:
            nonlocal peak
            peak = max(peak, len(dialer.live))
            rows = await svc.fetch("SELECT count(*) AS n FROM campaign_contacts WHERE campaign_id = "
                                   "'e2e-agent-first' AND status <> 'done'")
            return rows[0]["n"] == 0
        await until(all_done, timeout=240, what="every contact done", interval=0.3)
        code, log = await contacts
        assert code == 0, log[-3000:]

        rows = await _attempts(svc, "e2e-agent-first")
        assert Counter(invited_numbers(log)) == Counter({n: 1 for n in numbers})      # nobody twice
        by_number = {r["number"]: r for r in rows if r["result"] != "not_dialled"}
        assert sorted(by_number) == sorted(numbers)
        assert by_number[busy]["result"] == "busy" and by_number[no_answer]["result"] == "no_answer"
        for n in numbers[2:]:
            r = by_number[n]
            assert (r["result"], r["abandoned"]) == ("transferred_to_agent", False), dict(r)
            assert r["agent_id"] in (A1, A2) and r["answered_at"] is not None
        for r in by_number.values():
            assert_agent_first(events, r["attempt_id"])
        assert not any(r["abandoned"] for r in rows)
        assert peak <= 2                                   # one call per agent, never more
        events.stop()


async def test_an_agent_who_rejects_the_call_gives_the_contact_back_unrung(stack_env: dict[str, str],
                                                                          pg_dsn: str) -> None:
    clock = MovableClock(_local(2026, 3, 5, 10, 0))
    async with running_service(stack_env, pg_dsn, clock=clock, routing={"wrap_up_s": 1.0, "ring_timeout_s": 8.0},
                               campaigns={"tick_s": 0.5}) as svc:
        campaigns = svc.app.context["api_app"][SERVICES].campaigns
        await svc.agent(A1, mode="reject", answer_after=0.5)
        number = "0912345401"
        await campaigns.create(PREVIEW.replace("e2e-preview", "e2e-reject"), contacts_csv=f"number,name\n{number},X\n",
                               by="e2e")
        await campaigns.set_state("e2e-reject", State.RUNNING, by="e2e")
        held = await campaigns.preview(A1)
        assert held is not None and held.number == "091****401"
        await campaigns.preview_call(A1, held.contact_id)

        async def ended() -> bool:
            rows = await _attempts(svc, "e2e-reject")
            return len(rows) == 1 and rows[0]["result"] is not None
        await until(ended, timeout=30, what="the attempt closed", interval=0.3)
        row = (await _attempts(svc, "e2e-reject"))[0]
        assert (row["result"], row["agent_id"], row["answered_at"]) == ("not_dialled", A1, None), dict(row)
        contact = (await svc.fetch("SELECT * FROM campaign_contacts WHERE campaign_id = 'e2e-reject'"))[0]
        assert (contact["status"], contact["attempts"]) == ("pending", 0)       # back at once, not counted
        await until(lambda: svc.status(A1) == "ready", timeout=10, what="the agent free again")
        assert svc.acd.states[A1].no_answer_streak == 1     # a declined offer counts, as for inbound calls
        again = await campaigns.preview(A1)                 # the agent may preview it again (its hold ended)
        assert again is not None and again.contact_id == held.contact_id
