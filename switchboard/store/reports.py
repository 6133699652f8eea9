"""Care-center reports over the ``calls`` table (definitions: docs/reports.md).

A call belongs to the period (and group) in which it *started*, in the care
center's local time. Per period and group:

* offered       calls that joined a queue (reached the ACD)
* answered      offered calls an agent answered
* callbacks     offered, not answered, a callback was requested while waiting
* abandoned     offered, not answered, no callback, ended after waiting >= short threshold
* short_abandoned  the same with a wait < short threshold (listed apart)
* waiting       offered calls not yet ended nor answered (live data only)
  so offered = answered + callbacks + abandoned + short_abandoned + waiting
* service_level answered with wait <= T / offered
* wait          queue join -> answer (answered), queue join -> end (not answered)
* asa           mean wait of answered calls;  avg_wait / p90_wait over offered calls with a wait
  (p90 = nearest-rank, ``percentile_disc(0.9)``)
* aht           mean (talk + wrap-up) over answered calls with a recorded talk time
* transfers     transfer events of the calls in the group
* csat_avg      mean survey score (1-5); csat_response_rate = scored answered / answered
* csat_satisfied  scored answered calls rated 4 or 5 ("satisfied");
  csat_satisfied_rate = csat_satisfied / scored answered (the share a care center's target is set on)

Periods: ``halfhour`` (the 80/20 service level is watched per half-hour), ``hour``, ``day``, ``week``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime, timedelta
from datetime import time as dtime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import asyncpg

Interval = Literal["halfhour", "hour", "day", "week"]
GroupBy = Literal["topic", "province", "agent"] | None

INTERVALS: tuple[str, ...] = ("halfhour", "hour", "day", "week")
GROUPS: dict[str, str] = {"topic": "topic", "province": "province", "agent": "agent_id"}
NONE_GROUP = "(none)"
DEFAULT_TZ = "Asia/Ho_Chi_Minh"


def local_day_bounds(first: date, last: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[first 00:00, the day after last 00:00) in ``tz``, as aware datetimes."""
    return (datetime.combine(first, dtime(0), tzinfo=tz),
            datetime.combine(last + timedelta(days=1), dtime(0), tzinfo=tz))


@dataclass(frozen=True, slots=True)
class ReportRow:
    period: datetime          # local wall-clock start of the hour/day/week (naive, in ``tz``)
    group: str                # topic / province / agent id, or "(all)" / "(none)"
    calls: int                # every call that started (IVR-only calls included)
    offered: int
    answered: int
    answered_in_sl: int
    abandoned: int
    short_abandoned: int
    callbacks: int
    callbacks_reached: int
    waiting: int
    service_level: float | None
    asa_s: float | None
    avg_wait_s: float | None
    p90_wait_s: float | None
    aht_s: float | None
    transfers: int
    csat_avg: float | None
    csat_responses: int
    csat_response_rate: float | None
    csat_satisfied: int = 0
    csat_satisfied_rate: float | None = None


@dataclass(frozen=True, slots=True)
class IvrNodeRow:
    node: str
    visits: int      # calls (in the window) that entered this node at least once
    dropped: int     # calls that hung up in the IVR while at this node (outcome abandoned_ivr)
    drop_rate: float | None


def _report_sql(group_col: str | None) -> str:
    grp = f"COALESCE({group_col}, '{NONE_GROUP}')" if group_col else "'(all)'"
    return f"""
WITH c AS (
    SELECT date_trunc(CASE WHEN $3 = 'halfhour' THEN 'hour' ELSE $3 END, local_ts)
               + CASE WHEN $3 = 'halfhour' THEN interval '30 minutes' * floor(extract(minute FROM local_ts) / 30)
                      ELSE interval '0' END AS period,
           {grp} AS grp,
           queue_joined_at IS NOT NULL AS offered,
           queue_joined_at IS NOT NULL AND answered_at IS NOT NULL AS answered,
           queue_joined_at IS NOT NULL AND answered_at IS NULL AND callback_id IS NOT NULL AS callback,
           queue_joined_at IS NOT NULL AND answered_at IS NULL AND callback_id IS NULL
               AND ended_at IS NOT NULL AS gave_up,
           CASE WHEN queue_joined_at IS NULL THEN NULL
                WHEN answered_at IS NOT NULL
                    THEN COALESCE(queue_wait_s, extract(epoch FROM answered_at - queue_joined_at))
                WHEN ended_at IS NOT NULL THEN extract(epoch FROM ended_at - queue_joined_at)
           END::float8 AS wait_s,
           callback_result, talk_s, wrap_up_s, transfers, survey_score
    FROM calls, LATERAL (SELECT COALESCE(started_at, queue_joined_at, ended_at) AT TIME ZONE $4 AS local_ts) lt
    WHERE COALESCE(started_at, queue_joined_at, ended_at) >= $1
      AND COALESCE(started_at, queue_joined_at, ended_at) < $2
)
SELECT period, grp,
    count(*) AS calls,
    count(*) FILTER (WHERE offered) AS offered,
    count(*) FILTER (WHERE answered) AS answered,
    count(*) FILTER (WHERE answered AND wait_s <= $5) AS answered_in_sl,
    count(*) FILTER (WHERE gave_up AND wait_s >= $6) AS abandoned,
    count(*) FILTER (WHERE gave_up AND wait_s < $6) AS short_abandoned,
    count(*) FILTER (WHERE callback) AS callbacks,
    count(*) FILTER (WHERE callback AND callback_result = 'answered') AS callbacks_reached,
    count(*) FILTER (WHERE offered AND NOT answered AND NOT callback AND NOT gave_up) AS waiting,
    avg(wait_s) FILTER (WHERE answered) AS asa_s,
    avg(wait_s) FILTER (WHERE offered) AS avg_wait_s,
    percentile_disc(0.9) WITHIN GROUP (ORDER BY wait_s) FILTER (WHERE offered AND wait_s IS NOT NULL)
        AS p90_wait_s,
    avg(talk_s + COALESCE(wrap_up_s, 0)) FILTER (WHERE answered AND talk_s IS NOT NULL) AS aht_s,
    COALESCE(sum(transfers), 0) AS transfers,
    avg(survey_score::float8) FILTER (WHERE answered AND survey_score IS NOT NULL) AS csat_avg,
    count(*) FILTER (WHERE answered AND survey_score IS NOT NULL) AS csat_responses,
    count(*) FILTER (WHERE answered AND survey_score >= 4) AS csat_satisfied
FROM c
GROUP BY period, grp
ORDER BY period, grp
"""


def _ratio(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


async def fetch_report(
    conn: asyncpg.Connection,
    *,
    start: datetime,
    end: datetime,
    interval: Interval = "day",
    group_by: GroupBy = None,
    service_level_s: float = 20.0,
    short_abandon_s: float = 5.0,
    tz: str = DEFAULT_TZ,
    timeout: float = 30.0,
) -> list[ReportRow]:
    """Report rows for calls started in [start, end) (aware datetimes)."""
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {INTERVALS}")
    if group_by is not None and group_by not in GROUPS:
        raise ValueError(f"group_by must be one of {tuple(GROUPS)} or None")
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")
    sql = _report_sql(GROUPS[group_by] if group_by else None)
    rows = await conn.fetch(sql, start, end, interval, tz, float(service_level_s), float(short_abandon_s),
                            timeout=timeout)
    out: list[ReportRow] = []
    for r in rows:
        out.append(ReportRow(
            period=r["period"], group=r["grp"], calls=r["calls"], offered=r["offered"],
            answered=r["answered"], answered_in_sl=r["answered_in_sl"], abandoned=r["abandoned"],
            short_abandoned=r["short_abandoned"], callbacks=r["callbacks"],
            callbacks_reached=r["callbacks_reached"], waiting=r["waiting"],
            service_level=_ratio(r["answered_in_sl"], r["offered"]),
            asa_s=r["asa_s"], avg_wait_s=r["avg_wait_s"], p90_wait_s=r["p90_wait_s"], aht_s=r["aht_s"],
            transfers=int(r["transfers"]), csat_avg=r["csat_avg"], csat_responses=r["csat_responses"],
            csat_response_rate=_ratio(r["csat_responses"], r["answered"]),
            csat_satisfied=r["csat_satisfied"], csat_satisfied_rate=_ratio(r["csat_satisfied"], r["csat_responses"]),
        ))
    return out


_IVR_SQL = """
WITH w AS (
    SELECT call_id, ivr_node, outcome FROM calls
    WHERE COALESCE(started_at, queue_joined_at, ended_at) >= $1
      AND COALESCE(started_at, queue_joined_at, ended_at) < $2
),
v AS (
    SELECT e.data->>'node' AS node, count(DISTINCT e.call_id) AS visits
    FROM call_events e JOIN w USING (call_id)
    WHERE e.kind = 'ivr.step' AND e.data ? 'node'
    GROUP BY 1
),
d AS (
    SELECT ivr_node AS node, count(*) AS dropped FROM w
    WHERE outcome = 'abandoned_ivr' AND ivr_node IS NOT NULL
    GROUP BY 1
)
SELECT COALESCE(v.node, d.node) AS node, COALESCE(v.visits, 0) AS visits, COALESCE(d.dropped, 0) AS dropped
FROM v FULL JOIN d ON v.node = d.node
ORDER BY dropped DESC, node
"""


async def fetch_ivr_dropoff(
    conn: asyncpg.Connection, *, start: datetime, end: datetime, timeout: float = 30.0
) -> list[IvrNodeRow]:
    """Per IVR node: calls that visited it and callers who hung up there."""
    rows = await conn.fetch(_IVR_SQL, start, end, timeout=timeout)
    return [IvrNodeRow(r["node"], r["visits"], r["dropped"], _ratio(r["dropped"], r["visits"])) for r in rows]


# -- output ------------------------------------------------------------------


def _plain(row: Any) -> dict[str, Any]:
    d = asdict(row)
    for k, v in d.items():
        if isinstance(v, datetime):
            d[k] = v.isoformat()
        elif isinstance(v, float):
            d[k] = round(v, 4)
    return d


def to_json(rows: list[Any]) -> str:
    return json.dumps([_plain(r) for r in rows], ensure_ascii=False, indent=1)


def to_csv(rows: list[Any], cls: type[Any] = ReportRow) -> str:
    buf = io.StringIO()
    names = [f.name for f in fields(cls)]
    w = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(_plain(r))
    return buf.getvalue()


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M") if (v.hour or v.minute) else v.strftime("%Y-%m-%d")
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.2f}"
    return str(v)


def to_table(rows: list[Any], cls: type[Any] = ReportRow) -> str:
    names = [f.name for f in fields(cls)]
    cells = [[_cell(getattr(r, n)) for n in names] for r in rows]
    widths = [max([len(n)] + [len(c[i]) for c in cells]) for i, n in enumerate(names)]
    lines = ["  ".join(n.rjust(w) for n, w in zip(names, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)
