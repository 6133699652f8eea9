"""The campaign API over the real PostgreSQL: create (YAML + CSV or a selection), errors as JSON
with a stable error_id, pause/resume/stop, report as JSON and CSV, the do-not-call list, auth."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from switchboard.api import auth
from switchboard.api.app import create_app
from switchboard.campaigns.service import PgCampaignService
from switchboard.config import Settings
from switchboard.store.migrate import apply_migrations
from switchboard.telephony.numbers import default_callback_numbers

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit" / "api"))
from api_fakes import make_world

CSV_CAMPAIGN = """\
campaign: csv-test
flow: reminder-card
mode: message
targets: {csv: list.csv}
"""
CSV = ("number,name,card_valid_to\n0912345001,An,2026-12-20\n0912345002,Bình,2026-12-21\n"
       "1900 1234,Premium,\n0912345001,Again,\n")


@pytest.fixture
async def api(fresh_db: str) -> AsyncIterator[tuple[Any, dict[str, str], dict[str, str], asyncpg.Pool]]:
    conn = await asyncpg.connect(fresh_db, timeout=10)
    try:
        await apply_migrations(conn)
        today = datetime.now(UTC).date()
        for i, days in enumerate((3, 10, 90)):
            await conn.execute("""INSERT INTO participants (insurance_code, full_name, phone, contribution_status,
                                  health_card_valid_to) VALUES ($1, $2, $3, 'active', $4)""",
                               f"01000000{i:02d}", f"P{i}", f"09123460{i:02d}", today + timedelta(days=days))
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(fresh_db, min_size=1, max_size=3, timeout=10)
    assert pool is not None
    world = make_world()
    campaigns = PgCampaignService(pool, policy=default_callback_numbers().policy,
                                  flows=lambda: {"hotline", "reminder-card"})
    services = world.services.__class__(**{**world.services.__dict__, "campaigns": campaigns})
    sup, _ = await auth.create_token(world.tokens, role="supervisor", name="Sup")
    agent, _ = await auth.create_token(world.tokens, role="agent", agent_id="a1", name="A1")
    app = create_app(settings=Settings(), services=services)
    try:
        async with TestClient(TestServer(app)) as client:
            yield client, {"Authorization": f"Bearer {sup}"}, {"Authorization": f"Bearer {agent}"}, pool
    finally:
        await pool.close()


async def test_create_run_report_and_stop_a_csv_campaign(api: Any) -> None:
    client, sup, agent, pool = api
    assert (await client.get("/api/campaigns")).status == 401
    assert (await client.get("/api/campaigns", headers=agent)).status == 403
    r = await client.post("/api/campaigns", headers=sup, json={"source": CSV_CAMPAIGN, "contacts_csv": CSV})
    body = await r.json()
    assert r.status == 201, body
    assert (body["campaign_id"], body["state"], body["contacts"], body["pending"]) == ("csv-test", "paused", 2, 2)
    assert body["imported"]["added"] == 2 and body["imported"]["refused"] == 2
    assert [(x["line"], x["reason"]) for x in body["imported"]["refused_rows"]] == [
        (4, "denied_prefix"), (5, "duplicate")]
    again = await client.post("/api/campaigns", headers=sup, json={"source": CSV_CAMPAIGN, "contacts_csv": CSV})
    assert again.status == 409 and (await again.json())["error_id"] == "campaign-exists"

    assert (await (await client.post("/api/campaigns/csv-test/resume", headers=sup, json={})).json())["state"] \
        == "running"
    assert (await (await client.post("/api/campaigns/csv-test/pause", headers=sup, json={})).json())["state"] \
        == "paused"
    more = await client.post("/api/campaigns/csv-test/contacts", headers=sup,
                             json={"csv": "number\n0912345003\n0912345002\n"})
    assert (await more.json()) == {"added": 1, "skipped": 1, "refused": 0, "refused_rows": []}

    report = await (await client.get("/api/campaigns/csv-test/report", headers=sup)).json()
    assert [row[1] for row in report["rows"]] == ["0912345001", "0912345002", "0912345003"]
    assert report["columns"][:3] == ["contact_id", "number", "name"] and report["abandon_ratio"] is None
    csv_resp = await client.get("/api/campaigns/csv-test/report?format=csv", headers=sup)
    assert csv_resp.content_type == "text/csv"
    lines = (await csv_resp.text()).splitlines()
    assert lines[0].startswith("contact_id,number,name") and lines[1].split(",")[1:3] == ["0912345001", "An"]

    stop = await client.post("/api/campaigns/csv-test/stop", headers=sup, json={})
    assert (await stop.json())["state"] == "stopped"
    resume = await client.post("/api/campaigns/csv-test/resume", headers=sup, json={})
    assert resume.status == 409 and (await resume.json())["error_id"] == "campaign-state"
    listed = await (await client.get("/api/campaigns", headers=sup)).json()
    assert [c["campaign_id"] for c in listed] == ["csv-test"]
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT state_by FROM campaigns WHERE campaign_id = 'csv-test'") == "Sup"


async def test_a_selection_campaign_reads_participants(api: Any) -> None:
    client, sup, _, _ = api
    source = "campaign: cards\nflow: reminder-card\nmode: progressive\ntopic: health.card\n" \
             "targets: {selection: cards_expiring, params: {days: 30}}\n"
    r = await client.post("/api/campaigns", headers=sup, json={"source": source})
    body = await r.json()
    assert r.status == 201 and body["contacts"] == 2, body      # the card valid 90 more days is not selected
    report = await (await client.get("/api/campaigns/cards/report", headers=sup)).json()
    assert [row[1] for row in report["rows"]] == ["0912346000", "0912346001"]
    assert date.fromisoformat(str((await (await client.get("/api/campaigns/cards", headers=sup)).json())
                                  ["created_at"])[:10])


async def test_bad_input_is_a_json_error_with_every_problem(api: Any) -> None:
    client, sup, _, _ = api
    r = await client.post("/api/campaigns", headers=sup,
                          json={"source": "campaign: X\nflow: nope\ntargets: {selection: everyone}\n"})
    body = await r.json()
    assert r.status == 422 and body["error_id"] == "invalid-campaign"
    assert body["details"]["problems"] == [
        "<api>:1:11: campaign id 'X': lower-case letters, digits, - and _ (at most 48)",
        "<api>:2:7: flow 'nope' does not exist (known: hotline, reminder-card)",
        "<api>:3:22: targets.selection 'everyone': one of cards_expiring, contribution_stopped"]
    r = await client.post("/api/campaigns", headers=sup, json={"source": CSV_CAMPAIGN})
    assert r.status == 422 and "contacts_csv" in (await r.json())["message"]
    r = await client.post("/api/campaigns", headers=sup, json={"source": CSV_CAMPAIGN, "contacts_csv": "name\nx\n"})
    assert r.status == 422 and (await r.json())["error_id"] == "invalid-contacts"
    r = await client.post("/api/campaigns", headers=sup, json={"source": CSV_CAMPAIGN, "sql": "DROP TABLE x"})
    assert r.status == 400 and (await r.json())["error_id"] == "invalid-request"
    r = await client.get("/api/campaigns/nope", headers=sup)
    assert r.status == 404 and (await r.json())["error_id"] == "not-found"
    r = await client.post("/api/campaigns/nope/pause", headers=sup, json={})
    assert r.status == 404


async def test_the_do_not_call_list(api: Any) -> None:
    client, sup, agent, _ = api
    assert (await client.post("/api/do-not-call", headers=agent, json={"number": "0912345001"})).status == 403
    r = await client.post("/api/do-not-call", headers=sup, json={"number": "+84 912 345 001"})
    assert r.status == 201 and await r.json() == {"number": "0912345001", "added": True}
    r = await client.post("/api/do-not-call", headers=sup, json={"number": "call me"})
    assert r.status == 422 and (await r.json())["error_id"] == "invalid-number"
    listed = await (await client.get("/api/do-not-call", headers=sup)).json()
    assert [(d["number"], d["source"]) for d in listed] == [("0912345001", "api")]
