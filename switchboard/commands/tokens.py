"""``switchboard tokens create|list|revoke``: API tokens for agents, supervisors and admins.

``create`` prints the new token once, on stdout; only its SHA-256 is stored.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from switchboard.config import Settings


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("tokens", help="create, list or revoke API tokens")
    tsub = p.add_subparsers(dest="tokens_command", metavar="ACTION", required=True)
    c = tsub.add_parser("create", help="create a token and print it once")
    c.add_argument("--role", required=True, choices=("agent", "supervisor", "admin"))
    c.add_argument("--agent", dest="agent_id", help="the agent this token acts as (required for --role agent)")
    c.add_argument("--name", default="", help="a label (who holds the token)")
    c.add_argument("--sip-endpoint", help="supervisor/admin: their own PJSIP endpoint (a `supervisors:` entry "
                   "of the agent list), the only phone their listen/whisper/barge legs ring")
    c.set_defaults(func=_create)
    ls = tsub.add_parser("list", help="list tokens (never their secrets)")
    ls.set_defaults(func=_list)
    r = tsub.add_parser("revoke", help="revoke a token by its id (the 12 hex digits after sb_)")
    r.add_argument("token_id")
    r.set_defaults(func=_revoke)


async def _with_store(settings: Settings, action: Any) -> int:
    import asyncpg

    from switchboard.api.pg_tokens import PgTokenStore

    timeout = settings.database.command_timeout
    conn = await asyncpg.connect(settings.database.dsn, timeout=timeout)
    try:
        result: int = await action(PgTokenStore(conn, timeout=timeout))
        return result
    finally:
        await conn.close(timeout=5)


def _create(args: argparse.Namespace, settings: Settings) -> int:
    import asyncpg

    from switchboard.api.auth import create_token

    if args.role == "agent" and not args.agent_id:
        print("switchboard tokens: --role agent needs --agent ID", file=sys.stderr)
        return 2
    if args.sip_endpoint and args.role == "agent":
        print("switchboard tokens: --sip-endpoint is for supervisor and admin tokens", file=sys.stderr)
        return 2

    async def action(store: Any) -> int:
        try:
            token, row = await create_token(store, role=args.role, agent_id=args.agent_id, name=args.name,
                                            sip_endpoint=args.sip_endpoint or None)
        except ValueError as exc:
            print(f"switchboard tokens: {exc}", file=sys.stderr)
            return 2
        except asyncpg.ForeignKeyViolationError:
            print(f"switchboard tokens: no agent with id {args.agent_id!r}", file=sys.stderr)
            return 1
        print(token)
        print(f"created token {row.id} ({row.role}{', agent ' + row.agent_id if row.agent_id else ''}"
              f"{', phone PJSIP/' + row.sip_endpoint if row.sip_endpoint else ''}); "
              "it is shown only once", file=sys.stderr)
        return 0

    return asyncio.run(_with_store(settings, action))


def _list(args: argparse.Namespace, settings: Settings) -> int:
    async def action(store: Any) -> int:
        for row in await store.list_tokens():
            state = "revoked" if row.revoked_at else "active"
            print(f"{row.id}\t{row.role}\t{row.agent_id or row.sip_endpoint or '-'}\t{state}"
                  f"\t{row.created_at:%Y-%m-%d %H:%M}\t{row.name}")
        return 0

    return asyncio.run(_with_store(settings, action))


def _revoke(args: argparse.Namespace, settings: Settings) -> int:
    async def action(store: Any) -> int:
        if await store.revoke(args.token_id):
            print(f"revoked {args.token_id}")
            return 0
        print(f"switchboard tokens: no active token {args.token_id}", file=sys.stderr)
        return 1

    return asyncio.run(_with_store(settings, action))
