"""A scheduled policy Q&A session on the real stack (issue 19): 10 SIPp callers join from the
hotline menu (key 5), two raise a hand (*1, DTMF as SIP INFO), the moderator (an agent, by the
API with their own token) gives the floor to the first hand and ends the session; ConfBridge's
own list (AMI ConfbridgeList, the service's AMI user) shows who is muted; the attendance rows in
PostgreSQL match; an 11th caller past the capacity goes back to the menu; everyone leaves for
the survey; the conference was recorded.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from e2e_metrics_service import create_token, promtool_check_metrics
from e2e_service import OPEN, REPO, running_service, until

from switchboard.acd.agents import AgentRecord
from switchboard.ami.client import AmiClient
from switchboard.demo.sipp import AwaitHangup, Dtmf, HangUp, Pause, Step
from switchboard.sessions.model import conference_name

pytestmark = pytest.mark.e2e

SESSION = "e2e-pension"
MODERATOR = "agent1001"
CALLERS = [f"09120000{i:02d}" for i in range(1, 11)]
HANDS = CALLERS[2], CALLERS[6]          # these two press *1
LATE = "0912000099"                     # the 11th: past the capacity (10)
KICKED = CALLERS[0]                     # removed by the moderator before the end


def definition(session: str = SESSION, extra: str = "") -> str:
    """A session running on the service's clock (started a minute ago), plus ``extra`` YAML."""
    starts, ends = OPEN - timedelta(minutes=1), OPEN + timedelta(minutes=30)
    return f"""\
session: {session}
title: "The new pension law"
topic: social.pension
starts: {starts.isoformat()}
ends: {ends.isoformat()}
moderator: {MODERATOR}
capacity: 10
languages: [vi]
title_prompt: session_title_pension_law
call_moderator: true
""" + extra


def caller_steps(*, hand: bool = False, late: bool = False) -> list[Step]:
    # language 1 (during the welcome), then 5 in the main menu that offers the session
    steps: list[Step] = [Pause(2.5), Dtmf("1"), Pause(6.0 if late else 2.5), Dtmf("5")]
    if late:   # hears "full", is back in the menu, hangs up
        return [*steps, Pause(12.0), HangUp()]
    if hand:   # in the conference from about 14 s: *1 (again a little later, in case the first came early)
        steps += [Pause(15.0), Dtmf("*1"), Pause(6.0), Dtmf("*1")]
    return [*steps, AwaitHangup(timeout=150)]


async def confbridge_list(ami: AmiClient) -> dict[str, dict[str, str]]:
    resp = await ami.send({"Action": "ConfbridgeList", "Conference": conference_name(SESSION)}, timeout=10)
    return {ev.get("Channel") or "": {"muted": ev.get("Muted") or "", "admin": ev.get("Admin") or "",
                                      "caller": ev.get("CallerIDNum") or ""}
            for ev in getattr(resp, "events", ()) if ev.name == "ConfbridgeList"}


async def test_qa_session_callers_hands_floor_end_and_attendance(stack_env: dict[str, str], fresh_db: str,
                                                                 ami: AmiClient) -> None:
    started = time.monotonic()
    async with running_service(stack_env, fresh_db, campaigns={"enabled": False}) as svc:
        sessions = svc.app.context["sessions"]
        url = f"http://127.0.0.1:{svc.app.settings.http.port}"
        records = {a.id: a for a in svc.acd.records.values()}
        sup = await create_token(fresh_db, role="supervisor", name="qa e2e supervisor")
        expert = await create_token(fresh_db, role="agent", agent=records[MODERATOR], name="qa e2e expert")
        other: AgentRecord = records["agent1002"]
        stranger = await create_token(fresh_db, role="agent", agent=other, name="qa e2e other agent")
        await svc.agent(MODERATOR, mode="answer", answer_after=0.3, ready=False)   # the expert's softphone

        async with aiohttp.ClientSession(base_url=url) as http:
            async def api(method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
                async with http.request(method, path, json=body if method == "POST" else None,
                                        headers={"Authorization": f"Bearer {token}"}) as r:
                    return r.status, await r.json()

            status, created = await api("POST", "/api/qa-sessions", sup, {"source": definition()})
            assert status == 201, created
            assert created["running"] is True
            # the session starts (service clock): the moderator's phone rings into the conference
            await until(lambda: any(p.role == "moderator" for p in sessions.sessions[SESSION].room.participants.values()),
                        timeout=20, what="the moderator in the conference")

            for number in CALLERS:
                svc.call(caller_steps(hand=number in HANDS), caller=number, timeout=150)
            late = svc.call(caller_steps(late=True), caller=LATE, timeout=60)
            room = sessions.sessions[SESSION].room
            await until(lambda: len(room.callers()) == 10, timeout=40,
                        what=f"10 callers in the conference ({len(room.callers())})")

            # past the capacity: "full", back in the menu that offers the session, never stranded
            late_call = await svc.wait_call_id(LATE)
            seat = await svc.wait_event(late_call, "session.seat", timeout=30)
            assert seat.data == {"session": SESSION, "outcome": "full"}
            await svc.wait_event(late_call, "ivr.step", where=lambda e: e.data["node"] == "session_full")
            assert (await late).ok

            # ConfBridge's own list: every caller muted, the moderator an admin and not muted
            listed = await confbridge_list(ami)
            callers_listed = {ch: v for ch, v in listed.items() if v["admin"] != "Yes"}
            assert len(callers_listed) == 10 and all(v["muted"] == "Yes" for v in callers_listed.values()), listed
            assert [v["muted"] for v in listed.values() if v["admin"] == "Yes"] == ["No"], listed

            # two hands, in the order raised
            await until(lambda: len(room.hands) == 2, timeout=45, what=f"two raised hands ({room.hands})")
            queue = [p.caller for p in room.hand_queue()]
            assert sorted(queue) == sorted(HANDS)
            status, view = await api("GET", f"/api/qa-sessions/{SESSION}", expert)
            assert status == 200 and [h["caller"] for h in view["hands"]] == queue
            first = room.hand_queue()[0]

            # only the moderator (or a supervisor) acts on the session
            status, err = await api("POST", f"/api/qa-sessions/{SESSION}/participants/{first.uniqueid}/unmute",
                                    stranger, {})
            assert (status, err["error_id"]) == (403, "not-moderator")
            status, view = await api("POST", f"/api/qa-sessions/{SESSION}/participants/{first.uniqueid}/unmute",
                                     expert, {})
            assert status == 200, view
            assert [h["caller"] for h in view["hands"]] == queue[1:]

            listed = await confbridge_list(ami)
            assert listed[first.channel]["muted"] == "No", listed
            still = {v["caller"] for ch, v in listed.items() if v["admin"] != "Yes" and v["muted"] == "Yes"}
            assert still == set(CALLERS) - {first.caller}, listed

            async with http.get("/metrics") as r:
                text = await r.text()
            assert f'switchboard_session_participants{{session="{SESSION}"}} 10.0' in text
            assert f'switchboard_session_hands_waiting{{session="{SESSION}"}} 1.0' in text
            assert f'switchboard_session_hands_raised_total{{session="{SESSION}"}}' in text
            checked = promtool_check_metrics(text)
            assert "session" not in checked.stdout + checked.stderr, checked

            await asyncio.sleep(1.0)   # the floor for a moment (unmuted seconds > 0)

            # mute everyone again; remove one caller (who goes on to the survey too)
            status, view = await api("POST", f"/api/qa-sessions/{SESSION}/mute-all", expert, {})
            assert status == 200 and all(p["muted"] for p in view["participants"] if p["role"] == "caller"), view
            listed = await confbridge_list(ami)
            assert all(v["muted"] == "Yes" for v in listed.values() if v["admin"] != "Yes"), listed
            gone = room.find(await svc.wait_call_id(KICKED))
            assert gone is not None
            status, view = await api("POST", f"/api/qa-sessions/{SESSION}/participants/{gone.call_id}/kick", expert, {})
            assert status == 200, view
            await until(lambda: len(room.callers()) == 9, timeout=15, what="the removed caller out")
            assert gone.channel not in await confbridge_list(ami)

            status, view = await api("POST", f"/api/qa-sessions/{SESSION}/end", expert, {})
            assert status == 200 and view["running"] is False, view
            await until(lambda: not room.participants, timeout=20, what="everyone out of the conference")
            status, err = await api("POST", f"/api/qa-sessions/{SESSION}/end", expert, {})
            assert (status, err["error_id"]) == (409, "session-state")

            # everyone went on to the post-call survey
            ids = {n: await svc.wait_call_id(n) for n in CALLERS}
            for cid in ids.values():
                await svc.wait_event(cid, "ivr.step", timeout=30, where=lambda e: e.data["node"] == "survey")

            status, rows = await api("GET", f"/api/qa-sessions/{SESSION}/attendance", expert)
            assert status == 200

        await sessions.drained()
        db = await svc.fetch("SELECT * FROM qa_attendance WHERE session_id = $1 ORDER BY joined_at", SESSION)
        by_caller = {r["caller"]: r for r in db if r["role"] == "caller"}
        assert set(by_caller) == set(CALLERS) and len(db) == 11          # 10 callers + the moderator's leg
        assert [r["role"] for r in db].count("moderator") == 1
        for number, r in by_caller.items():
            assert r["call_id"] == ids[number]
            assert r["left_at"] is not None and r["left_at"] > r["joined_at"]
            assert r["left_reason"] == ("kicked" if number == KICKED else "session_ended")
            assert (r["hands"] >= 1) == (number in HANDS), (number, r["hands"])
            assert (r["hand_raised_at"] is not None) == (number in HANDS)
            assert (r["unmuted_at"] is not None) == (number == first.caller)
        assert by_caller[first.caller]["unmuted_s"] > 0
        assert len(rows) == 11
        # the conference was recorded, beside the call recordings
        await until(lambda: sessions.sessions[SESSION].recording is not None, timeout=10, what="the recording")
        await sessions.drained()
        session_row = (await svc.fetch("SELECT ended_at, ended_by, recording FROM qa_sessions WHERE session_id = $1",
                                       SESSION))[0]
        assert session_row["ended_at"] is not None and session_row["ended_by"] == "qa e2e expert"
        recording = REPO / "recordings" / session_row["recording"]
        assert recording.suffix == ".wav" and recording.stat().st_size > 8000, recording
    print(f"qa session e2e: {time.monotonic() - started:.0f} s")




async def test_a_restarted_service_reads_the_conference_back(stack_env: dict[str, str], fresh_db: str) -> None:
    """The sessions part of a new process (same Asterisk, same database) while a session runs:
    who is in the conference is read back from ConfBridge's list, their open attendance rows are
    taken over (not written twice), the moderator is not rung again, the raised hands come back
    in the order raised (a hand given the floor meanwhile does not), and ending it closes them."""
    from switchboard.sessions.service import SessionService
    from switchboard.store.pool import LazyPool

    callers = CALLERS[:3]
    floor, second, third = callers          # raise their hands in this order; the first is given the floor

    def steps(at: float) -> list[Step]:
        return [Pause(2.5), Dtmf("1"), Pause(2.5), Dtmf("5"), Pause(at), Dtmf("*1"), AwaitHangup(timeout=150)]

    async with running_service(stack_env, fresh_db, campaigns={"enabled": False}) as svc:
        first = svc.app.context["sessions"]
        await svc.agent(MODERATOR, mode="answer", answer_after=0.3, ready=False)
        await first.create(definition(), by="e2e")
        room = first.sessions[SESSION].room
        await until(lambda: any(p.role == "moderator" for p in room.participants.values()), timeout=20,
                    what="the moderator in the conference")
        for number, at in zip(callers, (15.0, 20.0, 25.0), strict=True):
            svc.call(steps(at), caller=number, timeout=150)
        await until(lambda: len(room.callers()) == 3, timeout=40, what="3 callers in the conference")
        await until(lambda: len(room.hands) == 3, timeout=60, what=f"three raised hands ({room.hands})")
        assert [p.caller for p in room.hand_queue()] == [floor, second, third]
        given = room.hand_queue()[0]
        await first.unmute(SESSION, given.uniqueid)          # the floor: its hand is down (SB_HAND cleared)
        await asyncio.sleep(1.0)
        await first.mute(SESSION, given.uniqueid)
        assert [p.caller for p in room.hand_queue()] == [second, third]
        await first.drained()
        await first.stop()

        again = SessionService(pool=LazyPool(svc.app.context["pool"]), ami=svc.app.context["client"],
                               settings=svc.app.settings.sessions, clock=svc.app.context["ivr_clock"],
                               endpoint_of=lambda agent_id: agent_id)
        await again.start()
        try:
            back = again.sessions[SESSION].room
            await until(lambda: len(back.participants) == 4, timeout=10, what="the conference read back")
            assert {p.caller for p in back.callers()} == set(callers)
            # the raised hands, in the order raised; the one given the floor is not raised again
            await until(lambda: len(back.hands) == 2, timeout=10, what=f"the hands read back ({back.hands})")
            assert [p.caller for p in back.hand_queue()] == [second, third]
            status_view = again.view(SESSION)
            assert [h["caller"] for h in status_view["hands"]] == [second, third]
            await asyncio.sleep(3.0)     # time enough for a second ring to have joined, had there been one
            assert [v["admin"] for v in await again.confbridge_list(SESSION)].count("Yes") == 1
            await again.end(SESSION, by="e2e")
            await until(lambda: not back.participants, timeout=20, what="everyone out of the conference")
            await again.drained()
        finally:
            await again.stop()
        db = await svc.fetch("SELECT caller, role, left_at, left_reason, hands, hand_raised_at, unmuted_at, joined_via "
                             "FROM qa_attendance WHERE session_id = $1", SESSION)
    assert sorted((r["role"], r["caller"]) for r in db) == sorted(
        [("moderator", MODERATOR)] + [("caller", n) for n in callers])
    assert all(r["left_at"] is not None and r["left_reason"] == "session_ended" for r in db), db
    # the hands counted before the restart are kept in the rows the new process closed
    by_caller = {r["caller"]: r for r in db if r["role"] == "caller"}
    assert all(by_caller[n]["hands"] >= 1 and by_caller[n]["hand_raised_at"] is not None for n in callers), db
    assert by_caller[floor]["unmuted_at"] is not None and by_caller[second]["unmuted_at"] is None
    assert {r["joined_via"] for r in by_caller.values()} == {"menu"}
