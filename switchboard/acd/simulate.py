"""Discrete-event simulation of the hotline, driven by the production router.

Poisson arrivals spread over provinces and topics, exponential or log-normal
handle times, exponential caller patience (abandonment), a wrap-up after every
call. At every event (arrival, abandonment, agent free, a waiting call crossing
a tier threshold) the simulator calls :func:`switchboard.acd.router.route` with
the waiting calls and the free agents, exactly as the service does.

Policies compared (:data:`POLICIES`):

* ``ours``: the configured tiers (own province -> region -> nation).
* ``per-province``: strict per-province queues (tiers never widen).
* ``pooled``: one group, every agent eligible for every call at once.

Agents ring instantly and always answer; the agent leg's setup time and
no-answers are not modelled. Callers do not call back. Statistics count calls
that arrive after the warm-up.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from switchboard.acd.router import AgentView, RoutingPolicy, Tier, WaitingCall, route

__all__ = ["POLICIES", "Comparison", "SimAgent", "SimConfig", "SimResult", "compare", "make_agents", "policy_for", "simulate"]

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

    def summary(self) -> dict[str, object]:
        return {
            "policy": self.policy, "offered": self.offered, "answered": self.answered,
            "abandoned": self.abandoned, "service_level": round(self.service_level, 4),
            "asa_s": round(self.asa_s, 2), "abandon_rate": round(self.abandon_rate, 4),
            "in_province_share": round(self.in_province_share, 4),
            "worst_province_sl": round(min(self.per_province_sl.values()), 4) if self.per_province_sl else None,
            "by_tier": dict(self.by_tier),
        }


def policy_for(name: str, base: RoutingPolicy) -> RoutingPolicy:
    """The router policy that implements one of :data:`POLICIES`."""
    if name == "ours":
        return base
    if name == "per-province":
        return RoutingPolicy(region_after_s=math.inf, nation_after_s=math.inf,
                             min_proficiency=(1, 1, 1), sticky_days=0, sticky_max_wait_s=0,
                             region_of=base.region_of)
    if name == "pooled":
        return RoutingPolicy(region_after_s=0.0, nation_after_s=0.0, min_proficiency=(1, 1, 1),
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
    waiting: dict[str, WaitingCall] = {}
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
            waiting[cid] = WaitingCall(cid, topic, province, t)
            patience = rng.expovariate(1.0 / config.patience_s) if math.isfinite(config.patience_s) else math.inf
            talk[cid] = handle_time()
            if t >= config.warmup_s:
                counted.add(cid)
                result.offered += 1
                prov_offered[province] += 1
            if math.isfinite(patience):
                push(t + patience, _ABANDON, cid)
            for after in (policy.region_after_s, policy.nation_after_s):
                if 0 < after < math.inf:
                    push(t + after, _TICK, cid)
            push(t + rng.expovariate(config.arrival_rate), _ARRIVAL, "")
        elif kind == _ABANDON:
            if waiting.pop(key, None) is not None:
                talk.pop(key, None)
                if key in counted:
                    result.abandoned += 1
            continue  # an abandonment frees nobody
        elif kind == _TICK:
            if key not in waiting:
                continue
        elif kind == _FREE:
            a = by_id[key]
            free[key] = AgentView(a.agent_id, a.skills, a.province, a.region, t, a.languages)
        if not waiting or not free:
            continue
        result.route_calls += 1
        for asg in route(list(waiting.values()), list(free.values()), t, policy):
            c = waiting.pop(asg.call_id)
            del free[asg.agent_id]
            push(t + talk.pop(asg.call_id) + config.wrap_up_s, _FREE, asg.agent_id)
            if asg.call_id in counted:
                wait = t - c.joined_at
                result.answered += 1
                result.total_wait_answered += wait
                tier = Tier(asg.tier).name.lower()
                result.by_tier[tier] = result.by_tier.get(tier, 0) + 1
                if asg.tier is Tier.PROVINCE:
                    result.answered_in_province += 1
                if wait <= config.service_level_s:
                    result.answered_in_sl += 1
                    prov_in_sl[c.province or ""] = prov_in_sl.get(c.province or "", 0) + 1
        if t > end and not waiting:
            # past the end: nothing new arrives, the remaining events only free agents
            break
    # callers still waiting at the end are neither answered nor abandoned: count them as not in SL
    result.per_province_sl = {p: prov_in_sl[p] / n for p, n in prov_offered.items() if n}
    return result


@dataclass(frozen=True, slots=True)
class Comparison:
    """Every policy over the same callers (same seeds), averaged over the seeds."""

    erlangs: float
    agents: int
    erlang_c_sl: float
    erlang_c_asa_s: float
    results: dict[str, list[SimResult]]

    def mean(self, policy: str, metric: str) -> float:
        values = [float(getattr(r, metric)) for r in self.results[policy]]
        return sum(values) / len(values)

    def table(self) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = []
        for name, runs in self.results.items():
            worst = [min(r.per_province_sl.values()) for r in runs if r.per_province_sl]
            rows.append({
                "policy": name,
                "service_level": round(self.mean(name, "service_level"), 4),
                "asa_s": round(self.mean(name, "asa_s"), 2),
                "abandon_rate": round(self.mean(name, "abandon_rate"), 4),
                "in_province_share": round(self.mean(name, "in_province_share"), 4),
                "worst_province_sl": round(sum(worst) / len(worst), 4) if worst else None,
                "offered": sum(r.offered for r in runs),
            })
        rows.append({"policy": "erlang-c (pooled, no abandonment)", "service_level": round(self.erlang_c_sl, 4),
                     "asa_s": round(self.erlang_c_asa_s, 2), "abandon_rate": 0.0, "in_province_share": None,
                     "worst_province_sl": None, "offered": None})
        return rows


def compare(
    config: SimConfig, agents: Sequence[SimAgent], base: RoutingPolicy, *, seeds: Sequence[int],
    province_weights: Mapping[str, float], topics: Sequence[tuple[str, float]],
    policies: Sequence[str] = POLICIES,
) -> Comparison:
    from switchboard.acd import erlang

    results: dict[str, list[SimResult]] = {p: [] for p in policies}
    for seed in seeds:
        cfg = dataclasses.replace(config, seed=seed)
        for name in policies:
            results[name].append(simulate(cfg, agents, policy_for(name, base), province_weights=province_weights,
                                          topics=topics, name=name))
    n = len(agents)
    return Comparison(
        erlangs=config.erlangs, agents=n,
        erlang_c_sl=erlang.service_level(config.erlangs, n, config.aht_s, config.service_level_s),
        erlang_c_asa_s=erlang.asa(config.erlangs, n, config.aht_s),
        results=results,
    )
