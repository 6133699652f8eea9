"""``switchboard report --chart FILE.png``: the day at a glance in one picture (matplotlib).

Three panels from the same report rows as the tables (``store.reports``): service level and
abandon rate by half-hour against the 80 % target, answered calls by province (bars), and the IVR
funnel (calls that reached each node); the title gives the satisfied share against its target.
``chart_data`` is pure (rows in, series out) so the
figures can be checked without looking at pixels; ``draw`` only renders them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ChartData", "chart_data", "draw"]


@dataclass(frozen=True, slots=True)
class ChartData:
    hours: list[tuple[str, float | None, float | None]]   # (HH:MM, service level, abandon rate)
    provinces: list[tuple[str, int]]                       # (province, answered), most first
    funnel: list[tuple[str, int]]                          # (IVR node, calls that reached it), most first
    csat_avg: float | None
    satisfied: float | None = None                         # share of survey scores 4-5


def chart_data(hourly: list[Any], by_province: list[Any], ivr: list[Any]) -> ChartData:
    """Series from ``ReportRow`` (hourly, by province) and ``IvrNodeRow`` lists; the abandon
    rate is ``abandoned / offered`` (short abandons left out, as in docs/reports.md)."""
    hours = [(f"{r.period:%H:%M}", r.service_level, (r.abandoned / r.offered) if r.offered else None)
             for r in hourly]
    answered_by: dict[str, int] = {}
    for r in by_province:          # one row per province and period: summed over the periods
        if r.group != "(none)":
            answered_by[r.group] = answered_by.get(r.group, 0) + r.answered
    provinces = sorted(answered_by.items(), key=lambda p: (-p[1], p[0]))
    funnel = sorted(((r.node, r.visits) for r in ivr), key=lambda n: (-n[1], n[0]))
    answered = [r for r in hourly if r.csat_avg is not None and r.csat_responses]
    total = sum(r.csat_responses for r in answered)
    csat = sum(r.csat_avg * r.csat_responses for r in answered) / total if total else None
    satisfied = sum(r.csat_satisfied for r in hourly) / total if total else None
    return ChartData(hours, provinces, funnel, csat, satisfied)


def draw(data: ChartData, path: Path, *, title: str, sl_target: float = 0.8,
         satisfaction_target: float = 0.9) -> None:
    """Render ``data`` as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4.5))
    labels = [h for h, _, _ in data.hours]
    xs = range(len(labels))
    ax1.plot(xs, [s * 100 if s is not None else float("nan") for _, s, _ in data.hours], "o-", label="service level %")
    ax1.plot(xs, [a * 100 if a is not None else float("nan") for _, _, a in data.hours], "s-", label="abandon rate %")
    ax1.axhline(sl_target * 100, color="green", linestyle="--", label=f"target {sl_target:.0%}")
    ax1.set_xticks(list(xs), labels, rotation=45)
    ax1.set_ylim(0, 105)
    ax1.set_title("Service level and abandon rate by half-hour")
    ax1.legend(fontsize=8)
    ax2.barh([p for p, _ in data.provinces][::-1], [n for _, n in data.provinces][::-1])
    ax2.set_title("Answered calls by province")
    ax3.barh([n for n, _ in data.funnel][::-1], [v for _, v in data.funnel][::-1], color="orange")
    ax3.set_title("IVR funnel: calls reaching each node")
    csat = f"{data.csat_avg:.2f} / 5" if data.csat_avg is not None else "-"
    satisfied = f"{data.satisfied:.0%}" if data.satisfied is not None else "-"
    fig.suptitle(f"{title}   satisfied callers (score 4-5): {satisfied}, target {satisfaction_target:.0%};"
                 f" average score {csat}")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)
