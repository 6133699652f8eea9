"""``switchboard demo``: SIPp demo agents and callers against the local stack (``make run``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import time
import urllib.request
from pathlib import Path
from typing import Any

from switchboard.config import Settings, read_env_file

log = logging.getLogger("switchboard.demo")


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("demo", help="demo agents and callers (SIPp) on the local stack")
    p.add_argument("--stack-env", default="", help="the local stack's settings (default <run_dir>/stack.env)")
    p.add_argument("--agents", type=int, default=6, help="how many demo agents log in (default 6)")
    p.add_argument("--every", type=float, default=12.0, help="mean seconds between demo callers (default 12)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--agents-file", default="deploy/agents.yaml")
    p.add_argument("--duration", type=float, default=0.0,
                   help="stop after this many seconds and print a summary (default: run until Ctrl-C)")
    p.set_defaults(func=_demo)


def _wait_service(settings: Settings, timeout: float = 120.0) -> bool:
    url = f"http://{settings.http.host}:{settings.http.port}/readyz"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(1)
    return False


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from switchboard.acd.agents import load_agents
    from switchboard.demo.traffic import DemoConfig, DemoTraffic

    env_file = Path(args.stack_env or Path(settings.paths.run_dir) / "stack.env")
    if not env_file.is_file():
        log.error("%s not found: bring the local stack up first (make stack-up)", env_file)
        return 2
    env = read_env_file(env_file)
    if not _wait_service(settings):
        log.error("the service does not answer on %s:%d", settings.http.host, settings.http.port)
        return 1
    cfg = DemoConfig(sip_remote=f"127.0.0.1:{env['STACK_SIP_PORT']}", agents=args.agents,
                     call_every_s=args.every, seed=args.seed,
                     sip_secret=Path(env["STACK_SIP_AGENTS_SECRET_FILE"]).read_text().strip(),
                     workdir=str(Path(settings.paths.run_dir) / "demo"))
    traffic = DemoTraffic(cfg, load_agents(args.agents_file))
    log.info("demo: %d agents, a caller every ~%.0fs; Ctrl-C to stop", len(traffic.records), cfg.call_every_s)

    async def main() -> None:
        import signal

        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            if task is not None:
                loop.add_signal_handler(sig, task.cancel)
        try:
            if args.duration > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(traffic.run(), args.duration)
            else:
                await traffic.run()
        except asyncio.CancelledError:
            pass
        print(f"demo: {traffic.calls_started} callers placed, {traffic.calls_ok} finished their scenario, "
              f"{traffic.agents_ready} of {len(traffic.phones)} agents ready", flush=True)

    asyncio.run(main())
    return 0
