"""Router decision time: 1,000 agents (34 provinces, 10 skills) and 500 waiting calls.

Measures (a) one decision per event — an agent becomes free (``route_agent``) or a
call arrives (``route_call``) — and (b) one full re-evaluation (``route``, what the
periodic timer runs), with a realistic mix: most agents busy, a few free.

Last line: one JSON object {agents, waiting, p50_ms, p99_ms, full_p50_ms, full_p99_ms, ...}.
Usage: python bench/router.py [--quick] [--agents N] [--waiting N] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from switchboard.acd.router import (
    AgentView,
    RoutingPolicy,
    WaitingCall,
    call_order_key,
    route,
    route_agent,
    route_call,
)
from switchboard.acd.traffic import PROVINCE_WEIGHTS, TOPICS
from switchboard.geo import load_provinces


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def make_world(rng: random.Random, n_agents: int, n_waiting: int, free_share: float, now: float):
    table = load_provinces()
    region_of = table.region_of_map()
    provinces = list(PROVINCE_WEIGHTS)
    weights = [PROVINCE_WEIGHTS[p] for p in provinces]
    topic_w = [w for _, w in TOPICS]
    topics = [t for t, _ in TOPICS]
    agents = []
    for i in range(n_agents):
        prov = rng.choices(provinces, weights)[0]
        k = rng.choice([2, 3, 3, 4])
        skills = {t: rng.randint(1, 5) for t in set(rng.choices(topics, topic_w, k=k))}
        langs = frozenset({"vi", "en"}) if rng.random() < 0.1 else frozenset({"vi"})
        agents.append(AgentView(f"a{i}", skills, prov, region_of[prov], now - rng.uniform(0, 600), langs,
                                offerable=rng.random() < free_share))
    calls = []
    for i in range(n_waiting):
        prov = rng.choices(provinces, weights)[0] if rng.random() > 0.05 else None
        calls.append(WaitingCall(f"c{i}", rng.choices(topics, topic_w)[0], prov, now - rng.uniform(0, 400),
                                 priority=1 if rng.random() < 0.05 else 0,
                                 language="en" if rng.random() < 0.03 else "vi",
                                 last_agent_id=f"a{rng.randrange(n_agents)}" if rng.random() < 0.2 else None,
                                 last_agent_at=now - rng.uniform(0, 10 * 86400)))
    return agents, calls, RoutingPolicy(region_of=region_of)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--waiting", type=int, default=500)
    ap.add_argument("--free-share", type=float, default=0.05, help="share of agents offerable at a time")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    rounds = 200 if args.quick else 2000
    full_rounds = 30 if args.quick else 200
    rng = random.Random(args.seed)
    now = 100_000.0
    agents, calls, policy = make_world(rng, args.agents, args.waiting, args.free_share, now)

    # settle once: the live state is one where nothing is assignable
    first = route(calls, agents, now, policy)
    taken = {a.agent_id for a in first}
    served = {a.call_id for a in first}
    agents = [a if a.agent_id not in taken else
              AgentView(a.agent_id, a.skills, a.province, a.region, a.idle_since, a.languages, False)
              for a in agents]
    calls = sorted((c for c in calls if c.call_id not in served), key=call_order_key)
    present = {a.agent_id: a for a in agents}
    # the free pool a new call is matched against: a share of the agents, as at a busy hour
    free = [AgentView(a.agent_id, a.skills, a.province, a.region, a.idle_since, a.languages, True)
            for a in rng.sample(agents, max(1, int(len(agents) * args.free_share)))]
    all_free = [AgentView(a.agent_id, a.skills, a.province, a.region, a.idle_since, a.languages, True)
                for a in agents]

    agent_ms: list[float] = []
    call_ms: list[float] = []
    call_all_ms: list[float] = []
    for i in range(rounds):
        # an agent becomes free: scan the waiting line (in order) for its first eligible call
        a = agents[rng.randrange(len(agents))]
        a = AgentView(a.agent_id, a.skills, a.province, a.region, now, a.languages, True)
        t0 = time.perf_counter()
        route_agent(a, calls, now, policy, present, presorted=True)
        agent_ms.append((time.perf_counter() - t0) * 1000)
        # a call arrives: pick the best free agent
        c = WaitingCall(f"n{i}", rng.choice(TOPICS)[0], rng.choice(list(PROVINCE_WEIGHTS)), now - rng.uniform(0, 300))
        t0 = time.perf_counter()
        route_call(c, free, now, policy, present)
        call_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        route_call(c, all_free, now, policy, present)
        call_all_ms.append((time.perf_counter() - t0) * 1000)
    event_ms = agent_ms + call_ms

    # the periodic pass: every logged-in agent (the free pool offerable) and the whole waiting line
    free_ids = {a.agent_id for a in free}
    mixed = [AgentView(a.agent_id, a.skills, a.province, a.region, a.idle_since, a.languages,
                       a.agent_id in free_ids) for a in agents]
    full_ms: list[float] = []
    for i in range(full_rounds):
        t0 = time.perf_counter()
        route(calls, mixed, now + i, policy)
        full_ms.append((time.perf_counter() - t0) * 1000)

    # the worst case for a full pass: every agent free and every call waiting
    cold_ms: list[float] = []
    for i in range(max(5, full_rounds // 5)):
        t0 = time.perf_counter()
        n_assigned = len(route(calls, all_free, now + i, policy))
        cold_ms.append((time.perf_counter() - t0) * 1000)

    result = {
        "agents": len(agents),
        "waiting": len(calls),
        "free_agents": len(free),
        "events": len(event_ms),
        "agent_free_p99_ms": round(percentile(agent_ms, 0.99), 4),
        "call_arrives_p99_ms": round(percentile(call_ms, 0.99), 4),
        "call_arrives_all_free_p99_ms": round(percentile(call_all_ms, 0.99), 4),
        "p50_ms": round(statistics.median(event_ms), 4),
        "p99_ms": round(percentile(event_ms, 0.99), 4),
        "full_p50_ms": round(statistics.median(full_ms), 3),
        "full_p99_ms": round(percentile(full_ms, 0.99), 3),
        "all_free_full_p50_ms": round(statistics.median(cold_ms), 3),
        "all_free_assigned": n_assigned,
    }
    print(f"event decisions: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms over {len(event_ms)} events")
    print(f"  agent free p99 {result['agent_free_p99_ms']} ms; call arrives p99 {result['call_arrives_p99_ms']} ms "
          f"({len(free)} free), {result['call_arrives_all_free_p99_ms']} ms (all {len(agents)} free)")
    print(f"full re-evaluation ({len(free)} free agents): p50 {result['full_p50_ms']} ms, p99 {result['full_p99_ms']} ms")
    print(f"full re-evaluation with all {len(agents)} agents free: p50 {result['all_free_full_p50_ms']} ms")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
