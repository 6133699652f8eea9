"""Routing quality: 100 Erlangs over the 34 provinces (population skew), four ways, with intervals.

(a) our tiered router, (b) strict per-province queues, (c) one pooled group (every
tier open at once, the same proficiency minimums), all three simulated with the
production router (``switchboard simulate``), and (d) the Erlang-C formula for the
pooled group. Staffing: the Erlang-C number of agents for 80% answered within 20 s,
spread over provinces in proportion to load (at least one each). A share of the
callers (default 40 %: mobile numbers) join with their province unknown and go
nationwide; "in-province" counts only calls whose province was known.

Each figure is the mean over seeds (``--seeds`` runs of ``--hours`` simulated hours
after ``--warmup`` hours) with the half-width of its 95 % interval (Student's t over
the seeds). Three parts:

* the main comparison at caller patience ``--patience`` (exponential, mean 120 s);
* service level against patience (infinite = Erlang-C's own assumption, 60, 120, 300 s);
* our router's region/nation thresholds swept at the main patience: the
  (service level, in-province) frontier, drawn to ``bench/routing_frontier.svg``.

Last line: one JSON object {erlangs, patience_s, ours_sl, ours_sl_ci95, pooled_sl, pooled_sl_ci95,
ours_in_province_share_known, patience_sweep, sweep, ...}.
Usage: python bench/routing_quality.py [--quick] [--seeds N] [--hours H] [--workers W] [--no-svg]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from switchboard.commands.simulate import add_arguments, print_table, run_comparison
from switchboard.config import load_settings

SVG = Path(__file__).resolve().parent / "routing_frontier.svg"
PATIENCES = (0.0, 60.0, 120.0, 300.0)  # 0 = infinite
THRESHOLDS = ((5, 15), (10, 20), (15, 30), (20, 40), (20, 60), (30, 90), (60, 180))
QUICK_THRESHOLDS = ((5, 15), (15, 30), (30, 90))


def _run(args: argparse.Namespace, settings: Any, **changes: Any) -> dict[str, Any]:
    return run_comparison(argparse.Namespace(**{**vars(args), **changes}), settings)


def _pct(v: float, ci: float) -> str:
    return f"{v * 100:5.1f}% ± {ci * 100:.1f}"


def patience_sweep(args: argparse.Namespace, settings: Any, main: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    print("\nservice level against caller patience (mean ± 95 % interval over the seeds):")
    print(f"  {'patience':>9} {'ours SL':>14} {'pooled SL':>14} {'per-province SL':>16} {'ours abandon':>12}")
    for patience in PATIENCES:
        r = main if patience == args.patience else _run(args, settings, patience=patience)
        row = {"patience_s": patience or None}
        for key in ("ours", "pooled", "per_province"):
            row[f"{key}_sl"], row[f"{key}_sl_ci95"] = r[f"{key}_sl"], r[f"{key}_sl_ci95"]
            row[f"{key}_abandon_rate"] = r[f"{key}_abandon_rate"]
            row[f"{key}_in_province_share_known"] = r[f"{key}_in_province_share_known"]
        rows.append(row)
        label = "infinite" if not patience else f"{patience:.0f} s"
        print(f"  {label:>9} {_pct(row['ours_sl'], row['ours_sl_ci95']):>14} "
              f"{_pct(row['pooled_sl'], row['pooled_sl_ci95']):>14} "
              f"{_pct(row['per_province_sl'], row['per_province_sl_ci95']):>16} "
              f"{row['ours_abandon_rate'] * 100:11.1f}%")
    return rows


def threshold_sweep(args: argparse.Namespace, settings: Any, main: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    points = QUICK_THRESHOLDS if args.quick else THRESHOLDS
    print(f"\nour router, thresholds swept (region after / nation after), patience {args.patience:.0f} s:")
    for region_after, nation_after in points:
        if (region_after, nation_after) == (main["region_after_s"], main["nation_after_s"]):
            r = main
        else:
            r = _run(args, settings, region_after=float(region_after), nation_after=float(nation_after),
                     policy=["ours"])
        row = {"region_after_s": region_after, "nation_after_s": nation_after, "sl": r["ours_sl"],
               "sl_ci95": r["ours_sl_ci95"], "asa_s": r["ours_asa_s"], "abandon_rate": r["ours_abandon_rate"],
               "in_province_share_known": r["ours_in_province_share_known"],
               "in_province_share_known_ci95": r["ours_in_province_share_known_ci95"]}
        rows.append(row)
        print(f"  {region_after:>4} s / {nation_after:>4} s: SL {_pct(row['sl'], row['sl_ci95'])}, "
              f"ASA {row['asa_s']:.1f} s, abandon {row['abandon_rate'] * 100:.1f}%, in-province (known) "
              f"{_pct(row['in_province_share_known'], row['in_province_share_known_ci95'])}")
    return rows


def draw_frontier(sweep: list[dict[str, Any]], main: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = [r["sl"] * 100 for r in sweep]
    ys = [r["in_province_share_known"] * 100 for r in sweep]
    ax.errorbar(xs, ys, xerr=[r["sl_ci95"] * 100 for r in sweep],
                yerr=[r["in_province_share_known_ci95"] * 100 for r in sweep],
                fmt="o-", capsize=3, label="ours: region / nation thresholds (s)")
    for r, x, y in zip(sweep, xs, ys, strict=True):
        ax.annotate(f"{r['region_after_s']}/{r['nation_after_s']}", (x, y), textcoords="offset points",
                    xytext=(5, 5), fontsize=8)
    for key, label, marker in (("pooled", "pooled (same minimums)", "s"), ("per_province", "per-province", "^")):
        ax.errorbar([main[f"{key}_sl"] * 100], [main[f"{key}_in_province_share_known"] * 100],
                    xerr=[main[f"{key}_sl_ci95"] * 100], fmt=marker, capsize=3, label=label)
    ax.axvline(80, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("answered within 20 s, % of offered (mean ± 95 % CI over seeds)")
    ax.set_ylabel("answered in the caller's province, % (known province)")
    ax.set_title(f"{main['erlangs']:.0f} Erlangs, {main['agents']} agents, patience {main['patience_s']:.0f} s, "
                 f"{main['unknown_province_share']:.0%} province unknown, {main['seeds']} x {main['hours']:.0f} h",
                 fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)
    print(f"frontier: {path}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 seeds x 6 h, short sweeps (well under a minute)")
    ap.add_argument("--no-sweep", action="store_true")
    ap.add_argument("--no-svg", action="store_true", help="do not redraw bench/routing_frontier.svg")
    add_arguments(ap)
    ap.set_defaults(patience=120.0, unknown_province_share=0.4, workers=os.cpu_count() or 1)
    args = ap.parse_args(argv)
    given = argv if argv is not None else sys.argv[1:]
    if "--seeds" not in given:
        args.seeds = 3 if args.quick else 8
    if "--hours" not in given:
        args.hours = 6.0 if args.quick else 24.0
    if "--warmup" not in given:
        args.warmup = 1.0
    settings = load_settings(environ={})
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    main_result = run_comparison(args, settings)
    print_table(main_result)
    psweep: list[dict[str, Any]] = []
    sweep: list[dict[str, Any]] = []
    if not args.no_sweep:
        psweep = patience_sweep(args, settings, main_result)
        sweep = threshold_sweep(args, settings, main_result)
        if not args.no_svg and not args.quick:
            draw_frontier(sweep, main_result, SVG)

    keys = ["erlangs", "agents", "aht_s", "handle_dist", "patience_s", "hours", "warmup_hours", "seeds",
            "unknown_province_share", "region_after_s", "nation_after_s", "erlang_c_sl", "erlang_c_asa_s",
            "ours_sl", "ours_sl_ci95", "pooled_sl", "pooled_sl_ci95", "per_province_sl", "per_province_sl_ci95",
            "ours_in_province_share_known", "ours_in_province_share_known_ci95", "ours_in_province_share",
            "pooled_in_province_share_known", "ours_asa_s", "ours_abandon_rate", "pooled_asa_s",
            "per_province_asa_s", "pooled_abandon_rate", "per_province_abandon_rate"]
    out = {k: main_result[k] for k in keys if k in main_result}
    out["patience_sweep"] = psweep
    out["sweep"] = sweep
    out["workers"] = args.workers
    out["elapsed_s"] = round(time.perf_counter() - t0, 1)
    out["main_process_cpu_s"] = round(time.process_time() - cpu0, 1)
    print(json.dumps(out))
    return 0 if all(math.isfinite(v) for v in (out["ours_sl"], out["pooled_sl"])) else 1


if __name__ == "__main__":
    raise SystemExit(main())
