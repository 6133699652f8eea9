"""A NODES=2 stack for end-to-end tests: Kamailio and Asterisk nodes a and b (docs/scale.md).

``two_node_stack()`` gives the settings (``run/stack.env`` form) of a two-node stack: the
shared one when it is already a NODES=2 stack (``STACK_NODES`` in run/stack.env), else one
of its own, started here on a private copy of the Asterisk root, with a private run folder,
PostgreSQL cluster and ports, and brought down (and checked down) at the end.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from e2e_stack import ami_settings

from switchboard.ami.client import AmiClient
from switchboard.config import AmiSettings, read_env_file

REPO = Path(__file__).resolve().parents[2]
SHARED_ROOT = "/var/cache/switchboard/asterisk-sid"
NODES = ("a", "b")


def _free(kind: int, *, following: int = 0) -> int:
    """A port free on 127.0.0.1 with ``following`` free ports after it (same kind)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + following >= 65536:
            continue
        socks = []
        try:
            for p in range(port, port + following + 1):
                s = socket.socket(socket.AF_INET, kind)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


def _stack_env(run_dir: Path, root: str, pg_dir: str, **ports: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWITCHBOARD_", "STACK_"))}
    env.update(NODES="2", ASTERISK_ROOT=root, STACK_RUN_DIR=str(run_dir), STACK_PG_DIR=pg_dir,
               STACK_RTP_START="30000", STACK_RTP_END="30999", SB_E2E_LOCK_HELD="1",
               PATH=f"{REPO / '.venv' / 'bin'}:{env.get('PATH', '')}")
    env.update({k: str(v) for k, v in ports.items()})
    return env


@contextmanager
def two_node_stack(shared_env: dict[str, str]) -> Iterator[dict[str, str]]:
    if shared_env.get("STACK_NODES"):
        yield shared_env
        return
    src = shared_env.get("STACK_ASTERISK_ROOT") or SHARED_ROOT
    # one private root and cluster per checkout AND shared stack: make test's shards (each its own
    # root) may both start a two-node stack at the same time
    tag = hashlib.md5(f"{REPO}\0{src}".encode()).hexdigest()[:8]
    root = f"/var/cache/switchboard/asterisk-sid-2nodes-{tag}"
    # The copy leaves out what belongs to the running shared Asterisk (its /run: pid file and
    # control socket) and the mounts; rsync makes it quick after the first time.
    subprocess.run(["rsync", "-a", "--delete", "--exclude=/proc/", "--exclude=/run/",
                    "--exclude=/var/lib/switchboard/recordings/", f"{src}/", f"{root}/"], check=True)
    for d in ("proc", "run"):
        Path(root, d).mkdir(exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="sb-2nodes-"))
    env = _stack_env(run_dir, root, f"/var/tmp/switchboard-pg/2nodes-{tag}",
                     STACK_SIP_PORT=_free(socket.SOCK_DGRAM, following=3), STACK_AMI_PORT=_free(socket.SOCK_STREAM,
                                                                                              following=1),
                     STACK_TRUNK_OUT_PORT=_free(socket.SOCK_DGRAM))
    up = subprocess.run(["bash", "deploy/local/stack-up.sh"], cwd=REPO, env=env, capture_output=True, text=True,
                        timeout=300)
    try:
        assert up.returncode == 0, f"NODES=2 stack-up failed:\n{up.stdout}\n{up.stderr}"
        yield read_env_file(run_dir / "stack.env")
    finally:
        subprocess.run(["bash", "deploy/local/stack-down.sh"], cwd=REPO, env=env, capture_output=True, timeout=120)
        down = subprocess.run(["bash", "deploy/local/check-down.sh"], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=60)
        shutil.rmtree(run_dir, ignore_errors=True)
        assert down.returncode == 0, down.stderr


def node_ami(env: dict[str, str], node: str, *, admin: bool = False) -> AmiSettings:
    return dataclasses.replace(ami_settings(env, admin=admin), port=int(env[f"STACK_NODE_{node.upper()}_AMI_PORT"]))


async def node_client(env: dict[str, str], node: str, *, admin: bool = False) -> AmiClient:
    client = AmiClient(node_ami(env, node, admin=admin))
    await client.start(timeout=15)
    return client


async def node_cli(env: dict[str, str], node: str, command: str, *, timeout: float = 15.0) -> str:
    """``asterisk -rx COMMAND`` on one node."""
    proc = await asyncio.create_subprocess_exec(
        "chroot", env["STACK_ASTERISK_ROOT"], "/usr/sbin/asterisk",
        "-C", f"{env[f'STACK_NODE_{node.upper()}_ETC']}/asterisk.conf", "-rx", command,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    return out.decode(errors="replace")


async def dispatcher_flags(env: dict[str, str]) -> dict[str, str]:
    """Kamailio's view of the nodes: node name -> dispatcher flags ("AP": up, "IP": down, probed)."""
    proc = await asyncio.create_subprocess_exec(
        "kamcmd", "-s", f"unix:{env['STACK_KAMAILIO_CTL']}", "dispatcher.list",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 10)
    ports = {env[f"STACK_NODE_{n.upper()}_SIP_PORT"]: n for n in NODES}
    flags: dict[str, str] = {}
    uri = ""
    for line in out.decode().splitlines():
        line = line.strip()
        if line.startswith("URI:"):
            uri = line.rsplit(":", 1)[1]
        elif line.startswith("FLAGS:") and uri in ports:
            flags[ports[uri]] = line.split(":", 1)[1].strip()
    return flags


async def node_script(env: dict[str, str], command: str, node: str) -> str:
    """deploy/local/node.sh COMMAND NODE for this stack."""
    penv = dict(os.environ, ASTERISK_ROOT=env["STACK_ASTERISK_ROOT"],
                STACK_RUN_DIR=str(Path(env["SWITCHBOARD_AMI_SECRET_FILE"]).parent))
    proc = await asyncio.create_subprocess_exec(
        "bash", str(REPO / "deploy/local/node.sh"), command, node, env=penv,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, out.decode(errors="replace")
    return out.decode(errors="replace")
