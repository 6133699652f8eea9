"""The hotline IVR through the real composition root: SIPp callers on the real
Asterisk 22, the whole service built by ``build_application`` (IVR runner, CRM
lookup on PostgreSQL, ACD, call book, event writer), and the call record read
back from the database: the ``calls`` row and the ``call_events`` timeline.

No agent is logged in: callers that reach the line wait, then hang up
(``abandoned_queue``). The IVR clock is Tuesday 10:00 in Hà Nội (open).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import pytest
from e2e_service import HOTLINE, Service, migrate, running_service

from switchboard.ami.agi import AgiHangup, AgiResult, AgiSession
from switchboard.audio.numbers import say_number
from switchboard.demo.sipp import AwaitHangup, Dtmf, HangUp, Pause, SippResult, Step
from switchboard.store.seed import seed_demo

pytestmark = pytest.mark.e2e

#: A seeded participant (switchboard/store/seed.py): Hà Nội, last paid June 2025.
KNOWN_CODE = "0100000001"
UNKNOWN_CODE = "0199999999"


class AgiLog:
    """Every AGI command the service sends on each call (by call id), with its result."""

    def __init__(self) -> None:
        self.by_call: dict[str, list[tuple[str, AgiResult | None]]] = {}

    def watch(self, session: AgiSession) -> None:
        log = self.by_call.setdefault(session.linkedid, [])
        execute = session.execute

        async def recorded(command: str, *, timeout: float | None = None, tag: str = "") -> AgiResult:
            try:
                result = await execute(command, timeout=timeout, tag=tag)
            except AgiHangup:
                log.append((command, None))
                raise
            log.append((command, result))
            return result

        session.execute = recorded  # type: ignore[method-assign]

    @classmethod
    def attach(cls, svc: Service) -> AgiLog:
        """A log of every AGI session the service's AgiManager starts from now on."""
        agi = cls()
        manager = svc.app.context["manager"]
        on_start = manager._on_start

        async def watched(session: AgiSession) -> None:
            agi.watch(session)
            await on_start(session)

        manager._on_start = watched
        return agi

    def commands(self, call_id: str) -> list[str]:
        cmds = [c for c, _ in self.by_call.get(call_id, [])]
        print(f"AGI on {call_id}:", *self.by_call.get(call_id, []), sep="\n  ")  # shown when a test fails
        return cmds


@contextlib.asynccontextmanager
async def ivr_service(env: dict[str, str], dsn: str) -> AsyncIterator[tuple[Service, AgiLog]]:
    """The running service on a migrated database holding the demo participants."""
    await migrate(dsn)
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        assert await seed_demo(conn) == 20
    finally:
        await conn.close()
    async with running_service(env, dsn) as svc:
        yield svc, AgiLog.attach(svc)


def keys(*presses: str, gap: float = 2.5) -> list[Step]:
    """One key (or key string) per prompt, ``gap`` seconds apart."""
    steps: list[Step] = []
    for k in presses:
        steps += [Pause(gap), Dtmf(k)]
    return steps


async def stored(svc: Service, call_id: str) -> tuple[asyncpg.Record, list[dict[str, Any]]]:
    """The calls row and the timeline (seq, kind, data decoded) once call.ended is stored."""
    row, events = await svc.record(call_id)
    return row, [{"seq": e["seq"], "kind": e["kind"], "data": json.loads(e["data"])} for e in events]


async def place(svc: Service, steps: Sequence[Step], *, caller: str,
                dialed: str = HOTLINE) -> tuple[str, SippResult]:
    """Run one SIPp call to the end; its call id."""
    task = svc.call(steps, caller=caller, dialed=dialed)
    call_id = await svc.wait_call_id(caller)
    result = await task
    assert result.ok, result.errors or result.stderr
    return call_id, result


def path(timeline: Sequence[Any]) -> list[tuple[str, str | None]]:
    """(node, input) of the stored ivr.step events, in order."""
    return [(e["data"]["node"], e["data"]["input"]) for e in timeline if e["kind"] == "ivr.step"]


def kinds(timeline: Sequence[Any]) -> list[str]:
    return [e["kind"] for e in timeline]


def data(timeline: Sequence[Any], kind: str) -> list[dict[str, Any]]:
    return [e["data"] for e in timeline if e["kind"] == kind]


def assert_numbered(timeline: Sequence[Any]) -> None:
    """One timeline: call.started first, seq increasing, exactly one call.ended."""
    seqs = [e["seq"] for e in timeline]
    assert seqs == sorted(set(seqs)), kinds(timeline)
    assert timeline[0]["kind"] == "call.started", kinds(timeline)
    assert kinds(timeline).count("call.ended") == 1, kinds(timeline)


# ---------------------------------------------------------------------------- contribution lookup


async def test_lookup_by_si_code_reads_back_the_status_and_routes_with_the_crm_province(
        stack_env: dict[str, str], fresh_db: str) -> None:
    caller = "0987000101"
    steps: list[Step] = [*keys("1", "4"), Pause(2.0), Dtmf(f"{KNOWN_CODE}#"),
                         # the status is read back (~18 s); then 1 = talk to an agent about it
                         Pause(24), Dtmf("1"), Pause(9), HangUp()]
    async with ivr_service(stack_env, fresh_db) as (svc, agi):
        call_id, _ = await place(svc, steps, caller=caller)
        cmds = agi.commands(call_id)
        row, timeline = await stored(svc, call_id)
        prefix = stack_env["STACK_SOUND_PREFIX"]

    assert_numbered(timeline)
    assert path(timeline)[:10] == [
        ("welcome", None), ("choose_language", "1"), ("hours_check", "default"), ("session_check", "not found"),
        ("main_menu", "4"),
        ("ask_si_code", KNOWN_CODE), ("lookup_si", "found"), ("si_found", "case 1"), ("si_status", None),
        ("si_status_menu", "1")]
    assert data(timeline, "ivr.lookup") == [{"by": "si_code", "found": True, "participant_id": KNOWN_CODE,
                                             "error": False}]
    # The status read back: the code digit by digit, paid up to month 6 of 2025.
    # (a prompt resumed after the caller's trailing '#' has an offset: counted once)
    streamed = [c.split()[2].strip('"').rsplit("/", 1)[1] for c in cmds
                if c.startswith("STREAM FILE") and c.endswith('"0123456789*#"')]
    i = streamed.index("si_code_is")
    assert streamed[i:i + 21] == ["si_code_is", *(f"num_{d}" for d in KNOWN_CODE), "status_paid_to_month",
                                  "num_6", "status_year", *say_number(2025, "vi")], streamed
    assert all(c.startswith(f'STREAM FILE "{prefix}/vi/') for c in cmds if c.startswith("STREAM FILE"))
    joined = data(timeline, "queue.joined")
    assert [(j["topic"], j["province"], j["province_source"]) for j in joined] == [
        ("social.contribution", "ha-noi", "crm")]
    assert (row["outcome"], row["participant_id"], row["topic"], row["province"], row["province_source"]) == (
        "abandoned_queue", KNOWN_CODE, "social.contribution", "ha-noi", "crm")
    assert row["language"] == "vi"


async def test_unknown_si_code_takes_the_not_found_path(stack_env: dict[str, str], fresh_db: str) -> None:
    caller = "0987000102"
    steps: list[Step] = [*keys("1", "4"), Pause(2.0), Dtmf(f"{UNKNOWN_CODE}#"), Pause(14), HangUp()]
    async with ivr_service(stack_env, fresh_db) as (svc, agi):
        call_id, _ = await place(svc, steps, caller=caller)
        cmds = agi.commands(call_id)
        row, timeline = await stored(svc, call_id)

    assert_numbered(timeline)
    assert path(timeline) == [
        ("welcome", None), ("choose_language", "1"), ("hours_check", "default"), ("session_check", "not found"),
        ("main_menu", "4"),
        ("ask_si_code", UNKNOWN_CODE), ("lookup_si", "not found"), ("si_not_found", None),
        ("si_retry_menu", "hangup")]
    assert data(timeline, "ivr.lookup") == [{"by": "si_code", "found": False, "participant_id": None,
                                             "error": False}]
    assert any(c.endswith('/vi/si_not_found"') for c in cmds), cmds
    assert "queue.joined" not in kinds(timeline)
    assert (row["outcome"], row["ivr_node"], row["participant_id"], row["topic"]) == (
        "abandoned_ivr", "si_retry_menu", None, None)


# ---------------------------------------------------------------------------- silence


async def test_silence_at_the_main_menu_ends_with_the_no_input_goodbye(
        stack_env: dict[str, str], fresh_db: str) -> None:
    caller = "0987000103"
    # vi, then nothing: main menu asked 3 times (16.6 s prompt + 5 s each), goodbye, Asterisk hangs up.
    steps: list[Step] = [*keys("1"), AwaitHangup(100)]
    async with ivr_service(stack_env, fresh_db) as (svc, agi):
        call_id, _ = await place(svc, steps, caller=caller)
        cmds = agi.commands(call_id)
        row, timeline = await stored(svc, call_id)
        prefix = stack_env["STACK_SOUND_PREFIX"]

    assert_numbered(timeline)
    assert path(timeline)[-2:] == [("main_menu", "timeout"), ("goodbye_no_input", None)]
    assert cmds.count(f'GET DATA "{prefix}/vi/main_menu" 5000 1') == 3
    assert cmds.count(f'STREAM FILE "{prefix}/vi/no_input" "0123456789*#"') == 2
    assert cmds[-2:] == [f'EXEC Playback "{prefix}/vi/goodbye_no_input"', "HANGUP"]
    assert (row["outcome"], row["ivr_node"], row["topic"]) == ("abandoned_ivr", "goodbye_no_input", None)


# ---------------------------------------------------------------------------- province by key entry


async def test_mobile_caller_keys_a_province_code(stack_env: dict[str, str], fresh_db: str) -> None:
    caller = "0912000104"   # a mobile: no area code; 19009068 fixes no province
    # vi, main menu 0 (agent), then "12#" into the province list (12 = Quảng Ninh)
    steps: list[Step] = [*keys("1", "0"), Pause(4), Dtmf("1"), Pause(1), Dtmf("2"), Pause(1), Dtmf("#"),
                         Pause(12), HangUp()]
    async with ivr_service(stack_env, fresh_db) as (svc, _):
        call_id, _ = await place(svc, steps, caller=caller)
        row, timeline = await stored(svc, call_id)

    assert_numbered(timeline)
    assert path(timeline) == [
        ("welcome", None), ("choose_language", "1"), ("hours_check", "default"), ("session_check", "not found"),
        ("main_menu", "0"),
        ("province_check", "default"), ("ask_province", "12"), ("province_chosen", "case 1"),
        ("province_from_menu", None), ("connecting", None), ("agent", "hangup")]
    joined = data(timeline, "queue.joined")
    assert [(j["topic"], j["province"], j["province_source"]) for j in joined] == [
        ("general", "quang-ninh", "menu")]
    assert (row["outcome"], row["topic"], row["province"], row["province_source"]) == (
        "abandoned_queue", "general", "quang-ninh", "menu")


async def test_mobile_caller_unsure_of_the_province_goes_nationwide(
        stack_env: dict[str, str], fresh_db: str) -> None:
    caller = "0912000105"
    steps: list[Step] = [*keys("1", "0"), Pause(4), Dtmf("0"), Pause(14), HangUp()]
    async with ivr_service(stack_env, fresh_db) as (svc, _):
        call_id, _ = await place(svc, steps, caller=caller)
        row, timeline = await stored(svc, call_id)

    assert_numbered(timeline)
    assert path(timeline)[5:] == [
        ("province_check", "default"), ("ask_province", "0"), ("province_chosen", "default"),
        ("province_nationwide", None), ("connecting", None), ("agent", "hangup")]
    joined = data(timeline, "queue.joined")
    assert [(j["topic"], j["province"] or None, j["province_source"]) for j in joined] == [
        ("general", None, "none")]
    assert (row["outcome"], row["topic"], row["province"] or None, row["province_source"]) == (
        "abandoned_queue", "general", None, "none")


# ---------------------------------------------------------------------------- wrong keys, English


async def test_english_caller_recovers_from_a_wrong_key(stack_env: dict[str, str], fresh_db: str) -> None:
    caller = "02363822105"  # Đà Nẵng landline (area code 236)
    # 2 = English; 9 is no option of the main menu; then 1 social insurance, 1 pension
    steps: list[Step] = [*keys("2", "9", "1", "1"), Pause(9), HangUp()]
    async with ivr_service(stack_env, fresh_db) as (svc, agi):
        call_id, _ = await place(svc, steps, caller=caller)
        cmds = agi.commands(call_id)
        row, timeline = await stored(svc, call_id)
        prefix = stack_env["STACK_SOUND_PREFIX"]

    assert_numbered(timeline)
    assert path(timeline) == [
        ("welcome", None), ("choose_language", "2"), ("hours_check", "default"), ("session_check", "not found"),
        ("main_menu", "1"),
        ("social_menu", "1"), ("province_check", "case 3"), ("province_from_caller", None),
        ("connecting", None), ("agent", "hangup")]
    # the wrong key was heard: "invalid choice", then the menu again, all in English
    results = agi.by_call[call_id]
    menu = [r.result for c, r in results if c == f'GET DATA "{prefix}/en/main_menu" 5000 1' and r is not None]
    assert menu == ["9", "1"], results
    assert f'STREAM FILE "{prefix}/en/invalid_choice" "0123456789*#"' in cmds
    assert not [c for c in cmds[2:] if "/vi/" in c], cmds   # after the language choice: only en prompts
    joined = data(timeline, "queue.joined")
    assert [(j["topic"], j["province"], j["province_source"], j["language"]) for j in joined] == [
        ("social.pension", "da-nang", "caller_id", "en")]
    assert (row["outcome"], row["language"], row["topic"], row["province"], row["province_source"]) == (
        "abandoned_queue", "en", "social.pension", "da-nang", "caller_id")
