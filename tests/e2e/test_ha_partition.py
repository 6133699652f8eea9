"""Active/standby (issue 17, docs/ha.md): the leader cut from PostgreSQL serves on until a standby
writes a higher epoch into Asterisk's heartbeat, then stops; what it spooled meanwhile reaches
PostgreSQL once, when it is back.

Two callers are in the menus. The standby is frozen (SIGSTOP), the leader's PostgreSQL link is cut
(a TCP proxy): the leader still answers the callers' keys (main menu -> health menu, seen from
Asterisk: its AGI commands and the flow's memo on the channels), serves a third caller who
arrives during the cut, and spools the events. The standby
let go takes the lock, writes its epoch, and acts; the old leader is fenced (exit 75). Checked
from Asterisk's side: in Asterisk's own log of the AMI actions it reads (``manager set debug on``,
every session, in order; each instance's ActionIDs carry its process mark), the old leader sends
no action but read-only ones (its heartbeat reads) once the new leader's ``Setvar`` of the
heartbeat with the new epoch is in; and from an independent AMI session (the test's admin user,
every event): the old epoch never comes back into the heartbeat, and no AGI command of the old
leader starts once the new leader's first has. The old leader started again (the link back) replays its spool: the keys pressed during the
cut are recorded once, each call has one row and one ``call.started``/``call.ended``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from e2e_service import run_caller, sip_remote, until
from e2e_stack import ami_settings, stop_process
from ha_helpers import (
    AsteriskActionLog,
    HeartbeatWatch,
    TcpProxy,
    call_ids,
    events,
    fetch,
    has_event,
    leader_and_standby,
    two_instances,
    wind_down,
)

from switchboard.ami.client import READ_ONLY_ACTIONS, AmiClient
from switchboard.demo.sipp import Dtmf, HangUp, Pause, SippResult, caller_scenario
from switchboard.ha.leader import EXIT_FENCED
from switchboard.ivr import memo
from switchboard.telephony import heartbeat

pytestmark = pytest.mark.e2e

CALLERS = ["02838300081", "02838300082"]
LATE = "02838300083"   # arrives during the cut: the old leader starts its record, the new one adopts it


class AgiWatch:
    """Who runs AGI commands, as Asterisk says: ``AsyncAGIExec`` events (a command's end; its
    ``CommandID`` carries the sending process's mark, ``agi<mark>-<uniqueid>-<n>``) and the IVR
    memo writes (``VarSet`` of ``SB_IVR``)."""

    def __init__(self) -> None:
        self.execs: list[tuple[float, str, str]] = []      # (time.monotonic(), mark, uniqueid)
        self.memos: list[tuple[float, str, str]] = []      # (time.monotonic(), uniqueid, node)

    def __call__(self, ev: Any) -> None:
        now = time.monotonic()
        if ev.name == "AsyncAGIExec":
            parts = (ev.get("CommandID") or ev.get("CommandId") or "").split("-")
            if len(parts) >= 3 and parts[0].startswith("agi"):
                self.execs.append((now, parts[0][3:], parts[1]))
        elif ev.name == "VarSet" and ev.get("Variable") == memo.VARIABLE:
            got = memo.decode(ev.get("Value") or "")
            if got is not None:
                self.memos.append((now, ev.get("Uniqueid") or "", got.node))


async def test_leader_cut_from_postgresql_serves_until_the_standby_writes_its_epoch(
        stack_env: dict[str, str], pg_dsn: str, tmp_path: Path) -> None:
    host_port = pg_dsn.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    proxy = TcpProxy(host, int(port))
    await proxy.start()
    proxied = pg_dsn.replace(host_port, f"127.0.0.1:{proxy.port}")
    a, b = await two_instances(stack_env, pg_dsn, tmp_path, dsn_a=proxied)
    admin = AmiClient(ami_settings(stack_env, admin=True))
    await admin.start(timeout=10)
    agi = AgiWatch()
    admin.subscribe(agi, names=("AsyncAGIExec", "VarSet"))
    watch = HeartbeatWatch(admin)
    watch.start()
    action_log = AsteriskActionLog(stack_env, f"sb-ha-actions-{os.getpid()}.log")
    await action_log.start()
    tasks: list[asyncio.Task[SippResult]] = []
    try:
        await leader_and_standby(a, b)
        epoch_a = int((await a.readyz())["epoch"])
        for caller in CALLERS:   # language, then the main menu: "2" (health) during the cut, "1" after
            steps = [Pause(2.5), Dtmf("1"), Pause(9.0), Dtmf("2"), Pause(10.0), Dtmf("1"), Pause(8.0), HangUp()]
            tasks.append(asyncio.create_task(run_caller(caller_scenario(steps, caller=caller),  # type: ignore[arg-type]
                                                        remote=sip_remote(stack_env), service="19009068",
                                                        timeout=90)))
        for caller in CALLERS:
            await until(lambda c=caller: has_event(pg_dsn, c, "ivr.step", node="choose_language", input="1"),
                        timeout=30, what=f"{caller} chose a language")
        assert b.proc is not None
        stop_process(b.proc.pid)   # the standby frozen: the leader alone, cut from PostgreSQL
        await proxy.cut()
        cut = time.monotonic()
        tasks.append(asyncio.create_task(run_caller(
            caller_scenario([Pause(2.5), Dtmf("1"), Pause(16.0), HangUp()], caller=LATE),  # type: ignore[arg-type]
            remote=sip_remote(stack_env), service="19009068", timeout=90)))

        async def all_served() -> bool:   # both took the health menu, the late caller reached the main menu
            nodes = [(uid, node) for t, uid, node in agi.memos if t > cut]
            return (len({uid for uid, node in nodes if node == "health_menu"}) == len(CALLERS)
                    and any(node == "main_menu" for _, node in nodes))

        await until(all_served, timeout=30, what="the leader cut from PostgreSQL served the callers")
        status_a = await a.readyz()
        assert status_a["role"] == "leader" and status_a["lock"] is False, status_a
        assert a.proc is not None and a.proc.returncode is None
        os.kill(b.proc.pid, signal.SIGCONT)
        await b.wait_role("leader", timeout=15)
        assert await a.exit_code(timeout=15) == EXIT_FENCED
        epoch_b = int((await b.readyz())["epoch"])
        assert epoch_b > epoch_a

        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 90)
        assert all(not isinstance(r, BaseException) for r in results), results
        for caller in [*CALLERS, LATE]:
            await until(lambda c=caller: has_event(pg_dsn, c, "call.ended"), timeout=20, what=f"{caller} closed")
        await watch.stop()

        # Asterisk's side: once the new epoch is in the heartbeat, the old one never comes back
        after = [(t, heartbeat.parse_beat(v)[1]) for t, v in watch.values if t > cut]
        new_at = next(t for t, e in after if e == epoch_b)
        assert all(e == epoch_b for t, e in after if t >= new_at), watch.changes()
        marks_before = {m for t, m, _ in agi.execs if t < cut}
        assert len(marks_before) == 1, marks_before          # the leader alone ran AGI commands
        (mark_a,) = marks_before
        in_cut = [u for t, m, u in agi.execs if m == mark_a and cut < t < new_at]
        assert in_cut, "the old leader ran no AGI command while cut from PostgreSQL"
        first_b = min(t for t, m, _ in agi.execs if m != mark_a)
        assert first_b > new_at                               # the new leader acted after its epoch was in
        # a channel runs its AGI commands in the order they came: on each, every command of the old
        # leader ended before the new leader's first (none was sent once the new leader's was queued)
        for uid in {u for _, _, u in agi.execs}:
            mine = [(t, m) for t, m, u in agi.execs if u == uid]
            b_first = min((t for t, m in mine if m != mark_a), default=None)
            assert b_first is None or all(t < b_first for t, m in mine if m == mark_a), (uid, mine)
        # those of the old leader that ended after the new epoch was in: the one it had running on a
        # channel (a GET DATA the caller was answering), at most one per channel, none after it
        late = [(round(t - new_at, 3), u) for t, m, u in agi.execs if m == mark_a and t > new_at]
        assert len({u for _, u in late}) == len(late), late
        # Asterisk's own log: the old leader's last acting action came before the new leader's
        # heartbeat with the new epoch; after it, only its reads of the heartbeat (how it learns it)
        await action_log.stop()
        logged = action_log.actions()
        new_beat = next(x for x in logged if x.name == "Setvar" and x.headers.get("Variable") == heartbeat.VARIABLE
                        and heartbeat.parse_beat(x.headers.get("Value", ""))[1] == epoch_b)
        old_acting = [x for x in logged if x.sent_by(mark_a) and x.name not in READ_ONLY_ACTIONS
                      and x.name not in ("Login", "Challenge")]
        assert [x for x in old_acting if x.index < new_beat.index], "no action of the old leader logged"
        after_epoch = [(x.at, x.name, x.headers.get("Command") or x.headers.get("Variable", ""))
                       for x in old_acting if x.index > new_beat.index]
        assert not after_epoch, (new_beat.at, after_epoch)
        reads_after = [x.name for x in logged if x.sent_by(mark_a) and x.index > new_beat.index]
        print(f"\nHA: Asterisk's AMI log: the old leader's last acting action at {old_acting[-1].at} "
              f"({old_acting[-1].name}), the new epoch written at {new_beat.at}; after it the old leader sent "
              f"{len(reads_after)} actions, none acting ({sorted(set(reads_after))})")
        print(f"HA: leader cut from PostgreSQL ended {len(in_cut)} AGI commands before the new epoch was in, "
              f"{len(late)} after it (its last on each channel: {[x for x, _ in late]} s); the new leader's "
              f"first ended {first_b - new_at:.3f}s after its epoch")

        # the keys pressed during the cut are not in PostgreSQL yet: the old leader spooled them
        for caller in CALLERS:
            assert not await has_event(pg_dsn, caller, "ivr.step", node="main_menu", input="2"), caller
        # the old leader started again (the link back) comes up a standby and replays its spool
        proxy = TcpProxy(host, int(port))
        proxy.port = int(proxied.split("@", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
        await proxy.start()
        await a.start()
        await a.wait_role("standby", timeout=15)
        for caller in CALLERS:
            await until(lambda c=caller: has_event(pg_dsn, c, "ivr.step", node="main_menu", input="2"),
                        timeout=20, what=f"{caller}'s key of the cut replayed")
        await until(lambda: has_event(pg_dsn, LATE, "ivr.step", node="choose_language", input="1"),
                    timeout=20, what="the late caller's first key replayed")
        twice = await fetch(pg_dsn, "SELECT call_id, seq FROM call_events GROUP BY call_id, seq HAVING count(*) > 1")
        assert not twice, twice
        for caller in CALLERS:
            ids = await call_ids(pg_dsn, caller)
            assert len(ids) == 1, (caller, ids)
            (row,) = await fetch(pg_dsn, "SELECT started_at, dialed, outcome FROM calls WHERE call_id = $1", ids[0])
            assert row["started_at"] is not None and row["dialed"] == "19009068", dict(row)
            assert row["outcome"] == "abandoned_queue", dict(row)
            evs = await events(pg_dsn, ids[0])
            kinds = [e["kind"] for e in evs]
            assert kinds.count("call.started") == 1 and kinds.count("call.ended") == 1, kinds
            assert kinds.count("queue.joined") == 1, kinds
            steps = [(s["node"], s.get("input")) for s in (json.loads(e["data"]) for e in evs
                                                          if e["kind"] == "ivr.step")]
            assert steps.count(("main_menu", "2")) == 1 and steps.count(("health_menu", "1")) == 1, steps
            assert [n for n, _ in steps].count("welcome") == 1, steps
        # the late caller: started by the old leader (spooled), adopted by the new one, which wrote
        # a call.started of its own (none was stored); the replay added no second
        ids = await call_ids(pg_dsn, LATE)
        assert len(ids) == 1, ids
        kinds = [e["kind"] for e in await events(pg_dsn, ids[0])]
        assert kinds.count("call.started") == 1 and kinds.count("call.ended") == 1, kinds
        (row,) = await fetch(pg_dsn, "SELECT started_at, dialed, outcome FROM calls WHERE call_id = $1", ids[0])
        assert row["started_at"] is not None and row["dialed"] == "19009068", dict(row)
        assert row["outcome"] == "abandoned_ivr", dict(row)
    finally:
        if b.proc is not None and b.proc.returncode is None:
            os.kill(b.proc.pid, signal.SIGCONT)
        await proxy.cut()
        await action_log.stop()
        action_log.path.unlink(missing_ok=True)
        await wind_down(stack_env, tasks, b, a, watch=watch)
        await admin.close()
