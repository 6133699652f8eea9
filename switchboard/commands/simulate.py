"""``switchboard simulate``: discrete-event simulation of the hotline with the production router.

Compares our tiered routing with strict per-province queues, one pooled group and
the Erlang-C formula for that pooled group, for one load spread over the 34
provinces. Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from typing import Any

from switchboard.config import Settings

__all__ = ["register", "run_comparison"]


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "simulate", help="simulate traffic through the router and compare routing policies",
        description=__doc__)
    add_arguments(p)
    p.set_defaults(func=_run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--erlangs", type=float, default=100.0, help="offered load (default 100)")
    p.add_argument("--agents", type=int, default=0,
                   help="agents on duty (default: Erlang-C staffing for 80%% in the service-level time)")
    p.add_argument("--handle", type=float, default=285.0, help="mean talk time, s (default 285)")
    p.add_argument("--wrap-up", type=float, default=None, help="wrap-up, s (default: routing.wrap_up_s)")
    p.add_argument("--dist", choices=("exponential", "lognormal"), default="exponential")
    p.add_argument("--sigma", type=float, default=0.8, help="log-normal sigma (default 0.8)")
    p.add_argument("--patience", type=float, default=300.0, help="mean caller patience, s; 0 = infinite")
    p.add_argument("--hours", type=float, default=4.0, help="simulated hours per run after warm-up")
    p.add_argument("--warmup", type=float, default=0.5, help="warm-up hours per run, not counted (default 0.5)")
    p.add_argument("--unknown-province-share", type=float, default=0.0,
                   help="share of callers whose province is unknown (mobile, not asked): routed nationwide")
    p.add_argument("--workers", type=int, default=1, help="processes running the seeds (default 1)")
    p.add_argument("--seeds", type=int, default=3, help="runs (seeds) averaged per policy")
    p.add_argument("--region-after", type=float, default=None, help="override routing.region_after_s")
    p.add_argument("--nation-after", type=float, default=None, help="override routing.nation_after_s")
    p.add_argument("--province-preference", type=float, default=None,
                   help="override routing.province_preference_s (Δ: an in-province pair counts as Δ s older)")
    p.add_argument("--local-cover", choices=("on", "off"), default=None,
                   help="override routing.keep_local_cover (an outside agent from the best-covered province)")
    p.add_argument("--policy", action="append", choices=("ours", "per-province", "pooled"),
                   help="only these policies (repeatable; default all)")


def run_comparison(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from switchboard.acd import erlang
    from switchboard.acd.router import RoutingPolicy
    from switchboard.acd.simulate import POLICIES, SimConfig, compare, make_agents
    from switchboard.acd.traffic import PROVINCE_WEIGHTS, TOPIC_NAMES, TOPICS
    from switchboard.geo import load_provinces

    routing = settings.routing
    if args.region_after is not None or args.nation_after is not None:
        region_after = routing.region_after_s if args.region_after is None else args.region_after
        nation_after = routing.nation_after_s if args.nation_after is None else args.nation_after
        routing = dataclasses.replace(routing, region_after_s=region_after,
                                      nation_after_s=max(region_after, nation_after))
    if getattr(args, "province_preference", None) is not None:
        routing = dataclasses.replace(routing, province_preference_s=args.province_preference)
    if getattr(args, "local_cover", None) is not None:
        routing = dataclasses.replace(routing, keep_local_cover=args.local_cover == "on")
    wrap = routing.wrap_up_s if args.wrap_up is None else args.wrap_up
    config = SimConfig(erlangs=args.erlangs, handle_s=args.handle, wrap_up_s=wrap, handle_dist=args.dist,
                       lognormal_sigma=args.sigma, patience_s=args.patience or math.inf,
                       duration_s=args.hours * 3600, warmup_s=args.warmup * 3600,
                       service_level_s=routing.service_level_s,
                       unknown_province_share=args.unknown_province_share)
    n = args.agents or erlang.agents_for_service_level(config.erlangs, config.aht_s, config.service_level_s, 0.8)
    region_of = load_provinces().region_of_map()
    agents = make_agents(n, PROVINCE_WEIGHTS, region_of, TOPIC_NAMES)
    base = RoutingPolicy.from_settings(routing, region_of)
    cmp = compare(config, agents, base, seeds=range(1, args.seeds + 1), province_weights=PROVINCE_WEIGHTS,
                  topics=TOPICS, policies=args.policy or POLICIES, workers=args.workers)
    out: dict[str, Any] = {
        "erlangs": config.erlangs, "agents": n, "aht_s": config.aht_s, "handle_dist": config.handle_dist,
        "patience_s": args.patience or None, "hours": args.hours, "warmup_hours": args.warmup, "seeds": args.seeds,
        "unknown_province_share": args.unknown_province_share,
        "region_after_s": routing.region_after_s, "nation_after_s": routing.nation_after_s,
        "province_preference_s": routing.province_preference_s, "keep_local_cover": routing.keep_local_cover,
        "erlang_c_sl": round(cmp.erlang_c_sl, 4), "erlang_c_asa_s": round(cmp.erlang_c_asa_s, 2),
        "table": cmp.table(),
    }
    for name, key in (("ours", "ours"), ("pooled", "pooled"), ("per-province", "per_province")):
        if name in cmp.results:
            out[f"{key}_sl"] = round(cmp.mean(name, "service_level"), 4)
            out[f"{key}_sl_ci95"] = round(cmp.ci95(name, "service_level")[1], 4)
            out[f"{key}_in_province_share_known"] = round(cmp.mean(name, "in_province_share_known"), 4)
            out[f"{key}_in_province_share_known_ci95"] = round(cmp.ci95(name, "in_province_share_known")[1], 4)
            out[f"{key}_asa_s"] = round(cmp.mean(name, "asa_s"), 2)
            out[f"{key}_abandon_rate"] = round(cmp.mean(name, "abandon_rate"), 4)
            out[f"{key}_in_province_share"] = round(cmp.mean(name, "in_province_share"), 4)
    if "ours" in cmp.results:   # per seed, for paired comparisons (the same callers under two settings)
        out["ours_per_seed"] = [{"sl": r.service_level, "in_province_share_known": r.in_province_share_known}
                                for r in cmp.results["ours"]]
    return out


def _cell(value: object, pct: bool = True) -> str:
    if not isinstance(value, (int, float)):
        return "-"
    return f"{value * 100:.1f}%" if pct else f"{value:.1f}"


def print_table(result: dict[str, Any]) -> None:
    print(f"load {result['erlangs']} Erlangs, {result['agents']} agents, AHT {result['aht_s']} s "
          f"({result['handle_dist']}), patience {result['patience_s']} s, {result['seeds']} x {result['hours']} h; "
          f"tiers: region after {result['region_after_s']} s, nation after {result['nation_after_s']} s, "
          f"province preference {result.get('province_preference_s', 0.0)} s, "
          f"local cover {'on' if result.get('keep_local_cover') else 'off'}")
    print(f"{'policy':36} {'SL 80/20':>9} {'± 95%':>7} {'ASA s':>8} {'abandon':>8} {'in-prov*':>9} "
          f"{'worst prov SL':>14}")
    for row in result["table"]:
        print(f"{row['policy']:36} {_cell(row['service_level']):>9} {_cell(row['sl_ci95']):>7} "
              f"{_cell(row['asa_s'], False):>8} {_cell(row['abandon_rate']):>8} "
              f"{_cell(row['in_province_share_known']):>9} {_cell(row['worst_province_sl']):>14}")
    print("  * in-province: answered by an agent of the caller's province, among calls whose province was known")


def _run(args: argparse.Namespace, settings: Settings) -> int:
    result = run_comparison(args, settings)
    print_table(result)
    print(json.dumps({k: v for k, v in result.items() if k not in ("table", "ours_per_seed")}))
    return 0
