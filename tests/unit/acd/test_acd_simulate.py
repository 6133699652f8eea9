"""The simulator: agrees with Erlang-C where the formula holds, and runs the real router's rules."""

from __future__ import annotations

import math
import statistics

import pytest

from switchboard.acd import erlang
from switchboard.acd.router import RoutingPolicy
from switchboard.acd.simulate import (
    SimAgent,
    SimConfig,
    allocate,
    ci95,
    compare,
    make_agents,
    policy_for,
    simulate,
)

REG = {"ha-noi": "north", "hai-phong": "north", "ho-chi-minh": "south"}
ONE = {"ha-noi": 1.0}
TOPIC = [("x", 1.0)]


def test_pooled_without_abandonment_matches_erlang_c() -> None:
    agents = make_agents(8, ONE, REG, ["x"])
    sls, asas = [], []
    for seed in range(5):
        cfg = SimConfig(erlangs=5.0, handle_s=60.0, wrap_up_s=0.0, patience_s=math.inf,
                        duration_s=20 * 3600, warmup_s=600, seed=seed)
        r = simulate(cfg, agents, policy_for("pooled", RoutingPolicy(region_of=REG)), province_weights=ONE,
                     topics=TOPIC)
        assert r.abandoned == 0 and r.answered == r.offered > 5000
        sls.append(r.service_level)
        asas.append(r.asa_s)
    assert statistics.mean(sls) == pytest.approx(erlang.service_level(5.0, 8, 60.0, 20.0), abs=0.015)
    assert statistics.mean(asas) == pytest.approx(erlang.asa(5.0, 8, 60.0), rel=0.2)


def test_overflow_waits_for_the_region_threshold() -> None:
    # all callers from Hà Nội, the only agents in Hải Phòng: every answer is a region overflow
    agents = [SimAgent(f"a{i}", "hai-phong", "north", {"x": 3}) for i in range(5)]
    cfg = SimConfig(erlangs=1.0, handle_s=60.0, wrap_up_s=0.0, patience_s=math.inf, duration_s=3600,
                    warmup_s=0, seed=2)
    pol = RoutingPolicy(region_after_s=30.0, nation_after_s=90.0, region_of=REG)
    r = simulate(cfg, agents, pol, province_weights=ONE, topics=TOPIC)
    assert r.answered > 30 and r.by_tier == {"region": r.answered}
    assert r.asa_s >= 30.0 and r.answered_in_sl == 0 and r.in_province_share == 0.0
    # strict per-province queues never answer them; they all abandon
    cfg2 = SimConfig(erlangs=1.0, handle_s=60.0, wrap_up_s=0.0, patience_s=60.0, duration_s=3600, warmup_s=0)
    r2 = simulate(cfg2, agents, policy_for("per-province", pol), province_weights=ONE, topics=TOPIC)
    assert r2.answered == 0 and r2.abandoned > 30


def test_policies_see_the_same_callers_and_pooling_helps() -> None:
    weights = {"ha-noi": 3.0, "hai-phong": 1.0, "ho-chi-minh": 2.0}
    agents = make_agents(14, weights, REG, ["x", "y"], seed=4)
    cfg = SimConfig(erlangs=10.0, handle_s=120.0, wrap_up_s=0.0, duration_s=3 * 3600, warmup_s=600)
    cmp = compare(cfg, agents, RoutingPolicy(region_after_s=10, nation_after_s=20, min_proficiency=(1, 1, 1),
                                             region_of=REG),
                  seeds=[1, 2], province_weights=weights, topics=[("x", 0.5), ("y", 0.5)])
    offered = {name: [r.offered for r in runs] for name, runs in cmp.results.items()}
    assert offered["ours"] == offered["pooled"] == offered["per-province"]
    assert cmp.mean("per-province", "in_province_share") == 1.0
    assert cmp.mean("pooled", "service_level") > cmp.mean("per-province", "service_level")
    assert cmp.mean("ours", "abandon_rate") < cmp.mean("per-province", "abandon_rate")
    assert [row["policy"] for row in cmp.table()][-1].startswith("erlang-c")


def test_lognormal_handle_times_keep_the_mean() -> None:
    agents = make_agents(30, ONE, REG, ["x"])
    cfg = SimConfig(erlangs=10.0, handle_s=100.0, wrap_up_s=0.0, handle_dist="lognormal", lognormal_sigma=1.0,
                    patience_s=math.inf, duration_s=6 * 3600, warmup_s=0)
    r = simulate(cfg, agents, policy_for("pooled", RoutingPolicy(region_of=REG)), province_weights=ONE,
                 topics=TOPIC)
    # with plenty of agents almost nobody waits; offered matches the Poisson rate
    assert r.offered == pytest.approx(6 * 3600 * 0.1, rel=0.05)
    assert r.service_level > 0.99


def test_allocate_and_unknown_policy() -> None:
    out = allocate(108, {"a": 14.0, "b": 0.5, "c": 5.5})
    assert sum(out.values()) == 108 and min(out.values()) >= 1 and out["a"] > out["c"] > out["b"]
    with pytest.raises(ValueError):
        allocate(2, {"a": 1.0, "b": 1.0, "c": 1.0})
    with pytest.raises(ValueError):
        policy_for("random", RoutingPolicy())


def test_simulate_command_prints_a_table_and_json_last(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from switchboard.cli import main

    rc = main(["simulate", "--erlangs", "5", "--agents", "8", "--handle", "60", "--hours", "0.5",
               "--seeds", "1", "--region-after", "10", "--nation-after", "20"])
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    result = json.loads(lines[-1])
    assert result["erlangs"] == 5.0 and result["agents"] == 8 and result["region_after_s"] == 10.0
    for key in ("erlang_c_sl", "pooled_sl", "ours_sl", "per_province_sl", "ours_in_province_share"):
        assert 0.0 <= result[key] <= 1.0
    assert result["per_province_in_province_share"] == 1.0
    assert any(line.startswith("erlang-c") for line in lines)


WEIGHTS3 = {"ha-noi": 3.0, "hai-phong": 1.0, "ho-chi-minh": 2.0}


@pytest.mark.parametrize("name", ["ours", "pooled", "per-province"])
def test_routing_per_event_is_the_full_router(name: str) -> None:
    """The simulator asks route_call / route_agent per event; check_full compares every answer with route()."""
    agents = make_agents(14, WEIGHTS3, REG, ["x", "y"], seed=3)
    cfg = SimConfig(erlangs=12.0, handle_s=120.0, wrap_up_s=10.0, patience_s=90.0, duration_s=2 * 3600,
                    warmup_s=0, unknown_province_share=0.3, seed=5)
    base = RoutingPolicy(region_after_s=10, nation_after_s=25, min_proficiency=(1, 2, 3), region_of=REG)
    r = simulate(cfg, agents, policy_for(name, base), province_weights=WEIGHTS3, topics=[("x", 0.6), ("y", 0.4)],
                 check_full=True)
    assert r.answered > 500 and r.abandoned > 0


def test_callers_of_unknown_province_go_nationwide_and_are_not_counted_in_province() -> None:
    agents = make_agents(14, WEIGHTS3, REG, ["x"], seed=3)
    base = RoutingPolicy(region_after_s=10, nation_after_s=25, region_of=REG)

    def run(share: float) -> object:
        cfg = SimConfig(erlangs=8.0, handle_s=120.0, wrap_up_s=0.0, duration_s=3600, warmup_s=0,
                        unknown_province_share=share, seed=2)
        return simulate(cfg, agents, base, province_weights=WEIGHTS3, topics=TOPIC)

    none_known, all_known, some = run(1.0), run(0.0), run(0.4)
    assert none_known.answered > 100 and none_known.answered_known == 0
    assert none_known.by_tier == {"nation": none_known.answered} and none_known.in_province_share_known == 0.0
    assert all_known.answered_known == all_known.answered
    assert all_known.in_province_share_known == all_known.in_province_share > 0.3
    assert 0 < some.answered_known < some.answered
    assert some.in_province_share_known == some.answered_in_province_known / some.answered_known


def test_every_policy_keeps_the_proficiency_minimums() -> None:
    base = RoutingPolicy(min_proficiency=(1, 3, 4), region_of=REG)
    for name in ("ours", "pooled", "per-province"):
        assert policy_for(name, base).min_proficiency == (1, 3, 4)
    pooled = policy_for("pooled", base)
    assert pooled.region_after_s == pooled.nation_after_s == 0.0


def test_ci95_is_students_t_over_the_runs() -> None:
    mean, half = ci95([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.303 / math.sqrt(3), rel=1e-4)
    assert ci95([0.5])[1] == math.inf
    assert ci95([0.8] * 40) == (pytest.approx(0.8), pytest.approx(0.0))


def test_seeds_in_worker_processes_give_the_same_results() -> None:
    agents = make_agents(14, WEIGHTS3, REG, ["x"], seed=4)
    cfg = SimConfig(erlangs=10.0, handle_s=120.0, wrap_up_s=0.0, duration_s=1800, warmup_s=0,
                    unknown_province_share=0.4)
    base = RoutingPolicy(region_after_s=10, nation_after_s=20, region_of=REG)
    one = compare(cfg, agents, base, seeds=[1, 2], province_weights=WEIGHTS3, topics=TOPIC)
    two = compare(cfg, agents, base, seeds=[1, 2], province_weights=WEIGHTS3, topics=TOPIC, workers=2)
    assert one.table() == two.table()
