"""``switchboard run``: start the service in the foreground."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from switchboard.config import Settings


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("run", help="run the service in the foreground")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from switchboard.app import build_application, cancel_leftover_tasks

    async def main() -> int:
        app = build_application(settings)
        rc = await app.run_forever()
        await cancel_leftover_tasks()
        return rc

    return asyncio.run(main())
