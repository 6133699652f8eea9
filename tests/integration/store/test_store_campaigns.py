"""Campaigns in the real PostgreSQL: claims before dials, one call in flight per number,
results moving contacts on, the do-not-call list, the named selections."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from switchboard.campaigns.model import Campaign, Mode, Result, RetryRules, State, Targets
from switchboard.campaigns.rules import after_attempt
from switchboard.campaigns.targets import Contact
from switchboard.store import campaigns as sc

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 12, 3, 3, 0, tzinfo=UTC)
CAMP = Campaign(campaign_id="card", flow="reminder-card", mode=Mode.PROGRESSIVE, max_attempts=2,
                retry=RetryRules(no_answer_s=3600, busy_s=600, failed_s=0), targets=Targets(csv="x.csv"))


async def _setup(db: asyncpg.Connection, numbers: list[str], campaign: Campaign = CAMP) -> None:
    assert await sc.upsert_campaign(db, campaign, source="test")
    added = await sc.add_contacts(db, campaign.campaign_id, [Contact(n, name=f"n{n[-2:]}") for n in numbers],
                                  now=NOW)
    assert added == len(numbers)


async def test_claims_never_hand_out_one_contact_twice(migrated_db: str) -> None:
    numbers = [f"09123450{i:02d}" for i in range(20)]
    db = await asyncpg.connect(migrated_db)
    try:
        await _setup(db, numbers)
        # the same numbers again: skipped, not duplicated
        assert await sc.add_contacts(db, "card", [Contact(numbers[0])], now=NOW) == 0
    finally:
        await db.close()

    async def dialer(k: int) -> list[str]:
        conn = await asyncpg.connect(migrated_db)
        got = []
        try:
            for i in range(30):
                c = await sc.claim(conn, "card", attempt_id=f"a{k}-{i}", now=NOW)
                if c is not None:
                    got.append(c.number)
        finally:
            await conn.close()
        return got

    # four dialers at once (two services after a failover, say): every contact once, none twice
    results = await asyncio.gather(*(dialer(k) for k in range(4)))
    claimed = [n for r in results for n in r]
    assert sorted(claimed) == numbers
    db = await asyncpg.connect(migrated_db)
    try:
        assert len(await sc.open_attempts(db)) == 20
        rows = await sc.campaign_rows(db, campaign_id="card")
        assert (rows[0]["pending"], rows[0]["dialing"]) == (0, 20)
    finally:
        await db.close()


async def test_results_move_contacts_on(db: asyncpg.Connection) -> None:
    await _setup(db, ["0912345001", "0912345002", "0912345003"])
    a = await sc.claim(db, "card", attempt_id="a1", now=NOW)
    assert a is not None and (a.number, a.attempt_no, a.name) == ("0912345001", 1, "n01")
    # busy: back after the spacing, not before
    assert await sc.finish_attempt(db, "a1", Result.BUSY, after_attempt(CAMP, Result.BUSY, attempts=1, now=NOW),
                                   now=NOW)
    assert not await sc.finish_attempt(db, "a1", Result.NO_ANSWER, after_attempt(CAMP, Result.NO_ANSWER,
                                                                                  attempts=1, now=NOW), now=NOW)
    b = await sc.claim(db, "card", attempt_id="a2", now=NOW)
    c = await sc.claim(db, "card", attempt_id="a3", now=NOW)
    assert (b and b.number, c and c.number) == ("0912345002", "0912345003")
    assert await sc.claim(db, "card", attempt_id="a4", now=NOW + timedelta(seconds=599)) is None
    again = await sc.claim(db, "card", attempt_id="a5", now=NOW + timedelta(seconds=600))
    assert again is not None and (again.number, again.attempt_no) == ("0912345001", 2)
    # second no answer: attempts used up, done
    later = NOW + timedelta(seconds=700)
    await sc.finish_attempt(db, "a5", Result.NO_ANSWER, after_attempt(CAMP, Result.NO_ANSWER, attempts=2, now=later),
                            now=later, answered_at=None)
    # never dialled (the service died before the Originate): back at once, the attempt not counted
    await sc.finish_attempt(db, "a2", Result.NOT_DIALLED, after_attempt(CAMP, Result.NOT_DIALLED, attempts=1,
                                                                        now=later), now=later)
    await sc.finish_attempt(db, "a3", Result.MESSAGE_HEARD_TO_END,
                            after_attempt(CAMP, Result.MESSAGE_HEARD_TO_END, attempts=1, now=later),
                            now=later, answered_at=later - timedelta(seconds=30))
    report = {r[1]: dict(zip(sc.CONTACT_REPORT_COLUMNS, r, strict=True)) for r in await sc.contact_report(db, "card")}
    assert (report["0912345001"]["status"], report["0912345001"]["attempts"],
            report["0912345001"]["final_result"]) == ("done", 2, "no_answer")
    assert (report["0912345002"]["status"], report["0912345002"]["attempts"]) == ("pending", 0)
    assert (report["0912345003"]["final_result"], report["0912345003"]["answered"]) == ("message_heard_to_end", 1)
    counts = await sc.result_counts(db, "card")
    assert counts == {"busy": 1, "no_answer": 1, "not_dialled": 1, "message_heard_to_end": 1, "abandoned": 0}
    assert await sc.day_counts(db, "card", since=NOW - timedelta(hours=1)) == (1, 0)


async def test_one_number_is_never_in_two_calls_at_once(db: asyncpg.Connection) -> None:
    await _setup(db, ["0912345001"])
    other = Campaign(campaign_id="other", flow="reminder-card", targets=Targets(csv="y.csv"))
    await _setup(db, ["0912345001"], other)
    assert await sc.claim(db, "card", attempt_id="a1", now=NOW) is not None
    assert await sc.claim(db, "other", attempt_id="b1", now=NOW) is None      # in flight for "card"
    with pytest.raises(asyncpg.UniqueViolationError):
        await db.execute("""INSERT INTO campaign_attempts (attempt_id, campaign_id, contact_id, number, attempt_no,
                            claimed_at) SELECT 'x', 'other', contact_id, number, 1, now()
                            FROM campaign_contacts WHERE campaign_id = 'other'""")


async def test_do_not_call_is_checked_at_the_claim(db: asyncpg.Connection) -> None:
    await _setup(db, ["0912345001", "0912345002"])
    assert await sc.add_dnc(db, "0912345001", source="api", now=NOW)
    assert not await sc.add_dnc(db, "0912345001", source="api", now=NOW)
    assert await sc.is_dnc(db, "0912345001")
    a = await sc.claim(db, "card", attempt_id="a1", now=NOW)
    assert a is not None and a.number == "0912345002"
    assert await sc.claim(db, "card", attempt_id="a2", now=NOW) is None
    report = {r[1]: r for r in await sc.contact_report(db, "card")}
    assert report["0912345001"][4:7] == ("done", 0, "do_not_call")
    # added to the list while its retry waits: the contact never comes back
    await sc.finish_attempt(db, "a1", Result.BUSY, after_attempt(CAMP, Result.BUSY, attempts=1, now=NOW), now=NOW)
    await sc.add_dnc(db, "0912345002", source="key9", campaign_id="card", now=NOW)
    assert await sc.claim(db, "card", attempt_id="a3", now=NOW + timedelta(hours=1)) is None
    assert [d["number"] for d in await sc.dnc_numbers(db)] == ["0912345001", "0912345002"]


async def test_states_and_finish(db: asyncpg.Connection) -> None:
    await _setup(db, ["0912345001"])
    assert (await sc.get_campaign(db, "card")) == (CAMP, "paused")
    assert await sc.set_state(db, "card", State.RUNNING, by="sup") == "paused"
    assert [c.campaign_id for c in await sc.running_campaigns(db)] == ["card"]
    assert not await sc.finish_if_done(db, "card")
    a = await sc.claim(db, "card", attempt_id="a1", now=NOW)
    assert a is not None
    await sc.finish_attempt(db, "a1", Result.OPTED_OUT, after_attempt(CAMP, Result.OPTED_OUT, attempts=1, now=NOW),
                            now=NOW)
    assert await sc.finish_if_done(db, "card")
    assert await sc.set_state(db, "card", State.STOPPED, by="sup") == "finished"
    with pytest.raises(sc.IllegalState):
        await sc.set_state(db, "card", State.RUNNING, by="sup")
    with pytest.raises(LookupError):
        await sc.set_state(db, "nope", State.RUNNING, by="sup")


async def test_selections_are_named_queries(db: asyncpg.Connection) -> None:
    today = date(2026, 12, 3)
    rows = [("0100000001", "A", "0912345001", today + timedelta(days=5)),
            ("0100000002", "B", "0912345002", today + timedelta(days=45)),
            ("0100000003", "C", "0912345003", today - timedelta(days=1)),
            ("0100000004", "D", None, today + timedelta(days=2))]
    for code, name, phone, valid_to in rows:
        await db.execute("""INSERT INTO participants (insurance_code, full_name, phone, contribution_status,
                            health_card_valid_to) VALUES ($1, $2, $3, 'active', $4)""", code, name, phone, valid_to)
    got = await sc.select_participants(db, "cards_expiring", {"days": 30}, now=NOW)
    assert [(r["insurance_code"], r["card_valid_to"]) for r in got] == [("0100000001", "2026-12-08")]
    assert len(await sc.select_participants(db, "cards_expiring", {"days": 60}, now=NOW)) == 2
    with pytest.raises(KeyError):
        await sc.select_participants(db, "everyone", {}, now=NOW)


def _cli(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"SWITCHBOARD_DSN": dsn, "PATH": "/usr/bin:/bin"}
    return subprocess.run([str(REPO / ".venv/bin/python"), "-m", "switchboard", *args], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=60, check=False)


async def test_the_campaign_command_line(migrated_db: str, tmp_path: Path) -> None:
    db = await asyncpg.connect(migrated_db)
    try:
        await _setup(db, ["0912345001", "0912345002"])
        await sc.claim(db, "card", attempt_id="a1", now=NOW)
        await sc.finish_attempt(db, "a1", Result.BUSY, after_attempt(CAMP, Result.BUSY, attempts=1, now=NOW),
                                now=NOW)
    finally:
        await db.close()
    listed = await asyncio.to_thread(_cli, migrated_db, "campaign", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[1].split()[:5] == ["card", "paused", "progressive", "reminder-card", "2"]
    report = await asyncio.to_thread(_cli, migrated_db, "campaign", "report", "card", "--format", "csv")
    assert report.returncode == 0, report.stderr
    lines = report.stdout.splitlines()
    assert lines[0] == ",".join(sc.CONTACT_REPORT_COLUMNS)
    assert lines[1].split(",")[1:8] == ["0912345001", "n01", "", "pending", "1", "", "busy"]
    table = await asyncio.to_thread(_cli, migrated_db, "campaign", "report", "card")
    assert table.stdout.startswith("campaign card (paused): abandoned 0, busy 1; abandon ratio -")
    resumed = await asyncio.to_thread(_cli, migrated_db, "campaign", "resume", "card")
    assert resumed.returncode == 0 and resumed.stdout.strip() == "campaign card: running"
    stopped = await asyncio.to_thread(_cli, migrated_db, "campaign", "stop", "card")
    assert stopped.stdout.strip() == "campaign card: stopped"
    again = await asyncio.to_thread(_cli, migrated_db, "campaign", "resume", "card")
    assert again.returncode == 1 and "cannot go to running" in again.stderr
    missing = await asyncio.to_thread(_cli, migrated_db, "campaign", "report", "nope")
    assert missing.returncode == 1 and "no campaign nope" in missing.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("campaign: bad\nflow: reminder-card\nmode: loud\ntargets: {csv: x.csv}\n")
    check = await asyncio.to_thread(_cli, migrated_db, "campaign", "validate", str(bad))
    assert check.returncode == 1 and check.stdout.strip() == f"{bad}:3:7: mode 'loud': one of message, progressive, preview"


async def test_a_previewed_contact_is_held_for_one_agent_at_a_time(migrated_db: str) -> None:
    preview = Campaign(campaign_id="pv", flow="reminder-card", mode=Mode.PREVIEW, targets=Targets(csv="x.csv"))
    numbers = [f"09123457{i:02d}" for i in range(6)]
    db = await asyncpg.connect(migrated_db)
    try:
        await _setup(db, numbers, preview)
    finally:
        await db.close()
    until = NOW + timedelta(seconds=120)

    async def agent(k: int) -> list[int]:
        conn = await asyncpg.connect(migrated_db)
        try:       # each agent asks three times at once and in a row: always its one contact
            got = await asyncio.gather(*(sc.preview_hold(conn, f"ag{k}", ["pv"], now=NOW, until=until)
                                         for _ in range(1)))
            got += [await sc.preview_hold(conn, f"ag{k}", ["pv"], now=NOW, until=until) for _ in range(2)]
            return [h.contact_id for h in got if h is not None]
        finally:
            await conn.close()

    held = await asyncio.gather(*(agent(k) for k in range(4)))
    assert all(len(set(h)) == 1 and len(h) == 3 for h in held), held      # one contact per agent
    assert len({h[0] for h in held}) == 4                                  # never one contact for two agents
    db = await asyncpg.connect(migrated_db)
    try:
        # the two contacts left go to a fifth and sixth agent, then there is none for a seventh
        assert (await sc.preview_hold(db, "ag4", ["pv"], now=NOW, until=until)) is not None
        assert (await sc.preview_hold(db, "ag5", ["pv"], now=NOW, until=until)) is not None
        assert await sc.preview_hold(db, "ag6", ["pv"], now=NOW, until=until) is None
        # the holds expire: ag6 takes the first contact, whoever held it; its holder holds it no more
        holder = {h[0]: f"ag{k}" for k, h in enumerate(held)}
        later = until + timedelta(seconds=1)
        freed = await sc.preview_hold(db, "ag6", ["pv"], now=later, until=later + timedelta(seconds=120))
        assert freed is not None
        if freed.contact_id in holder:
            assert await sc.preview_held(db, holder[freed.contact_id], freed.contact_id, now=later) is None
        # a claim for a contact the agent does not hold is refused; for its own it is the attempt
        assert await sc.claim(db, "pv", attempt_id="p-x", now=later, agent_id="ag1", contact_id=freed.contact_id) \
            is None
        c = await sc.claim(db, "pv", attempt_id="p-1", now=later, agent_id="ag6", contact_id=freed.contact_id)
        assert c is not None and c.contact_id == freed.contact_id and c.attempt_no == 1
        assert await sc.preview_held(db, "ag6", freed.contact_id, now=later) is None      # the hold ended
        # skip (at NOW: the other holds still run): done with the reason; only by its holder
        (skip_id, skipper), (dnc_id, dnc_agent) = [(cid, a) for cid, a in holder.items()
                                                   if cid != freed.contact_id][:2]
        assert not await sc.preview_skip(db, "ag6", skip_id, "no", now=NOW)
        assert await sc.preview_skip(db, skipper, skip_id, "wrong person", now=NOW)
        row = await db.fetchrow("SELECT status, final_result, skip_reason, preview_agent FROM campaign_contacts "
                                "WHERE contact_id = $1", skip_id)
        assert tuple(row) == ("done", "skipped", "wrong person", None)
        # a held number put on the do-not-call list: the contact closes (its hold with it), the claim is refused
        await sc.add_dnc(db, await db.fetchval("SELECT number FROM campaign_contacts WHERE contact_id = $1", dnc_id),
                         source="api", now=NOW)
        assert await sc.claim(db, "pv", attempt_id="p-2", now=NOW, agent_id=dnc_agent, contact_id=dnc_id) is None
        assert await db.fetchval("SELECT final_result FROM campaign_contacts WHERE contact_id = $1",
                                 dnc_id) == "do_not_call"
        assert await sc.preview_release(db, dnc_agent) == 0          # nothing held any more (done)
    finally:
        await db.close()
