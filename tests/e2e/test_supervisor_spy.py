"""Supervisor listen / whisper / barge on a live call, end to end.

The real service (composition root, local Asterisk 22, PostgreSQL, real HTTP):
a SIPp caller goes through the hotline IVR to a SIPp agent; a SIPp phone
registered as the supervisor's own endpoint (``sup1`` in deploy/agents.yaml,
bound to the supervisor's token) answers the spy legs. For each mode the
channels Asterisk reports (CoreShowChannels, ChanSpyStart) show a ChanSpy on
``PJSIP/sup1-…`` with the mode's options, aimed at the agent's own leg, and
the call goes on when the supervisor leaves. The API refuses free-form targets,
a supervisor without a phone, an agent's token, an agent not on a call and an
unknown mode, and no channel appears for any of those.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import asyncpg
import pytest
from e2e_service import (
    PENSION,
    Service,
    agents_secret,
    free_port,
    running_service,
    sip_remote,
    until,
)
from e2e_stack import ami_settings

from switchboard.acd.agents import sip_password
from switchboard.ami.client import AmiClient
from switchboard.ami.protocol import Event
from switchboard.api import auth
from switchboard.api.pg_tokens import PgTokenStore
from switchboard.demo.sipp import AwaitHangup, Dtmf, Pause, SippAgent
from switchboard.store import agents as store_agents

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

AGENT = "agent1009"          # Hồ Chí Minh City, social.pension 5
CALLER = "02838100061"       # a Hồ Chí Minh City landline
SUP_PHONE = "sup1"
OPTIONS = {"listen": "qEu", "whisper": "qwEu", "barge": "qBEu"}


async def _token(dsn: str, *, role: str, agent_id: str | None = None, sip_endpoint: str | None = None) -> str:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        if agent_id is not None:
            from e2e_service import demo_agents

            await store_agents.upsert_agent(conn, next(a for a in demo_agents() if a.id == agent_id), timeout=10)
        token, _ = await auth.create_token(PgTokenStore(conn), role=role, agent_id=agent_id,
                                           sip_endpoint=sip_endpoint, name=f"spy e2e {role}")
        return token
    finally:
        await conn.close(timeout=5)


async def _channels(ami: AmiClient) -> dict[str, Any]:
    """Asterisk's channels now, by Uniqueid."""
    listing = await ami.send({"Action": "CoreShowChannels"}, timeout=5)
    return {ev.get("Uniqueid"): ev for ev in getattr(listing, "events", ()) if ev.name == "CoreShowChannel"}


async def _supervisor_phone(svc: Service, *, mode: str = "answer") -> SippAgent:
    """A SIPp phone registered as the supervisor's endpoint: answers every leg and stays on it
    (``mode`` ringout: rings until the caller gives up)."""
    phone = SippAgent(endpoint=SUP_PHONE, password=sip_password(agents_secret(svc.env), SUP_PHONE),
                       remote=sip_remote(svc.env), port=free_port(), mode=mode, answer_after=0.2, talk=None)
    await phone.start()
    svc.agents.append(phone)   # stopped with the service
    await until(lambda: svc._contact_port(SUP_PHONE, phone.port), timeout=10,
                what=f"{SUP_PHONE} registered from port {phone.port}")
    return phone


async def test_supervisor_listens_whispers_and_barges_on_a_live_call(stack_env: dict[str, str],
                                                                     pg_dsn: str) -> None:
    async with running_service(stack_env, pg_dsn) as svc:
        url = f"http://127.0.0.1:{svc.app.context['api'].bound_port}"
        sup = await _token(pg_dsn, role="supervisor", sip_endpoint=SUP_PHONE)
        phoneless = await _token(pg_dsn, role="supervisor")
        agent_token = await _token(pg_dsn, role="agent", agent_id=AGENT)
        ami = AmiClient(ami_settings(stack_env, admin=True))   # sees every event (ChanSpyStart too)
        await ami.start(timeout=10)
        spy_events: list[Event] = []
        ami.subscribe(spy_events.append, names=("ChanSpyStart", "ChanSpyStop"))
        try:
            agent_phone = await svc.agent(AGENT, talk=None)
            sup_phone = await _supervisor_phone(svc)
            caller = svc.call([Pause(2.5), Dtmf(PENSION[0]), Pause(2.5), Dtmf(PENSION[1]), Pause(2.5),
                               Dtmf(PENSION[2]), AwaitHangup(150)], caller=CALLER, timeout=170)
            call_id = await svc.wait_call_id(CALLER)
            answered = await svc.wait_event(call_id, "call.answered", timeout=30)
            assert answered.data["agent_id"] == AGENT
            leg = next(o.leg for o in svc.acd.talking.values() if o.agent_id == AGENT)
            before = await _channels(ami)
            assert before[leg]["Channel"].startswith(f"PJSIP/{AGENT}-")   # the ACD's leg is the agent's channel
            assert before[leg]["BridgeId"], before[leg]

            async with aiohttp.ClientSession(base_url=url) as http:
                async def spy(token: str, body: dict[str, Any], agent: str = AGENT) -> tuple[int, dict[str, Any]]:
                    async with http.post(f"/api/agents/{agent}/spy", json=body,
                                         headers={"Authorization": f"Bearer {token}"}) as resp:
                        return resp.status, await resp.json()

                # ---- refused: nothing reaches Asterisk
                refused = [
                    (await spy(sup, {"mode": "listen", "endpoint": "Local/1000@agents"}), 400, "invalid-request"),
                    (await spy(sup, {"mode": "barge", "endpoint": "PJSIP/0912345678@trunk"}), 400,
                     "invalid-request"),
                    (await spy(sup, {"mode": "listen", "channel": f"PJSIP/{AGENT}"}), 400, "invalid-request"),
                    (await spy(sup, {"mode": "record"}), 400, "invalid-request"),
                    (await spy(phoneless, {"mode": "listen"}), 409, "supervisor-no-endpoint"),
                    (await spy(agent_token, {"mode": "listen"}), 403, "forbidden"),
                    (await spy(sup, {"mode": "listen"}, agent="agent1001"), 409, "agent-not-on-call"),
                    (await spy(sup, {"mode": "listen"}, agent="nobody"), 404, "not-found"),
                ]
                for (status, body), want_status, want_id in refused:
                    assert (status, body.get("error_id")) == (want_status, want_id), body
                assert set(await _channels(ami)) == set(before)       # no spy leg was originated
                assert sup_phone.calls_answered() == 0

                # ---- listen, whisper, barge, each checked in Asterisk's own channel list. The legs stay
                # up together: ChanSpy leaves a spied channel only once that channel passes a frame
                # (its audiohook detach waits for one), and these SIPp peers send no RTP; the
                # agent's hang-up ends them all (option E).
                spy_legs: list[str] = []
                for n, mode in enumerate(("listen", "whisper", "barge"), start=1):
                    status, body = await spy(sup, {"mode": mode})
                    assert status == 201, body
                    assert (body["mode"], body["supervisor_endpoint"], body["spied_channel_id"]) == \
                        (mode, SUP_PHONE, leg)
                    spy_leg = body["channel_id"]
                    spy_legs.append(spy_leg)

                    async def spying(spy_leg: str = spy_leg) -> bool:
                        ch = (await _channels(ami)).get(spy_leg)
                        return ch is not None and ch.get("Application") == "ChanSpy"

                    await until(spying, timeout=15, what=f"{mode}: a ChanSpy channel on {SUP_PHONE}")
                    ch = (await _channels(ami))[spy_leg]
                    assert ch["Channel"].startswith(f"PJSIP/{SUP_PHONE}-"), ch
                    assert ch["ApplicationData"] == f"{leg},{OPTIONS[mode]}", ch
                    assert ch["ChannelStateDesc"] == "Up", ch
                    await until(lambda spy_leg=spy_leg: any(  # type: ignore[misc]
                        e.name == "ChanSpyStart" and e.get("SpyerUniqueid") == spy_leg for e in spy_events),
                        timeout=10, what=f"ChanSpyStart of {spy_leg}")
                    start = next(e for e in spy_events if e.name == "ChanSpyStart"
                                 and e.get("SpyerUniqueid") == spy_leg)
                    assert start.get("SpyeeUniqueid") == leg and start.get("SpyeeChannel") == before[leg]["Channel"]
                    await until(lambda n=n: sup_phone.calls_answered() == n, timeout=5,  # type: ignore[misc]
                                what=f"{SUP_PHONE} answered spy leg {n}")

                    now = await _channels(ami)   # the call goes on, undisturbed
                    assert leg in now and now[leg]["BridgeId"] == before[leg]["BridgeId"]
                    assert svc.status(AGENT) == "on_call"

            # ---- end of the call: the agent hangs up, every spy leg ends with it (E), the caller hears the BYE
            hung = await ami.send({"Action": "Hangup", "Channel": before[leg]["Channel"]}, timeout=5)
            assert hung.success, hung
            for spy_leg in spy_legs:
                await until(lambda spy_leg=spy_leg: _gone(ami, spy_leg),  # type: ignore[misc]
                            timeout=10, what=f"{spy_leg} gone with the call")
            stopped = {e.get("SpyerUniqueid") for e in spy_events if e.name == "ChanSpyStop"}
            assert set(spy_legs) <= stopped
            result = await caller
            assert result.ok, result.errors or result.stderr
            row, _ = await svc.record(call_id)
            assert (row["outcome"], row["agent_id"]) == ("answered", AGENT)
            await until(lambda: agent_phone.calls_answered() == 1, timeout=5, what="one call for the agent")
        finally:
            await ami.close()


async def _gone(ami: AmiClient, uniqueid: str) -> bool:
    return uniqueid not in await _channels(ami)

