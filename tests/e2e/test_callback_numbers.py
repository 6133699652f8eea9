"""Callbacks go through the number policy, on the real stack (issue 11, item 1).

Four callers wait in line and press 1 for a callback: one presenting a premium number
(1900…), two with Dial syntax in their caller id (``&`` adds a channel, ``,,U(...)`` adds
Dial options) and a ``+84`` mobile. The first three are refused: ``callback.refused`` with
the reason is stored, they hear why and stay in line until they hang up themselves. The
``+84`` caller is called back: the trunk-side SIPp receives the INVITE for the normalised
national number, and the call is recorded by the dialplan's MixMonitor.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from e2e_service import PENSION, REPO, running_service, until

from switchboard.demo.sipp import AwaitHangup, Dtmf, HangUp, Pause

pytestmark = pytest.mark.e2e

#: The demo Hồ Chí Minh City line: mobile and premium caller ids give no province by area code.
HCM_LINE = "02839999002"


def ivr(keys: str) -> list[Pause | Dtmf]:
    steps: list[Pause | Dtmf] = []
    for k in keys:
        steps += [Pause(2.5), Dtmf(k)]
    return steps


def _in_repo(asterisk_path: str, env: dict[str, str]) -> Path:
    """A recording path as Asterisk sees it -> the same file in the repository's recordings folder."""
    return REPO / "recordings" / Path(asterisk_path).relative_to(env["STACK_RECORDINGS_IN_ASTERISK"])


async def test_refused_numbers_are_recorded_and_kept_in_line_and_a_plus84_mobile_is_called_back(
        stack_env: dict[str, str], pg_dsn: str) -> None:
    premium, amp, comma, mobile = "19009999", "0912345678&PJSIP/agent1003", "0912345679,,U(sub)", "+84912345677"
    async with running_service(stack_env, pg_dsn) as svc:
        agent = await svc.agent("agent1009", talk=None, ready=False)     # nobody free: everybody waits
        stay = [*ivr(PENSION), Pause(7.5), Dtmf("1"), Pause(14), HangUp()]
        refused_calls = {c: svc.call(stay, caller=c, dialed=HCM_LINE) for c in (premium, amp, comma)}
        asking = svc.call([Pause(1), *ivr(PENSION), Pause(7.5), Dtmf("1"), AwaitHangup(30)], caller=mobile,
                          dialed=HCM_LINE)

        expected = {premium: ("denied_prefix", "19009999"), amp: ("malformed", ""), comma: ("malformed", "")}
        refused_ids: dict[str, str] = {}
        for caller, (reason, number) in expected.items():
            cid = await svc.wait_call_id(caller)
            refused_ids[caller] = cid
            ev = await svc.wait_event(cid, "callback.refused", timeout=30)
            assert (ev.data["reason"], ev.data["number"]) == (reason, number), ev.data
            w = svc.acd.waiting.get(cid)                  # still in line, no callback taken
            assert w is not None and w.callback is None and w.session is not None and w.callback_refused == reason
            assert "callback.requested" not in svc.kinds(cid)

        cid = await svc.wait_call_id(mobile)
        requested = await svc.wait_event(cid, "callback.requested", timeout=30)
        assert requested.data["number"] == "0912345677"          # normalised: +84… -> 0…
        assert (await asking).ok                                  # the line was released for them
        for caller, task in refused_calls.items():
            result = await task                                   # they hung up themselves: never cut off
            assert result.ok, (caller, result.errors or result.stderr)
            assert "call.answered" not in svc.kinds(refused_ids[caller])

        pstn = svc.pstn(answer_after=1.0, talk=3.0, expect_number="0912345677")
        svc.acd.ready("agent1009")
        done = await svc.wait_event(cid, "callback.completed", timeout=45)
        assert done.data["result"] == "answered", done.data
        result = await pstn
        assert result.ok, result.errors or result.stderr          # the INVITE was for sip:0912345677@
        assert agent.calls_answered() == 1
        recording = await svc.wait_event(cid, "call.recording", timeout=10)
        wav = _in_repo(recording.data["path"], stack_env)
        await until(lambda: wav.is_file() and wav.read_bytes()[:4] == b"RIFF", timeout=20, what=f"recording {wav}")

        # the record in PostgreSQL: one refusal per refused caller with its reason, none for the mobile
        rows = await svc.fetch("SELECT call_id, data FROM call_events WHERE kind = 'callback.refused' "
                               "AND call_id = ANY($1::text[])", [*refused_ids.values(), cid])
        stored = {r["call_id"]: json.loads(r["data"]) if isinstance(r["data"], str) else r["data"] for r in rows}
        assert {c: stored[refused_ids[c]]["reason"] for c in expected} == {c: r for c, (r, _) in expected.items()}
        assert cid not in stored
        cbs = await svc.fetch("SELECT number, result FROM callbacks WHERE call_id = $1", cid)
        assert [(r["number"], r["result"]) for r in cbs] == [("0912345677", "answered")]


async def test_daily_cap_refuses_a_number_over_its_callbacks_of_the_day(stack_env: dict[str, str],
                                                                         pg_dsn: str) -> None:
    """callbacks_per_day = 1: the number's second request of the day is refused, and the count
    comes from the database (a new process still sees the first request)."""
    caller = "0387654321"
    async with running_service(stack_env, pg_dsn) as svc:
        svc.acd.numbers.cap.limit = 1
        await svc.agent("agent1009", talk=None, ready=False)
        first = svc.call([*ivr(PENSION), Pause(7.5), Dtmf("1"), AwaitHangup(30)], caller=caller, dialed=HCM_LINE)
        cid = await svc.wait_call_id(caller)
        await svc.wait_event(cid, "callback.requested", timeout=30)
        assert (await first).ok
        await svc.record(cid, until=("callback.requested",))
    async with running_service(stack_env, pg_dsn, keep_owed_callbacks=True) as svc2:
        svc2.acd.numbers.cap.limit = 1
        await until(lambda: svc2.acd.numbers.cap.used(caller, datetime.now(UTC)) >= 1, timeout=10,
                    what="today's count read from the database")
        await svc2.agent("agent1009", talk=None, ready=False)
        again = svc2.call([*ivr(PENSION), Pause(7.5), Dtmf("1"), Pause(6), HangUp()], caller=caller,
                          dialed=HCM_LINE)
        cid2 = await svc2.wait_call_id(caller)
        ev = await svc2.wait_event(cid2, "callback.refused", timeout=30)
        assert (ev.data["reason"], ev.data["number"], ev.data["detail"]) == ("daily_cap", caller, "1")
        assert (await again).ok
