"""Q&A session definitions: the loader's checks and the running window (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from switchboard.ivr.yaml_marks import FlowLoadError
from switchboard.sessions.model import Session, conference_name, load_session_text, load_sessions

REPO = Path(__file__).resolve().parents[3]

GOOD = """\
session: pension-law
title: "The new pension law"
topic: social.pension
starts: 2026-03-03T09:00:00+07:00
ends: 2026-03-03T10:00:00+07:00
moderator: agent1001
capacity: 50
languages: [vi, en]
title_prompt: session_title_pension_law
"""


def test_a_good_session_reads_back_through_json() -> None:
    s = load_session_text(GOOD, "good.yaml")
    assert (s.session_id, s.capacity, s.languages, s.call_moderator) == ("pension-law", 50, ("vi", "en"), True)
    assert s.starts == datetime(2026, 3, 3, 2, 0, tzinfo=UTC)
    assert Session.from_json(s.to_json()) == s
    assert conference_name(s.session_id) == "sb-qa-pension-law"


def test_running_between_its_times_unless_ended_early() -> None:
    s = load_session_text(GOOD, "good.yaml")
    assert not s.running(s.starts - timedelta(seconds=1))
    assert s.running(s.starts)
    assert not s.running(s.ends)
    assert not s.running(s.starts + timedelta(minutes=5), ended_at=s.starts + timedelta(minutes=1))


@pytest.mark.parametrize(("change", "message"), [
    (("session: pension-law", "session: Pension Law"), "1:10: session id 'Pension Law'"),
    (("ends: 2026-03-03T10:00:00+07:00", "ends: 2026-03-03T08:00:00+07:00"), "5:7: ends must be after starts"),
    (("starts: 2026-03-03T09:00:00+07:00", "starts: 2026-03-03T09:00:00"), "4:9: starts: give the offset"),
    (("capacity: 50", "capacity: 0"), "7:11: capacity must be between 1 and 1000"),
    (("languages: [vi, en]", "languages: [fr]"), "8:12: languages: 'fr' is not one of vi, en"),
    (("moderator: agent1001\n", ""), "missing top-level 'moderator'"),
    (("topic: social.pension", "topic: social.pension\ncolour: red"), "unknown top-level key 'colour'"),
])
def test_every_problem_at_its_place(change: tuple[str, str], message: str) -> None:
    with pytest.raises(FlowLoadError) as exc:
        load_session_text(GOOD.replace(*change), "bad.yaml")
    assert any(message in str(e) for e in exc.value.errors), [str(e) for e in exc.value.errors]


def test_the_shipped_sessions_load() -> None:
    shipped = load_sessions(REPO / "sessions")
    assert shipped and all(s.title_prompt for s in shipped)


INVITED = GOOD + """\
invite:
  participants: ["9900000101", "9900000102"]
  numbers: ["0912700103"]
  attempts: 3
  retry_s: 60
"""


def test_registered_participants_read_back_through_json() -> None:
    s = load_session_text(INVITED, "invited.yaml")
    assert s.invite.participants == ("9900000101", "9900000102") and s.invite.numbers == ("0912700103",)
    assert (s.invite.attempts, s.invite.retry_s, s.invite.ring_s, s.invite.window) == (3, 60, 30, "07:30-20:00")
    assert Session.from_json(s.to_json()) == s
    plain = load_session_text(GOOD, "good.yaml")
    assert not plain.invite and plain.to_json()["invite"] is None and Session.from_json(plain.to_json()) == plain


@pytest.mark.parametrize(("change", "message"), [
    (('"9900000102"', '"99000001"'), "invite.participants: '99000001' is not an insurance code"),
    (('"0912700103"', '"call me"'), "invite.numbers: 'call me' is not a phone number"),
    (("attempts: 3", "attempts: 9"), "invite.attempts must be between 1 and 5"),
    (("retry_s: 60", "retry_s: 60\n  colour: red"), "invite: unknown key 'colour'"),
    (("retry_s: 60", 'retry_s: 60\n  window: "25:00-26:00"'), "invite.window"),
    # 09:00 local, a window from 13:00: nobody would be called
    (("retry_s: 60", 'retry_s: 60\n  window: "13:00-20:00"'), "starts at 09:00 (Asia/Ho_Chi_Minh), outside"),
])
def test_every_invite_problem_at_its_place(change: tuple[str, str], message: str) -> None:
    with pytest.raises(FlowLoadError) as exc:
        load_session_text(INVITED.replace(*change), "bad.yaml")
    assert any(message in str(e) for e in exc.value.errors), [str(e) for e in exc.value.errors]
