"""The two routing options that aim at more calls answered in the caller's province:
the province preference (Δ, ``province_preference_s``) and the local cover rule
(``keep_local_cover``). Each decision is checked through every entry point the
service and the simulator use (``route``, ``route_changes``, ``route_agent``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import pytest

from switchboard.acd.router import (
    AgentView,
    Assignment,
    RoutingPolicy,
    Tier,
    WaitingCall,
    call_order_key,
    route,
    route_agent,
    route_changes,
)
from switchboard.config import ConfigError, RoutingSettings, load_settings

REGION_OF = {"ha-noi": "north", "hai-phong": "north", "lao-cai": "north",
             "da-nang": "central", "hue": "central", "ho-chi-minh": "south", "can-tho": "south"}
BASE = RoutingPolicy(region_after_s=15, nation_after_s=30, min_proficiency=(1, 2, 3), region_of=REGION_OF)
NOW = 1000.0


def agent(aid: str, province: str, prof: int = 3, idle: float = 0.0) -> AgentView:
    return AgentView(aid, {"pension": prof}, province, REGION_OF[province], idle)


def call(cid: str, province: str | None, waited: float, priority: int = 0) -> WaitingCall:
    return WaitingCall(cid, "pension", province, NOW - waited, priority)


def pairs(result: Sequence[Assignment]) -> dict[str, str]:
    return {a.call_id: a.agent_id for a in result}


def by_topic(agents: Sequence[AgentView]) -> dict[str, dict[str, AgentView]]:
    out: dict[str, dict[str, AgentView]] = {}
    for a in agents:
        if a.offerable:
            for topic in a.skills:
                out.setdefault(topic, {})[a.agent_id] = a
    return out


def freed(one: AgentView, busy: Sequence[AgentView], calls: list[WaitingCall],
          policy: RoutingPolicy) -> dict[str, str]:
    """``one`` becomes free (the others are busy): what route, route_changes and route_agent give, checked equal."""
    agents = [*busy, one]
    present: Mapping[str, AgentView] = {a.agent_id: a for a in agents}
    line = sorted(calls, key=call_order_key)
    full = route(line, agents, NOW, policy)
    step = route_changes(line, by_topic(agents), present, NOW, policy, new_agents=[one])
    single = route_agent(one, line, NOW, policy, present)
    assert step == full and ([single] if single else []) == full
    return pairs(full)


def arrived(new: WaitingCall, agents: Sequence[AgentView], policy: RoutingPolicy) -> Assignment | None:
    """``new`` joins a line where nothing else is waiting: route and route_changes, checked equal."""
    present = {a.agent_id: a for a in agents}
    full = route([new], list(agents), NOW, policy)
    step = route_changes([new], by_topic(agents), present, NOW, policy, new_calls=[new])
    assert step == full
    return full[0] if full else None


# ----------------------------------------------------------------- province preference (Δ)

def test_a_freed_agent_takes_its_province_caller_within_delta_of_the_oldest() -> None:
    busy = [dataclasses.replace(agent("x", "hue"), offerable=False)]
    hn = agent("hn", "ha-noi")
    calls = [call("old", None, 40.0), call("local", "ha-noi", 32.0)]
    assert freed(hn, busy, calls, BASE) == {"old": "hn"}                 # plain order: the oldest
    delta = dataclasses.replace(BASE, province_preference_s=10.0)
    assert freed(hn, busy, calls, delta) == {"local": "hn"}              # 8 s younger, within Δ = 10 s


def test_outside_the_window_the_oldest_call_still_comes_first() -> None:
    hn = agent("hn", "ha-noi")
    calls = [call("old", None, 40.0), call("local", "ha-noi", 25.0)]    # 15 s younger than the oldest
    assert freed(hn, [], calls, dataclasses.replace(BASE, province_preference_s=10.0)) == {"old": "hn"}


def test_the_priority_class_comes_before_the_province_preference() -> None:
    hn = agent("hn", "ha-noi")
    calls = [call("vip", None, 5.0, priority=1), call("local", "ha-noi", 60.0)]
    assert freed(hn, [], calls, dataclasses.replace(BASE, province_preference_s=100.0)) == {"vip": "hn"}


def test_with_two_agents_free_the_preferred_pair_goes_first_and_no_pair_is_left() -> None:
    """Δ reorders pairs, it does not leave an eligible pair over: the oldest call gets the other agent."""
    hn, hue = agent("hn", "ha-noi", prof=3), agent("hue", "hue", prof=3)
    calls = [call("old", None, 40.0), call("local", "ha-noi", 32.0)]
    line = sorted(calls, key=call_order_key)
    got = route(line, [hn, hue], NOW, dataclasses.replace(BASE, province_preference_s=10.0))
    assert pairs(got) == {"local": "hn", "old": "hue"}
    assert [a.call_id for a in got] == ["local", "old"]
    # plain order: the oldest call first takes the first by agent id (equal proficiency and idle)
    assert pairs(route(sorted(calls, key=call_order_key), [hn, hue], NOW, BASE)) == {"old": "hn", "local": "hue"}


# ----------------------------------------------------------------- local cover

def test_an_outside_agent_comes_from_the_province_with_the_most_cover() -> None:
    """A Hà Nội caller past the region threshold: Hải Phòng's only free agent (proficiency 5)
    stays for Hải Phòng; Lào Cai has two free agents, one of them takes the call."""
    agents = [agent("hp", "hai-phong", prof=5), agent("lc1", "lao-cai", prof=3, idle=20.0),
              agent("lc2", "lao-cai", prof=3, idle=10.0)]
    c = call("c", "ha-noi", 16.0)
    plain = arrived(c, agents, BASE)
    assert plain is not None and plain.agent_id == "hp"
    cover = arrived(c, agents, dataclasses.replace(BASE, keep_local_cover=True))
    assert cover is not None and cover.agent_id == "lc2" and cover.tier is Tier.REGION   # then longest idle


def test_a_caller_with_no_known_province_takes_from_the_best_covered_province() -> None:
    agents = [agent("hue", "hue", prof=5), agent("ct1", "can-tho", prof=3), agent("ct2", "can-tho", prof=4),
              agent("ct3", "can-tho", prof=3, idle=-5.0)]
    c = call("mobile", None, 0.0)
    policy = dataclasses.replace(BASE, keep_local_cover=True)
    got = arrived(c, agents, policy)
    assert got is not None and got.agent_id == "ct2"         # most cover, then best proficiency
    assert arrived(c, agents, BASE).agent_id == "hue"         # type: ignore[union-attr]


def test_cover_never_overrides_locality_or_the_minimums() -> None:
    policy = dataclasses.replace(BASE, keep_local_cover=True)
    own = [agent("hn", "ha-noi", prof=1), agent("sg1", "ho-chi-minh"), agent("sg2", "ho-chi-minh")]
    assert arrived(call("c", "ha-noi", 40.0), own, policy).agent_id == "hn"               # type: ignore[union-attr]
    region = [agent("hp", "hai-phong", prof=2), agent("sg1", "ho-chi-minh"), agent("sg2", "ho-chi-minh")]
    assert arrived(call("c", "ha-noi", 40.0), region, policy).agent_id == "hp"            # type: ignore[union-attr]
    # nation minimum 3: the well-covered province's agents at 2 may not take an unknown-province call
    weak = [agent("ct1", "can-tho", prof=2), agent("ct2", "can-tho", prof=2), agent("hue", "hue", prof=3)]
    assert arrived(call("m", None, 0.0), weak, policy).agent_id == "hue"                  # type: ignore[union-attr]


def test_cover_counts_the_agents_still_free_in_the_same_pass() -> None:
    """Two unknown-province callers, two free in Cần Thơ and one in Huế: the first takes from
    Cần Thơ (2 free), then both provinces have one free left and proficiency decides."""
    agents = [agent("ct1", "can-tho", prof=3), agent("ct2", "can-tho", prof=3, idle=5.0), agent("hue", "hue", prof=5)]
    calls = sorted([call("m1", None, 10.0), call("m2", None, 5.0)], key=call_order_key)
    policy = dataclasses.replace(BASE, keep_local_cover=True)
    got = route(calls, agents, NOW, policy)
    assert pairs(got) == {"m1": "ct1", "m2": "hue"}
    present = {a.agent_id: a for a in agents}
    assert route_changes(calls, by_topic(agents), present, NOW, policy, new_calls=calls) == got


# ----------------------------------------------------------------- settings

def test_the_settings_reach_the_policy() -> None:
    routing = RoutingSettings(province_preference_s=12.5, keep_local_cover=True)
    policy = RoutingPolicy.from_settings(routing, REGION_OF)
    assert policy.province_preference_s == 12.5 and policy.keep_local_cover is True


@pytest.mark.parametrize("value", ["-1", "inf"])
def test_a_bad_province_preference_is_refused_with_its_key(value: str) -> None:
    with pytest.raises(ConfigError, match=r"(?i)province_preference_s"):
        load_settings(environ={"SWITCHBOARD_ROUTING_PROVINCE_PREFERENCE_S": value})
