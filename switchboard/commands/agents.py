"""``switchboard agents``: import the agent list into PostgreSQL, render their PJSIP endpoints.

* ``switchboard agents import FILE.csv|FILE.yaml [--deactivate-missing]``
* ``switchboard agents render-pjsip [--file deploy/agents.yaml] [--secret-file F] [-o OUT]``: the agents'
  endpoints and the supervisors' own phones (the file's ``supervisors:`` list)

The SIP passwords derive from one secret: the ``AGENT_SIP_SECRET`` environment
variable, else ``--secret-file`` (default ``<run_dir>/agent-sip.secret``), which
``--create-secret`` makes (mode 0600) when it is missing. ``--credentials-out``
writes ``endpoint,password`` lines (mode 0600) for SIPp agents.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from switchboard.config import Settings, redact_dsn

__all__ = ["import_agents", "read_secret", "register"]

DEFAULT_FILE = "deploy/agents.yaml"
SECRET_ENV = "AGENT_SIP_SECRET"


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("agents", help="agent list: import into the database, render PJSIP")
    sp = p.add_subparsers(dest="agents_command", metavar="ACTION", required=True)
    imp = sp.add_parser("import", help="insert or update agents from a CSV or YAML file")
    imp.add_argument("file")
    imp.add_argument("--dsn", help="database DSN (default: database.dsn)")
    imp.add_argument("--deactivate-missing", action="store_true",
                     help="mark agents that are not in the file inactive")
    imp.set_defaults(func=_import)
    rp = sp.add_parser("render-pjsip", help="print the pjsip.conf sections of the agents")
    rp.add_argument("--file", default=DEFAULT_FILE, help=f"agent list (default {DEFAULT_FILE})")
    rp.add_argument("--secret-file", help="secret the passwords derive from (default <run_dir>/agent-sip.secret)")
    rp.add_argument("--create-secret", action="store_true", help="make the secret file if it is missing")
    rp.add_argument("--context", default="agents", help="dialplan context of the agent endpoints")
    rp.add_argument("--supervisor-context", default="supervisors",
                    help="dialplan context of the supervisors' endpoints (they only receive spy legs)")
    rp.add_argument("--transport", default="", help="PJSIP transport name (default: Asterisk's default)")
    rp.add_argument("--templates", default="reap-vanished",
                    help="pjsip.conf templates of each endpoint (default reap-vanished: RTP timeout and "
                         "session timers from deploy/asterisk/pjsip.conf; '' for none)")
    rp.add_argument("-o", "--output", help="write here instead of standard output")
    rp.add_argument("--credentials-out", help="also write endpoint,password lines here (mode 0600)")
    rp.set_defaults(func=_render)


def read_secret(path: Path, *, create: bool = False) -> str:
    env = os.environ.get(SECRET_ENV, "").strip()
    if env:
        return env
    if not path.is_file():
        if not create:
            raise FileNotFoundError(f"no agent SIP secret: set {SECRET_ENV} or create {path} (--create-secret)")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    return path.read_text(encoding="utf-8").strip()


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, 0o600)


def _render(args: argparse.Namespace, settings: Settings) -> int:
    from switchboard.acd.agents import (
        AgentFileError,
        load_agents,
        load_supervisors,
        render_pjsip,
        sip_password,
    )

    try:
        agents = load_agents(args.file)
        supervisors = load_supervisors(args.file)
        secret = read_secret(Path(args.secret_file or Path(settings.paths.run_dir) / "agent-sip.secret"),
                             create=args.create_secret)
    except (AgentFileError, OSError) as exc:
        print(f"switchboard agents render-pjsip: {exc}", file=sys.stderr)
        return 1
    text = render_pjsip(agents, secret, context=args.context, transport=args.transport, supervisors=supervisors,
                        supervisor_context=args.supervisor_context, templates=args.templates)
    if args.output:
        _write_private(Path(args.output), text)
    else:
        sys.stdout.write(text)
    if args.credentials_out:
        phones = [(a.sip_endpoint, a.active) for a in agents] + [(s.sip_endpoint, s.active) for s in supervisors]
        creds = "".join(f"{endpoint},{sip_password(secret, endpoint)}\n" for endpoint, active in phones if active)
        _write_private(Path(args.credentials_out), creds)
    return 0


async def import_agents(dsn: str, records: list[Any], *, deactivate_missing: bool = False,
                        command_timeout: float = 10.0) -> dict[str, int]:
    """Upsert ``records`` (AgentRecord) into ``agents`` in one transaction; returns counts."""
    import asyncpg

    from switchboard.store import agents as agent_store

    conn = await asyncpg.connect(dsn, timeout=command_timeout)
    try:
        return await agent_store.import_agents(conn, records, deactivate_missing=deactivate_missing,
                                               timeout=command_timeout)
    finally:
        await conn.close(timeout=command_timeout)


def _import(args: argparse.Namespace, settings: Settings) -> int:
    import asyncpg

    from switchboard.acd.agents import AgentFileError, load_agents

    try:
        records = load_agents(args.file)
    except (AgentFileError, OSError) as exc:
        print(f"switchboard agents import: {exc}", file=sys.stderr)
        return 1
    dsn = args.dsn or settings.database.dsn
    try:
        counts = asyncio.run(import_agents(dsn, records, deactivate_missing=args.deactivate_missing,
                                           command_timeout=settings.database.command_timeout))
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        print(f"switchboard agents import: database {redact_dsn(dsn)}: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return 1
    print(f"agents: {counts['inserted']} inserted, {counts['updated']} updated, "
          f"{counts['deactivated']} deactivated ({len(records)} in {args.file})")
    return 0
