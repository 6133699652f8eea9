"""The service routes per event (``AcdService._route_now``: the routing book and
``router.route_changes``) exactly as the full pass would at that moment.

A real ``AcdService`` over the tests' fake AMI link (``tests/unit/api/fake_asterisk.py``,
answering like Asterisk 22) and the real ``AgiManager`` is driven through random days:
agents log in, pause, log out, phones change state, callers join (some back-dated, some
with a sticky agent), hang up, ask for a callback, offers are answered or not, calls end,
wrap-up ends, time passes (tiers open, reservations end) and the timer ticks. Before each
routing step the full pass is computed the way the service used to (views of every
logged-in agent, ``router.route`` over every waiting call) and the step must offer exactly
that; after it, nothing may be assignable, every tier reached must have been announced,
and the timer's full pass must never find an assignment the steps missed.
"""

from __future__ import annotations

import asyncio
import random
import sys
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))   # the one fake AMI link

from fake_asterisk import FakeAsterisk, registered

from switchboard.acd import agent_state as ast
from switchboard.acd.agents import AgentRecord
from switchboard.acd.model import IllegalAgentAction
from switchboard.acd.router import AgentView, Assignment, route, tier_of
from switchboard.acd.service import AcdService
from switchboard.ami.agi import AgiManager, AgiSession
from switchboard.ami.protocol import Event
from switchboard.config import RoutingSettings
from switchboard.geo import load_provinces
from switchboard.ivr.machine import Enqueue

W0 = 1_800_000_000.0
PROVINCES = ["ha-noi", "hai-phong", "da-nang", "hue", "ho-chi-minh", "can-tho"]
TOPICS = ["social.pension", "health.card", "unemployment.benefit"]
DEVICE_STATES = ["NOT_INUSE", "NOT_INUSE", "INUSE", "UNAVAILABLE", "ONHOLD"]


class Day:
    """One ACD, its phones and callers, and the checks around every routing step."""

    def __init__(self, rng: random.Random, *, preference_s: float = 0.0, cover: bool = True) -> None:
        self.rng = rng
        self.t = [0.0]
        self.records = [
            AgentRecord(id=f"a{i}", name=f"A{i}", sip_endpoint=f"a{i}", home_province=rng.choice(PROVINCES),
                        skills={t: rng.randint(1, 5) for t in rng.sample(TOPICS, rng.randint(1, 3))},
                        languages=("vi", "en") if rng.random() < 0.2 else ("vi",))
            for i in range(10)]
        self.asterisk = FakeAsterisk(endpoints=registered([r.sip_endpoint for r in self.records]))
        self.region_of = load_provinces().region_of_map()
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self.acd = AcdService(
            ami=self.asterisk, routing=RoutingSettings(region_after_s=15, nation_after_s=30, sticky_max_wait_s=30,
                                                       wrap_up_s=5, reevaluate_interval_s=3600,
                                                       province_preference_s=preference_s, keep_local_cover=cover),
            agents=self.records, region_of=self.region_of, clock=lambda: self.t[0], wall=lambda: W0 + self.t[0],
            emit=lambda call_id, kind, data: self.events.append((call_id, str(kind), data)))
        self.sessions: dict[str, AgiSession] = {}
        self.agi = AgiManager(self.asterisk, on_start=self._on_session)
        self.callers: list[asyncio.Task[str]] = []
        self.numbers: dict[str, tuple[str, str]] = {}   # caller number -> (topic, language) of their calls
        self.steps = 0
        self.failures: list[AssertionError] = []
        self.offered: list[Assignment] = []
        offer = self.acd.offer_lifecycle.offer

        def recording_offer(a: Assignment) -> None:
            self.offered.append(a)
            offer(a)

        self.acd.offer_lifecycle.offer = recording_offer   # type: ignore[method-assign]
        step = self.acd._route_now

        def checked_step() -> None:   # runs from the event loop, which would swallow a failure
            try:
                expected = self.full_pass()
                self.offered.clear()
                step()
                assert self.offered == expected, (self.t[0], self.offered, expected)
                self.steps += 1
                self.check_settled()
            except AssertionError as exc:
                self.failures.append(exc)

        self.acd._route_now = checked_step   # type: ignore[method-assign]

    async def _on_session(self, session: AgiSession) -> None:
        self.sessions[session.uniqueid] = session

    # -- the full pass, as the service ran it at every event before the routing book

    def full_pass(self) -> list[Assignment]:
        acd, now = self.acd, self.t[0]
        calls = [w.call for w in acd.waiting.values() if w.offer is None and (
            w.session is not None or (w.callback is not None and w.callback.not_before <= now))]
        views = [AgentView(agent_id=a, skills=acd.records[a].skills, province=acd.records[a].home_province or "",
                           region=self.region_of.get(acd.records[a].home_province or "", ""), idle_since=s.since,
                           languages=frozenset(acd.records[a].languages), offerable=ast.offerable(s))
                 for a, s in acd.states.items() if s.status is not ast.AgentStatus.LOGGED_OUT]
        return route(calls, views, now, acd.policy)

    def check_settled(self) -> None:
        assert self.full_pass() == [], "a routing step left an assignable pair"
        now = self.t[0]
        for w in self.acd.waiting.values():
            assert w.tier_announced == int(tier_of(w.call, now, self.acd.policy)), w.call

    # -- what happens during the day

    async def settle(self) -> None:
        for _ in range(15):
            await asyncio.sleep(0)

    async def caller_joins(self, *, again: bool = False) -> None:
        rng, acd = self.rng, self.acd
        served_by_free = [n for n, (agent, _) in acd.line.last_agent.items() if ast.offerable(acd.states[agent])]
        if again and served_by_free:
            number = rng.choice(served_by_free)     # calls again while the agent who answered is free
        elif self.numbers and rng.random() < 0.3:
            number = rng.choice(list(self.numbers))
        else:
            number = f"09{rng.randrange(10**8):08d}"
            self.numbers[number] = (rng.choice(TOPICS), rng.choice(["vi", "vi", "en"]))
        chan = self.asterisk.caller_enters_agi(caller=number)
        await self.settle()
        session = self.sessions.pop(chan.uniqueid)
        topic, language = self.numbers[number]
        request = Enqueue(topic=topic, province=rng.choice([*PROVINCES, ""]),
                          priority=rng.choice([0, 0, 0, 1]), language=language,
                          province_source="did",
                          variables={"joined_wall": f"{W0 + self.t[0] - rng.choice([0, 0, 10, 40]):.3f}"})
        self.callers.append(asyncio.create_task(self.acd.enqueue(session, request)))

    async def act(self) -> None:
        rng, acd, asterisk = self.rng, self.acd, self.asterisk
        agent = rng.choice(self.records).id
        what = rng.choice(["join", "join", "join", "again", "time", "time", "ready", "ready", "pause", "logout", "device",
                           "answer", "answer", "ring_off", "hang_up", "caller_gone", "wrap_up", "callback", "tick"])
        try:
            if what in ("join", "again"):
                await self.caller_joins(again=what == "again")
            elif what == "time":
                self.t[0] += rng.choice([0.5, 5.0, 14.9, 15.0, 15.1, 30.0, 45.0])
            elif what == "ready":
                acd.ready(agent)
            elif what == "pause":
                acd.pause(agent, "break")
            elif what == "logout":
                acd.logout(agent)
            elif what == "device":
                acd.handle_event(Event("DeviceStateChange", {"Device": f"PJSIP/{agent}",
                                                             "State": rng.choice(DEVICE_STATES)}))
            elif what in ("answer", "ring_off") and acd.offers:
                leg = rng.choice([leg for leg in acd.offers if leg in asterisk.channels] or [""])
                if leg and what == "answer":
                    asterisk.agent_answers(leg)
                elif leg:
                    asterisk.agent_hangs_up(leg)
            elif what == "hang_up" and acd.talking:
                leg = rng.choice([leg for leg in acd.talking if leg in asterisk.channels] or [""])
                if leg:
                    asterisk.agent_hangs_up(leg)
            elif what == "caller_gone":
                live = [w.uniqueid for w in acd.waiting.values() if w.session is not None]
                if live:
                    asterisk.caller_hangs_up(rng.choice(live))
            elif what == "wrap_up":
                acd.end_wrap_up(agent, disposition="")
            elif what == "callback":
                live = [c for c, w in acd.waiting.items() if w.session is not None]
                if live:
                    acd.caller_pressed_callback(rng.choice(live))
            elif what == "tick":
                expected_missed = acd.routing_missed
                acd._on_tick()
                assert acd.routing_missed == expected_missed == 0
                self.check_settled()
        except IllegalAgentAction:
            pass
        await self.settle()
        if self.failures:
            raise self.failures[0]

    async def stop(self) -> None:
        for task in self.callers:
            task.cancel()
        await asyncio.gather(*self.callers, return_exceptions=True)
        await self.acd.stop()


async def _run_day(seed: int, actions: int, **routing: Any) -> Day:
    day = Day(random.Random(seed), **routing)
    await day.acd.start()
    try:
        for _ in range(actions):
            await day.act()
        day.acd._on_tick()
        assert day.acd.routing_missed == 0
        day.check_settled()
    finally:
        await day.stop()
    return day


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), preference_s=st.sampled_from([0.0, 10.0]), cover=st.booleans())
def test_every_step_offers_what_the_full_pass_would(seed: int, preference_s: float, cover: bool) -> None:
    """With each routing option (the province preference, the local cover rule) on or off."""
    day = asyncio.run(_run_day(seed, 150, preference_s=preference_s, cover=cover))
    offers = [e for e in day.events if e[1] == "agent.offer"]
    assert day.steps > 20 and offers, "the day routed too little to show anything"


def test_a_day_offers_sticky_overflow_and_callback_calls() -> None:
    """The random days reach the cases that matter (so the property above is not vacuous)."""
    kinds: set[str] = set()
    for seed in range(6):
        day = asyncio.run(_run_day(seed, 200))
        for _, kind, data in day.events:
            if kind == "agent.offer":
                kinds.add(f"offer:{data['tier']}")
                if data["sticky"]:
                    kinds.add("sticky")
                if data.get("callback_id"):
                    kinds.add("callback")
            elif kind == "queue.overflow":
                kinds.add(f"overflow:{data['tier']}")
    assert {"offer:province", "offer:region", "offer:nation", "sticky", "callback",
            "overflow:region", "overflow:nation"} <= kinds, kinds
