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
* our router's region/nation thresholds swept at the main patience, twice: the
  threshold policy alone (``routing.keep_local_cover`` off: an outside agent by
  proficiency) and with the local cover rule (an outside agent from the province with
  the most free agents, the default); then the province preference Δ
  (``routing.province_preference_s``) at the default thresholds. The two (service
  level, in-province) frontiers are drawn to ``bench/routing_frontier.svg``.

Last line: one JSON object {erlangs, patience_s, ours_sl, ours_sl_ci95, pooled_sl, pooled_sl_ci95,
ours_in_province_share_known, patience_sweep, sweep (threshold policy), sweep_cover (local
cover), sweep_preference (Δ), ...}.
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

from switchboard.acd.simulate import ci95
from switchboard.commands.simulate import add_arguments, print_table, run_comparison
from switchboard.config import load_settings

SVG = Path(__file__).resolve().parent / "routing_frontier.svg"
PATIENCES = (0.0, 60.0, 120.0, 300.0)  # 0 = infinite
THRESHOLDS = ((5, 15), (10, 20), (15, 30), (20, 40), (20, 60), (30, 90), (60, 180))
QUICK_THRESHOLDS = ((5, 15), (15, 30), (30, 90))
PREFERENCES = (10.0, 30.0)     # Δ, s (0 is the cover sweep's default point)
QUICK_PREFERENCES = (10.0,)


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


def _sweep_row(r: dict[str, Any], **point: Any) -> dict[str, Any]:
    return {**point, "sl": r["ours_sl"], "sl_ci95": r["ours_sl_ci95"], "asa_s": r["ours_asa_s"],
            "abandon_rate": r["ours_abandon_rate"], "in_province_share_known": r["ours_in_province_share_known"],
            "in_province_share_known_ci95": r["ours_in_province_share_known_ci95"]}


def _paired(r: dict[str, Any], base: dict[str, Any]) -> dict[str, float]:
    """``r`` minus ``base`` seed by seed (the same callers): mean and 95 % half-width of the differences."""
    out: dict[str, float] = {}
    for key, name in (("sl", "sl"), ("in_province_share_known", "in_province")):
        diffs = [a[key] - b[key] for a, b in zip(r["ours_per_seed"], base["ours_per_seed"], strict=True)]
        mean, half = ci95(diffs)
        out[f"{name}_diff"], out[f"{name}_diff_ci95"] = round(mean, 4), round(half, 4)
    return out


def _print_row(label: str, row: dict[str, Any]) -> None:
    print(f"  {label}: SL {_pct(row['sl'], row['sl_ci95'])}, "
          f"ASA {row['asa_s']:.1f} s, abandon {row['abandon_rate'] * 100:.1f}%, in-province (known) "
          f"{_pct(row['in_province_share_known'], row['in_province_share_known_ci95'])}", flush=True)


def threshold_sweep(args: argparse.Namespace, settings: Any, main: dict[str, Any], cover: bool,
                    base: list[dict[str, Any]] | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Our router at each region/nation threshold pair, with the local cover rule on or off
    (the province preference at the main run's value). ``base``: the runs of the same points
    to compare with seed by seed (``vs_threshold_policy``: this minus that). Returns the rows
    and the runs."""
    rows = []
    runs: list[dict[str, Any]] = []
    points = QUICK_THRESHOLDS if args.quick else THRESHOLDS
    if args.thresholds:
        points = tuple(tuple(int(v) for v in p.split("/")) for p in args.thresholds.split(","))  # type: ignore[misc]
    print(f"\nour router, thresholds swept (region after / nation after), local cover {'on' if cover else 'off'}, "
          f"patience {args.patience:.0f} s:")
    for region_after, nation_after in points:
        if ((region_after, nation_after) == (main["region_after_s"], main["nation_after_s"])
                and cover == main["keep_local_cover"]):
            r = main
        else:
            r = _run(args, settings, region_after=float(region_after), nation_after=float(nation_after),
                     local_cover="on" if cover else "off", policy=["ours"])
        row = _sweep_row(r, region_after_s=region_after, nation_after_s=nation_after, keep_local_cover=cover)
        if base is not None:
            row["vs_threshold_policy"] = _paired(r, base[len(runs)])
        rows.append(row)
        runs.append(r)
        _print_row(f"{region_after:>4} s / {nation_after:>4} s", row)
        if base is not None:
            d = row["vs_threshold_policy"]
            print(f"      vs the threshold policy, seed by seed: SL {d['sl_diff'] * 100:+.2f} ± "
                  f"{d['sl_diff_ci95'] * 100:.2f} points, in-province {d['in_province_diff'] * 100:+.2f} ± "
                  f"{d['in_province_diff_ci95'] * 100:.2f} points", flush=True)
    return rows, runs


def preference_sweep(args: argparse.Namespace, settings: Any, main: dict[str, Any]) -> list[dict[str, Any]]:
    """The province preference Δ at the main run's thresholds and cover rule."""
    rows = []
    print(f"\nprovince preference Δ swept, thresholds {main['region_after_s']:.0f} s / {main['nation_after_s']:.0f} s, "
          f"local cover {'on' if main['keep_local_cover'] else 'off'}:")
    for delta in QUICK_PREFERENCES if args.quick else PREFERENCES:
        r = main if delta == main["province_preference_s"] else _run(args, settings, province_preference=delta,
                                                                     policy=["ours"])
        row = _sweep_row(r, province_preference_s=delta, region_after_s=main["region_after_s"],
                         nation_after_s=main["nation_after_s"], keep_local_cover=main["keep_local_cover"])
        row["vs_no_preference"] = _paired(r, main)
        rows.append(row)
        _print_row(f"Δ {delta:>4.0f} s", row)
        d = row["vs_no_preference"]
        print(f"      vs Δ = {main['province_preference_s']:.0f} s, seed by seed: SL {d['sl_diff'] * 100:+.2f} ± "
              f"{d['sl_diff_ci95'] * 100:.2f} points, in-province {d['in_province_diff'] * 100:+.2f} ± "
              f"{d['in_province_diff_ci95'] * 100:.2f} points", flush=True)
    return rows


def draw_frontier(sweeps: list[tuple[str, str, list[dict[str, Any]]]], main: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    for label, fmt, sweep in sweeps:
        xs = [r["sl"] * 100 for r in sweep]
        ys = [r["in_province_share_known"] * 100 for r in sweep]
        ax.errorbar(xs, ys, xerr=[r["sl_ci95"] * 100 for r in sweep],
                    yerr=[r["in_province_share_known_ci95"] * 100 for r in sweep],
                    fmt=fmt, capsize=3, label=label)
        for r, x, y in zip(sweep, xs, ys, strict=True):
            ax.annotate(f"{r['region_after_s']}/{r['nation_after_s']}", (x, y), textcoords="offset points",
                        xytext=(5, 5), fontsize=7)
    for key, label, marker in (("pooled", "pooled (same minimums)", "s"), ("per_province", "per-province", "^")):
        ax.errorbar([main[f"{key}_sl"] * 100], [main[f"{key}_in_province_share_known"] * 100],
                    xerr=[main[f"{key}_sl_ci95"] * 100], fmt=marker, capsize=3, label=label)
    ax.axvline(80, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("answered within 20 s, % of offered (mean ± 95 % CI over seeds)")
    ax.set_ylabel("answered in the caller's province, % (known province)")
    ax.set_title(f"{main['erlangs']:.0f} Erlangs, {main['agents']} agents, patience {main['patience_s']:.0f} s, "
                 f"{main['unknown_province_share']:.0%} province unknown, {main['seeds']} x {main['hours']:.0f} h; "
                 "labels: region / nation after (s)", fontsize=8)
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
    ap.add_argument("--no-patience-sweep", action="store_true", help="skip the service level against patience")
    ap.add_argument("--thresholds", default=None,
                    help="threshold pairs to sweep, e.g. 5/15,15/30 (default: the full list)")
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
    sweep_cover: list[dict[str, Any]] = []
    sweep_preference: list[dict[str, Any]] = []
    if not args.no_sweep:
        if not args.no_patience_sweep:
            psweep = patience_sweep(args, settings, main_result)
        sweep, plain_runs = threshold_sweep(args, settings, main_result, cover=False)
        sweep_cover, _ = threshold_sweep(args, settings, main_result, cover=True, base=plain_runs)
        sweep_preference = preference_sweep(args, settings, main_result)
        if not args.no_svg and not args.quick:
            draw_frontier([("threshold policy (outside agent by proficiency)", "o-", sweep),
                           ("thresholds + local cover (the default)", "D-", sweep_cover)], main_result, SVG)

    keys = ["erlangs", "agents", "aht_s", "handle_dist", "patience_s", "hours", "warmup_hours", "seeds",
            "unknown_province_share", "region_after_s", "nation_after_s", "province_preference_s",
            "keep_local_cover", "erlang_c_sl", "erlang_c_asa_s",
            "ours_sl", "ours_sl_ci95", "pooled_sl", "pooled_sl_ci95", "per_province_sl", "per_province_sl_ci95",
            "ours_in_province_share_known", "ours_in_province_share_known_ci95", "ours_in_province_share",
            "pooled_in_province_share_known", "ours_asa_s", "ours_abandon_rate", "pooled_asa_s",
            "per_province_asa_s", "pooled_abandon_rate", "per_province_abandon_rate"]
    out = {k: main_result[k] for k in keys if k in main_result}
    out["patience_sweep"] = psweep
    out["sweep"] = sweep
    out["sweep_cover"] = sweep_cover
    out["sweep_preference"] = sweep_preference
    out["workers"] = args.workers
    out["elapsed_s"] = round(time.perf_counter() - t0, 1)
    out["main_process_cpu_s"] = round(time.process_time() - cpu0, 1)
    print(json.dumps(out))
    return 0 if all(math.isfinite(v) for v in (out["ours_sl"], out["pooled_sl"])) else 1


if __name__ == "__main__":
    raise SystemExit(main())
