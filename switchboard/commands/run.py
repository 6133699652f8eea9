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
    from switchboard.app import build_application

    async def main() -> int:
        app = build_application(settings)
        return await app.run_forever()

    return asyncio.run(main())
