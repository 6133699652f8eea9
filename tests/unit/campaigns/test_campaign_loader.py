"""Campaign definitions: YAML read with every problem at its file:line:column."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchboard.campaigns.loader import load_campaign_text, load_campaigns
from switchboard.campaigns.model import Campaign, Connect, Mode, Result
from switchboard.ivr.yaml_marks import FlowLoadError

GOOD = """\
campaign: card-expiry
description: "Health cards expiring within 30 days"
flow: reminder
mode: progressive
topic: health.card
province: ha-noi
window: "08:00-11:30, 13:30-20:00"
max_attempts: 4
retry: {no_answer: 2h, busy: 15m, failed: 600}
abandon_limit: 0.02
ring_seconds: 25s
caller_id: "19009068"
targets: {selection: cards_expiring, params: {days: 14}}
"""


def test_a_good_campaign_reads_every_field() -> None:
    c = load_campaign_text(GOOD, "campaigns/card.yaml", flows={"reminder", "hotline"})
    assert (c.campaign_id, c.flow, c.mode, c.topic, c.province) == (
        "card-expiry", "reminder", Mode.PROGRESSIVE, "health.card", "ha-noi")
    assert (c.retry.no_answer_s, c.retry.busy_s, c.retry.failed_s) == (7200, 900, 600)
    assert (c.max_attempts, c.abandon_limit, c.ring_s, c.caller_id) == (4, 0.02, 25, "19009068")
    assert c.targets.selection == "cards_expiring" and dict(c.targets.params) == {"days": 14}
    assert c.window == "08:00-11:30, 13:30-20:00"
    # the stored JSON form reads back to the same campaign
    assert Campaign.from_json(c.to_json()) == c


def test_defaults_for_a_minimal_campaign() -> None:
    c = load_campaign_text("campaign: m\nflow: f\ntargets: {csv: list.csv}\n", "m.yaml", flows={"f"})
    assert c.mode is Mode.MESSAGE and c.window == "07:30-20:00" and c.public_holidays
    assert c.max_attempts == 3 and c.abandon_limit == 0.03 and c.targets.csv == "list.csv"
    assert c.targets.selection == "" and c.retry.spacing(Result.BUSY) == 900


def test_every_problem_is_reported_at_its_place() -> None:
    bad = """\
campaign: Card!
flow: nope
mode: predictive
window: "20:00-07:00"
timezone: Mars/Olympus
max_attempts: 0
retry: {busy: soon, answered: 1h}
abandon_limit: 1.5
caller_id: "19009068&x"
targets: {selection: everyone}
colour: red
"""
    with pytest.raises(FlowLoadError) as info:
        load_campaign_text(bad, "c.yaml", flows={"reminder"})
    got = [str(e) for e in info.value.errors]
    expected = [
        "c.yaml:1:11: campaign id 'Card!': lower-case letters, digits, - and _ (at most 48)",
        "c.yaml:2:7: flow 'nope' does not exist (known: reminder)",
        "c.yaml:3:7: mode 'predictive': one of message, progressive, preview",
        "c.yaml:4:9: window: range ends before it starts: '20:00-07:00'",
        "c.yaml:5:11: timezone: unknown time zone 'Mars/Olympus'",
        "c.yaml:6:15: max_attempts must be between 1 and 20, got 0",
        "c.yaml:7:15: retry.busy: expected seconds or 30s / 15m / 2h, got 'soon'",
        "c.yaml:7:21: retry: unknown result 'answered' (retried: busy, failed, no_answer)",
        "c.yaml:8:16: abandon_limit must be between 0 and 1, got 1.5",
        "c.yaml:9:12: caller_id '19009068&x': digits only (a leading + allowed)",
        "c.yaml:10:22: targets.selection 'everyone': one of cards_expiring, contribution_stopped",
        "c.yaml:11:1: unknown top-level key 'colour' (allowed: abandon_limit, caller_id, campaign, connect, description, flow, "
        "max_attempts, mode, province, public_holidays, retry, ring_seconds, targets, timezone, topic, window)",
    ]
    assert sorted(got) == sorted(expected)


@pytest.mark.parametrize(("targets", "message"), [
    ("{csv: a.csv, selection: cards_expiring}", "targets: give exactly one of csv"),
    ("{}", "targets: give exactly one of csv"),
    ("{csv: ../../etc/passwd.csv}", "a .csv file beside the campaign"),
    ("{csv: /tmp/x.csv}", "a .csv file beside the campaign"),
    ("{selection: cards_expiring, params: {days: 900}}", "targets.params.days must be between 1 and 365"),
    ("{selection: cards_expiring, params: {sql: 'DROP TABLE participants'}}", "cards_expiring takes days"),
])
def test_targets_are_a_csv_beside_or_a_named_selection(targets: str, message: str) -> None:
    with pytest.raises(FlowLoadError) as info:
        load_campaign_text(f"campaign: t\nflow: f\ntargets: {targets}\n", "t.yaml")
    assert any(message in str(e) for e in info.value.errors), info.value.errors


def test_missing_keys_and_yaml_syntax() -> None:
    with pytest.raises(FlowLoadError) as info:
        load_campaign_text("description: x\n", "d.yaml")
    assert {e.message for e in info.value.errors} == {"missing top-level 'campaign'", "missing top-level 'flow'", "missing top-level 'targets'"}
    with pytest.raises(FlowLoadError) as info:
        load_campaign_text("campaign: [x\n", "s.yaml")
    assert info.value.errors[0].message.startswith("YAML syntax")


def test_a_folder_reports_every_file_and_duplicate_ids(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("campaign: one\nflow: f\ntargets: {csv: a.csv}\n")
    (tmp_path / "b.yaml").write_text("campaign: one\nflow: f\ntargets: {csv: b.csv}\n")
    (tmp_path / "c.yaml").write_text("campaign: two\nflow: g\ntargets: {csv: c.csv}\n")
    with pytest.raises(FlowLoadError) as info:
        load_campaigns(tmp_path, flows={"f"})
    assert [(Path(e.file).name, e.message) for e in info.value.errors] == [
        ("b.yaml", f"campaign 'one' is also defined in {tmp_path / 'a.yaml'}"),
        ("c.yaml", "flow 'g' does not exist (known: f)")]


def test_the_shipped_campaigns_are_valid() -> None:

    repo = Path(__file__).resolve().parents[3]
    flows = {p.stem for p in (repo / "ivr_flows").glob("*.yaml") if p.stem != "entries"}
    found = load_campaigns(repo / "campaigns", flows=flows)
    assert found, "campaigns/ ships at least one example"


def test_connect_is_for_progressive_campaigns() -> None:
    base = "campaign: m\nflow: f\ntargets: {csv: list.csv}\n"
    c = load_campaign_text(base + "mode: progressive\nconnect: agent_first\n", "m.yaml", flows={"f"})
    assert c.connect is Connect.AGENT_FIRST and c.agent_first
    assert Campaign.from_json(c.to_json()) == c
    assert load_campaign_text(base, "m.yaml", flows={"f"}).connect is Connect.CALLER_FIRST
    assert load_campaign_text(base + "mode: preview\n", "m.yaml", flows={"f"}).agent_first
    with pytest.raises(FlowLoadError) as bad:
        load_campaign_text(base + "mode: progressive\nconnect: sideways\n", "m.yaml", flows={"f"})
    assert "m.yaml:5:10: connect 'sideways'" in str(bad.value.errors[0])
    with pytest.raises(FlowLoadError) as bad:
        load_campaign_text(base + "mode: message\nconnect: agent_first\n", "m.yaml", flows={"f"})
    assert "agent_first is for mode progressive" in str(bad.value.errors[0])
