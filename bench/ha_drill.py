"""The failover drill of issue 17 (docs/ha.md): ``kill -9`` of the leader with about 60 callers in
the menus, the standby takes over.

On the local stack (`make stack-up` first; its run/stack.env), two service instances (a and b,
``ha.enabled``, each a process, the helpers of tests/e2e/ha_helpers.py) on a scratch database:
SIPp places ``--callers`` calls at ``--rate`` per second on the self-service path of
``bench/load.py`` (language, contribution look-up, the SI code, the status, goodbye: about 40 s
each). Once the last has arrived (all of them in the menus), the leader is killed (SIGKILL); it is
started again at once, as a standby (what systemd does). Measured:

* ``takeover_s``: the kill to the standby's ``/readyz`` saying ``leader`` (polled every 50 ms);
  ``standby_takeover_s``: what the new leader reports (lock acquired to acting, grace included);
* ``sipp_failed``: calls SIPp counts as failed (no answer, or the caller's script gave up waiting
  for the goodbye: a caller asked again after a lost key outlasts it); ``hung_up_by_service``,
  ``fallback``: callers the service cut off or sent to the fallback queue (dropped);
  ``outcomes``: the records' outcomes (the path's is ``self_service``);
* ``records``: the records check of bench/load.py (one closed record per caller, with one
  ``call.started`` and one ``call.ended``): missing, duplicated, open, event faults;
* ``started_over``: callers whose flow started again from the welcome prompt (two ``welcome``
  steps); ``repeated_prompt``: callers who heard a prompt again, from Asterisk's own log of the AMI
  actions (``manager set debug on``; each instance's ActionIDs carry its process mark): the new
  leader's first prompt on the channel (``STREAM FILE``, ``GET DATA``, ``EXEC Playback``) is one
  the old leader had already played there; ``resumed_with_answer``: callers whose answer, typed
  while nobody led, was used (the new leader's log); ``typed_ahead``: callers whose keys, pressed
  while no command ran on their channel, were typed ahead into the resumed flow (same log);
* the machine: cores, CPU model, load average at start and end.

One JSON line on stdout, appended to run/ha-drill/results.jsonl.

Usage: .venv/bin/python bench/ha_drill.py [--callers 60] [--rate 3] [--keep-db]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "e2e")]

from e2e_service import hang_up_leftovers, sip_remote  # noqa: E402
from e2e_stack import ami_settings  # noqa: E402
from ha_helpers import AsteriskActionLog, LoggedAction, two_instances  # noqa: E402

from bench.load import HOTLINE, loadavg, machine  # noqa: E402
from switchboard.ami.client import AmiClient  # noqa: E402
from switchboard.config import read_env_file  # noqa: E402
from switchboard.demo.load import caller_numbers, caller_paths, check_records, run_callers  # noqa: E402

PROMPT_VERBS = ("STREAM FILE ", "GET DATA ", "EXEC Playback ")


def prompt_of(command: str) -> str | None:
    """The sound file(s) an AGI command plays, None for any other command."""
    for verb in PROMPT_VERBS:
        if command.startswith(verb):
            return command[len(verb):].split(" ", 1)[0].strip('"')
    return None


def repeated_prompts(actions: list[LoggedAction], old_mark: str, new_mark: str) -> tuple[int, int]:
    """(channels the new leader played something on, of them: whose first prompt the old leader had
    already played there)."""
    old: dict[str, set[str]] = {}
    first_new: dict[str, str] = {}
    for x in actions:
        if x.name != "AGI":
            continue
        prompt = prompt_of(x.headers.get("Command", ""))
        channel = x.headers.get("Channel", "")
        if prompt is None or not channel:
            continue
        if x.sent_by(old_mark):
            old.setdefault(channel, set()).add(prompt)
        elif x.sent_by(new_mark) and channel not in first_new:
            first_new[channel] = prompt
    taken = [c for c in first_new if c in old]
    return len(taken), sum(1 for c in taken if first_new[c] in old[c])


def marks(actions: list[LoggedAction]) -> list[str]:
    """The process marks of the instances that sent AGI commands, in the order they first did."""
    out: list[str] = []
    for x in actions:
        if x.name == "AGI" and x.action_id.startswith("sb"):
            mark = x.action_id[2:].split(".", 1)[0]
            if mark not in out:
                out.append(mark)
    return out


async def in_agi(admin: AmiClient) -> int:
    resp = await admin.send({"Action": "CoreShowChannels"}, timeout=10)
    return sum(1 for ev in getattr(resp, "events", ()) if ev.get("Application") == "AGI")


async def drill(args: argparse.Namespace) -> dict[str, Any]:
    env_file = REPO / "run" / "stack.env"
    if not env_file.is_file():
        raise SystemExit("run/stack.env is missing: bring the stack up first (make stack-up)")
    env = read_env_file(env_file)
    base = env["SWITCHBOARD_DSN"]
    name = f"sbdrill_{uuid.uuid4().hex[:8]}"
    admin_db = await asyncpg.connect(base, timeout=10)
    await admin_db.execute(f'CREATE DATABASE "{name}"')
    dsn = f"{base.rsplit('/', 1)[0]}/{name}"
    work = REPO / "run" / "ha-drill" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    work.mkdir(parents=True)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    box = machine()
    a, b = await two_instances(env, dsn, work)
    action_log = AsteriskActionLog(env, f"sb-ha-drill-{os.getpid()}.log")
    admin = AmiClient(ami_settings(env, admin=True))
    await admin.start(timeout=10)
    path = caller_paths()["self_service"]
    numbers = caller_numbers(1, args.callers, run=int(time.time()) % 100)
    expected = dict.fromkeys(numbers, path.outcome)
    try:
        await a.start()
        await a.wait_role("leader", timeout=20)
        await b.start()
        await b.wait_role("standby", timeout=20)
        await action_log.start()
        callers = asyncio.create_task(run_callers(
            path, numbers, remote=sip_remote(env), service=HOTLINE, rate=args.rate, limit=args.callers,
            workdir=work, timeout=400))
        await asyncio.sleep(args.callers / args.rate + 1.0)   # the last caller has arrived
        menus = await in_agi(admin)
        load_at_kill = loadavg()
        a.kill9()
        killed = time.monotonic()
        await b.wait_role("leader", timeout=60)
        takeover_s = time.monotonic() - killed
        status_b = await b.readyz()
        for _ in range(100):   # its own figure comes once the acting parts have started
            if status_b.get("takeover_s") is not None:
                break
            await asyncio.sleep(0.1)
            status_b = await b.readyz()
        await a.start()                      # back, as a standby (systemd's Restart=)
        await a.wait_role("standby", timeout=30)
        run = await callers
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            for _ in range(60):
                check = await check_records(conn, expected)
                if not (check.missing or check.open_records):
                    break
                await asyncio.sleep(1.0)
            outcomes = {r["outcome"] or "": r["n"] for r in await conn.fetch(
                "SELECT outcome, count(*) AS n FROM calls WHERE caller = ANY($1::text[]) GROUP BY 1", numbers)}
            started_over = await conn.fetchval(
                "SELECT count(*) FROM (SELECT call_id FROM call_events WHERE kind = 'ivr.step' "
                "AND data->>'node' = 'welcome' AND call_id IN (SELECT call_id FROM calls WHERE caller = ANY($1::text[])) "
                "GROUP BY call_id HAVING count(*) > 1) t", numbers)
            fallback, cut_off = await conn.fetchrow(
                "SELECT count(*) FILTER (WHERE kind = 'call.handed_to_fallback'), "
                "count(*) FILTER (WHERE kind = 'call.hung_up_by_service') FROM call_events WHERE call_id IN "
                "(SELECT call_id FROM calls WHERE caller = ANY($1::text[]))", numbers)
        finally:
            await conn.close()
        await action_log.stop()
        logged = action_log.actions()
        seen = marks(logged)
        taken, repeated = repeated_prompts(logged, seen[0], seen[1]) if len(seen) >= 2 else (0, 0)
        log_b = b.log.read_text(errors="replace")
        row = {
            "bench": "ha_drill", "at": started_at, "callers": args.callers, "rate": args.rate,
            "path": path.name, "in_menus_at_kill": menus,
            "takeover_s": round(takeover_s, 3), "standby_takeover_s": status_b.get("takeover_s"),
            "grace_s": status_b.get("grace_s"),
            "sipp": {"created": run.created, "successful": run.successful, "failed": run.failed},
            "sipp_failed": run.failed, "outcomes": outcomes, "records": check.as_dict(),
            "records_lost": len(check.missing), "records_duplicated": len(check.duplicated),
            "event_faults": len(check.event_faults), "fallback": fallback, "hung_up_by_service": cut_off,
            "started_over": started_over, "channels_taken_over": taken, "repeated_prompt": repeated,
            "resumed_with_answer": log_b.count("with the answer given meanwhile"),
            "typed_ahead": log_b.count("typed while nobody served the call"),
            "resumed": log_b.count(": resumes at "),
            **{k: v for k, v in box.items() if k != "loadavg_start"},
            "loadavg_start": box["loadavg_start"], "loadavg_at_kill": load_at_kill, "loadavg_end": loadavg(),
            "work": str(work.relative_to(REPO)),
        }
        return row
    finally:
        await action_log.stop()
        action_log.path.unlink(missing_ok=True)
        for instance in (b, a):
            await instance.stop()
        await hang_up_leftovers(env)
        await admin.close()
        if not args.keep_db:
            await admin_db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin_db.close()


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--callers", type=int, default=60)
    p.add_argument("--rate", type=float, default=3.0, help="new calls per second")
    p.add_argument("--keep-db", action="store_true", help="keep the scratch database (its name is in the log)")
    args = p.parse_args(argv)
    row = asyncio.run(drill(args))
    line = json.dumps(row, ensure_ascii=False)
    print(line)
    out = REPO / "run" / "ha-drill" / "results.jsonl"
    with out.open("a", encoding="utf-8") as f:
        f.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
