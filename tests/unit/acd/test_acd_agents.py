"""Agent lists (YAML/CSV), PJSIP rendering with derived passwords, and the import into PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

import asyncpg
import pytest

from switchboard.acd.agents import AgentFileError, load_agents, parse_agents, render_pjsip, sip_password
from switchboard.cli import main
from switchboard.commands.agents import import_agents

REPO = Path(__file__).resolve().parents[3]
DEMO = REPO / "deploy" / "agents.yaml"

CSV = """id,name,sip_endpoint,home_province,languages,skills,active
agent2001,Nguyễn Văn A,,Thừa Thiên Huế,vi;en,social.pension=4;health.card=2,
agent2002,Trần Thị B,agent2002,Bình Dương,vi,unemployment.benefit=5,false
"""


def test_demo_list_is_valid_and_varied() -> None:
    agents = load_agents(DEMO)
    assert 10 <= len(agents) <= 16
    assert len({a.home_province for a in agents}) >= 6
    assert len({s for a in agents for s in a.skills}) >= 8
    assert [a.sip_endpoint for a in agents][:2] == ["agent1001", "agent1002"]
    assert "password" not in DEMO.read_text() and "secret:" not in DEMO.read_text()


def test_csv_with_names_defaults_and_inactive() -> None:
    a, b = parse_agents(CSV, fmt="csv")
    assert a.home_province == "hue" and a.sip_endpoint == "agent2001" and a.languages == ("vi", "en")
    assert dict(a.skills) == {"social.pension": 4, "health.card": 2} and a.active
    assert b.home_province == "ho-chi-minh" and not b.active


@pytest.mark.parametrize(("text", "message"), [
    ("agents: [{id: x1, name: A, skills: {social.pension: 6}}]", "1-5"),
    ("agents: [{id: x1, name: A, skills: {Social Pension: 3}}]", "skill"),
    ("agents: [{id: x1, name: A, home_province: Atlantis}]", "home_province"),
    ("agents: [{id: x1}]", "name"),
    ("agents: [{id: 'bad id', name: A}]", "id"),
    ("agents: [{id: x1, name: A, colour: red}]", "unknown field"),
    ("agents: [{id: x1, name: A}, {id: x1, name: B}]", "twice"),
    ("agents: [{id: x1, name: A, languages: [vietnamese]}]", "language"),
    ("agents: 3", "list"),
])
def test_bad_lists_are_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(AgentFileError, match=message):
        parse_agents(text, fmt="yaml")


def test_render_pjsip_derives_passwords_and_skips_inactive() -> None:
    agents = parse_agents(CSV, fmt="csv")
    text = render_pjsip(agents, "s3cret", context="agents", transport="transport-udp")
    assert text.count("type=endpoint") == 1 and "agent2002" not in text
    assert f"password={sip_password('s3cret', 'agent2001')}" in text
    assert "transport=transport-udp" in text and "set_var=SWITCHBOARD_AGENT=agent2001" in text
    assert "[agent2001](reap-vanished)\ntype=endpoint" in text   # RTP timeout + session timers (pjsip.conf)
    assert "[agent2001]\ntype=endpoint" in render_pjsip(agents, "s3cret", templates="")
    assert sip_password("s3cret", "agent2001") != sip_password("other", "agent2001")
    assert sip_password("s3cret", "agent2001") != sip_password("s3cret", "agent2002")
    with pytest.raises(ValueError):
        sip_password("", "agent2001")


def test_render_command_creates_the_secret_and_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("AGENT_SIP_SECRET", raising=False)
    secret = tmp_path / "agent.secret"
    creds = tmp_path / "creds.csv"
    out = tmp_path / "pjsip_agents.conf"
    assert main(["agents", "render-pjsip", "--secret-file", str(secret)]) == 1  # no secret yet
    assert "agent.secret" in capsys.readouterr().err
    rc = main(["agents", "render-pjsip", "--file", str(DEMO), "--secret-file", str(secret), "--create-secret",
               "-o", str(out), "--credentials-out", str(creds)])
    assert rc == 0
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and stat.S_IMODE(creds.stat().st_mode) == 0o600
    first = creds.read_text().splitlines()[0].split(",")
    assert first[0] == "agent1001" and first[1] == sip_password(secret.read_text().strip(), "agent1001")
    assert out.read_text().count("type=aor") == len(load_agents(DEMO)) + 2   # and the supervisors sup1, sup2
    monkeypatch.setenv("AGENT_SIP_SECRET", "from-env")
    assert main(["agents", "render-pjsip", "--secret-file", str(secret)]) == 0
    assert sip_password("from-env", "agent1001") in capsys.readouterr().out


AGENTS_DDL = """
CREATE TABLE IF NOT EXISTS agents (
    id text PRIMARY KEY, name text NOT NULL, sip_endpoint text NOT NULL,
    skills jsonb NOT NULL DEFAULT '{}'::jsonb, home_province text,
    languages text[] NOT NULL DEFAULT ARRAY['vi'], active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now())
"""


def test_import_upserts_into_postgresql(pg_dsn: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        conn = await asyncpg.connect(pg_dsn, timeout=10)
        try:
            await conn.execute(AGENTS_DDL, timeout=10)  # same columns as the store's migration
            await conn.execute("DELETE FROM agents WHERE id LIKE 'agent%'", timeout=10)
            await conn.execute("INSERT INTO agents (id, name, sip_endpoint) VALUES ('old1', 'Old', 'old1')")
            first = await import_agents(pg_dsn, load_agents(DEMO), command_timeout=10)
            assert first == {"inserted": 12, "updated": 0, "deactivated": 0}
            row = await conn.fetchrow("SELECT * FROM agents WHERE id = 'agent1011'")
            assert row is not None and json.loads(row["skills"])["social.pension"] == 4
            assert row["languages"] == ["vi", "km"] and row["home_province"] == "can-tho" and row["active"]
            again = await import_agents(pg_dsn, load_agents(DEMO)[:3], deactivate_missing=True,
                                        command_timeout=10)
            assert again == {"inserted": 0, "updated": 3, "deactivated": 10}
            active = await conn.fetch("SELECT id FROM agents WHERE active ORDER BY id")
            assert [r["id"] for r in active] == ["agent1001", "agent1002", "agent1003"]
        finally:
            await conn.close()

    asyncio.run(scenario())
    # the command reports database errors instead of a traceback
    assert main(["agents", "import", str(DEMO), "--dsn", "postgresql://nobody@127.0.0.1:1/none"]) == 1


def test_supervisors_get_phones_of_their_own() -> None:
    from switchboard.acd.agents import load_supervisors, parse_supervisors

    sups = load_supervisors(DEMO)
    assert [(s.id, s.sip_endpoint) for s in sups] == [("sup1", "sup1"), ("sup2", "sup2")]
    assert not {s.sip_endpoint for s in sups} & {a.sip_endpoint for a in load_agents(DEMO)}
    text = render_pjsip(load_agents(DEMO)[:1], "s3cret", supervisors=sups)
    section = text[text.index("[sup1]"):text.index("[sup1-auth]")]
    assert "context=supervisors" in section and "SWITCHBOARD_AGENT" not in section
    assert f"password={sip_password('s3cret', 'sup1')}" in text
    agents = parse_agents(CSV, fmt="csv")
    with pytest.raises(AgentFileError, match="already used"):
        parse_supervisors("supervisors:\n  - {id: s9, name: S, sip_endpoint: agent2001}\n", agents=agents)
    with pytest.raises(AgentFileError, match="sip_endpoint"):
        parse_supervisors("supervisors:\n  - {id: s9, name: S, sip_endpoint: 'x@trunk'}\n")
    with pytest.raises(AgentFileError, match="unknown field"):
        parse_supervisors("supervisors:\n  - {id: s9, name: S, skills: {general: 3}}\n")
    assert parse_supervisors("agents: []\n") == []
