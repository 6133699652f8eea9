"""`switchboard doctor` against the real stack: green when everything is there,
red (exit 1) naming the failing part when something is not."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from switchboard.acd.agents import load_agents
from switchboard.store.agents import upsert_agent
from switchboard.store.migrate import apply_migrations

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def _doctor(env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "switchboard", "doctor", "--timeout", "3", *extra],
                          capture_output=True, text=True, env=full, cwd=REPO, timeout=60)


@pytest.fixture
def doctor_env(stack_env: dict[str, str], pg_dsn: str, tmp_path: Path) -> dict[str, str]:
    async def prepare() -> None:
        conn = await asyncpg.connect(pg_dsn, timeout=10)
        try:
            await apply_migrations(conn)
            for a in load_agents(REPO / "deploy" / "agents.yaml")[:2]:
                await upsert_agent(conn, a)
        finally:
            await conn.close()

    asyncio.run(prepare())
    env = {k: v for k, v in stack_env.items() if k.startswith("SWITCHBOARD_")}
    env.update(SWITCHBOARD_DSN=pg_dsn, SWITCHBOARD_DATABASE_SPOOL_DIR=str(tmp_path / "spool"),
               SWITCHBOARD_HTTP_PORT="1",  # nothing listens there: the service check only warns
               STACK_ASTERISK_ROOT=stack_env["STACK_ASTERISK_ROOT"],  # whose /etc/hosts the check reads
               STACK_ASTERISK_ETC=stack_env["STACK_ASTERISK_ETC"])    # and whose rtp.conf
    return env


def test_doctor_is_green_on_the_local_stack(doctor_env: dict[str, str]) -> None:
    res = _doctor(doctor_env)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = {line.split()[1]: line.split()[0] for line in res.stdout.splitlines()
             if line[:4] in ("ok  ", "FAIL", "warn")}
    # RTP: the local stack's range holds what the default overload gate lets in (no 488 first)
    for name in ("AMI", "database", "migrations", "agents", "IVR", "prompt", "spool", "parser", "host", "clock", "RTP"):
        assert lines.get(name) == "ok", res.stdout
    assert "all checks passed" in res.stdout


def test_doctor_fails_and_names_what_is_wrong(doctor_env: dict[str, str], tmp_path: Path) -> None:
    bad = dict(doctor_env, SWITCHBOARD_AMI_PORT="9", SWITCHBOARD_PATHS_FLOWS_DIR=str(tmp_path / "nope"),
               SWITCHBOARD_NO_EXTENSIONS="1")
    res = _doctor(bad, "--json")
    assert res.returncode == 1
    import json

    checks = {c["name"]: c for c in json.loads(res.stdout)}
    assert checks["AMI login"]["ok"] is False and ":9" in checks["AMI login"]["detail"]
    assert checks["IVR flows"]["ok"] is False and "no such folder" in checks["IVR flows"]["detail"]
    assert checks["database"]["ok"] is True
    parser = checks["parser (AMI)"]  # the pure-Python parser only warns
    assert (parser["ok"], parser["optional"]) == (False, True) and "SWITCHBOARD_NO_EXTENSIONS" in parser["detail"]


def test_doctor_reports_pending_migrations(doctor_env: dict[str, str], stack_env: dict[str, str]) -> None:
    async def fresh() -> str:
        admin = await asyncpg.connect(doctor_env["SWITCHBOARD_DSN"], timeout=10)
        try:
            await admin.execute('DROP DATABASE IF EXISTS "sb_doctor_empty" WITH (FORCE)')
            await admin.execute('CREATE DATABASE "sb_doctor_empty"')
        finally:
            await admin.close()
        return doctor_env["SWITCHBOARD_DSN"].rsplit("/", 1)[0] + "/sb_doctor_empty"

    dsn = asyncio.run(fresh())
    res = _doctor(dict(doctor_env, SWITCHBOARD_DSN=dsn))
    assert res.returncode == 1
    assert any(line.startswith("FAIL") and "migrations" in line and "switchboard migrate" in line
               for line in res.stdout.splitlines()), res.stdout
