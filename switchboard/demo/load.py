"""Load on the whole switchboard: many SIPp callers on mixed menu paths at a
given rate and concurrency, many agents answered by one SIPp process, and the
check that every call left exactly one record with the outcome its path implies.

Used by ``bench/load.py`` (the ramp, side by side with app_queue) and by the
load smoke test in ``make test`` (correctness under concurrency, no timing).

* Callers: one SIPp UAC process per path (``-r`` rate, ``-l`` concurrency,
  ``-m`` calls), each call with its own caller number read from an injection
  file, so a record tells which path its caller took.
* Agents: one SIPp process registers every agent's AOR (one REGISTER "call"
  per agent, with its user and password from an injection file) with the same
  contact, and answers every INVITE sent there (its out-of-call scenario).
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from switchboard.demo.sipp import (
    AwaitHangup,
    Dtmf,
    HangUp,
    Pause,
    PlayAudio,
    Step,
    agent_scenario,
    caller_scenario,
    register_scenario,
    sipp_binary,
    stop_sipp,
)
from switchboard.store.calls_query import records_of_callers, start_end_counts

#: A seeded participant (switchboard/store/seed.py) for the self-service status look-up.
KNOWN_SI_CODE = "0100000001"

#: Landline area codes the callers come from (one per provincial unit, north to south).
AREA_CODES = ("24", "225", "236", "28", "292", "238", "234", "262", "203", "237", "251", "296")


@dataclass(frozen=True, slots=True)
class CallerPath:
    """What one kind of caller does, and the outcome its record must carry."""

    name: str
    steps: tuple[Step, ...]
    outcome: str
    duration_s: float        # about how long one call lasts (for the ramp's hold times)


def _keys(*presses: str, gap: float = 2.5) -> list[Step]:
    steps: list[Step] = []
    for k in presses:
        steps += [Pause(gap), Dtmf(k)]
    return steps


def caller_paths(*, queue_topic_keys: Sequence[str] = ("0",), unserved_topic_keys: Sequence[str] = ("3", "2"),
                 queue_patience_s: float = 6.0) -> dict[str, CallerPath]:
    """The mixed paths: self-service status look-up, menus then an agent, hang-up in the menu,
    hang-up while waiting in line (for a topic no agent of the run has, so it is never answered)."""
    return {p.name: p for p in (
        CallerPath("self_service",
                   (*_keys("1", "4"), Pause(2.0), Dtmf(f"{KNOWN_SI_CODE}#"), Pause(24.0), Dtmf("2"),
                    AwaitHangup(60.0)),
                   "self_service", 40.0),
        CallerPath("agent", (*_keys("1", *queue_topic_keys), AwaitHangup(600.0)), "answered", 30.0),
        CallerPath("hangup_menu", (*_keys("1"), Pause(3.0), HangUp()), "abandoned_ivr", 9.0),
        CallerPath("hangup_queue", (*_keys("1", *unserved_topic_keys), Pause(queue_patience_s), HangUp()),
                   "abandoned_queue", 14.0),
    )}


#: 7 s of PCMA shipped by Debian's sip-tester: a caller who talks (``with_media``).
PCAP = "/usr/share/sip-tester/g711a.pcap"


def with_media(path: CallerPath, *, pcap: str = PCAP, chunk_s: float = 7.0) -> CallerPath:
    """The same path for a caller who sends RTP: every pause becomes the pcap played for as long
    (in pieces of at most its length), so Asterisk reads a caller's audio as from a phone (the
    waits for a hang-up and the gaps between the digits of one key press stay silent)."""
    steps: list[Step] = []
    for step in path.steps:
        if isinstance(step, Pause):
            left = step.seconds
            while left > 0.05:
                steps.append(PlayAudio(pcap, min(chunk_s, left)))
                left -= chunk_s
        else:
            steps.append(step)
    return CallerPath(path.name, tuple(steps), path.outcome, path.duration_s)


def caller_numbers(path_index: int, count: int, *, run: int = 0) -> list[str]:
    """``count`` distinct 11-digit landline numbers from many provinces; the path and the run are
    in the digits, so numbers never repeat across paths or runs (run < 100)."""
    out = []
    for i in range(count):
        code = AREA_CODES[i % len(AREA_CODES)]
        room = 10 - len(code)          # 0 + code + subscriber = 11 digits
        serial = f"{path_index}{run:02d}{i:0{room - 3}d}"
        if len(serial) != room:
            raise ValueError(f"too many calls for one path ({count})")
        out.append(f"0{code}{serial}")
    return out


def _injection(path: Path, rows: Sequence[Sequence[str]]) -> Path:
    """A SIPp injection file read in order; SIPp knows no quoting, so a value may hold no ``;``."""
    lines = ["SEQUENTIAL"]
    for row in rows:
        if any(";" in v or "\n" in v for v in row):
            raise ValueError(f"an injection value may not hold ';' or a line break: {row!r}")
        lines.append(";".join(row) + ";")
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class SippRun:
    """The counts SIPp itself reports for one run (its statistics file)."""

    name: str
    returncode: int
    created: int = 0
    successful: int = 0
    failed: int = 0
    errors: str = ""
    folder: Path = field(default_factory=Path)


def _read_outputs(folder: Path) -> tuple[dict[str, str], str]:
    """SIPp's last statistics line (header -> value) and its error log."""
    errors = "".join(p.read_text(errors="replace") for p in folder.glob("*_errors.log"))
    return _read_stats(folder), errors


def _read_stats(folder: Path) -> dict[str, str]:
    files = sorted(folder.glob("*_.csv"))
    if not files:
        return {}
    lines = [ln for ln in files[-1].read_text(errors="replace").splitlines() if ln.strip()]
    if len(lines) < 2:
        return {}
    head = lines[0].split(";")
    last = lines[-1].split(";")
    return dict(zip(head, last, strict=False))


async def run_callers(path: CallerPath, numbers: Sequence[str], *, remote: str, service: str, rate: float,
                      limit: int, workdir: Path, timeout: float, media_port: int | None = None) -> SippRun:
    """Place ``len(numbers)`` calls of one path at ``rate`` per second, at most ``limit`` at once.
    ``media_port``: SIPp's RTP port, for a path that plays audio (``with_media``; offers PCMA)."""
    folder = Path(tempfile.mkdtemp(prefix=f"load-{path.name}-", dir=workdir))
    codec = "PCMA" if any(isinstance(s, PlayAudio) for s in path.steps) else "PCMU"
    (folder / "scenario.xml").write_text(caller_scenario(path.steps, caller="[field0]", codec=codec))
    _injection(folder / "callers.csv", [(n,) for n in numbers])
    args = [sipp_binary(), remote, "-sf", "scenario.xml", "-inf", "callers.csv", "-s", service,
            "-m", str(len(numbers)), "-r", f"{rate:g}", "-rp", "1000", "-l", str(limit),
            "-i", "127.0.0.1", "-p", "0", "-nostdin", "-trace_err", "-trace_stat", "-fd", "1",
            "-timeout", f"{int(timeout)}s", "-timeout_error", "-max_recv_loops", "1000",
            "-max_sched_loops", "1000"]
    if media_port is not None:
        args += ["-mp", str(media_port)]
    proc = await asyncio.create_subprocess_exec(*args, cwd=folder, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
    try:
        rc = await asyncio.wait_for(proc.wait(), timeout + 30)
    except TimeoutError:
        proc.kill()
        rc = await proc.wait()
    stats, errors = await asyncio.to_thread(_read_outputs, folder)

    def num(key: str) -> int:
        try:
            return int(stats.get(key, "0") or 0)
        except ValueError:
            return 0

    return SippRun(path.name, rc, num("TotalCallCreated"), num("SuccessfulCall(C)"), num("FailedCall(C)"),
                   errors, folder)


class AgentFarm:
    """Every agent of a run in one SIPp process: each agent's AOR registers a contact at the
    farm's port, and the farm answers every call offered there (after ``answer_after`` s, then
    hangs up after ``talk`` s)."""

    def __init__(self, agents: Sequence[tuple[str, str]], *, remote: str, port: int, workdir: Path,
                 answer_after: float = 1.0, talk: float = 5.0, stay: float = 7200.0,
                 proxied: bool = False, trace_messages: bool = False) -> None:
        self.agents = list(agents)       # (endpoint, password)
        self.trace_messages = trace_messages   # SIPp's -trace_msg: every message, with its instant
        self.proxied = proxied           # behind Kamailio: the agents' BYEs follow the Record-Route
        self.remote, self.port = remote, port
        self.answer_after, self.talk, self.stay = answer_after, talk, stay
        self.folder = Path(tempfile.mkdtemp(prefix="load-agents-", dir=workdir))
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def errors(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.folder.glob("*_errors.log"))

    @property
    def messages(self) -> Path:
        """SIPp's message trace (``trace_messages``): each message under a line of dashes and
        the instant SIPp sent or received it (local time, microseconds)."""
        return self.folder / "messages.log"

    async def start(self) -> None:
        (self.folder / "register.xml").write_text(
            register_scenario(user="[field0]", password="", auth="[field1]", stay=self.stay))
        (self.folder / "uas.xml").write_text(agent_scenario(answer_after=self.answer_after, talk=self.talk,
                                                                  proxied=self.proxied))
        _injection(self.folder / "agents.csv",
                   [(user, f"[authentication username={user} password={password}]") for user, password in self.agents])
        n = len(self.agents)
        args = [sipp_binary(), self.remote, "-sf", "register.xml", "-oocsf", "uas.xml", "-inf", "agents.csv",
                "-m", str(n), "-l", str(n), "-r", "50", "-i", "127.0.0.1", "-p", str(self.port), "-nostdin",
                "-trace_err", "-max_recv_loops", "1000"]
        if self.trace_messages:
            args += ["-trace_msg", "-message_file", str(self.messages)]
        self.proc = await asyncio.create_subprocess_exec(
            *args, cwd=self.folder, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL, start_new_session=True)

    async def stop(self, *, timeout: float = 5.0) -> None:
        await stop_sipp(self.proc, timeout=timeout)


@dataclass
class RecordCheck:
    """How the stored records of a run compare with the calls SIPp placed."""

    expected: int = 0
    records: int = 0
    missing: list[str] = field(default_factory=list)             # caller numbers with no record
    duplicated: list[str] = field(default_factory=list)          # numbers with more than one record
    wrong_outcome: list[tuple[str, str, str]] = field(default_factory=list)   # (number, expected, stored)
    open_records: list[str] = field(default_factory=list)        # no ended_at
    event_faults: list[tuple[str, str, int]] = field(default_factory=list)    # (call_id, kind, count)

    @property
    def exact(self) -> bool:
        return not (self.missing or self.duplicated or self.wrong_outcome or self.open_records
                    or self.event_faults)

    @property
    def refused(self) -> list[str]:
        """Callers the overload gate refused (record outcome ``overload`` instead of their path's)."""
        return [number for number, _expected, stored in self.wrong_outcome if stored == "overload"]

    @property
    def exact_or_refused(self) -> bool:
        """Exact, except callers refused cleanly past capacity (each with its one closed record)."""
        return not (self.missing or self.duplicated or self.open_records or self.event_faults) and all(
            stored == "overload" for _n, _e, stored in self.wrong_outcome)

    def as_dict(self) -> dict[str, Any]:
        return {"expected": self.expected, "records": self.records, "missing": len(self.missing),
                "duplicated": len(self.duplicated), "wrong_outcome": len(self.wrong_outcome) - len(self.refused),
                "refused_overload": len(self.refused), "open": len(self.open_records),
                "event_faults": len(self.event_faults)}


def sip_refusals(errors: str) -> dict[str, int]:
    """SIP error responses SIPp callers got instead of their call (from its ``-trace_err`` log), by
    code: e.g. ``488`` when Asterisk had no RTP port left, before any dialplan ran."""
    out: dict[str, int] = {}
    for code in re.findall(r"received 'SIP/2\.0 ([3-6]\d\d) ", errors):
        out[code] = out.get(code, 0) + 1
    return out


async def check_records(conn: Any, expected: dict[str, str]) -> RecordCheck:
    """``expected``: caller number -> outcome. Every number must have exactly one closed
    ``calls`` row with that outcome, whose timeline holds exactly one ``call.started`` and
    one ``call.ended``."""
    rows = await records_of_callers(conn, list(expected))
    check = RecordCheck(expected=len(expected), records=len(rows))
    by_caller: dict[str, list[Any]] = {}
    for r in rows:
        by_caller.setdefault(r["caller"], []).append(r)
    for number, outcome in expected.items():
        got = by_caller.get(number, [])
        if not got:
            check.missing.append(number)
            continue
        if len(got) > 1:
            check.duplicated.append(number)
        for r in got:
            if r["outcome"] != outcome:
                check.wrong_outcome.append((number, outcome, r["outcome"] or ""))
            if r["ended_at"] is None:
                check.open_records.append(number)
    ids = [r["call_id"] for r in rows]
    counts = await start_end_counts(conn, ids)
    check.event_faults = [(r["call_id"], r["kind"], r["n"]) for r in counts if r["n"] != 1]
    return check
