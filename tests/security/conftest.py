"""The security probe's service: ``switchboard run`` as a real process on the local stack
(Asterisk 22 for AMI, PostgreSQL), reached over real HTTP and websockets.

Its database is reached through a TCP proxy that the tests can cut, to show what a
database outage looks like from outside. Every HTTP status the probe sees is kept, so
the last test can check that none was a 500.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from e2e_lock import e2e_turn as _turn
from e2e_process import cli, service_config
from probe_service import TRUSTED_PROXY, Probe, TcpProxy


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="module")
def probe_db(pg_dsn: str) -> Iterator[str]:
    """A database of the probe's own: its hostile rows never meet other tests' counts."""
    import asyncpg

    name = f"sbsec_{uuid.uuid4().hex[:12]}"

    async def sql(statement: str) -> None:
        conn = await asyncpg.connect(pg_dsn, timeout=10)  # the session's database, to create ours beside it
        try:
            await conn.execute(statement, timeout=30)
        finally:
            await conn.close(timeout=5)

    asyncio.run(sql(f'CREATE DATABASE "{name}"'))
    try:
        yield urlunsplit(urlsplit(pg_dsn)._replace(path=f"/{name}"))
    finally:
        asyncio.run(sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")  # gone before later e2e tests place calls on the same Asterisk
def probe(stack_env: dict[str, str], probe_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probe]:
    pg_dsn = probe_db
    run_dir = tmp_path_factory.mktemp("security")
    parts = urlsplit(pg_dsn)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    netloc = parts.netloc.rsplit("@", 1)
    via_proxy = urlunsplit(parts._replace(netloc=(netloc[0] + "@" if len(netloc) == 2 else "")
                                          + f"127.0.0.1:{proxy.port}"))
    with _turn("security"):
        config, port = asyncio.run(service_config(stack_env, pg_dsn, run_dir))
        text = config.read_text(encoding="utf-8")
        text = text.replace(f'dsn = "{pg_dsn}"', f'dsn = "{via_proxy}"')
        text = text.replace("[http]\n", f'[http]\ntrusted_proxies = ["{TRUSTED_PROXY}"]\n', 1)
        config.write_text(text, encoding="utf-8")
        log = run_dir / "service.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
        env["SWITCHBOARD_CONFIG"] = str(config)
        with log.open("ab") as out:
            proc = subprocess.Popen([*cli(config, "run")[:1], "run"], env=env, stdout=out, stderr=out,
                                    start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while not _ready(base + "/readyz"):
                assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
                assert time.monotonic() < deadline, "service not ready: " + log.read_text(errors="replace")[-3000:]
                time.sleep(0.3)
            yield Probe(base=base, port=port, config=config, log=log, dsn=pg_dsn, proxy=proxy)
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proxy.close()
