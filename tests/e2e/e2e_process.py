"""The service as a real subprocess (``switchboard run`` with a TOML config for the local
stack), for tests that kill it, restart it or drive it from another process."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from e2e_service import REPO, free_port, hang_up_leftovers, migrate, until

from switchboard.ivr.calendar import vn_holiday


def clock_offset_to_open_hours() -> float:
    """Seconds from now to the next working Tuesday 10:00 in Hồ Chí Minh City (ivr.clock_offset_s)."""
    now = datetime.now(UTC)
    day = (now + timedelta(days=1)).date()
    while day.weekday() != 1 or vn_holiday(day) or vn_holiday(day - timedelta(days=1)) \
            or vn_holiday(day + timedelta(days=1)):
        day += timedelta(days=1)
    target = datetime(day.year, day.month, day.day, 3, 0, tzinfo=UTC)   # 10:00 at UTC+7
    return (target - now).total_seconds()


def write_config(path: Path, env: dict[str, str], dsn: str, http_port: int, run_dir: Path) -> None:
    path.write_text(f"""
[ami]
host = "{env['SWITCHBOARD_AMI_HOST']}"
port = {env['SWITCHBOARD_AMI_PORT']}
username = "{env['SWITCHBOARD_AMI_USERNAME']}"
secret_file = "{env['SWITCHBOARD_AMI_SECRET_FILE']}"
heartbeat_interval = 1.0

[database]
dsn = "{dsn}"
spool_dir = "{run_dir}/spool"
flush_interval = 0.05

[http]
host = "127.0.0.1"
port = {http_port}

[paths]
flows_dir = "{REPO}/ivr_flows"
recordings_dir = "{REPO}/recordings"
prompts_dir = "{REPO}/recordings/prompts"
run_dir = "{run_dir}"
asterisk_prompts_dir = "{env['STACK_SOUND_PREFIX']}"
asterisk_recordings_dir = "{env['STACK_RECORDINGS_IN_ASTERISK']}"

[routing]
ring_timeout_s = 6.0
wrap_up_s = 3.0
region_after_s = 60.0
nation_after_s = 120.0
reevaluate_interval_s = 0.5
announce_interval_s = 4.0
sticky_max_wait_s = 0.0

[ivr]
announce_first_s = 3.0
clock_offset_s = {clock_offset_to_open_hours():.0f}
""", encoding="utf-8")


def set_routing(config: Path, **values: float) -> None:
    """Set keys of the config's [routing] section (replacing a key already there)."""
    lines = config.read_text(encoding="utf-8").splitlines()
    at = lines.index("[routing]") + 1
    for key, value in values.items():
        lines = [ln for ln in lines if not ln.startswith(f"{key} = ")]
        lines.insert(at, f"{key} = {value}")
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")


def cli(config: Path, *args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "switchboard"), "--config", str(config), *args]


async def run_cli(config: Path, *args: str) -> str:
    # Only the test's config: SWITCHBOARD_* of the shell (make test exports the stack's) would override it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    proc = await asyncio.create_subprocess_exec(*cli(config, *args), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def service_config(env: dict[str, str], dsn: str, run_dir: Path) -> tuple[Path, int]:
    """A migrated database with the demo agents, no call left on the stack, and a config file
    for a service process on a free HTTP port: (config, port)."""
    await migrate(dsn)
    await hang_up_leftovers(env)
    http_port = free_port(socket.SOCK_STREAM)
    config = run_dir / "switchboard.toml"
    write_config(config, env, dsn, http_port, run_dir)
    await run_cli(config, "agents", "import", str(REPO / "deploy" / "agents.yaml"))
    return config, http_port


class ServiceProcess:
    def __init__(self, config: Path, log: Path, http_port: int) -> None:
        self.config, self.log, self.http_port = config, log, http_port
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
        env["SWITCHBOARD_CONFIG"] = str(self.config)
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *cli(self.config, "run")[:1], "run", env=env, stdout=out, stderr=out, start_new_session=True)
        await until(self._ready, timeout=20, what=f"service up (log {self.log})", interval=0.3)

    async def _ready(self) -> bool:
        try:
            async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{self.http_port}/readyz",
                                                           timeout=aiohttp.ClientTimeout(total=2)) as r:
                return r.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def api_ready(port: int, token: str, agent_id: str) -> None:
    async with aiohttp.ClientSession() as s, s.post(
            f"http://127.0.0.1:{port}/api/agents/{agent_id}/ready", json={},
            headers={"Authorization": f"Bearer {token}"}, timeout=aiohttp.ClientTimeout(total=5)) as r:
        assert r.status == 200, await r.text()
