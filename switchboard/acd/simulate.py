"""Discrete-event simulation of the hotline, driven by the production router.

Poisson arrivals spread over provinces and topics, exponential or log-normal
handle times, exponential caller patience (abandonment), a wrap-up after every
call. A share of the callers (``unknown_province_share``: mobile numbers, whose
province the caller id does not give and the caller was not asked) join with no
province; the router sends them nationwide from the start.

At every event the simulator asks the production router
(:mod:`switchboard.acd.router`) what to assign, the way the service's routing
step does: :func:`route_changes` with what the event changed (an arrival or a
call crossing a tier threshold: that call; an agent freed: that agent), over the
line in call order and the free agents by topic. Between events no free agent
may take any waiting call (the router leaves no eligible pair over), which is
that function's precondition, and its answer is what the full :func:`route`
would give in that state (``check_full=True`` makes the simulator verify it on
every event, as a unit test does); it costs a scan instead of rebuilding the
agent index, which makes day-long runs affordable.

Policies compared (:data:`POLICIES`), all with the same proficiency minimums per tier:

* ``ours``: the configured tiers (own province -> region -> nation).
* ``per-province``: strict per-province queues (tiers never widen).
* ``pooled``: one group: every tier open at once (the agent choice still prefers
  the caller's province, then region), so the same problem without the wait
  for a local agent.

Agents ring instantly and always answer; the agent leg's setup time and
no-answers are not modelled. Callers do not call back. Statistics count calls
that arrive after the warm-up; "in-province" is counted over the calls whose
province was known.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from switchboard.acd.router import (
    AgentView,
    Assignment,
    RoutingPolicy,
    Tier,
    WaitingCall,
    route,
    route_changes,
    widening_times,
)

__all__ = ["POLICIES", "Comparison", "SimAgent", "SimConfig", "SimResult", "ci95", "compare", "make_agents", "policy_for",
           "simulate"]

POLICIES = ("ours", "per-province", "pooled")


@dataclass(frozen=True, slots=True)
class SimAgent:
    agent_id: str
    province: str
    region: str
    skills: Mapping[str, int]
    languages: frozenset[str] = frozenset({"vi"})


@dataclass(frozen=True, slots=True)
class SimConfig:
    erlangs: float = 100.0            # offered load = arrival rate x (handle + wrap-up)
    handle_s: float = 285.0           # mean talk time
    wrap_up_s: float = 15.0
    handle_dist: str = "exponential"  # exponential | lognormal
    lognormal_sigma: float = 0.8
    patience_s: float = 300.0         # mean caller patience (exponential); inf: nobody abandons
    duration_s: float = 4 * 3600.0
    warmup_s: float = 1800.0
    service_level_s: float = 20.0
    unknown_province_share: float = 0.0  # callers who join with no province (routed nationwide)
    seed: int = 1

    @property
    def aht_s(self) -> float:
        return self.handle_s + self.wrap_up_s

    @property
    def arrival_rate(self) -> float:
        return self.erlangs / self.aht_s


@dataclass(slots=True)
class SimResult:
    policy: str
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    answered_in_sl: int = 0
    answered_in_province: int = 0
    answered_known: int = 0               # answered calls whose province was known
    answered_in_province_known: int = 0
    total_wait_answered: float = 0.0
    by_tier: dict[str, int] = field(default_factory=dict)
    per_province_sl: dict[str, float] = field(default_factory=dict)
    route_calls: int = 0

    @property
    def service_level(self) -> float:
        return self.answered_in_sl / self.offered if self.offered else 1.0

    @property
    def asa_s(self) -> float:
        return self.total_wait_answered / self.answered if self.answered else 0.0

    @property
    def abandon_rate(self) -> float:
        return self.abandoned / self.offered if self.offered else 0.0

    @property
    def in_province_share(self) -> float:
        return self.answered_in_province / self.answered if self.answered else 0.0

    @property
    def in_province_share_known(self) -> float:
        """Answered in the caller's province, among answered calls whose province was known."""
        return self.answered_in_province_known / self.answered_known if self.answered_known else 0.0

    def summary(self) -> dict[str, object]:
        return {
            "policy": self.policy, "offered": self.offered, "answered": self.answered,
            "abandoned": self.abandoned, "service_level": round(self.service_level, 4),
            "asa_s": round(self.asa_s, 2), "abandon_rate": round(self.abandon_rate, 4),
            "in_province_share": round(self.in_province_share, 4),
            "in_province_share_known": round(self.in_province_share_known, 4),
            "worst_province_sl": round(min(self.per_province_sl.values()), 4) if self.per_province_sl else None,
            "by_tier": dict(self.by_tier),
        }


def policy_for(name: str, base: RoutingPolicy) -> RoutingPolicy:
    """The router policy that implements one of :data:`POLICIES` (``base``'s proficiency minimums)."""
    if name == "ours":
        return base
    if name == "per-province":
        return RoutingPolicy(region_after_s=math.inf, nation_after_s=math.inf,
                             min_proficiency=base.min_proficiency, sticky_days=0, sticky_max_wait_s=0,
                             region_of=base.region_of)  # no province preference: only local agents anyway
    if name == "pooled":
        return RoutingPolicy(region_after_s=0.0, nation_after_s=0.0, min_proficiency=base.min_proficiency,
                             sticky_days=0, sticky_max_wait_s=0, region_of=base.region_of)
    raise ValueError(f"unknown policy {name!r} (known: {', '.join(POLICIES)})")


def allocate(total: int, weights: Mapping[str, float], minimum: int = 1) -> dict[str, int]:
    """Split ``total`` over keys in proportion to ``weights`` (largest remainder), at least ``minimum`` each."""
    keys = list(weights)
    if total < minimum * len(keys):
        raise ValueError(f"{total} agents cannot give {minimum} to each of {len(keys)} provinces")
    out = dict.fromkeys(keys, minimum)
    rest = total - minimum * len(keys)
    wsum = sum(weights.values())
    # share the rest so that each province's total tracks its weight
    target = {k: total * weights[k] / wsum for k in keys}
    need = {k: max(0.0, target[k] - out[k]) for k in keys}
    nsum = sum(need.values()) or 1.0
    exact = {k: rest * need[k] / nsum for k in keys}
    for k in keys:
        out[k] += math.floor(exact[k])
    left = total - sum(out.values())
    for k in sorted(keys, key=lambda k: exact[k] - math.floor(exact[k]), reverse=True)[:left]:
        out[k] += 1
    return out


def make_agents(
    total: int, province_weights: Mapping[str, float], region_of: Mapping[str, str],
    topics: Sequence[str], *, seed: int = 1, proficiencies: Sequence[int] = (1, 2, 3, 3, 4, 4, 4, 5),
) -> list[SimAgent]:
    """Agents staffed in proportion to load, each skilled in every topic at a random proficiency."""
    rng = random.Random(seed)
    agents: list[SimAgent] = []
    minimum = 1 if total >= len(province_weights) else 0  # a province with no agent only when too few
    for province, n in allocate(total, province_weights, minimum).items():
        for _ in range(n):
            skills = {t: rng.choice(proficiencies) for t in topics}
            agents.append(SimAgent(f"a{len(agents) + 1:04d}", province, region_of[province], skills))
    return agents


# event kinds, in the order they are handled at equal times
_FREE, _ABANDON, _ARRIVAL, _TICK = 0, 1, 2, 3


def simulate(
    config: SimConfig, agents: Sequence[SimAgent], policy: RoutingPolicy, *,
    province_weights: Mapping[str, float], topics: Sequence[tuple[str, float]], name: str = "ours",
    check_full: bool = False,
) -> SimResult:
    # every random draw of a caller (province, topic, patience, talk time) comes from one
    # stream in arrival order, so every policy sees the very same callers
    rng = random.Random(config.seed)
    provinces = list(province_weights)
    pweights = [province_weights[p] for p in provinces]
    tnames = [t for t, _ in topics]
    tweights = [w for _, w in topics]
    mu = math.log(config.handle_s) - config.lognormal_sigma ** 2 / 2

    def handle_time() -> float:
        if config.handle_dist == "lognormal":
            return rng.lognormvariate(mu, config.lognormal_sigma)
        return rng.expovariate(1.0 / config.handle_s)

    result = SimResult(policy=name)
    heap: list[tuple[float, int, int, str]] = []
    seq = 0

    def push(t: float, kind: int, key: str) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(heap, (t, kind, seq, key))

    by_id = {a.agent_id: a for a in agents}
    free: dict[str, AgentView] = {
        a.agent_id: AgentView(a.agent_id, a.skills, a.province, a.region, 0.0, a.languages) for a in agents
    }
    # what the service's routing book keeps: the free agents under each topic, every agent present
    free_by_topic: dict[str, dict[str, AgentView]] = {}
    for view in free.values():
        for topic in view.skills:
            free_by_topic.setdefault(topic, {})[view.agent_id] = view
    present = dict(free)
    # in arrival order = the router's call order (one priority class, joined_at rising)
    waiting: dict[str, WaitingCall] = {}
    province_of: dict[str, str] = {}  # the caller's real province (known or not)
    talk: dict[str, float] = {}
    counted: set[str] = set()
    prov_offered: dict[str, int] = dict.fromkeys(provinces, 0)
    prov_in_sl: dict[str, int] = dict.fromkeys(provinces, 0)
    n_calls = 0
    push(rng.expovariate(config.arrival_rate), _ARRIVAL, "")
    end = config.warmup_s + config.duration_s

    while heap:
        t, kind, _, key = heapq.heappop(heap)
        if kind == _ARRIVAL:
            if t > end:
                continue
            n_calls += 1
            cid = f"c{n_calls}"
            province = rng.choices(provinces, pweights)[0]
            topic = rng.choices(tnames, tweights)[0]
            known = rng.random() >= config.unknown_province_share
            waiting[cid] = WaitingCall(cid, topic, province if known else None, t)
            province_of[cid] = province
            patience = rng.expovariate(1.0 / config.patience_s) if math.isfinite(config.patience_s) else math.inf
            talk[cid] = handle_time()
            if t >= config.warmup_s:
                counted.add(cid)
                result.offered += 1
                prov_offered[province] += 1
            if math.isfinite(patience):
                push(t + patience, _ABANDON, cid)
            for at in widening_times(waiting[cid], policy):
                if t < at < math.inf:
                    push(at, _TICK, cid)
            push(t + rng.expovariate(config.arrival_rate), _ARRIVAL, "")
        elif kind == _ABANDON:
            if waiting.pop(key, None) is not None:
                talk.pop(key, None)
                province_of.pop(key, None)
                if key in counted:
                    result.abandoned += 1
            continue  # an abandonment frees nobody
        elif kind == _TICK:
            if key not in waiting:
                continue
        elif kind == _FREE:
            a = by_id[key]
            free[key] = present[key] = AgentView(a.agent_id, a.skills, a.province, a.region, t, a.languages)
            for topic in a.skills:
                free_by_topic.setdefault(topic, {})[key] = free[key]
        if not waiting or not free:
            continue
        result.route_calls += 1
        # only this event can make a pair (module docstring)
        line = list(waiting.values())
        if kind == _FREE:
            assigned = route_changes(line, free_by_topic, present, t, policy, new_agents=[free[key]])
        else:
            assigned = route_changes(line, free_by_topic, present, t, policy,
                                     new_calls=[waiting[key if kind == _TICK else cid]])
        if check_full:
            full = route(list(waiting.values()), list(free.values()), t, policy)
            assert [(x.call_id, x.agent_id) for x in full] == [(x.call_id, x.agent_id) for x in assigned], (
                t, kind, full, assigned)
        for asg in assigned:
            c = waiting.pop(asg.call_id)
            taken = free.pop(asg.agent_id)
            for topic in taken.skills:
                del free_by_topic[topic][asg.agent_id]
            push(t + talk.pop(asg.call_id) + config.wrap_up_s, _FREE, asg.agent_id)
            real_province = province_of.pop(asg.call_id)
            if asg.call_id in counted:
                _count_answer(result, config, asg, t - c.joined_at, real_province, c.province is not None, prov_in_sl)
        if t > end and not waiting:
            # past the end: nothing new arrives, the remaining events only free agents
            break
    # callers still waiting at the end are neither answered nor abandoned: count them as not in SL
    result.per_province_sl = {p: prov_in_sl[p] / n for p, n in prov_offered.items() if n}
    return result


def _count_answer(result: SimResult, config: SimConfig, asg: Assignment, wait: float, province: str, known: bool,
                  prov_in_sl: dict[str, int]) -> None:
    """Count one answered call (``province``: the caller's real one; ``known``: the router knew it)."""
    result.answered += 1
    result.total_wait_answered += wait
    tier = Tier(asg.tier).name.lower()
    result.by_tier[tier] = result.by_tier.get(tier, 0) + 1
    if asg.tier is Tier.PROVINCE:
        result.answered_in_province += 1
    if known:
        result.answered_known += 1
        result.answered_in_province_known += asg.tier is Tier.PROVINCE
    if wait <= config.service_level_s:
        result.answered_in_sl += 1
        prov_in_sl[province] = prov_in_sl.get(province, 0) + 1


# two-sided 95 % quantiles of Student's t by degrees of freedom (beyond 30: 1.96 is close enough)
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95 % confidence interval (Student's t over the runs)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, math.inf
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    t = _T95[n - 2] if n - 2 < len(_T95) else 1.96
    return mean, t * sd / math.sqrt(n)


@dataclass(frozen=True, slots=True)
class Comparison:
    """Every policy over the same callers (same seeds), averaged over the seeds."""

    erlangs: float
    agents: int
    erlang_c_sl: float
    erlang_c_asa_s: float
    results: dict[str, list[SimResult]]

    def mean(self, policy: str, metric: str) -> float:
        return self.ci95(policy, metric)[0]

    def ci95(self, policy: str, metric: str) -> tuple[float, float]:
        """Mean over the seeds and the half-width of its 95 % interval."""
        return ci95([float(getattr(r, metric)) for r in self.results[policy]])

    def table(self) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = []
        for name, runs in self.results.items():
            worst = [min(r.per_province_sl.values()) for r in runs if r.per_province_sl]
            rows.append({
                "policy": name,
                "service_level": round(self.mean(name, "service_level"), 4),
                "sl_ci95": round(self.ci95(name, "service_level")[1], 4),
                "asa_s": round(self.mean(name, "asa_s"), 2),
                "abandon_rate": round(self.mean(name, "abandon_rate"), 4),
                "in_province_share": round(self.mean(name, "in_province_share"), 4),
                "in_province_share_known": round(self.mean(name, "in_province_share_known"), 4),
                "worst_province_sl": round(sum(worst) / len(worst), 4) if worst else None,
                "offered": sum(r.offered for r in runs),
            })
        rows.append({"policy": "erlang-c (pooled, no abandonment)", "service_level": round(self.erlang_c_sl, 4),
                     "sl_ci95": None, "asa_s": round(self.erlang_c_asa_s, 2), "abandon_rate": 0.0,
                     "in_province_share": None, "in_province_share_known": None, "worst_province_sl": None,
                     "offered": None})
        return rows


def _simulate_job(job: tuple[SimConfig, Sequence[SimAgent], RoutingPolicy, Mapping[str, float],
                                Sequence[tuple[str, float]], str]) -> SimResult:
    cfg, agents, policy, weights, topics, name = job
    return simulate(cfg, agents, policy, province_weights=weights, topics=topics, name=name)


def compare(
    config: SimConfig, agents: Sequence[SimAgent], base: RoutingPolicy, *, seeds: Sequence[int],
    province_weights: Mapping[str, float], topics: Sequence[tuple[str, float]],
    policies: Sequence[str] = POLICIES, workers: int = 1,
) -> Comparison:
    """Every policy on every seed; ``workers`` > 1 runs the (independent) runs in that many processes."""
    from switchboard.acd import erlang

    jobs = [(dataclasses.replace(config, seed=seed), name) for seed in seeds for name in policies]
    args = [(cfg, agents, policy_for(name, base), province_weights, topics, name) for cfg, name in jobs]
    if workers > 1 and len(args) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers) as pool:
            runs = list(pool.map(_simulate_job, args))
    else:
        runs = [_simulate_job(a) for a in args]
    results: dict[str, list[SimResult]] = {p: [] for p in policies}
    for (_cfg, name), run in zip(jobs, runs, strict=True):
        results[name].append(run)
    n = len(agents)
    return Comparison(
        erlangs=config.erlangs, agents=n,
        erlang_c_sl=erlang.service_level(config.erlangs, n, config.aht_s, config.service_level_s),
        erlang_c_asa_s=erlang.asa(config.erlangs, n, config.aht_s),
        results=results,
    )
