"""Router rules: unit cases and hypothesis properties against a plain re-statement of the rules."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from switchboard.acd.router import (
    DAY_S,
    AgentView,
    Assignment,
    RoutingPolicy,
    Tier,
    WaitingCall,
    call_order_key,
    estimate_wait,
    first_time,
    route,
    route_agent,
    route_call,
    route_changes,
    widening_times,
)

REGION_OF = {"ha-noi": "north", "hai-phong": "north", "lao-cai": "north",
             "da-nang": "central", "hue": "central", "ho-chi-minh": "south", "can-tho": "south"}
POLICY = RoutingPolicy(region_after_s=60, nation_after_s=180, min_proficiency=(1, 2, 3),
                       sticky_days=7, sticky_max_wait_s=30, region_of=REGION_OF)


def agent(aid: str, province: str, skills: Mapping[str, int], idle: float = 0.0, *,
          langs: frozenset[str] = frozenset({"vi"}), offerable: bool = True) -> AgentView:
    return AgentView(aid, dict(skills), province, REGION_OF[province], idle, langs, offerable)


def call(cid: str, topic: str, province: str | None, joined: float, **kw: object) -> WaitingCall:
    return WaitingCall(cid, topic, province, joined, **kw)  # type: ignore[arg-type]


def pairs(result: Sequence[Assignment]) -> dict[str, str]:
    return {a.call_id: a.agent_id for a in result}


# ----------------------------------------------------------------- unit cases


def test_own_province_first_then_region_then_nation_exactly_at_thresholds() -> None:
    agents = [agent("hp", "hai-phong", {"pension": 3}), agent("sg", "ho-chi-minh", {"pension": 3})]
    c = call("c1", "pension", "ha-noi", joined=1000.0)
    assert route([c], agents, 1000 + 59.999, POLICY) == []
    got = route([c], agents, 1000 + 60.0, POLICY)
    assert pairs(got) == {"c1": "hp"} and got[0].tier is Tier.REGION
    assert route([c], agents[1:], 1000 + 179.999, POLICY) == []
    got = route([c], agents[1:], 1000 + 180.0, POLICY)
    assert pairs(got) == {"c1": "sg"} and got[0].tier is Tier.NATION


def test_min_proficiency_per_tier() -> None:
    weak_region = agent("hp", "hai-phong", {"pension": 1})
    weak_nation = agent("sg", "ho-chi-minh", {"pension": 2})
    c = call("c1", "pension", "ha-noi", joined=0.0)
    assert route([c], [weak_region, weak_nation], 10_000, POLICY) == []
    local_weak = agent("hn", "ha-noi", {"pension": 1})
    assert pairs(route([c], [weak_region, weak_nation, local_weak], 0.0, POLICY)) == {"c1": "hn"}


def test_locality_then_proficiency_then_longest_idle() -> None:
    c = call("c1", "pension", "ha-noi", joined=0.0)
    agents = [
        agent("far5", "ho-chi-minh", {"pension": 5}, idle=0),
        agent("near3", "hai-phong", {"pension": 3}, idle=0),
        agent("home2-new", "ha-noi", {"pension": 2}, idle=50),
        agent("home2-old", "ha-noi", {"pension": 2}, idle=10),
        agent("home1", "ha-noi", {"pension": 1}, idle=0),
    ]
    assert pairs(route([c], agents, 500, POLICY)) == {"c1": "home2-old"}
    assert pairs(route([c], agents[:2], 500, POLICY)) == {"c1": "near3"}


def test_priority_then_global_longest_wait() -> None:
    a = [agent("x", "ha-noi", {"pension": 3, "card": 3})]
    calls = [call("young", "card", "ha-noi", 50.0), call("old", "pension", "ha-noi", 10.0),
             call("vip", "card", "ha-noi", 90.0, priority=1)]
    assert pairs(route(calls, a, 100.0, POLICY)) == {"vip": "x"}
    assert pairs(route(calls[:2], a, 100.0, POLICY)) == {"old": "x"}


def test_province_preference_holds_behind_callers_of_no_province_who_joined_together() -> None:
    """Two callers of no known province and one of Cần Thơ joined at the same time; a Cần Thơ
    agent frees up: with Δ > 0 the Cần Thơ caller takes it. (The merge of turns used to let the
    first no-province caller's turn out as soon as the second came, before the local turn.)"""
    policy = replace(POLICY, province_preference_s=30.0)
    calls = [call("c7", "pension", None, 100.0), call("c8", "pension", None, 100.0),
             call("c9", "pension", "can-tho", 100.0)]
    a = [agent("a2", "can-tho", {"pension": 3})]
    assert pairs(route(calls, a, 300.0, policy)) == {"c9": "a2"}
    assert pairs(route(calls, a, 300.0, POLICY)) == {"c7": "a2"}   # Δ = 0: the call order


def test_language_is_required() -> None:
    c = call("c1", "pension", "ha-noi", 0.0, language="km")
    assert route([c], [agent("vi", "ha-noi", {"pension": 5})], 1000, POLICY) == []
    km = agent("km", "can-tho", {"pension": 4}, langs=frozenset({"vi", "km"}))
    assert pairs(route([c], [km], 1000, POLICY)) == {"c1": "km"}


def test_unknown_province_is_nationwide_at_once() -> None:
    c = call("c1", "pension", None, 0.0)
    assert pairs(route([c], [agent("sg", "ho-chi-minh", {"pension": 3})], 0.0, POLICY)) == {"c1": "sg"}
    assert route([c], [agent("sg", "ho-chi-minh", {"pension": 2})], 0.0, POLICY) == []


def test_sticky_agent_reserved_for_a_bounded_wait_then_released() -> None:
    sticky_busy = agent("s", "hai-phong", {"pension": 2}, offerable=False)
    other = agent("o", "ha-noi", {"pension": 5})
    c = call("c1", "pension", "ha-noi", 100.0, last_agent_id="s", last_agent_at=0.0)
    assert route([c], [sticky_busy, other], 129.9, POLICY) == []
    assert pairs(route([c], [sticky_busy, other], 130.0, POLICY)) == {"c1": "o"}
    # sticky agent free: taken at once even from another province
    sticky_free = agent("s", "hai-phong", {"pension": 2})
    got = route([c], [sticky_free, other], 100.0, POLICY)
    assert pairs(got) == {"c1": "s"} and got[0].sticky
    # too long ago: no preference
    old = call("c2", "pension", "ha-noi", 8 * DAY_S, last_agent_id="s", last_agent_at=0.0)
    assert pairs(route([old], [sticky_free, other], 8 * DAY_S, POLICY)) == {"c2": "o"}
    # sticky agent logged out (absent): no reservation
    assert pairs(route([c], [other], 100.0, POLICY)) == {"c1": "o"}


def test_estimate_wait() -> None:
    assert estimate_wait(0, 0, [100.0]) is None
    assert estimate_wait(3, 2, [100.0, 300.0]) == 4 * 200.0 / 2
    assert estimate_wait(0, 4, []) == 240.0 / 4


# ----------------------------------------------------------------- properties

PROVINCES = sorted(REGION_OF)
TOPICS = ["pension", "card", "benefit"]

agents_st = st.lists(
    st.builds(
        agent,
        aid=st.just(""),
        province=st.sampled_from(PROVINCES),
        skills=st.dictionaries(st.sampled_from(TOPICS), st.integers(1, 5), max_size=3),
        idle=st.floats(0, 500).map(lambda x: round(x, 1)),
        langs=st.sampled_from([frozenset({"vi"}), frozenset({"vi", "en"}), frozenset({"en"})]),
        offerable=st.booleans(),
    ),
    max_size=12,
).map(lambda xs: [AgentView(f"a{i}", a.skills, a.province, a.region, a.idle_since, a.languages, a.offerable)
                  for i, a in enumerate(xs)])

calls_st = st.lists(
    st.builds(
        call,
        cid=st.just(""),
        topic=st.sampled_from(TOPICS),
        province=st.one_of(st.none(), st.sampled_from(PROVINCES)),
        joined=st.sampled_from([0.0, 100.0, 120.0, 150.0, 200.0, 239.0, 240.0, 290.0, 300.0]),
        priority=st.sampled_from([0, 0, 1]),
        language=st.sampled_from(["vi", "vi", "en"]),
        last_agent_id=st.one_of(st.none(), st.sampled_from([f"a{i}" for i in range(4)])),
        last_agent_at=st.sampled_from([0.0, 250.0]),
    ),
    max_size=12,
).map(lambda xs: [WaitingCall(f"c{i}", c.topic, c.province, c.joined_at, c.priority, c.language,
                              c.last_agent_id, c.last_agent_at) for i, c in enumerate(xs)])

POLICIES = st.builds(
    RoutingPolicy,
    region_after_s=st.sampled_from([0.0, 60.0]),
    nation_after_s=st.sampled_from([60.0, 180.0]),
    min_proficiency=st.sampled_from([(1, 2, 3), (1, 1, 1), (2, 2, 4)]),
    sticky_days=st.sampled_from([0.001, 7.0]),
    sticky_max_wait_s=st.sampled_from([0.0, 30.0]),
    region_of=st.just(REGION_OF),
    province_preference_s=st.sampled_from([0.0, 0.0, 30.0, 100.0]),
    keep_local_cover=st.booleans(),
)
NOW = 300.0


def oracle_eligible(c: WaitingCall, a: AgentView, now: float, p: RoutingPolicy,
                    present: Mapping[str, AgentView]) -> bool:
    """The rules written out plainly, independent of the router's code."""
    if not a.offerable or c.language not in a.languages:
        return False
    waited = now - c.joined_at
    s = present.get(c.last_agent_id or "")
    if (s is not None and c.last_agent_at is not None and waited < p.sticky_max_wait_s
            and now - c.last_agent_at <= p.sticky_days * DAY_S
            and s.skills.get(c.topic, 0) >= 1 and c.language in s.languages):
        return a.agent_id == s.agent_id
    prof = a.skills.get(c.topic, 0)
    known = c.province in p.region_of
    opened = 2 if not known or waited >= p.nation_after_s else 1 if waited >= p.region_after_s else 0
    ok = False
    if known and a.province == c.province:
        ok |= prof >= p.min_proficiency[0]
    if known and opened >= 1 and a.region == p.region_of[c.province]:  # type: ignore[index]
        ok |= prof >= p.min_proficiency[1]
    if opened == 2:
        ok |= prof >= p.min_proficiency[2]
    return ok


@settings(max_examples=400, deadline=None)
@given(calls=calls_st, agents=agents_st, policy=POLICIES)
def test_assignments_are_a_maximal_valid_matching(
    calls: list[WaitingCall], agents: list[AgentView], policy: RoutingPolicy
) -> None:
    result = route(calls, agents, NOW, policy)
    present = {a.agent_id: a for a in agents}
    by_call = {c.call_id: c for c in calls}
    # no agent gets two calls, no call two agents
    assert len({a.agent_id for a in result}) == len(result)
    assert len({a.call_id for a in result}) == len(result)
    # every assignment is eligible
    for a in result:
        assert oracle_eligible(by_call[a.call_id], present[a.agent_id], NOW, policy, present)
    # no eligible idle agent is left idle while an eligible call waits
    used_agents = {a.agent_id for a in result}
    served = {a.call_id for a in result}
    for c in calls:
        if c.call_id in served:
            continue
        for ag in agents:
            if ag.agent_id not in used_agents:
                assert not oracle_eligible(c, ag, NOW, policy, present), (c, ag)


@settings(max_examples=300, deadline=None)
@given(calls=calls_st, agents=agents_st, policy=POLICIES)
def test_longest_wait_first_within_a_priority_class(
    calls: list[WaitingCall], agents: list[AgentView], policy: RoutingPolicy
) -> None:
    """If a call is left waiting, no call behind it took an agent it could have had. Behind, for
    that agent: a lower priority class, or the same class and a later join, where a call paired
    with an agent of its own province counts as joined ``province_preference_s`` earlier."""
    result = route(calls, agents, NOW, policy)
    present = {a.agent_id: a for a in agents}
    served = {a.call_id: a.agent_id for a in result}

    def when(c: WaitingCall, ag: AgentView) -> tuple[int, float]:
        local = c.province is not None and ag.province == c.province
        return (c.priority, -(c.joined_at - (policy.province_preference_s if local else 0.0)))

    for waiting in calls:
        if waiting.call_id in served:
            continue
        for c in calls:
            agent_id = served.get(c.call_id)
            if agent_id is None:
                continue
            ag = present[agent_id]
            if when(c, ag) < when(waiting, ag):
                assert not oracle_eligible(waiting, ag, NOW, policy, present)


@settings(max_examples=200, deadline=None)
@given(calls=calls_st, agents=agents_st, policy=POLICIES)
def test_incremental_entry_points_agree_with_full_route(
    calls: list[WaitingCall], agents: list[AgentView], policy: RoutingPolicy
) -> None:
    # settle: what route assigns leaves the line / becomes busy, so nothing is assignable any more
    first = route(calls, agents, NOW, policy)
    used = {a.agent_id for a in first}
    rest_calls = [c for c in calls if c.call_id not in {a.call_id for a in first}]
    rest_agents = [a if a.agent_id not in used else
                   AgentView(a.agent_id, a.skills, a.province, a.region, a.idle_since, a.languages, False)
                   for a in agents]
    present = {a.agent_id: a for a in rest_agents}
    assert route(rest_calls, rest_agents, NOW, policy) == []
    # one more agent becomes free
    newcomer = AgentView("new", {"pension": 3, "card": 4}, "ha-noi", "north", 999.0, frozenset({"vi", "en"}))
    inc = route_agent(newcomer, rest_calls, NOW, policy, {**present, "new": newcomer})
    full = route(rest_calls, [*rest_agents, newcomer], NOW, policy)
    assert ([inc] if inc else []) == full
    # one more call arrives
    c = WaitingCall("new", "card", "hue", NOW - 70.0)
    inc2 = route_call(c, rest_agents, NOW, policy, present)
    full2 = route([*rest_calls, c], rest_agents, NOW, policy)
    assert ([inc2] if inc2 else []) == full2


@settings(max_examples=200, deadline=None)
@given(agents=agents_st, policy=POLICIES, topic=st.sampled_from(TOPICS), province=st.sampled_from(PROVINCES))
def test_eligibility_only_grows_with_wait_until_sticky(
    agents: list[AgentView], policy: RoutingPolicy, topic: str, province: str
) -> None:
    """Without a sticky agent, the set of agents a call may take never shrinks as it waits."""
    c = WaitingCall("c", topic, province, 0.0)
    before: set[str] = set()
    for t in sorted({0.0, max(policy.region_after_s - 0.001, 0.0), policy.region_after_s,
                     max(policy.nation_after_s - 0.001, 0.0), policy.nation_after_s, 10_000.0}):
        now = {a.agent_id for a in agents if oracle_eligible(c, a, t, policy, {})}
        got = {a.agent_id for a in agents if route([c], [a], t, policy)}
        assert got == now
        assert before <= now
        before = now


def _settle(calls: list[WaitingCall], agents: list[AgentView], now: float,
            policy: RoutingPolicy) -> tuple[list[WaitingCall], list[AgentView]]:
    """Apply what ``route`` assigns (calls leave the line, agents are rung): nothing is assignable after."""
    first = route(calls, agents, now, policy)
    used = {a.agent_id for a in first}
    served = {a.call_id for a in first}
    return ([c for c in calls if c.call_id not in served],
            [dataclasses.replace(a, offerable=False) if a.agent_id in used else a for a in agents])


@settings(max_examples=300, deadline=None)
@given(calls=calls_st, agents=agents_st, policy=POLICIES, data=st.data())
def test_route_changes_equals_the_full_pass_after_any_change(
    calls: list[WaitingCall], agents: list[AgentView], policy: RoutingPolicy, data: st.DataObject
) -> None:
    """What the service runs at every event (``route_changes`` on what changed) gives what the
    full pass (``route`` over everything) gives at that moment, whatever changed in between:
    agents freed, rung, logged out; calls joined (back-dated too, as restored callbacks are),
    gone; time passing (tiers opening, stickiness ending, named by ``widening_times``)."""
    t0 = NOW
    line0, agents0 = _settle(calls, agents, t0, policy)
    assert route(line0, agents0, t0, policy) == []
    ids = [a.agent_id for a in agents0]
    t1 = t0 + data.draw(st.sampled_from([0.0, 0.001, 15.0, 30.0, 60.0, 100.0, 180.0, 86.4, 1000.0]), "dt")
    freed = data.draw(st.sets(st.sampled_from(ids)) if ids else st.just(set()), "freed")
    busied = data.draw(st.sets(st.sampled_from(ids)) if ids else st.just(set()), "busied") - freed
    left = data.draw(st.sets(st.sampled_from(ids)) if ids else st.just(set()), "left") - freed
    joined = [dataclasses.replace(c, call_id=f"n{c.call_id}",
                                  joined_at=min(c.joined_at + data.draw(st.sampled_from([0.0, 300.0, 700.0])), t1))
              for c in data.draw(calls_st, "joined")]
    gone = data.draw(st.sets(st.sampled_from([c.call_id for c in line0])) if line0 else st.just(set()), "gone")

    agents1: list[AgentView] = []
    new_agents: list[AgentView] = []
    for a in agents0:
        if a.agent_id in left:
            continue
        if a.agent_id in freed:
            a = dataclasses.replace(a, offerable=True, idle_since=t1)
            new_agents.append(a)
        elif a.agent_id in busied:
            a = dataclasses.replace(a, offerable=False)
        agents1.append(a)
    present1 = {a.agent_id: a for a in agents1}
    line1 = sorted([c for c in line0 if c.call_id not in gone] + joined, key=call_order_key)
    new_calls = [c for c in line1 if c in joined
                 or any(t0 < t <= t1 for t in widening_times(c, policy))
                 or c.last_agent_id in left]
    free_by_topic: dict[str, dict[str, AgentView]] = {}
    for a in agents1:
        if a.offerable:
            for topic in a.skills:
                free_by_topic.setdefault(topic, {})[a.agent_id] = a
    got = route_changes(line1, free_by_topic, present1, t1, policy, new_agents=new_agents, new_calls=new_calls)
    assert got == route(line1, agents1, t1, policy)


def test_route_changes_needs_the_calls_whose_sticky_agent_left() -> None:
    """A call reserved for its last agent waits while that agent is busy; when the agent logs
    out the reservation ends, and only a step that names the call finds the free agent."""
    sticky = agent("s", "hai-phong", {"pension": 2}, offerable=False)
    other = agent("o", "ha-noi", {"pension": 5})
    c = call("c1", "pension", "ha-noi", 100.0, last_agent_id="s", last_agent_at=0.0)
    assert route([c], [sticky, other], 110.0, POLICY) == []            # settled: reserved for s
    free = {"pension": {"o": other}}
    assert route_changes([c], free, {"o": other}, 110.0, POLICY) == []
    got = route_changes([c], free, {"o": other}, 110.0, POLICY, new_calls=[c])
    assert got == route([c], [other], 110.0, POLICY) and pairs(got) == {"c1": "o"}


@settings(max_examples=500, deadline=None)
@given(origin=st.floats(-3e9, 3e9), wait=st.sampled_from([0.0, 15.0, 30.0, 86.4, 604_800.0]) | st.floats(0, 1e6),
       strict=st.booleans())
def test_first_time_is_the_first_float_at_which_the_rules_see_the_wait(origin: float, wait: float,
                                                                      strict: bool) -> None:
    """``widening_times`` rests on it: the step would miss a tier opened one unit of the last place early."""
    def reached(t: float) -> bool:
        return t - origin > wait if strict else t - origin >= wait
    t = first_time(origin, wait, strict=strict)
    assert reached(t) and not reached(math.nextafter(t, -math.inf))


@settings(max_examples=300, deadline=None)
@given(calls=calls_st, agents=agents_st, policy=POLICIES)
def test_route_changes_with_every_call_new_is_route(
    calls: list[WaitingCall], agents: list[AgentView], policy: RoutingPolicy
) -> None:
    """The timer's full pass may take this form (few calls, many free agents): no precondition then."""
    line = sorted(calls, key=call_order_key)
    free: dict[str, dict[str, AgentView]] = {}
    for a in agents:
        if a.offerable:
            for topic in a.skills:
                free.setdefault(topic, {})[a.agent_id] = a
    present = {a.agent_id: a for a in agents}
    assert route_changes(line, free, present, NOW, policy, new_calls=line) == route(line, agents, NOW, policy)
