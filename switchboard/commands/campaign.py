"""``switchboard campaign``: outbound campaigns from the command line (docs/campaigns.md).

``list``; ``report ID [--format table|csv|json]`` (results per result and one line per
contact); ``pause|resume|stop ID``; ``validate [PATH]`` (every problem at file:line:column,
exit 1 if any). The same answers as the API's, from ``campaigns.service.PgCampaignService``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

from switchboard.config import Settings


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("campaign", help="outbound campaigns: list, report, pause/resume/stop")
    cmds = p.add_subparsers(dest="campaign_command", metavar="ACTION", required=True)
    cmds.add_parser("list", help="campaigns and their contact counts").set_defaults(func=_run)
    rep = cmds.add_parser("report", help="results of one campaign, per contact")
    rep.add_argument("campaign_id")
    rep.add_argument("--format", choices=("table", "csv", "json"), default="table")
    rep.set_defaults(func=_run)
    for verb in ("pause", "resume", "stop"):
        c = cmds.add_parser(verb, help=f"{verb} a campaign")
        c.add_argument("campaign_id")
        c.set_defaults(func=_run)
    val = cmds.add_parser("validate", help="check campaign files (default: the campaigns folder)")
    val.add_argument("path", nargs="?")
    val.set_defaults(func=_validate)


def _validate(args: argparse.Namespace, settings: Settings) -> int:
    from switchboard.campaigns.loader import load_campaign, load_campaigns
    from switchboard.ivr.yaml_marks import FlowLoadError

    flows = {p.stem for p in Path(settings.paths.flows_dir).glob("*.yaml") if p.stem != "entries"}
    path = Path(args.path or settings.campaigns.campaigns_dir)
    if not path.exists():
        print(f"{path}: no such file or folder", file=sys.stderr)
        return 2
    try:
        found = load_campaigns(path, flows=flows) if path.is_dir() else [load_campaign(path, flows=flows)]
    except FlowLoadError as exc:
        for e in exc.errors:
            print(e)
        return 1
    print(f"{path}: ok ({', '.join(c.campaign_id for c in found) or 'no campaign'})")
    return 0


def _run(args: argparse.Namespace, settings: Settings) -> int:
    import asyncpg

    from switchboard.api.services import ServiceError
    from switchboard.campaigns.model import State
    from switchboard.campaigns.service import PgCampaignService
    from switchboard.telephony.numbers import default_callback_numbers

    async def main() -> str:
        conn = await asyncpg.connect(settings.database.dsn, timeout=settings.database.command_timeout)
        try:
            svc = PgCampaignService(conn, policy=default_callback_numbers(settings.numbers).policy,
                                    flows=lambda: set())
            action = args.campaign_command
            if action == "list":
                rows = [[c.campaign_id, c.state, c.mode, c.flow, c.contacts, c.pending, c.dialing, c.done]
                        for c in await svc.list_all()]
                return _table(["campaign", "state", "mode", "flow", "contacts", "pending", "dialing", "done"], rows)
            if action == "report":
                report = await svc.report(args.campaign_id)
                if args.format == "json":
                    return json.dumps({"campaign": report.campaign.campaign_id, "state": report.campaign.state,
                                       "results": report.results, "abandon_ratio": report.abandon_ratio,
                                       "columns": list(report.columns), "rows": [list(r) for r in report.rows]},
                                      default=str, ensure_ascii=False, indent=1)
                if args.format == "csv":
                    out = io.StringIO()
                    w = csv.writer(out)
                    w.writerow(report.columns)
                    w.writerows(report.rows)
                    return out.getvalue().rstrip("\n")
                ratio = "-" if report.abandon_ratio is None else f"{report.abandon_ratio:.1%}"
                head = (f"campaign {report.campaign.campaign_id} ({report.campaign.state}): "
                        + ", ".join(f"{k} {v}" for k, v in sorted(report.results.items()))
                        + f"; abandon ratio {ratio}")
                return head + "\n" + _table(list(report.columns), [list(r) for r in report.rows])
            state = {"pause": State.PAUSED, "resume": State.RUNNING, "stop": State.STOPPED}[action]
            view = await svc.set_state(args.campaign_id, state, by="cli")
            return f"campaign {view.campaign_id}: {view.state}"
        finally:
            await conn.close(timeout=5)

    try:
        print(asyncio.run(main()))
    except ServiceError as exc:
        print(f"switchboard campaign: {exc.message}", file=sys.stderr)
        return 1
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"switchboard campaign: database error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


def _table(columns: list[str], rows: list[list[Any]]) -> str:
    cells = [columns] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells)
