"""A campaign survives a kill -9 of the service (issue 19): the service runs as a real process
and is killed with SIGKILL while contacts are on the line; the next process dials the rest.
Nobody is called twice (one attempt row and one INVITE per number) and no contact is lost
(every contact ends done: heard the message, or ``interrupted`` for the calls cut by the kill)."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

import asyncpg
import pytest
from campaign_contacts import contact_scenario, invited_numbers, run_contacts
from e2e_process import ServiceProcess, service_config
from e2e_service import running_service, sip_remote, until

from switchboard.campaigns.model import State
from switchboard.campaigns.service import PgCampaignService
from switchboard.telephony.numbers import default_callback_numbers

pytestmark = pytest.mark.e2e

NUMBERS = [f"09123451{i:02d}" for i in range(1, 11)]
CAMPAIGN = """\
campaign: e2e-restart
flow: reminder-card
mode: message
window: "00:00-23:59"
public_holidays: false
max_attempts: 1
targets: {csv: contacts.csv}
"""


async def _count(dsn: str, sql: str) -> int:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return int(await conn.fetchval(sql, timeout=5))
    finally:
        await conn.close()


async def test_a_kill_9_mid_campaign_calls_nobody_twice_and_loses_nobody(stack_env: dict[str, str], pg_dsn: str,
                                                                      tmp_path: Path) -> None:
    config, http_port = await service_config(stack_env, pg_dsn, tmp_path)
    with config.open("a", encoding="utf-8") as f:
        f.write("\n[campaigns]\ntick_s = 0.5\nmax_lines = 4\n")
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2)
    assert pool is not None
    try:
        campaigns = PgCampaignService(pool, policy=default_callback_numbers().policy, flows=lambda: {"reminder-card"})
        csv = "number,card_valid_to\n" + "".join(f"{n},2026-09-20\n" for n in NUMBERS)
        await campaigns.create(CAMPAIGN, contacts_csv=csv, by="e2e")
        await campaigns.set_state("e2e-restart", State.RUNNING, by="e2e")
    finally:
        await pool.close()
    contacts = asyncio.create_task(run_contacts(contact_scenario(), remote=sip_remote(stack_env),
                                                port=int(stack_env["STACK_TRUNK_OUT_PORT"]), calls=len(NUMBERS),
                                                timeout=400))
    service = ServiceProcess(config, tmp_path / "service.log", http_port)
    try:
        await service.start()
        answered = "SELECT count(*) FROM campaign_attempts WHERE campaign_id = 'e2e-restart' AND answered_at IS NOT NULL"
        await until(lambda: _at_least(pg_dsn, answered, 3), timeout=60, what="three contacts on the line",
                    interval=0.3)
        service.kill9()                                    # no shutdown code runs: calls stay up in Asterisk
        assert service.proc is not None and await asyncio.wait_for(service.proc.wait(), 10) == -signal.SIGKILL
    finally:
        await service.stop()
    in_flight = await _count(pg_dsn, "SELECT count(*) FROM campaign_attempts WHERE campaign_id = 'e2e-restart' "
                                     "AND result IS NULL")
    assert in_flight >= 3
    async with running_service(stack_env, pg_dsn, campaigns={"tick_s": 0.5, "max_lines": 4},
                               ami={"reconcile_interval_s": 2.0, "reconcile_min_age_s": 2.0}):
        done = "SELECT count(*) FROM campaign_contacts WHERE campaign_id = 'e2e-restart' AND status = 'done'"
        await until(lambda: _at_least(pg_dsn, done, len(NUMBERS)), timeout=300, what="every contact done",
                    interval=0.5)
        code, log = await asyncio.wait_for(contacts, 120)
    assert code == 0, log[-3000:]
    assert Counter(invited_numbers(log)) == Counter(NUMBERS)          # each number rang exactly once
    conn = await asyncpg.connect(pg_dsn, timeout=10)
    try:
        rows = await conn.fetch("SELECT number, attempt_no, result FROM campaign_attempts "
                                "WHERE campaign_id = 'e2e-restart' ORDER BY number")
    finally:
        await conn.close()
    assert sorted(r["number"] for r in rows) == NUMBERS               # one attempt per contact, none lost
    results = Counter(r["result"] for r in rows)
    assert results["interrupted"] == in_flight, results                # the calls the kill cut: never redialled
    assert results["message_heard_to_end"] == len(NUMBERS) - in_flight, results


async def _at_least(dsn: str, sql: str, n: int) -> bool:
    return await _count(dsn, sql) >= n
