"""Routing latency of the running service: ``AcdService`` over a fake AMI link, 1,000 agents, 500 waiting.

What is timed is the path the service runs for each event, from the call into the ACD to
the end of the routing step it schedules (``AcdService._route_now``), the offer made:

* **agent ready**: an agent on a call hangs up (untimed), then ends wrap-up
  (``AcdService.end_wrap_up``: timed until its routing step is over);
* **call joined**: a new caller, joined just now, is handed to ``AcdService.enqueue``
  (the channel variables go over the fake AMI link, then the routing step);
* **device change**: an agent on a call puts the caller on hold and takes them back
  (two ``DeviceStateChange`` events through ``AcdService.handle_event``).

An offer made in a step is answered at once (untimed), so the world stays as it was: the
line near 500, the agents almost all busy. The AMI link is the tests' faithful fake
(``tests/unit/api/fake_asterisk.py``), which answers every action at once; everything
above it is the product's code.

Also timed: the timer's pass (``AcdService._on_tick``: wrap-up ends, lost offers, the full
re-evaluation), and the pure router alone on the same state: the routing function each
step calls (``pure_p99_ms``) and ``route()`` over everything (``pure_full_p99_ms``).
A second, quiet world (every agent free, nobody waiting) times a call joining with 1,000
free agents to choose from.

Last line: one JSON object {agents, waiting, p50_ms, p99_ms (the service path, every event),
full_p99_ms (the timer's pass), pure_p99_ms, ...}.
Usage: python bench/router.py [--quick] [--agents N] [--waiting N] [--rounds N] [--seed S]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "unit" / "api"))   # the one fake AMI link (tests' fake_asterisk)

from fake_asterisk import FakeAsterisk, registered  # noqa: E402

from switchboard.acd import router as pure  # noqa: E402
from switchboard.acd import service as service_module  # noqa: E402
from switchboard.acd.agents import AgentRecord  # noqa: E402
from switchboard.acd.router import AgentView, RoutingPolicy, WaitingCall, route  # noqa: E402
from switchboard.acd.service import AcdService  # noqa: E402
from switchboard.acd.traffic import PROVINCE_WEIGHTS, TOPICS  # noqa: E402
from switchboard.ami.agi import AgiManager, AgiSession  # noqa: E402
from switchboard.ami.protocol import Event  # noqa: E402
from switchboard.config import RoutingSettings  # noqa: E402
from switchboard.geo import load_provinces  # noqa: E402
from switchboard.ivr.machine import Enqueue  # noqa: E402

DAY_S = 86_400.0


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def ms(xs: list[float], q: float | None = None) -> float:
    return round(statistics.median(xs) if q is None else percentile(xs, q), 4) if xs else float("nan")


class Timed:
    """Wraps a function and keeps how long each call took (ms)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.ms: list[float] = []
        self.on = False

    def __call__(self, *args: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return self.fn(*args, **kw)
        finally:
            if self.on:
                self.ms.append((time.perf_counter() - t0) * 1000)


class World:
    """One AcdService over the fake AMI link, its agents and callers."""

    def __init__(self, rng: random.Random, n_agents: int) -> None:
        self.rng = rng
        table = load_provinces()
        self.region_of = table.region_of_map()
        self.provinces = list(PROVINCE_WEIGHTS)
        self.weights = [PROVINCE_WEIGHTS[p] for p in self.provinces]
        self.topics = [t for t, _ in TOPICS]
        self.topic_w = [w for _, w in TOPICS]
        self.records: list[AgentRecord] = []
        for i in range(n_agents):
            prov = rng.choices(self.provinces, self.weights)[0]
            k = rng.choice([2, 3, 3, 4])
            skills = {t: rng.randint(1, 5) for t in set(rng.choices(self.topics, self.topic_w, k=k))}
            langs = ("vi", "en") if rng.random() < 0.1 else ("vi",)
            self.records.append(AgentRecord(id=f"a{i:04d}", name=f"Agent {i}", sip_endpoint=f"a{i:04d}",
                                            home_province=prov, skills=skills, languages=langs))
        self.asterisk = FakeAsterisk(endpoints=registered([r.sip_endpoint for r in self.records]))
        # the timer is driven by hand (timed on its own): it must not fire between two events
        self.acd = AcdService(ami=self.asterisk, routing=RoutingSettings(reevaluate_interval_s=3600.0),
                              agents=self.records, region_of=self.region_of, emit=lambda c, k, d: None)
        self.sessions: dict[str, AgiSession] = {}
        self.agi = AgiManager(self.asterisk, on_start=self._on_session)
        self.callers: set[asyncio.Task[str]] = set()
        self.steps = 0
        self.step_end = 0.0
        step = self.acd._route_now

        def counted_step() -> None:
            step()
            self.steps += 1
            self.step_end = time.perf_counter()

        self.acd._route_now = counted_step   # type: ignore[method-assign]
        self._seq = 0

    async def _on_session(self, session: AgiSession) -> None:
        self.sessions[session.uniqueid] = session

    async def settle(self) -> None:
        for _ in range(12):
            await asyncio.sleep(0)

    async def until_step(self, before: int) -> float:
        """Run the loop until a routing step after ``before`` is over; its end (perf_counter)."""
        for _ in range(200):
            if self.steps > before:
                return self.step_end
            await asyncio.sleep(0)
        raise AssertionError("the event scheduled no routing step")

    # -- callers

    def new_request(self, *, topic: str | None = None, province: str | None = "", waited_s: float = 0.0,
                    sticky: bool = False) -> tuple[str, Enqueue]:
        rng = self.rng
        self._seq += 1
        number = f"09{self._seq:08d}"
        if province == "":
            province = rng.choices(self.provinces, self.weights)[0] if rng.random() > 0.05 else None
        topic = topic or rng.choices(self.topics, self.topic_w)[0]
        if sticky:
            agent = self.records[rng.randrange(len(self.records))].id
            self.acd.line.last_agent[number] = (agent, time.time() - rng.uniform(0, 10 * DAY_S))
        return number, Enqueue(topic=topic, province=province or "", priority=1 if rng.random() < 0.05 else 0,
                               language="en" if rng.random() < 0.03 else "vi", province_source="did",
                               variables={"joined_wall": f"{time.time() - waited_s:.3f}"})

    async def session_for(self, number: str) -> AgiSession:
        chan = self.asterisk.caller_enters_agi(caller=number)
        for _ in range(100):
            if chan.uniqueid in self.sessions:
                return self.sessions.pop(chan.uniqueid)
            await asyncio.sleep(0)
        raise AssertionError("no AGI session")

    def enqueue(self, session: AgiSession, request: Enqueue) -> None:
        task = asyncio.create_task(self.acd.enqueue(session, request))
        self.callers.add(task)
        task.add_done_callback(self.callers.discard)

    # -- agents

    async def answer_offers(self) -> int:
        """Every agent rung answers (once its Originate reached the fake Asterisk)."""
        answered = 0
        for _ in range(50):
            if not self.acd.offers:
                break
            for leg in [leg for leg in self.acd.offers if leg in self.asterisk.channels]:
                self.asterisk.agent_answers(leg)
                answered += 1
            await self.settle()
        return answered

    def leg_of(self, agent_id: str) -> str | None:
        return next((leg for leg, o in self.acd.talking.items() if o.agent_id == agent_id), None)

    def on_call(self) -> list[str]:
        return [o.agent_id for o in self.acd.talking.values()]

    async def stop(self) -> None:
        for t in list(self.callers):
            t.cancel()
        await asyncio.gather(*self.callers, return_exceptions=True)
        await self.acd.stop()


async def busy_world(rng: random.Random, n_agents: int, n_waiting: int, max_wait_s: float) -> World:
    """Every agent ready, then callers until the line holds ``n_waiting``: each offer answered."""
    w = World(rng, n_agents)
    await w.acd.start()
    for r in w.records:
        w.acd.ready(r.id)
    await w.settle()
    # the agents' calls: one caller per agent, local and in its own skill, so each takes one agent
    for r in w.records:
        if w.acd.states[r.id].status.value != "ready":
            continue
        number, req = w.new_request(topic=next(iter(r.skills)), province=r.home_province, waited_s=0.0)
        w.enqueue(await w.session_for(number), req)
        await w.settle()
        await w.answer_offers()
    # the line: callers who joined up to max_wait_s ago, 20% with a sticky agent
    while len(w.acd.waiting) < n_waiting:
        number, req = w.new_request(waited_s=rng.uniform(0, max_wait_s), sticky=rng.random() < 0.2)
        w.enqueue(await w.session_for(number), req)
        await w.settle()
        await w.answer_offers()
    return w


def pure_state(w: World) -> tuple[list[WaitingCall], list[AgentView], RoutingPolicy]:
    """What the router sees in ``w`` now (built outside any timing)."""
    acd = w.acd
    calls = [x.call for x in acd.waiting.values() if x.offer is None and x.session is not None]
    views = []
    for agent_id, s in acd.states.items():
        if s.status.value == "logged_out":
            continue
        rec = acd.records[agent_id]
        views.append(AgentView(agent_id, rec.skills, rec.home_province or "", w.region_of.get(rec.home_province or "", ""),
                               s.since, frozenset(rec.languages), offerable=s.status.value == "ready"
                               and s.device.value == "NOT_INUSE"))
    return calls, views, acd.policy


async def run_busy(args: argparse.Namespace, rng: random.Random) -> dict[str, Any]:
    w = await busy_world(rng, args.agents, args.waiting, args.max_wait)
    acd = w.acd
    # the pure routing function each step calls, timed where the service calls it
    holder: Any = sys.modules.get("switchboard.acd.routing_book", service_module)
    step_fn_name = "route_changes" if hasattr(holder, "route_changes") else "route"
    pure_step = Timed(getattr(holder, step_fn_name))
    setattr(holder, step_fn_name, pure_step)
    ready_ms: list[float] = []
    joined_ms: list[float] = []
    device_ms: list[float] = []
    offers_at_ready = 0
    offers_at_join = 0
    free_seen: list[int] = []
    gc.collect()
    for _ in range(args.rounds):
        # an agent on a call hangs up; later ends wrap-up: the timed "agent ready"
        busy = w.on_call()
        agent = busy[rng.randrange(len(busy))]
        leg = w.leg_of(agent)
        assert leg is not None
        w.asterisk.agent_hangs_up(leg)
        await w.settle()
        before, offers = w.steps, acd.offers_total
        pure_step.on = True
        t0 = time.perf_counter()
        acd.end_wrap_up(agent, disposition="")
        ready_ms.append((await w.until_step(before) - t0) * 1000)
        pure_step.on = False
        offers_at_ready += acd.offers_total - offers
        await w.answer_offers()
        # a new caller (joined just now) reaches the line
        number, req = w.new_request(sticky=rng.random() < 0.2)
        session = await w.session_for(number)
        await w.settle()
        before, offers = w.steps, acd.offers_total
        pure_step.on = True
        t0 = time.perf_counter()
        w.enqueue(session, req)
        joined_ms.append((await w.until_step(before) - t0) * 1000)
        pure_step.on = False
        offers_at_join += acd.offers_total - offers
        await w.answer_offers()
        # an agent on a call holds the caller and takes them back: two device changes
        busy = w.on_call()
        endpoint = acd.records[busy[rng.randrange(len(busy))]].sip_endpoint
        for state in ("ONHOLD", "INUSE"):
            before = w.steps
            pure_step.on = True
            t0 = time.perf_counter()
            acd.handle_event(Event("DeviceStateChange", {"Device": f"PJSIP/{endpoint}", "State": state}))
            device_ms.append((await w.until_step(before) - t0) * 1000)
            pure_step.on = False
            await w.settle()
        free_seen.append(sum(1 for s in acd.states.values() if s.status.value == "ready"
                             and s.device.value == "NOT_INUSE"))
    setattr(holder, step_fn_name, pure_step.fn)

    # the timer's pass (wrap-up ends, lost offers, the full re-evaluation), on the same world
    tick_ms: list[float] = []
    for _ in range(args.full_rounds):
        t0 = time.perf_counter()
        acd._on_tick()
        tick_ms.append((time.perf_counter() - t0) * 1000)
        await w.answer_offers()
    # the pure router alone over the same state
    calls, views, policy = pure_state(w)
    now = acd.clock()
    full_pure_ms: list[float] = []
    for i in range(args.full_rounds):
        t0 = time.perf_counter()
        route(calls, views, now + i * 1e-3, policy)
        full_pure_ms.append((time.perf_counter() - t0) * 1000)
    all_free = [AgentView(a.agent_id, a.skills, a.province, a.region, a.idle_since, a.languages, True) for a in views]
    cold_ms: list[float] = []
    for i in range(max(5, args.full_rounds // 5)):
        t0 = time.perf_counter()
        n_assigned = len(route(calls, all_free, now + i * 1e-3, policy))
        cold_ms.append((time.perf_counter() - t0) * 1000)
    waiting = len(acd.waiting)
    await w.stop()
    events = ready_ms + joined_ms + device_ms
    return {
        "agents": args.agents, "waiting": waiting, "rounds": args.rounds, "events": len(events),
        "free_agents_median": statistics.median(free_seen) if free_seen else 0,
        "offers_at_agent_ready": offers_at_ready, "offers_at_call_joined": offers_at_join,
        "p50_ms": ms(events), "p99_ms": ms(events, 0.99),
        "agent_ready_p50_ms": ms(ready_ms), "agent_ready_p99_ms": ms(ready_ms, 0.99),
        "call_joined_p50_ms": ms(joined_ms), "call_joined_p99_ms": ms(joined_ms, 0.99),
        "device_change_p50_ms": ms(device_ms), "device_change_p99_ms": ms(device_ms, 0.99),
        "full_p50_ms": ms(tick_ms), "full_p99_ms": ms(tick_ms, 0.99),
        "pure_step_fn": step_fn_name, "pure_p50_ms": ms(pure_step.ms), "pure_p99_ms": ms(pure_step.ms, 0.99),
        "pure_full_p50_ms": ms(full_pure_ms), "pure_full_p99_ms": ms(full_pure_ms, 0.99),
        "pure_all_free_full_p50_ms": ms(cold_ms), "pure_all_free_assigned": n_assigned,
    }


async def run_quiet(args: argparse.Namespace, rng: random.Random) -> dict[str, Any]:
    """Every agent free, nobody waiting: each new caller is offered at once (then answered and hung up)."""
    w = World(rng, args.agents)
    acd = w.acd
    await acd.start()
    for r in w.records:
        acd.ready(r.id)
    await w.settle()
    joined_ms: list[float] = []
    tick_ms: list[float] = []
    gc.collect()
    for _ in range(max(20, args.rounds // 4)):
        number, req = w.new_request()
        session = await w.session_for(number)
        await w.settle()
        before = w.steps
        t0 = time.perf_counter()
        w.enqueue(session, req)
        joined_ms.append((await w.until_step(before) - t0) * 1000)
        await w.settle()
        for leg in list(acd.offers):          # the agent answers, talks, hangs up and is ready again
            agent = acd.offers[leg].agent_id
            w.asterisk.agent_answers(leg)
            await w.settle()
            w.asterisk.agent_hangs_up(leg)
            await w.settle()
            acd.end_wrap_up(agent, disposition="")
            await w.settle()
        t0 = time.perf_counter()
        acd._on_tick()
        tick_ms.append((time.perf_counter() - t0) * 1000)
    await w.stop()
    return {"quiet_call_joined_p50_ms": ms(joined_ms), "quiet_call_joined_p99_ms": ms(joined_ms, 0.99),
            "quiet_full_p99_ms": ms(tick_ms, 0.99)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--waiting", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=None, help="rounds of 4 events (default 1000; --quick 100)")
    ap.add_argument("--full-rounds", type=int, default=None, help="timer passes timed (default 200; --quick 30)")
    ap.add_argument("--max-wait", type=float, default=400.0, help="the line's callers joined up to this long ago")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    args.rounds = args.rounds or (100 if args.quick else 1000)
    args.full_rounds = args.full_rounds or (30 if args.quick else 200)
    rng = random.Random(args.seed)
    t0 = time.monotonic()
    load = os.getloadavg()[0]
    result = asyncio.run(run_busy(args, rng))
    result.update(asyncio.run(run_quiet(args, rng)))
    result["load_1m_at_start"] = round(load, 2)
    result["elapsed_s"] = round(time.monotonic() - t0, 1)
    print(f"service path, {result['events']} events ({result['agents']} agents, line {result['waiting']}, "
          f"median {result['free_agents_median']} free): p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms")
    print(f"  agent ready p99 {result['agent_ready_p99_ms']} ms ({result['offers_at_agent_ready']} offers), "
          f"call joined p99 {result['call_joined_p99_ms']} ms ({result['offers_at_call_joined']} offers), "
          f"device change p99 {result['device_change_p99_ms']} ms")
    print(f"timer pass (full re-evaluation): p50 {result['full_p50_ms']} ms, p99 {result['full_p99_ms']} ms")
    print(f"pure router: per step ({result['pure_step_fn']}) p99 {result['pure_p99_ms']} ms; "
          f"route() over everything p99 {result['pure_full_p99_ms']} ms; all agents free p50 "
          f"{result['pure_all_free_full_p50_ms']} ms")
    print(f"quiet (all {result['agents']} free, nobody waiting): call joined p99 {result['quiet_call_joined_p99_ms']} ms, "
          f"timer pass p99 {result['quiet_full_p99_ms']} ms")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
