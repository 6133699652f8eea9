"""Helpers for end-to-end tests against the local stack (run/stack.env)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from switchboard.ami.client import AmiClient
from switchboard.config import AmiSettings
from switchboard.telephony import heartbeat


def ami_settings(env: dict[str, str], *, admin: bool = False, **kw: float) -> AmiSettings:
    return AmiSettings(
        host=env["SWITCHBOARD_AMI_HOST"],
        port=int(env["SWITCHBOARD_AMI_PORT"]),
        username=env["STACK_AMI_ADMIN_USERNAME"] if admin else env["SWITCHBOARD_AMI_USERNAME"],
        secret_file=env["STACK_AMI_ADMIN_SECRET_FILE"] if admin else env["SWITCHBOARD_AMI_SECRET_FILE"],
        **kw,  # type: ignore[arg-type]
    )


def sip_remote(env: dict[str, str]) -> str:
    return f"127.0.0.1:{env['STACK_SIP_PORT']}"


async def put_heartbeat(client: AmiClient, *, age: float = 0.0) -> None:
    """Write the service heartbeat the hotline dialplan checks (age in seconds)."""
    resp = await client.send(heartbeat.put_action(int(time.time() - age)), timeout=5)
    assert resp.success, resp


async def clear_heartbeat(client: AmiClient) -> None:
    await client.send(heartbeat.put_action(0), timeout=5)


def asterisk_pid(env: dict[str, str]) -> int:
    return int((Path(env["STACK_ASTERISK_ROOT"]) / "run/asterisk/asterisk.pid").read_text().strip())


def stop_process(pid: int, *, timeout: float = 5.0) -> None:
    """SIGSTOP and wait until every thread is stopped: kill() only queues the signal, and a
    thread already running (on the other core) could still answer the next action."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + timeout
    while True:
        states = set()
        for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
            try:
                states.add(stat.read_text().rsplit(")", 1)[1].split()[0])
            except (OSError, IndexError):
                continue  # a thread that just ended
        if states and states <= {"T", "t"}:
            return
        assert time.monotonic() < deadline, f"threads of {pid} not stopped: {states}"
        time.sleep(0.01)


async def asterisk_cli(env: dict[str, str], command: str, *, timeout: float = 15.0) -> str:
    """The output of an Asterisk CLI command (``asterisk -rx`` inside the stack's root)."""
    proc = await asyncio.create_subprocess_exec(
        "chroot", env["STACK_ASTERISK_ROOT"], "/usr/sbin/asterisk", "-rx", command,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    return out.decode(errors="replace")
