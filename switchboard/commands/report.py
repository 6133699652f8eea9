"""``switchboard report``: care-center figures per hour/day/week and topic/province/agent.

Dates are local (Asia/Ho_Chi_Minh by default): ``--from 2026-01-05 --to 2026-01-12``
covers 5 Jan 00:00 up to (not including) 12 Jan 00:00. Definitions: docs/reports.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from switchboard.config import Settings


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("report", help="call-center report (table, CSV or JSON)")
    p.add_argument("--from", dest="start", help="first local day or time (ISO), default: today")
    p.add_argument("--to", dest="end", help="end, exclusive (ISO), default: start + 1 day")
    p.add_argument("--interval", choices=("halfhour", "hour", "day", "week"), default="day")
    p.add_argument("--by", choices=("topic", "province", "agent"), default=None, help="group rows by")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--ivr", action="store_true", help="IVR drop-off per node instead of queue figures")
    p.add_argument("--tz", default="Asia/Ho_Chi_Minh", help="care-center time zone")
    p.add_argument("--chart", metavar="FILE.png", help="also draw the period at a glance (service level and "
                   "abandon rate by hour, answered by province, IVR funnel) into this PNG (matplotlib)")
    p.set_defaults(func=_report)


def _parse_local(text: str, tz: ZoneInfo) -> datetime:
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return dt


def _report(args: argparse.Namespace, settings: Settings) -> int:
    import asyncpg

    from switchboard.store import reports
    from switchboard.store.errors import TRANSIENT_DB_ERRORS

    tz = ZoneInfo(args.tz)
    start = (_parse_local(args.start, tz) if args.start
             else datetime.combine(datetime.now(tz).date(), time(0), tzinfo=tz))
    end = _parse_local(args.end, tz) if args.end else start + timedelta(days=1)

    async def main() -> str:
        db = settings.database
        conn = await asyncpg.connect(db.dsn, timeout=db.command_timeout)
        try:
            if args.ivr:
                ivr_rows = await reports.fetch_ivr_dropoff(conn, start=start, end=end)
                cls: type[Any] = reports.IvrNodeRow
                rows: list[Any] = list(ivr_rows)
            else:
                rows = list(await reports.fetch_report(
                    conn, start=start, end=end, interval=args.interval, group_by=args.by,
                    service_level_s=settings.routing.service_level_s,
                    short_abandon_s=settings.routing.short_abandon_s, tz=args.tz,
                ))
                cls = reports.ReportRow
            if args.chart:
                await _chart(conn, Path(args.chart), start, end, args.tz, settings)
        finally:
            await conn.close(timeout=5)
        if args.format == "json":
            return reports.to_json(rows)
        if args.format == "csv":
            return reports.to_csv(rows, cls)
        return reports.to_table(rows, cls)

    try:
        print(asyncio.run(main()))
    except (*TRANSIENT_DB_ERRORS, asyncpg.PostgresError) as exc:
        print(f"switchboard report: database error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


async def _chart(conn: Any, path: Path, start: datetime, end: datetime, tz: str, settings: Settings) -> None:
    from switchboard.commands.report_chart import chart_data, draw
    from switchboard.store import reports

    kw: dict[str, Any] = {"start": start, "end": end, "tz": tz, "service_level_s": settings.routing.service_level_s,
                          "short_abandon_s": settings.routing.short_abandon_s}
    hourly = await reports.fetch_report(conn, interval="halfhour", **kw)
    by_province = await reports.fetch_report(conn, interval="week", group_by="province", **kw)
    ivr = await reports.fetch_ivr_dropoff(conn, start=start, end=end)
    draw(chart_data(hourly, by_province, ivr), path, title=f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} {tz}",
         sl_target=settings.routing.service_level_target,
         satisfaction_target=settings.routing.satisfaction_target)
