"""Routing quality: 100 Erlangs over the 34 provinces (population skew), four ways.

(a) our tiered router, (b) strict per-province queues, (c) one pooled group, all
three simulated with the production router (``switchboard simulate``), and (d)
the Erlang-C formula for the pooled group. Staffing: the Erlang-C number of agents
for 80% answered within 20 s, spread over provinces in proportion to load (at
least one each). Also a sweep of the region/nation thresholds for our router.

Last line: one JSON object {erlangs, erlang_c_sl, pooled_sl, ours_sl, per_province_sl,
ours_in_province_share, ours_asa_s, ours_abandon_rate, ...}.
Usage: python bench/routing_quality.py [--quick] [--erlangs 100] [--dist lognormal]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from switchboard.commands.simulate import add_arguments, print_table, run_comparison
from switchboard.config import load_settings


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 seeds x 3 h, short sweep (< 60 s)")
    ap.add_argument("--no-sweep", action="store_true")
    add_arguments(ap)
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.hours = 3, 3.0
    elif "--seeds" not in (argv or sys.argv):
        args.seeds, args.hours = 6, 6.0
    settings = load_settings(environ={})
    t0 = time.perf_counter()
    main_result = run_comparison(args, settings)
    print_table(main_result)

    sweep = []
    if not args.no_sweep:
        points = [(10, 20), (20, 40)] if args.quick else [(5, 15), (10, 20), (15, 30), (20, 40), (30, 90)]
        print("\nour router, threshold sweep (region after / nation after):")
        for region_after, nation_after in points:
            ns = argparse.Namespace(**{**vars(args), "region_after": float(region_after),
                                       "nation_after": float(nation_after), "policy": ["ours"]})
            r = run_comparison(ns, settings)
            row = {"region_after_s": region_after, "nation_after_s": nation_after, "sl": r["ours_sl"],
                   "asa_s": r["ours_asa_s"], "abandon_rate": r["ours_abandon_rate"],
                   "in_province_share": r["ours_in_province_share"]}
            sweep.append(row)
            print(f"  {region_after:>4} s / {nation_after:>4} s: SL {row['sl'] * 100:.1f}%, ASA {row['asa_s']:.1f} s, "
                  f"abandon {row['abandon_rate'] * 100:.1f}%, in-province {row['in_province_share'] * 100:.1f}%")

    keys = ["erlangs", "agents", "aht_s", "handle_dist", "patience_s", "hours", "seeds", "region_after_s",
            "nation_after_s", "erlang_c_sl", "erlang_c_asa_s", "pooled_sl", "ours_sl", "per_province_sl",
            "ours_in_province_share", "ours_asa_s", "ours_abandon_rate", "pooled_asa_s", "per_province_asa_s",
            "pooled_abandon_rate", "per_province_abandon_rate", "pooled_in_province_share"]
    out = {k: main_result[k] for k in keys if k in main_result}
    out["sweep"] = sweep
    out["elapsed_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
