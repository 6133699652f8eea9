"""The router: a pure function of (waiting calls, agents, now, policy) -> assignments.

Rules (ARCHITECTURE.md, "Routing rules"):

* **Order**: higher ``priority`` first, then the longest wait across all topics
  and provinces (``joined_at``), then ``call_id`` so the result is deterministic.
* **Tiers** widen with the wait, re-evaluated on every call: own province, then
  the province's region once the call has waited ``region_after_s``, then the
  whole nation at ``nation_after_s`` (the thresholds are inclusive: at exactly
  ``region_after_s`` the region tier is open). A call with no known province is
  nationwide from the start. Each tier has its own minimum proficiency; an agent
  is eligible when, for some open tier it belongs to, its proficiency in the
  call's topic reaches that tier's minimum. The call's language must be one the
  agent speaks.
* **Agent choice** among the eligible free agents: the closest locality first
  (own province, then region, then elsewhere), then best proficiency, then the
  longest idle, then ``agent_id``. With ``keep_local_cover``, an agent from outside
  the caller's province (region or nation) is chosen first by the *cover* it leaves:
  the agent whose province has the most free agents with a skill in the call's topic
  (counting agents still free at that point of the pass), then as above. So a
  province's last free agent is taken by an outside caller only when no province
  with more cover has an eligible agent.
* **Province preference** (``province_preference_s``, Δ; 0 = off): a pair of a call
  and an agent of the caller's province counts as if the call had joined Δ earlier.
  So a freed agent takes a caller of its own province whose wait is within Δ of the
  oldest call it may take, rather than that oldest call (priority classes still come
  first). With Δ = 0 the order is the plain call order.
* **Sticky agent**: if the caller's last agent served them within
  ``sticky_days``, is logged in (present in ``agents``, offerable or not), has
  the topic skill and speaks the language, the call is reserved for that agent
  while it has waited less than ``sticky_max_wait_s``; after that, normal rules.
* **One offer per agent**: an agent appears in at most one assignment, and only
  offerable agents are assigned.

The assignment is greedy over the eligible (call, agent) pairs in the order of
:func:`pair_key` (the call order, an in-province pair moved Δ earlier, then the agent
choice): the first pair is assigned, the pairs of its call and its agent drop out, and
so on. With Δ = 0 that is: each call in call order takes the best eligible free agent
left. Either way no eligible pair (free agent, waiting call) is ever left over.

:func:`route` is the full re-evaluation (the service's timer and the simulator call it).
:func:`route_changes` gives the same answer after a change (agents became free, calls
joined or widened) in a state where nothing was assignable before, looking only at what
changed; the service calls it at every event, with the indexes its routing book keeps
(``acd/routing_book.py``). :func:`route_agent` and :func:`route_call` are its two
simplest cases (one agent became free, one call arrived). Nothing here does I/O or reads
a clock.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections import deque
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from switchboard.config import RoutingSettings

__all__ = [
    "AgentView",
    "Assignment",
    "RoutingPolicy",
    "Tier",
    "WaitingCall",
    "best_free",
    "call_order_key",
    "eligible",
    "estimate_wait",
    "first_time",
    "pair_key",
    "route",
    "route_agent",
    "route_call",
    "route_changes",
    "sticky_target",
    "threshold",
    "tier_of",
    "widening_times",
]

DAY_S: Final = 86_400.0


class Tier(enum.IntEnum):
    PROVINCE = 0
    REGION = 1
    NATION = 2


@dataclass(frozen=True, slots=True)
class WaitingCall:
    call_id: str
    topic: str
    province: str | None          # province id (geo), None when unknown
    joined_at: float
    priority: int = 0             # higher is served first
    language: str = "vi"
    last_agent_id: str | None = None
    last_agent_at: float | None = None   # when that agent last served this caller


@dataclass(frozen=True, slots=True)
class AgentView:
    agent_id: str
    skills: Mapping[str, int]     # topic -> proficiency 1..5
    province: str
    region: str
    idle_since: float             # when it became ready (smaller = idle longer)
    languages: frozenset[str] = frozenset({"vi"})
    offerable: bool = True        # False: logged in but busy/paused/unreachable (sticky only)


@dataclass(frozen=True, slots=True)
class Assignment:
    call_id: str
    agent_id: str
    tier: Tier                    # the agent's locality relative to the call
    proficiency: int
    sticky: bool = False


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    region_after_s: float = 60.0
    nation_after_s: float = 180.0
    min_proficiency: tuple[int, int, int] = (1, 2, 3)   # per Tier
    sticky_days: float = 7.0
    sticky_max_wait_s: float = 30.0
    region_of: Mapping[str, str] = field(default_factory=dict)  # province id -> region
    # Δ: a call paired with an agent of its province counts as Δ s older (module docstring)
    province_preference_s: float = 0.0
    # choose an agent from outside the caller's province where its own province keeps most cover
    keep_local_cover: bool = False

    def __post_init__(self) -> None:
        if self.region_after_s < 0 or self.nation_after_s < self.region_after_s:
            raise ValueError("need 0 <= region_after_s <= nation_after_s")
        if not 0 <= self.province_preference_s < math.inf:
            raise ValueError("need 0 <= province_preference_s < inf")
        if len(self.min_proficiency) != 3:
            raise ValueError("min_proficiency needs one value per tier")

    @classmethod
    def from_settings(cls, routing: RoutingSettings, region_of: Mapping[str, str]) -> RoutingPolicy:
        """Build from the ``[routing]`` settings and the province -> region map (``geo``)."""
        return cls(
            region_after_s=routing.region_after_s,
            nation_after_s=routing.nation_after_s,
            min_proficiency=(
                routing.min_proficiency_province,
                routing.min_proficiency_region,
                routing.min_proficiency_nation,
            ),
            sticky_days=float(routing.sticky_days),
            sticky_max_wait_s=routing.sticky_max_wait_s,
            region_of=dict(region_of),
            province_preference_s=routing.province_preference_s,
            keep_local_cover=routing.keep_local_cover,
        )


# ----------------------------------------------------------------- rules


def call_order_key(call: WaitingCall) -> tuple[int, float, str]:
    return (-call.priority, call.joined_at, call.call_id)


def pair_key(call: WaitingCall, local: bool, policy: RoutingPolicy) -> tuple[int, float, str, int]:
    """The order in which pairs are assigned, up to the agent choice within one call:
    ``local``: the agent is of the caller's province (then the call counts Δ older)."""
    if local and policy.province_preference_s:
        return (-call.priority, call.joined_at - policy.province_preference_s, call.call_id, 0)
    return (-call.priority, call.joined_at, call.call_id, 0 if local else 1)


def _pair_events(calls: Iterable[WaitingCall], policy: RoutingPolicy) -> Iterable[tuple[WaitingCall, bool]]:
    """``calls`` (in call order) as (call, local) in :func:`pair_key` order: a call's turn for the
    agents of its province (local True; only for a known province), later its turn for all
    agents. With Δ = 0 the two turns are adjacent and the second alone gives the same answer
    (the agent choice puts the caller's province first), so each call has one turn."""
    delta = policy.province_preference_s
    if not delta:
        return zip(calls, itertools.repeat(False))
    return _merged_turns(calls, policy)


def _merged_turns(calls: Iterable[WaitingCall], policy: RoutingPolicy) -> Iterator[tuple[WaitingCall, bool]]:
    ahead: deque[WaitingCall] = deque()   # calls waiting for their turn for all agents
    for call in calls:
        # No turn still to come sorts before this call's local key (a later call joined no
        # earlier, and counts at most Δ earlier), whether or not this call has a local turn:
        # an earlier call's turn for all agents comes out only once below it.
        key = pair_key(call, True, policy)
        while ahead and pair_key(ahead[0], False, policy) < key:
            yield ahead.popleft(), False
        if call.province is not None:
            yield call, True
        ahead.append(call)
    while ahead:
        yield ahead.popleft(), False


def tier_of(call: WaitingCall, now: float, policy: RoutingPolicy) -> Tier:
    """The widest tier open to ``call`` at ``now``."""
    if call.province is None or call.province not in policy.region_of:
        return Tier.NATION
    waited = now - call.joined_at
    if waited >= policy.nation_after_s:
        return Tier.NATION
    if waited >= policy.region_after_s:
        return Tier.REGION
    return Tier.PROVINCE


def first_time(origin: float, wait: float, *, strict: bool = False) -> float:
    """The first clock value ``t`` with ``t - origin >= wait`` (``> wait`` when ``strict``),
    computed in floats as :func:`tier_of` and :func:`sticky_target` compute it (rounding can
    put it a few units of the last place away from ``origin + wait``)."""
    def reached(t: float) -> bool:
        return t - origin > wait if strict else t - origin >= wait
    guess = origin + wait
    if not math.isfinite(guess):
        return guess             # a tier that never opens (strict per-province queues): never
    gap = math.ulp(abs(origin) + abs(wait)) or math.ulp(1.0)
    lo, hi = guess - gap, guess + gap
    while reached(lo):
        lo -= gap
        gap *= 2
    while not reached(hi):
        hi += gap
        gap *= 2
    while True:                  # bisect down to two neighbouring floats: lo not reached, hi reached
        mid = lo + (hi - lo) / 2
        if mid <= lo or mid >= hi:
            return hi
        if reached(mid):
            hi = mid
        else:
            lo = mid


def widening_times(call: WaitingCall, policy: RoutingPolicy) -> list[float]:
    """When ``call``'s eligibility may widen with time alone: its region and nation tiers
    open, its reservation for a sticky agent ends (after ``sticky_max_wait_s``, or just
    after ``sticky_days`` since that agent served the caller). Each is the first clock value
    at which the rules see the change; between two of them nothing about the call changes."""
    times: list[float] = []
    if call.province is not None and call.province in policy.region_of:
        times += [first_time(call.joined_at, policy.region_after_s), first_time(call.joined_at, policy.nation_after_s)]
    if call.last_agent_id is not None and call.last_agent_at is not None:
        times += [first_time(call.joined_at, policy.sticky_max_wait_s),
                  first_time(call.last_agent_at, policy.sticky_days * DAY_S, strict=True)]
    return times


def locality(call: WaitingCall, agent: AgentView, policy: RoutingPolicy) -> Tier:
    if call.province is not None and agent.province == call.province:
        return Tier.PROVINCE
    region = policy.region_of.get(call.province) if call.province is not None else None
    if region is not None and agent.region == region:
        return Tier.REGION
    return Tier.NATION


def threshold(loc: Tier, open_tier: Tier, policy: RoutingPolicy) -> int | None:
    """Minimum proficiency for an agent of locality ``loc`` when tiers up to ``open_tier`` are open."""
    if loc > open_tier:
        return None
    return min(policy.min_proficiency[loc:open_tier + 1])


def sticky_target(
    call: WaitingCall, now: float, policy: RoutingPolicy, present: Mapping[str, AgentView]
) -> AgentView | None:
    """The agent the call is reserved for right now, if any."""
    if call.last_agent_id is None or call.last_agent_at is None:
        return None
    if now - call.joined_at >= policy.sticky_max_wait_s:
        return None
    if now - call.last_agent_at > policy.sticky_days * DAY_S:
        return None
    agent = present.get(call.last_agent_id)
    if agent is None or agent.skills.get(call.topic, 0) < 1 or call.language not in agent.languages:
        return None
    return agent


def eligible(
    call: WaitingCall, agent: AgentView, now: float, policy: RoutingPolicy,
    present: Mapping[str, AgentView] | None = None,
) -> bool:
    """May ``agent`` (if free) take ``call`` now? ``present``: all logged-in agents, for stickiness."""
    if not agent.offerable or call.language not in agent.languages:
        return False
    if present is not None:
        target = sticky_target(call, now, policy, present)
        if target is not None:
            return target.agent_id == agent.agent_id
    prof = agent.skills.get(call.topic, 0)
    need = threshold(locality(call, agent, policy), tier_of(call, now, policy), policy)
    return need is not None and prof >= need


# ----------------------------------------------------------------- the index

_SortKey = tuple[int, float, str]


def _agent_key(prof: int, agent: AgentView) -> _SortKey:
    return (-prof, agent.idle_since, agent.agent_id)


class _Index:
    """Free agents by (topic, language, place), each list best-first."""

    __slots__ = ("_cover", "_free", "by_nation", "by_province", "by_region", "cursor", "taken")

    def __init__(self, agents: Iterable[AgentView]) -> None:
        by_province: dict[tuple[str, str, str], list[tuple[_SortKey, AgentView, int]]] = {}
        by_region: dict[tuple[str, str, str], list[tuple[_SortKey, AgentView, int]]] = {}
        by_nation: dict[tuple[str, str], list[tuple[_SortKey, AgentView, int]]] = {}
        self._free = [a for a in agents if a.offerable]
        # free agents left with a skill in a topic, by (topic, province): the cover rule counts
        # them, built when first needed (a pass that assigns no outside agent never does)
        self._cover: dict[tuple[str, str], int] | None = None
        for agent in self._free:
            for topic, prof in agent.skills.items():
                if prof < 1:
                    continue
                entry = (_agent_key(prof, agent), agent, prof)
                for lang in agent.languages:
                    by_province.setdefault((topic, lang, agent.province), []).append(entry)
                    by_region.setdefault((topic, lang, agent.region), []).append(entry)
                    by_nation.setdefault((topic, lang), []).append(entry)
        self.by_province = {k: _sorted(v) for k, v in by_province.items()}
        self.by_region = {k: _sorted(v) for k, v in by_region.items()}
        self.by_nation = {k: _sorted(v) for k, v in by_nation.items()}
        self.taken: set[str] = set()
        self.cursor: dict[int, int] = {}

    def take(self, agent: AgentView) -> None:
        self.taken.add(agent.agent_id)
        if self._cover is not None:
            for topic, prof in agent.skills.items():
                if prof >= 1:
                    self._cover[(topic, agent.province)] -= 1

    def cover(self, topic: str, province: str) -> int:
        """Free agents left in ``province`` with a skill in ``topic``."""
        if self._cover is None:
            self._cover = {}
            for agent in self._free:
                if agent.agent_id in self.taken:
                    continue
                for t, prof in agent.skills.items():
                    if prof >= 1:
                        self._cover[(t, agent.province)] = self._cover.get((t, agent.province), 0) + 1
        return self._cover.get((topic, province), 0)

    def best(self, call: WaitingCall, open_tier: Tier, policy: RoutingPolicy,
             local_only: bool = False) -> tuple[AgentView, int, Tier] | None:
        """The best eligible free agent left for ``call`` (``local_only``: of its province)."""
        region = policy.region_of.get(call.province) if call.province is not None else None
        lists: list[tuple[Tier, list[tuple[AgentView, int]] | None]] = []
        if call.province is not None:
            lists.append((Tier.PROVINCE, self.by_province.get((call.topic, call.language, call.province))))
        if not local_only:
            if region is not None:
                lists.append((Tier.REGION, self.by_region.get((call.topic, call.language, region))))
            lists.append((Tier.NATION, self.by_nation.get((call.topic, call.language))))
        outside: tuple[tuple[int, int, float, str], AgentView, int, Tier] | None = None
        for loc, items in lists:
            need = threshold(loc, open_tier, policy)
            if need is None or not items:
                continue
            if outside is not None:
                break             # the nearer locality had an eligible agent
            start = self.cursor.get(id(items), 0)
            # skip the agents already taken at the head, for good (taken is permanent)
            while start < len(items) and items[start][0].agent_id in self.taken:
                start += 1
            self.cursor[id(items)] = start
            for i in range(start, len(items)):
                agent, prof = items[i]
                if prof < need:
                    break
                if agent.agent_id in self.taken:
                    continue
                if loc is not Tier.PROVINCE and agent.province == call.province:
                    continue  # considered in the province list
                if loc is Tier.NATION and region is not None and agent.region == region:
                    continue  # considered in the region list
                if loc is Tier.PROVINCE or not policy.keep_local_cover:
                    return agent, prof, loc
                # the cover rule: every eligible agent of this locality is a candidate
                key = (-self.cover(call.topic, agent.province), -prof, agent.idle_since, agent.agent_id)
                if outside is None or key < outside[0]:
                    outside = (key, agent, prof, loc)
        if outside is not None:
            return outside[1], outside[2], outside[3]
        return None


def _sorted(entries: list[tuple[_SortKey, AgentView, int]]) -> list[tuple[AgentView, int]]:
    entries.sort(key=lambda e: e[0])
    return [(a, p) for _, a, p in entries]


# ----------------------------------------------------------------- entry points


def route(
    waiting: Sequence[WaitingCall], agents: Sequence[AgentView], now: float, policy: RoutingPolicy
) -> list[Assignment]:
    """Assign waiting calls to free agents. ``agents``: every logged-in agent (only offerable ones are used)."""
    if not waiting or not any(a.offerable for a in agents):
        return []
    present = {a.agent_id: a for a in agents}
    index = _Index(agents)
    out: list[Assignment] = []
    placed: set[str] = set()
    for call, local in _pair_events(sorted(waiting, key=call_order_key), policy):
        if call.call_id in placed:
            continue
        target = sticky_target(call, now, policy, present)
        if target is not None:
            if local and locality(call, target, policy) is not Tier.PROVINCE:
                continue
            if target.offerable and target.agent_id not in index.taken:
                index.take(target)
                placed.add(call.call_id)
                out.append(Assignment(call.call_id, target.agent_id, locality(call, target, policy),
                                      target.skills.get(call.topic, 0), sticky=True))
            continue
        found = index.best(call, tier_of(call, now, policy), policy, local_only=local)
        if found is not None:
            agent, prof, loc = found
            index.take(agent)
            placed.add(call.call_id)
            out.append(Assignment(call.call_id, agent.agent_id, loc, prof))
    return out


def route_agent(
    agent: AgentView, waiting: Sequence[WaitingCall], now: float, policy: RoutingPolicy,
    present: Mapping[str, AgentView] | None = None, *, presorted: bool = False,
) -> Assignment | None:
    """One agent just became free: the call it takes (None: it stays idle): of the calls it may
    take, the first in :func:`pair_key` order (with Δ = 0: the first in call order).

    Equal to :func:`route` when nothing else was assignable before. ``presorted``:
    ``waiting`` is already in :func:`call_order_key` order (the dispatcher keeps it so).
    """
    if not agent.offerable:
        return None
    calls = waiting if presorted else sorted(waiting, key=call_order_key)
    skills = agent.skills
    delta = policy.province_preference_s
    best: tuple[int, float, str, int] | None = None
    chosen: WaitingCall | None = None
    for call in calls:
        if best is not None and (-call.priority, call.joined_at - delta) > best[:2]:
            break                 # no later call can come first, even in-province
        if call.topic not in skills or call.language not in agent.languages:
            continue
        if eligible(call, agent, now, policy, present):
            key = pair_key(call, call.province is not None and agent.province == call.province, policy)
            if best is None or key < best:
                best, chosen = key, call
            if not delta:
                break
    if chosen is None:
        return None
    return Assignment(chosen.call_id, agent.agent_id, locality(chosen, agent, policy), skills.get(chosen.topic, 0),
                      sticky=chosen.last_agent_id == agent.agent_id
                      and present is not None
                      and sticky_target(chosen, now, policy, present) is not None)


def route_call(
    call: WaitingCall, agents: Sequence[AgentView], now: float, policy: RoutingPolicy,
    present: Mapping[str, AgentView] | None = None,
) -> Assignment | None:
    """One call just arrived: the agent it takes now (None: it waits). Linear in ``agents``."""
    return best_free(call, agents, now, policy, present if present is not None else {})


def best_free(
    call: WaitingCall, free: Iterable[AgentView], now: float, policy: RoutingPolicy,
    present: Mapping[str, AgentView], taken: Collection[str] = (), *, local_only: bool = False,
) -> Assignment | None:
    """The assignment :func:`route` gives ``call`` when it is its turn: ``free``: the offerable
    agents with a skill in the call's topic (others are passed over), ``taken``: agent ids already
    assigned in this pass. The sticky agent alone when the call is reserved for one.
    ``local_only``: only agents of the caller's province (its turn for them, :func:`pair_key`)."""
    target = sticky_target(call, now, policy, present)
    if target is not None:
        if local_only and locality(call, target, policy) is not Tier.PROVINCE:
            return None
        if target.offerable and target.agent_id not in taken:
            return Assignment(call.call_id, target.agent_id, locality(call, target, policy),
                              target.skills.get(call.topic, 0), sticky=True)
        return None
    open_tier = tier_of(call, now, policy)
    cover = policy.keep_local_cover and not local_only
    best: tuple[int, int, float, str] | None = None
    chosen: tuple[AgentView, int, Tier] | None = None
    outside: list[tuple[AgentView, int, Tier]] = []     # eligible, from outside the province (cover)
    if cover and not isinstance(free, Collection):
        free = list(free)             # looked at twice when an outside agent is chosen
    for agent in free:
        prof = agent.skills.get(call.topic, 0)
        if prof < 1 or not agent.offerable or call.language not in agent.languages or agent.agent_id in taken:
            continue
        loc = locality(call, agent, policy)
        if local_only and loc is not Tier.PROVINCE:
            continue
        need = threshold(loc, open_tier, policy)
        if need is None or prof < need:
            continue
        if cover and loc is not Tier.PROVINCE:
            outside.append((agent, prof, loc))
            continue
        key = (int(loc), -prof, agent.idle_since, agent.agent_id)
        if best is None or key < best:
            best, chosen = key, (agent, prof, loc)
    if chosen is None and outside:
        left: dict[str, int] = {}     # free agents left with the topic, by province (the cover)
        for agent in free:
            if agent.skills.get(call.topic, 0) >= 1 and agent.offerable and agent.agent_id not in taken:
                left[agent.province] = left.get(agent.province, 0) + 1
        chosen = min(outside, key=lambda e: (int(e[2]), -left[e[0].province], -e[1], e[0].idle_since,
                                             e[0].agent_id))
    if chosen is None:
        return None
    return Assignment(call.call_id, chosen[0].agent_id, chosen[2], chosen[1])


def route_changes(
    line: Sequence[WaitingCall], free_by_topic: Mapping[str, Mapping[str, AgentView]],
    present: Mapping[str, AgentView], now: float, policy: RoutingPolicy, *,
    new_agents: Iterable[AgentView] = (), new_calls: Iterable[WaitingCall] = (),
) -> list[Assignment]:
    """What :func:`route` assigns after a change, looking only at what changed.

    ``line``: the calls waiting for an agent, in :func:`call_order_key` order;
    ``free_by_topic``: the offerable agents (by id) under each topic they have a skill in;
    ``present``: every logged-in agent (offerable or not); ``new_agents``: agents that
    became offerable (or changed) since the state was last settled; ``new_calls``: calls of
    ``line`` that joined, came back, or whose eligibility widened since then (a tier opened,
    stickiness ended, their sticky agent left).

    Precondition: the state was *settled* before those changes (no call of ``line`` could
    take a free agent: what holds after the previous result was applied). Then the result
    equals ``route(line, present.values(), now, policy)``: a call that is not new can only
    take an agent that is new, so only the new calls and the calls a new agent may take
    are looked at, in :func:`pair_key` order as :func:`route` does, each taking the best
    free agent left (of its province at its in-province turn). Agents in
    ``new_agents`` that are not offerable are ignored.
    """
    fresh = [a for a in new_agents if a.offerable]
    new_calls = list(new_calls)
    new_ids = {c.call_id for c in new_calls}
    candidates: Iterable[WaitingCall]
    if fresh:
        candidates = line
    else:
        candidates = sorted(new_calls, key=call_order_key)
    fresh_topics = {t for a in fresh for t in a.skills}
    fresh_left = {a.agent_id for a in fresh}
    taken: set[str] = set()
    placed: set[str] = set()
    out: list[Assignment] = []
    new_left = len(new_ids)
    for call, local in _pair_events(candidates, policy):
        call_id = call.call_id
        if not local and call_id in new_ids:
            new_left -= 1         # the call's last turn
        if call_id not in placed and (call_id in new_ids or (
                # a call that is not new may only take a new agent (it could take no other before)
                call.topic in fresh_topics and any(
                    a.agent_id not in taken and call.topic in a.skills
                    and (not local or a.province == call.province) and eligible(call, a, now, policy, present)
                    for a in fresh))):
            free = free_by_topic.get(call.topic)
            found = best_free(call, free.values() if free else (), now, policy, present, taken, local_only=local)
            if found is not None:
                taken.add(found.agent_id)
                placed.add(call_id)
                out.append(found)
                fresh_left.discard(found.agent_id)
                if not fresh_left:
                    fresh_topics = set()   # every new agent taken: only new calls are left to look at
        if new_left <= 0 and not fresh_topics:
            break
    return out


def estimate_wait(
    ahead: int, eligible_agents: int, handle_times: Sequence[float], *, default_handle_s: float = 240.0
) -> float | None:
    """Expected wait (s) of a caller with ``ahead`` calls before it that share its agents.

    ``handle_times``: recent talk + wrap-up durations (s); ``eligible_agents``: agents
    logged in now who could take the call. With ``n`` such agents finishing one call
    every ``aht / n`` seconds on average, the caller is served after ``ahead + 1`` of
    them. None when nobody could take the call (the wait is unknown).
    """
    if eligible_agents <= 0:
        return None
    recent = [h for h in handle_times if h > 0 and math.isfinite(h)]
    aht = sum(recent) / len(recent) if recent else default_handle_s
    return (max(ahead, 0) + 1) * aht / eligible_agents
