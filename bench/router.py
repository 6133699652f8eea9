"""Routing latency of the running service: ``AcdService`` over a fake AMI link, 1,000 agents, 500 waiting.

The world: a busy hour on the day pensions are paid. 1,000 agents over the 34 provinces
(population-weighted), 2-4 of 10 skills each at proficiency 1-5, 10% bilingual; each takes
a call (answered), then 500 callers on the two surge topics (pension, health card) join the
line, back-dated up to 400 s, 20% with a sticky agent; then 50 agents end their calls: those
who can take a caller of the line do, the others stay free.

Timed, for each event, the path the service runs from the call into the ACD to the end of
the routing step it schedules (``AcdService._route_now``), the offer made:

* **agent ready**: an agent on a call hangs up (untimed), then ends wrap-up
  (``AcdService.end_wrap_up``);
* **call joined**: a new caller, joined just now (70% on a surge topic), is handed to
  ``AcdService.enqueue`` (channel variables over the fake AMI link, then the step);
* **device change**: an agent on a call puts the caller on hold and takes them back
  (two ``DeviceStateChange`` events through ``AcdService.handle_event``).

An offer made is answered at once (untimed), so the world stays busy. The AMI link is the
tests' faithful fake (``tests/unit/api/fake_asterisk.py``), which answers every action at
once; everything above it is the product's code. Also timed: the timer's pass
(``AcdService._on_tick``: wrap-up ends, lost offers, the full pass ``route()``), the pure
router where the service calls it (``route_changes`` per step, ``route`` in the timer's
pass), and, side by side in the same run, what the service ran per event before the
routing book (views of every logged-in agent rebuilt, then ``route()`` over everything).
A second, quiet world (every agent free, nobody waiting) times a call joining with 1,000
free agents to choose from.

Every figure is given twice: wall clock, and CPU time of the event loop's thread (on a
machine shared with other work, the wall clock also counts the time others ran).

Last line: one JSON object {agents, p50_ms, p99_ms (the service path, every event),
full_p99_ms (the timer's pass), pure_p99_ms (the router alone, per step), ...}.
Usage: python bench/router.py [--quick] [--agents N] [--waiting N] [--free N] [--rounds N] [--seed S]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
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

from switchboard.acd import agent_state as ast  # noqa: E402
from switchboard.acd import routing_book as book_module  # noqa: E402
from switchboard.acd.agents import AgentRecord  # noqa: E402
from switchboard.acd.router import AgentView, route  # noqa: E402
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


def stamp() -> tuple[float, float]:
    """(wall clock, CPU time of this thread), both in seconds."""
    return time.perf_counter(), time.thread_time()


class Sample:
    """Durations (ms) of one kind of event: wall clock, and CPU time of the event loop's thread
    (on a machine shared with other work, the wall clock also counts the time others ran)."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def add(self, t0: tuple[float, float], t1: tuple[float, float]) -> None:
        self.wall.append((t1[0] - t0[0]) * 1000)
        self.cpu.append((t1[1] - t0[1]) * 1000)

    def extend(self, other: Sample) -> None:
        self.wall += other.wall
        self.cpu += other.cpu


class Timed:
    """Wraps a function and keeps how long each call took in ``sink`` (none: not kept)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.sink: Sample | None = None

    def __call__(self, *args: Any, **kw: Any) -> Any:
        t0 = stamp()
        try:
            return self.fn(*args, **kw)
        finally:
            if self.sink is not None:
                self.sink.add(t0, stamp())


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
        self.step_end = (0.0, 0.0)
        step = self.acd._route_now

        def counted_step() -> None:
            step()
            self.steps += 1
            self.step_end = stamp()

        self.acd._route_now = counted_step   # type: ignore[method-assign]
        self._seq = 0
        self.last_ended = ""

    async def _on_session(self, session: AgiSession) -> None:
        self.sessions[session.uniqueid] = session

    async def settle(self) -> None:
        for _ in range(12):
            await asyncio.sleep(0)

    async def until_step(self, before: int) -> tuple[float, float]:
        """Run the loop until a routing step after ``before`` is over; its end (``stamp``)."""
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

    def on_call(self) -> list[str]:
        return [o.agent_id for o in self.acd.talking.values()]

    def free(self) -> int:
        return sum(1 for s in self.acd.states.values() if s.status.value == "ready" and s.device.value == "NOT_INUSE")

    async def agent_ends_call(self, rng: random.Random) -> None:
        """A random agent on a call hangs up (its caller goes to the survey): wrap-up."""
        legs = list(self.acd.talking.items())
        leg, offer = legs[rng.randrange(len(legs))]
        self.last_ended = offer.agent_id
        self.asterisk.agent_hangs_up(leg)
        await self.settle()

    async def stop(self) -> None:
        for t in list(self.callers):
            t.cancel()
        await asyncio.gather(*self.callers, return_exceptions=True)
        await self.acd.stop()


async def busy_world(args: argparse.Namespace, rng: random.Random) -> World:
    """A busy hour on the day pensions are paid: every agent on a call, a line of
    ``args.waiting`` callers (surge topics) who joined up to ``args.max_wait`` s ago, then
    ``args.free`` agents end their calls: those who can take a caller of the line do
    (they answer), the others stay free."""
    w = World(rng, args.agents)
    await w.acd.start()
    for r in w.records:
        w.acd.ready(r.id)
    await w.settle()
    # the agents' calls: one caller per agent, local and in its own skill, so each takes one agent
    for r in w.records:
        if w.acd.states[r.id].status.value != "ready":
            continue
        number, req = w.new_request(topic=next(iter(r.skills)), province=r.home_province)
        w.enqueue(await w.session_for(number), req)
        await w.settle()
        await w.answer_offers()
    # the line
    while len(w.acd.waiting) < args.waiting:
        number, req = w.new_request(topic=rng.choice(args.surge), waited_s=rng.uniform(0, args.max_wait),
                                    sticky=rng.random() < 0.2)
        w.enqueue(await w.session_for(number), req)
        await w.settle()
        await w.answer_offers()
    for _ in range(args.free):
        await w.agent_ends_call(rng)
        w.acd.end_wrap_up(w.last_ended, disposition="")
        await w.settle()
        await w.answer_offers()
    return w


async def run_busy(args: argparse.Namespace, rng: random.Random) -> dict[str, Any]:
    w = await busy_world(args, rng)
    acd = w.acd
    # the pure router, timed where the routing book calls it: per step, and in the timer's pass
    # (route(), or route_changes with every call new when that is cheaper: the same answer)
    pure_step = Timed(book_module.route_changes)
    pure_full = Timed(book_module.route)
    book_module.route_changes, book_module.route = pure_step, pure_full   # type: ignore[assignment]
    step_sample, full_sample = Sample(), Sample()
    ready, joined, device, tick, rebuilt = Sample(), Sample(), Sample(), Sample(), Sample()
    offers_at_ready = offers_at_join = 0
    free_seen: list[int] = []
    tick_every = max(1, args.rounds // args.full_rounds)
    gc.collect()
    for i in range(args.rounds):
        # an agent on a call hangs up (untimed), then ends wrap-up: "agent ready"
        await w.agent_ends_call(rng)
        before, offers = w.steps, acd.offers_total
        pure_step.sink = step_sample
        t0 = stamp()
        acd.end_wrap_up(w.last_ended, disposition="")
        ready.add(t0, await w.until_step(before))
        pure_step.sink = None
        offers_at_ready += acd.offers_total - offers
        await w.answer_offers()
        # a new caller, joined just now, reaches the line: "call joined"
        topic = rng.choice(args.surge) if rng.random() < args.surge_share else None
        number, req = w.new_request(topic=topic, sticky=rng.random() < 0.2)
        session = await w.session_for(number)
        await w.settle()
        before, offers = w.steps, acd.offers_total
        pure_step.sink = step_sample
        t0 = stamp()
        w.enqueue(session, req)
        joined.add(t0, await w.until_step(before))
        pure_step.sink = None
        offers_at_join += acd.offers_total - offers
        await w.answer_offers()
        # an agent on a call holds the caller and takes them back: two "device change"s
        busy = w.on_call()
        endpoint = acd.records[busy[rng.randrange(len(busy))]].sip_endpoint
        for state in ("ONHOLD", "INUSE"):
            before = w.steps
            pure_step.sink = step_sample
            t0 = stamp()
            acd.handle_event(Event("DeviceStateChange", {"Device": f"PJSIP/{endpoint}", "State": state}))
            device.add(t0, await w.until_step(before))
            pure_step.sink = None
            await w.settle()
        free_seen.append(w.free())
        # the same moment, the routing work the service did per event before the routing book
        t0 = stamp()
        rebuild_and_route(acd, w.region_of)
        rebuilt.add(t0, stamp())
        if i % tick_every == 0:
            # the timer's pass: wrap-up ends, lost offers, every change not seen, the full pass
            pure_full.sink = pure_step.sink = full_sample
            t0 = stamp()
            acd._on_tick()
            tick.add(t0, stamp())
            pure_full.sink = pure_step.sink = None
            await w.answer_offers()
    book_module.route_changes, book_module.route = pure_step.fn, pure_full.fn
    # the pure router over everything with every agent free (a burst: 500 assignments at once)
    calls = list(acd.book.line)
    views = [dataclasses.replace(a, offerable=True) for a in acd.book.present.values()]
    cold = Sample()
    now = acd.clock()
    for _ in range(max(5, args.full_rounds // 10)):
        t0 = stamp()
        n_assigned = len(route(calls, views, now, acd.policy))
        cold.add(t0, stamp())
    result = {
        "agents": args.agents, "waiting_start": args.waiting, "waiting_end": len(acd.waiting),
        "rounds": args.rounds, "free_agents_median": statistics.median(free_seen) if free_seen else 0,
        "free_agents_max": max(free_seen, default=0), "routing_missed": acd.routing_missed,
        "offers_at_agent_ready": offers_at_ready, "offers_at_call_joined": offers_at_join,
    }
    await w.stop()
    events = Sample()
    for one in (ready, joined, device):
        events.extend(one)
    result.update(figures("", events))
    result.update(figures("agent_ready_", ready))
    result.update(figures("call_joined_", joined))
    result.update(figures("device_change_", device))
    result.update(figures("full_", tick))
    result.update(figures("pure_", step_sample))
    result.update(figures("pure_full_", full_sample))
    result.update(figures("rebuild_", rebuilt))
    result["pure_all_free_full_p50_ms"] = ms(cold.wall)
    result["pure_all_free_assigned"] = n_assigned
    return result


def rebuild_and_route(acd: AcdService, region_of: dict[str, str]) -> int:
    """What ``AcdService._route_now`` ran at every event before the routing book (commit
    263986f): overflow notes over the line, views of every logged-in agent, ``route()`` over
    every waiting call (the offers left out: it is timed on a settled state)."""
    now = acd.clock()
    acd.line.note_overflows(now)
    calls = [w.call for w in acd.waiting.values() if w.offer is None and (
        w.session is not None or (w.callback is not None and w.callback.not_before <= now))]
    if not calls:
        return 0
    views = []
    for agent_id, s in acd.states.items():
        if s.status is ast.AgentStatus.LOGGED_OUT:
            continue
        rec = acd.records[agent_id]
        views.append(AgentView(agent_id=agent_id, skills=rec.skills, province=rec.home_province or "",
                               region=region_of.get(rec.home_province or "", ""), idle_since=s.since,
                               languages=frozenset(rec.languages), offerable=ast.offerable(s)))
    return len(route(calls, views, now, acd.policy))


def figures(prefix: str, sample: Sample) -> dict[str, Any]:
    return {f"{prefix}n": len(sample.wall), f"{prefix}p50_ms": ms(sample.wall), f"{prefix}p99_ms": ms(sample.wall, 0.99),
            f"{prefix}cpu_p50_ms": ms(sample.cpu), f"{prefix}cpu_p99_ms": ms(sample.cpu, 0.99)}


async def run_quiet(args: argparse.Namespace, rng: random.Random) -> dict[str, Any]:
    """Every agent free, nobody waiting: each new caller is offered at once (then the agent
    answers, hangs up and is ready again, untimed)."""
    w = World(rng, args.agents)
    acd = w.acd
    await acd.start()
    for r in w.records:
        acd.ready(r.id)
    await w.settle()
    joined, tick = Sample(), Sample()
    gc.collect()
    for _ in range(max(20, args.rounds // 4)):
        number, req = w.new_request()
        session = await w.session_for(number)
        await w.settle()
        before = w.steps
        t0 = stamp()
        w.enqueue(session, req)
        joined.add(t0, await w.until_step(before))
        await w.settle()
        for leg in list(acd.offers):
            agent = acd.offers[leg].agent_id
            w.asterisk.agent_answers(leg)
            await w.settle()
            w.asterisk.agent_hangs_up(leg)
            await w.settle()
            acd.end_wrap_up(agent, disposition="")
            await w.settle()
        t0 = stamp()
        acd._on_tick()
        tick.add(t0, stamp())
    await w.stop()
    return {**figures("quiet_call_joined_", joined), **figures("quiet_full_", tick)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--waiting", type=int, default=500)
    ap.add_argument("--free", type=int, default=50, help="agents ending a call once the line is built")
    ap.add_argument("--rounds", type=int, default=None, help="rounds of 4 events (default 1000; --quick 100)")
    ap.add_argument("--full-rounds", type=int, default=None, help="timer passes timed (default 200; --quick 30)")
    ap.add_argument("--max-wait", type=float, default=400.0, help="the line's callers joined up to this long ago")
    ap.add_argument("--surge", default="social.pension,health.card", help="the topics of the line")
    ap.add_argument("--surge-share", type=float, default=0.7, help="share of new callers on a surge topic")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    args.rounds = args.rounds or (100 if args.quick else 1000)
    args.full_rounds = args.full_rounds or (30 if args.quick else 200)
    args.surge = [t for t in args.surge.split(",") if t]
    rng = random.Random(args.seed)
    t0 = time.monotonic()
    load = os.getloadavg()
    quiet = asyncio.run(run_quiet(args, random.Random(args.seed + 1)))
    gc.collect()
    result = asyncio.run(run_busy(args, rng))
    result.update(quiet)
    result["load_avg_at_start"] = [round(x, 2) for x in load]
    result["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["elapsed_s"] = round(time.monotonic() - t0, 1)
    r = result
    print(f"service path, {r['n']} events ({r['agents']} agents, line {r['waiting_start']} -> {r['waiting_end']}, "
          f"free agents median {r['free_agents_median']}, max {r['free_agents_max']}):")
    for name, key in (("every event", ""), ("agent ready", "agent_ready_"), ("call joined", "call_joined_"),
                      ("device change", "device_change_"), ("timer pass (full)", "full_"),
                      ("pure, per step", "pure_"), ("pure, in the timer pass", "pure_full_"),
                      ("before: views rebuilt + route()", "rebuild_"),
                      ("quiet: call joined (all free)", "quiet_call_joined_"), ("quiet: timer pass", "quiet_full_")):
        print(f"  {name:34} p50 {r[key + 'p50_ms']:8.4f} ms  p99 {r[key + 'p99_ms']:8.4f} ms   "
              f"(CPU p50 {r[key + 'cpu_p50_ms']:.4f}, p99 {r[key + 'cpu_p99_ms']:.4f}; n={r[key + 'n']})")
    print(f"  offers made: {r['offers_at_agent_ready']} at agent ready, {r['offers_at_call_joined']} at call joined; "
          f"assignments only the full pass found: {r['routing_missed']}")
    print(f"  pure route() with every agent free: p50 {r['pure_all_free_full_p50_ms']} ms "
          f"({r['pure_all_free_assigned']} assigned)")
    print(f"  load average at start {r['load_avg_at_start']}, at end {r['load_avg_at_end']}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
