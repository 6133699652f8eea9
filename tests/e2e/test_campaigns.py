"""An outbound progressive campaign on the real stack (issue 19): 20 contacts, 3 agents, the
contacts played by one SIPp UAS behind the trunk, the results asserted in PostgreSQL.

The service's clock is moved, never slept on: first a public holiday (2 September, National
Day) and 06:00 on a working day (the calling window, 07:30-20:00, is closed: nothing is
dialled), then 07:31 (dialling starts), then past the busy number's retry spacing.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from campaign_contacts import contact_scenario, invited_numbers, run_contacts
from e2e_service import running_service, sip_remote, until

from switchboard.api.keys import SERVICES

pytestmark = pytest.mark.e2e

AGENTS = ("agent1002", "agent1004", "agent1005")          # all three have the health.card skill
NUMBERS = [f"09123450{i:02d}" for i in range(1, 21)]
BUSY, OPT_OUT, ON_DNC, NO_ANSWER = NUMBERS[0], NUMBERS[1], NUMBERS[2], NUMBERS[3]
LISTEN = NUMBERS[4:6]                                      # hear the message to the end
AGENT = NUMBERS[6:]                                        # press 1: an agent
BUSY_SPACING_S = 60

CAMPAIGN = f"""\
campaign: e2e-cards
flow: reminder-card
mode: progressive
topic: health.card
window: "07:30-20:00"
max_attempts: 2
retry: {{busy: {BUSY_SPACING_S}, no_answer: 0, failed: 0}}
ring_seconds: 8
caller_id: "19009068"
targets: {{csv: contacts.csv}}
"""


class MovableClock:
    """The service's clock: runs from ``at``; ``set`` moves it (the test never sleeps for time to pass)."""

    def __init__(self, at: datetime) -> None:
        self.set(at)

    def set(self, at: datetime) -> None:
        self.at, self.t0 = at, time.monotonic()

    def __call__(self) -> datetime:
        return self.at + timedelta(seconds=time.monotonic() - self.t0)


def _local(y: int, mo: int, d: int, h: int, mi: int) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC) - timedelta(hours=7)       # Asia/Ho_Chi_Minh is UTC+7


async def _attempts(svc: Any) -> list[Any]:
    return await svc.fetch("SELECT a.*, c.name FROM campaign_attempts a JOIN campaign_contacts c USING (contact_id) "
                           "WHERE a.campaign_id = 'e2e-cards' ORDER BY a.claimed_at")


async def test_a_progressive_campaign_calls_nobody_twice_and_keeps_its_rules(stack_env: dict[str, str],
                                                                           pg_dsn: str) -> None:
    clock = MovableClock(_local(2026, 3, 3, 6, 0))           # Tuesday 3 March, 06:00: before the window
    async with running_service(stack_env, pg_dsn, clock=clock,
                               routing={"wrap_up_s": 1.0, "ring_timeout_s": 8.0},
                               campaigns={"tick_s": 0.5, "max_lines": 6}) as svc:
        campaigns = svc.app.context["api_app"][SERVICES].campaigns
        for agent in AGENTS:
            await svc.agent(agent, answer_after=1.0, talk=2.0)
        await campaigns.add_dnc(ON_DNC, by="e2e")
        csv = "number,name,card_valid_to\n" + "".join(f"{n},C{n[-2:]},2026-09-20\n" for n in NUMBERS)
        view = await campaigns.create(CAMPAIGN, contacts_csv=csv, by="e2e")
        assert view.contacts == 20
        contacts = asyncio.create_task(run_contacts(
            contact_scenario(busy=[BUSY], no_answer=[NO_ANSWER], keys={OPT_OUT: "9", **{n: "1" for n in AGENT}},
                             key_after=11.0),
            remote=sip_remote(stack_env), port=int(stack_env["STACK_TRUNK_OUT_PORT"]), calls=20, timeout=420))
        svc.callers.append(contacts)   # type: ignore[arg-type]
        from switchboard.campaigns.model import State
        await campaigns.set_state("e2e-cards", State.RUNNING, by="e2e")

        # 06:00 on a working day, then a public holiday at 10:00: the window is closed, nothing is claimed
        dialer = svc.app.context["campaign_dialer"]
        await until(lambda: dialer.last_reason.get("e2e-cards") == "window_closed", timeout=10,
                    what="the dialer judged the early morning")
        await asyncio.sleep(2)
        assert await _attempts(svc) == []
        clock.set(_local(2026, 9, 2, 10, 0))                  # Wednesday 2 September: National Day
        dialer.wake()
        await asyncio.sleep(2)
        assert await _attempts(svc) == [] and dialer.last_reason["e2e-cards"] == "window_closed"

        # 07:31: the window opens; progressive: never more numbers in flight than agents
        clock.set(_local(2026, 3, 3, 7, 31))
        dialer.wake()
        peak = 0

        async def busy_done() -> bool:
            nonlocal peak
            peak = max(peak, len(dialer.live))
            rows = await _attempts(svc)
            return any(r["number"] == BUSY and r["result"] == "busy" for r in rows)

        await until(busy_done, timeout=120, what="the busy number's first attempt", interval=0.3)
        first_busy = next(r for r in await _attempts(svc) if r["number"] == BUSY)
        # not retried before the spacing
        await asyncio.sleep(3)
        assert [r["attempt_no"] for r in await _attempts(svc) if r["number"] == BUSY] == [1]
        clock.set(clock() + timedelta(seconds=BUSY_SPACING_S + 1))
        dialer.wake()

        async def all_done() -> bool:
            nonlocal peak
            peak = max(peak, len(dialer.live))
            rows = await svc.fetch("SELECT count(*) AS n FROM campaign_contacts WHERE campaign_id = 'e2e-cards' "
                                   "AND status <> 'done'")
            return rows[0]["n"] == 0
        await until(all_done, timeout=400, what="every contact done", interval=0.5)
        code, log = await contacts
        assert code == 0, log[-3000:]

        rows = await _attempts(svc)
        by_number: dict[str, list[Any]] = {}
        for r in rows:
            by_number.setdefault(r["number"], []).append(r)
        invited = Counter(invited_numbers(log))
        # nobody called twice (the busy number once more, after the spacing), the DNC number never
        assert invited == Counter({n: 1 for n in NUMBERS if n != ON_DNC}) + Counter({BUSY: 1}), invited
        assert ON_DNC not in by_number
        assert peak <= len(AGENTS)
        busy = by_number[BUSY]
        assert [(r["attempt_no"], r["result"]) for r in busy] == [(1, "busy"), (2, "busy")]
        assert busy[1]["claimed_at"] - first_busy["ended_at"] >= timedelta(seconds=BUSY_SPACING_S)
        assert [r["result"] for r in by_number[NO_ANSWER]] == ["no_answer"]
        assert [r["result"] for r in by_number[OPT_OUT]] == ["opted_out"]
        for n in LISTEN:
            assert [r["result"] for r in by_number[n]] == ["message_heard_to_end"], n
        for n in AGENT:
            assert [r["result"] for r in by_number[n]] == ["transferred_to_agent"], (n, by_number[n])
            assert by_number[n][0]["answered_at"] is not None
        # every attempt inside the window, on the working day
        for r in rows:
            local = r["claimed_at"] + timedelta(hours=7)
            assert local.date().isoformat() == "2026-03-03" and local.hour >= 7, r
        dnc = {r["number"]: r for r in await svc.fetch("SELECT * FROM do_not_call")}
        assert dnc[OPT_OUT]["source"] == "key9" and dnc[ON_DNC]["source"] == "api"
        finals = {r["number"]: r["final_result"] for r in await svc.fetch(
            "SELECT number, final_result FROM campaign_contacts WHERE campaign_id = 'e2e-cards'")}
        assert finals[ON_DNC] == "do_not_call" and finals[OPT_OUT] == "opted_out"
        # the abandon limit: live answers with no agent stay within 3 % of the answered
        answered = sum(1 for r in rows if r["answered_at"] is not None)
        abandoned = sum(1 for r in rows if r["abandoned"])
        assert answered == 17 and abandoned <= 0.03 * answered

        # the reserved agent goes away while the contact listens: the contact presses 1, hears the
        # sorry message at once, and the answer counts as abandoned
        late = "0912345098"
        for agent in AGENTS[1:]:
            svc.acd.pause(agent, "break")
        await until(lambda: svc.status(AGENTS[0]) == "ready", timeout=15, what=f"{AGENTS[0]} ready")
        second = asyncio.create_task(run_contacts(
            contact_scenario(keys={late: "1"}, key_after=11.0), remote=sip_remote(stack_env),
            port=int(stack_env["STACK_TRUNK_OUT_PORT"]), calls=1, timeout=120))
        svc.callers.append(second)   # type: ignore[arg-type]
        assert (await campaigns.import_contacts("e2e-cards", f"number\n{late}\n", by="e2e")).added == 1
        await campaigns.set_state("e2e-cards", State.RUNNING, by="e2e")
        dialer.wake()

        async def late_answered() -> bool:
            return any(r["number"] == late and r["answered_at"] is not None for r in await _attempts(svc))
        await until(late_answered, timeout=60, what="the late contact answered")
        svc.acd.pause(AGENTS[0], "break")                    # every agent busy now
        await until(lambda: _result_of(svc, late), timeout=60, what="the late contact's result")
        row = next(r for r in await _attempts(svc) if r["number"] == late)
        assert (row["result"], row["abandoned"]) == ("answered", True)
        code, log2 = await second
        assert code == 0 and invited_numbers(log2) == [late], log2[-2000:]
        steps = [e for e in await svc.fetch("SELECT data FROM call_events WHERE call_id = $1 AND kind = 'ivr.step' "
                                            "ORDER BY seq", row["attempt_id"])]
        import json
        data = [json.loads(e["data"]) if isinstance(e["data"], str) else e["data"] for e in steps]
        agent_step = next(d for d in data if d["node"] == "agent")
        waited = datetime.fromisoformat(agent_step["left"]) - datetime.fromisoformat(agent_step["entered"])
        assert waited <= timedelta(seconds=2.5), agent_step          # the sorry message starts within ~2 s
        assert agent_step["input"] == "queue:no_agent"

        # now 1 abandoned of 18 answered (5.6 %) is over the 3 % limit: even with an agent ready,
        # the next contact is not dialled
        svc.acd.ready(AGENTS[0])
        assert (await campaigns.import_contacts("e2e-cards", "number\n0912345099\n", by="e2e")).added == 1
        await campaigns.set_state("e2e-cards", State.RUNNING, by="e2e")
        dialer.wake()
        await until(lambda: dialer.last_reason.get("e2e-cards") == "abandon_limit", timeout=10,
                    what="the abandon limit")
        await asyncio.sleep(2)
        assert not [r for r in await _attempts(svc) if r["number"] == "0912345099"]
        report = await campaigns.report("e2e-cards")
        assert report.results["transferred_to_agent"] == len(AGENT) and report.results["busy"] == 2
        assert report.results["abandoned"] == 1
        scraped = svc.app.context["metrics"].scrape().decode()
        assert 'switchboard_campaign_calls_total{campaign="e2e-cards",result="abandoned"} 1.0' in scraped
        assert 'switchboard_campaign_calls_total{campaign="e2e-cards",result="transferred_to_agent"} 14.0' in scraped
        assert 'switchboard_campaign_abandon_ratio{campaign="e2e-cards"}' in scraped
        # the shared database: later tests' services must not dial this campaign's last contact
        await campaigns.set_state("e2e-cards", State.STOPPED, by="e2e")


async def _result_of(svc: Any, number: str) -> bool:
    return any(r["number"] == number and r["result"] is not None for r in await _attempts(svc))
