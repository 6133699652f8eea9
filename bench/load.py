"""`make bench-load`: the whole switchboard under SIP load, level by level.

On the local stack (brought up when it is not, and brought down again then), with the service
as a separate process started the way `make run` starts it (`switchboard run` with the stack's
settings; opening hours forced open with `ivr.clock_offset_s`):

* agents: ``--agents`` generated agents (skills over every topic, homes over the 34 units),
  their PJSIP endpoints rendered into the stack (Asterisk restarted with them), all answered by
  ONE SIPp process (`switchboard.demo.load.AgentFarm`), logged in and made ready through the API;
* callers: for each level of concurrent calls (``--levels``), SIPp callers on mixed paths
  (self-service status look-up, menus -> agent, hang-up in the menu, hang-up in line) at rates
  that hold that many calls up for ``--hold`` seconds, from landlines of many provinces;
* the app_queue baseline (``deploy/bench/``, rendered by ``bench/appqueue.py``): the same menu
  path in plain dialplan and one app_queue queue per (topic, caller's province) with the same
  agents as members, loaded into the same Asterisk through the stack's admin AMI user; its
  callers dial ``19009069``. At each level ours runs first, then app_queue, back to back;
* per level and system, one JSON object (also appended to run/bench-load/results.jsonl): SIPp's
  own counts, the records check (ours: exactly one closed record per call with the outcome of
  its path, one start and one end in its timeline; app_queue: the outcome its hang-up handler
  reports, once per caller), CPU seconds per call and cores of the service and of Asterisk, RSS,
  AGI ack/round-trip p50/p99 by command and the event loop's lag p99 (the service's own
  histograms), the dispatch latency p50/p99 (bench/appqueue.py says how, the same for both),
  channels up mid-window, the deepest Asterisk taskprocessors. Calls run for ``--warmup`` +
  ``--hold`` seconds; every figure but SIPp's counts and the records is taken over the
  ``--hold`` window after the warm-up. SIPp's error logs are kept in
  run/bench-load/sipp-<system>-<level>/, ``core show taskprocessors`` in
  run/bench-load/taskprocessors-<system>-<level>.txt.

A system stops at the first level that is not clean (``--keep-going``: runs every level anyway).
Clean: every call completed, or (ours) was refused cleanly past capacity (the busy message, then
the service's BYE; record outcome ``overload``); no SIP error response (e.g. ``488`` when Asterisk
has no RTP port left); exact records / outcomes; no channel left once the callers are gone. Each
phase starts once Asterisk's taskprocessor queues are drained.

Per level also: calls per Asterisk node (the records' ``asterisk_node``) and the AMI events the
service read per call (the delta of ``switchboard_ami_events_total`` over the hold window over the
calls offered in it, by fate and in all).

``--nodes 2`` (docs/scale.md): the stack comes up with ``NODES=2`` (Kamailio, Asterisk nodes a and
b; brought back as it was afterwards), callers and the agent farm send to Kamailio (the stack's
STACK_SIP_PORT), the farm's registrations are checked in Kamailio's location table (``kamcmd
ul.dump``: on the nodes an agent's contact is a static one at Kamailio), Asterisk's CPU and RSS
are summed over both node processes and given per node too, channels and taskprocessors are
counted on both. Only system ``ours`` runs: app_queue is a one-node baseline (its queues live in
one Asterisk). The dispatch probe (bench/appqueue.py, one admin AMI session) is left out: its
latencies are null.

Usage: .venv/bin/python bench/load.py [--levels 25,50,100] [--agents 60] [--hold 60] [--warmup 40]
       [--systems ours,app_queue] [--nodes 1|2] [--quick] [--media] [--max-calls N] [--keep-going]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.appqueue import (  # noqa: E402
    BENCH_NUMBER,
    RELOADS,
    DispatchProbe,
    admin_command,
    check_outcomes,
    eligible_map,
    install_baseline,
    percentile,
    read_invites,
    render_baseline,
)
from switchboard.acd.agents import sip_password  # noqa: E402
from switchboard.ami.client import AmiClient  # noqa: E402
from switchboard.api import auth  # noqa: E402
from switchboard.api.pg_tokens import PgTokenStore  # noqa: E402
from switchboard.config import AmiSettings, read_env_file  # noqa: E402
from switchboard.demo.load import (  # noqa: E402
    AgentFarm,
    RecordCheck,
    caller_numbers,
    caller_paths,
    check_records,
    run_callers,
    sip_refusals,
    with_media,
)
from switchboard.geo import load_provinces  # noqa: E402
from switchboard.ivr.calendar import vn_holiday  # noqa: E402

RUN = REPO / "run"
HOTLINE = "19009068"
TOPICS = ("social.pension", "social.one_time", "social.contribution", "social.sickness_maternity",
          "health.card", "health.benefit", "unemployment.benefit", "general")
#: share of the concurrent calls on each path (the "agent" path is capped by the agents' capacity)
MIX = {"self_service": 0.45, "agent": 0.25, "hangup_menu": 0.15, "hangup_queue": 0.15}
FAST_VERBS = ("ANSWER", "SET VARIABLE", "ASYNCAGI BREAK", "EXEC StartMusicOnHold", "EXEC StopMusicOnHold")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def open_hours_offset() -> float:
    now = datetime.now(UTC)
    day = (now + timedelta(days=1)).date()
    while day.weekday() != 1 or vn_holiday(day):
        day += timedelta(days=1)
    return (datetime(day.year, day.month, day.day, 3, 0, tzinfo=UTC) - now).total_seconds()


def generate_agents(n: int, path: Path) -> list[dict[str, Any]]:
    """``n`` agents spread over the 34 units; every agent has ``general`` and three topics, but
    nobody has unemployment.job_support (the "hangs up in line" path waits for it in vain)."""
    units = [p.id for p in load_provinces()]
    agents = []
    for i in range(n):
        skills = {"general": 3}
        for k in range(3):
            skills[TOPICS[(i + k * 3) % (len(TOPICS) - 1)]] = 2 + (i + k) % 4
        agents.append({"id": f"bench{i + 1:04d}", "name": f"Bench agent {i + 1}", "home_province": units[i % len(units)],
                       "languages": ["vi"], "skills": skills})
    path.write_text(yaml.safe_dump({"agents": agents}, allow_unicode=True))
    return agents


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def box_cpu() -> tuple[float, float]:
    """(busy, total) seconds of every CPU of the machine so far (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    total = sum(fields[:8])
    return (total - idle) / os.sysconf("SC_CLK_TCK"), total / os.sysconf("SC_CLK_TCK")


def loadavg() -> list[str]:
    return Path("/proc/loadavg").read_text().split()[:3]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def parse_histograms(text: str, name: str) -> dict[str, dict[float, float]]:
    """``name``'s cumulative buckets by label set (the ``command`` label, or "")."""
    out: dict[str, dict[float, float]] = {}
    pat = re.compile(rf'^{name}_bucket\{{(.*)\}} ([0-9.e+-]+)$')
    for line in text.splitlines():
        m = pat.match(line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        le = labels.pop("le")
        key = labels.get("command", labels.get("generation", ""))
        out.setdefault(key, {})[float("inf") if le == "+Inf" else float(le)] = float(m.group(2))
    return out


def quantile(after: dict[float, float], before: dict[float, float], q: float) -> float | None:
    """The bucket bound under which a ``q`` share of the observations made between two scrapes fall."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0
    if total <= 0:
        return None
    for b, c in zip(bounds, counts, strict=True):
        if c >= q * total:
            return b
    return bounds[-1]


async def scrape(port: int) -> str:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/metrics",
                                                   timeout=aiohttp.ClientTimeout(total=10)) as r:
        return await r.text()


def asterisk_pid(env: dict[str, str], node: str = "") -> int:
    """The pid of the stack's Asterisk, or of node ``node`` (deploy/local/lib.sh asterisk_pid)."""
    folder = f"asterisk-{node}" if node else "asterisk"
    return int((Path(env["STACK_ASTERISK_ROOT"]) / "run" / folder / "asterisk.pid").read_text().strip())


def kamailio_cpu(env: dict[str, str]) -> float | None:
    """CPU seconds of the stack's Kamailio so far: its main process and every child (NODES=2 only)."""
    if "STACK_KAMAILIO_CTL" not in env:
        return None
    main_pid = int((Path(env["STACK_KAMAILIO_CTL"]).parent / "kamailio.pid").read_text().strip())
    total = 0.0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            if int(d.name) == main_pid or int(fields[1]) == main_pid:
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def node_names(env: dict[str, str]) -> list[str]:
    """The stack's Asterisk nodes: ``[""]`` for the one Asterisk, else ``["a", "b"]``."""
    return [n for n in env.get("STACK_NODES", "").split(",") if n] or [""]


def stack_nodes_now() -> str:
    """How many nodes the stack that is up now has (stack.env's STACK_NODES), to bring it back so."""
    names = read_env_file(RUN / "stack.env").get("STACK_NODES", "")
    return str(len(names.split(","))) if names else "1"


def sh(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(args, cwd=REPO, check=True, env={**os.environ, **(env or {})})


async def _sql(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        for st in statements:
            await conn.execute(st)
    finally:
        await conn.close()


async def _fetch_settings(dsn: str) -> dict[str, str]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return {name: await conn.fetchval(f"SHOW {name}") for name in ("fsync", "synchronous_commit")}
    finally:
        await conn.close()


def machine() -> dict[str, Any]:
    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), "?")
    return {"nproc": os.cpu_count(), "cpu": model, "loadavg_start": loadavg()}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--levels", default="25,50,100,200,400")
    ap.add_argument("--agents", type=int, default=60)
    ap.add_argument("--hold", type=float, default=60.0, help="seconds of steady state measured per level")
    ap.add_argument("--warmup", type=float, default=40.0,
                    help="seconds of calls before the measured window (the longest path's length)")
    ap.add_argument("--systems", default="ours,app_queue", help="which to run at each level, in order")
    ap.add_argument("--nodes", type=int, choices=(1, 2), default=1,
                    help="Asterisk nodes: 2 = Kamailio + nodes a and b (NODES=2 stack), system ours only")
    ap.add_argument("--quick", action="store_true", help="one level of 25, 10 s warm-up + 30 s, 20 agents")
    ap.add_argument("--trim-probe", action="store_true",
                    help="after the last level, ask Asterisk's malloc to give free memory back (gdb: "
                         "malloc_trim(0)) and report its RSS before and after: freed heap kept vs memory in use")
    ap.add_argument("--keep-going", action="store_true",
                    help="run every level even after one that was not clean (a busy machine's stragglers)")
    ap.add_argument("--media", action="store_true",
                    help="callers send RTP (Debian's g711a.pcap in place of every pause): Asterisk's media half")
    ap.add_argument("--max-calls", type=int, default=None,
                    help="the service's overload.max_calls (default: the service's own default)")
    ap.add_argument("--table", metavar="JSONL", help="print the Markdown table of a results file and exit")
    args = ap.parse_args(argv)
    if args.table:
        print(markdown_table([json.loads(ln) for ln in Path(args.table).read_text().splitlines() if ln.strip()]))
        return 0
    if args.quick:
        args.levels, args.agents, args.hold, args.warmup = "25", 20, 30.0, 10.0
    levels = [int(x) for x in args.levels.split(",")]
    systems = [s for s in args.systems.split(",") if s]
    if not set(systems) <= {"ours", "app_queue"}:
        ap.error("--systems: ours and/or app_queue")
    if args.nodes == 2 and "app_queue" in systems:
        print("bench: --nodes 2 runs system ours only (app_queue is a one-node baseline)", file=sys.stderr)
        systems = [s for s in systems if s != "app_queue"]
        if not systems:
            ap.error("--nodes 2: system ours only")
    work = RUN / "bench-load"
    work.mkdir(parents=True, exist_ok=True)
    box = machine()

    was_up = (RUN / "stack.env").is_file() and subprocess.run(
        ["python3", "deploy/local/wait_ami.py", "127.0.0.1", read_env_file(RUN / "stack.env")["SWITCHBOARD_AMI_PORT"],
         "switchboard", str(RUN / "ami.secret"), "2"], cwd=REPO, capture_output=True).returncode == 0
    nodes_before = stack_nodes_now() if was_up else "1"
    agents_file = work / "agents.yaml"
    agents = generate_agents(args.agents, agents_file)
    sh("bash", "deploy/local/stack-up.sh", env={"STACK_AGENTS_FILE": str(agents_file), "NODES": str(args.nodes)})
    env = read_env_file(RUN / "stack.env")
    if args.nodes == 1:
        etc = Path(env["STACK_ASTERISK_ROOT"] + env["STACK_ASTERISK_ETC"])
        install_baseline(etc, render_baseline(agents, load_provinces(), prompts=env["STACK_SOUND_PREFIX"]))
    server = env["SWITCHBOARD_DSN"].rsplit("/", 1)[0]
    db = f"sbbench_{os.getpid()}"
    asyncio.run(_sql(f"{server}/postgres", f'CREATE DATABASE "{db}"'))
    dsn = f"{server}/{db}"
    box["postgres"] = asyncio.run(_fetch_settings(dsn))
    http_port = free_port()
    # the service exactly as `make run` starts it (the stack's run/switchboard.toml), with its own
    # database, spool, HTTP port and the IVR clock inside opening hours (settings from the environment)
    cli = [str(REPO / ".venv/bin/switchboard"), "--config", str(RUN / "switchboard.toml")]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    clean.update(SWITCHBOARD_DATABASE_DSN=dsn, SWITCHBOARD_DATABASE_SPOOL_DIR=str(work / "spool"),
                 SWITCHBOARD_HTTP_HOST="127.0.0.1", SWITCHBOARD_HTTP_PORT=str(http_port),
                 SWITCHBOARD_PATHS_RUN_DIR=str(work), SWITCHBOARD_IVR_CLOCK_OFFSET_S=f"{open_hours_offset():.0f}")
    if args.max_calls is not None:
        clean["SWITCHBOARD_OVERLOAD_MAX_CALLS"] = str(args.max_calls)
    box["overload_max_calls"] = args.max_calls
    subprocess.run([*cli, "migrate", "--seed-demo"], check=True, env=clean, capture_output=True)
    subprocess.run([*cli, "agents", "import", str(agents_file)], check=True, env=clean, capture_output=True)
    secret = Path(env["STACK_SIP_AGENTS_SECRET_FILE"]).read_text().strip()
    results: list[dict[str, Any]] = []
    plan = Plan(levels=levels, systems=systems, hold=args.hold, warmup=args.warmup, media=args.media,
                keep_going=args.keep_going, trim_probe=args.trim_probe)
    with (work / "service.log").open("ab") as log:
        service = subprocess.Popen([*cli, "run"], env=clean, stdout=log, stderr=log, start_new_session=True)
        try:
            asyncio.run(measure(env, dsn, http_port, service.pid, agents, secret, plan, work, results))
        finally:
            service.terminate()
            try:
                service.wait(20)
            except subprocess.TimeoutExpired:
                service.kill()
            asyncio.run(_sql(f"{server}/postgres", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
            if was_up:                                      # back to the stack's own agents and nodes
                sh("bash", "deploy/local/stack-up.sh", env={"NODES": nodes_before})
            else:
                sh("bash", "deploy/local/stack-down.sh")
    summary: dict[str, Any] = {"summary": True, "machine": box, "nodes": args.nodes, "agents": args.agents,
                               "hold_s": args.hold,
                               "warmup_s": args.warmup, "levels_run": levels}
    for system in systems:
        ok = [r["level"] for r in results if r.get("system") == system and r["clean"]]
        summary[f"max_clean_level_{system}"] = max(ok) if ok else 0
    print(json.dumps(summary), flush=True)
    with (work / "results.jsonl").open("a") as out:
        for r in results:
            out.write(json.dumps(r) + "\n")
        out.write(json.dumps(summary) + "\n")
    return 0


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Ours and app_queue side by side, one line per level and system."""
    def ms(x: float | None) -> str:
        return "-" if x is None else f"{x * 1000:.0f}" if x >= 0.01 else f"{x * 1000:.1f}"

    out = ["| level | system | calls/s | channels mid | offered | completed | refused (busy) | failed | SIP errors "
           "| records / outcomes exact | channels left | Asterisk CPU s/call | service CPU s/call | Asterisk cores "
           "| service cores | box busy cores | dispatch p50 / p99 ms (n) | join→INVITE p50 / p99 ms (n) "
           "| ready→offer p50 / p99 ms (n) "
           "| AGI ack p99 ms | loop lag p99 ms | Asterisk RSS MB | AMI events/call | calls by node |",
           "|" + "---|" * 24]
    for r in rows:
        if r.get("summary"):
            continue
        faults = r.get("records") or r.get("outcomes") or {}
        bad = sum(int(faults.get(k, 0)) for k in ("missing", "duplicated", "wrong_outcome", "open", "event_faults"))
        exact = "yes" if not bad else f"{bad} wrong" + (
            " (" + ", ".join(f"{k} x {n}" for k, n in r["records_wrong_kinds"].items() if "overload" not in k) + ")"
            if r.get("records_wrong_kinds") else "")
        sip = ", ".join(f"{n} x {c}" for c, n in sorted(r.get("sip_refusals", {}).items())) or "0"
        out.append(
            f"| {r['level']} | {r['system']}{' + RTP' if r.get('media') else ''} | {r['calls_per_s']} | {r.get('channels_mid', {}).get('channels', '-')} "
            f"| {r['offered']} | {r['completed']} | {r.get('refused_overload', 0)} | {r['failed']} | {sip} "
            f"| {exact} | {r.get('channels_left', '-')} "
            f"| {r['asterisk_cpu_s_per_call']} | {r['service_cpu_s_per_call']} | {r['asterisk_cpu_cores']} "
            f"| {r['service_cpu_cores']} | {r.get('box_busy_cores', '-')} "
            f"| {ms(r['dispatch_p50_s'])} / {ms(r['dispatch_p99_s'])} ({r['dispatch_n']}) "
            f"| {ms(r.get('dispatch_invite_p50_s'))} / {ms(r.get('dispatch_invite_p99_s'))} "
            f"({r.get('dispatch_invite_n', '-')}) "
            f"| {ms(r.get('ready_dispatch_p50_s'))} / {ms(r.get('ready_dispatch_p99_s'))} "
            f"({r.get('ready_dispatch_n', '-')}) "
            f"| {ms(r['agi_ack_p99_s']) if r.get('agi_ack_p99_s') is not None else '-'} "
            f"| {ms(r['loop_lag_p99_s']) if r.get('loop_lag_p99_s') is not None else '-'} "
            f"| {r.get('asterisk_rss_mb', '-')} | {r.get('ami_events_per_call', '-')} "
            f"| {', '.join(f'{k}: {v}' for k, v in r.get('calls_by_node', {}).items()) or '-'} |")
    return "\n".join(out)


@dataclass(frozen=True)
class Plan:
    levels: list[int]
    systems: list[str]
    hold: float
    warmup: float
    media: bool = False
    keep_going: bool = False
    trim_probe: bool = False


async def admin_client(env: dict[str, str], node: str = "") -> AmiClient:
    port = env[f"STACK_NODE_{node.upper()}_AMI_PORT"] if node else env["SWITCHBOARD_AMI_PORT"]
    client = AmiClient(AmiSettings(host="127.0.0.1", port=int(port),
                                   username=env["STACK_AMI_ADMIN_USERNAME"],
                                   secret_file=env["STACK_AMI_ADMIN_SECRET_FILE"], event_queue_size=200000))
    return client


async def measure(env: dict[str, str], dsn: str, http_port: int, service_pid: int, agents: list[dict[str, Any]],
                  secret: str, plan: Plan, work: Path, results: list[dict[str, Any]]) -> None:
    remote = f"127.0.0.1:{env['STACK_SIP_PORT']}"
    farm = AgentFarm([(a["id"], sip_password(secret, a["id"])) for a in agents], remote=remote,
                     port=free_port(socket.SOCK_DGRAM), workdir=work, answer_after=1.0, talk=8.0,
                     proxied=len(node_names(env)) > 1, trace_messages=True)
    names = node_names(env)
    nodes = [Node(name, await admin_client(env, name), asterisk_pid(env, name)) for name in names]
    admin = nodes[0].admin
    probe = DispatchProbe(admin)
    for n in nodes:
        await n.admin.start(timeout=20)
    if len(nodes) == 1:
        await probe.filter()
        for command in RELOADS:
            await admin_command(admin, command)
        queues = await admin_command(admin, "queue show bq-general-ha-noi")
        if "PJSIP/bench" not in queues:
            raise RuntimeError(f"the app_queue baseline did not load:\n{queues}")
    for _ in range(100):
        try:
            await scrape(http_port)
            break
        except (aiohttp.ClientError, OSError):
            await asyncio.sleep(0.3)
    conn = await asyncpg.connect(dsn, timeout=10)
    provinces = load_provinces()
    try:
        tokens = {}
        for a in agents:
            tokens[a["id"]], _ = await auth.create_token(PgTokenStore(conn), role="agent", agent_id=a["id"],
                                                         name="bench")
        # the baseline's member load floods device-state tasks; while that queue is past its
        # high-water mark Asterisk ignores REGISTERs too, and the farm would never register
        for n in nodes:
            await taskprocessors_drained(n.admin)
        await farm.start()
        for _ in range(60):
            await asyncio.sleep(1.0)
            if await registered(env, admin) >= len(agents):
                break
        else:
            raise RuntimeError(f"the agent farm did not register every agent:\n{farm.errors[-2000:]}")
        async with aiohttp.ClientSession() as s:
            for a in agents:
                async with s.post(f"http://127.0.0.1:{http_port}/api/agents/{a['id']}/ready", json={},
                                  headers={"Authorization": f"Bearer {tokens[a['id']]}"}) as r:
                    if r.status != 200:
                        raise RuntimeError(f"{a['id']} ready: {r.status} {await r.text()}")
        paths = caller_paths(queue_topic_keys=("0",))
        if plan.media:
            paths = {name: with_media(p) for name, p in paths.items()}
        agent_cycle = 1.0 + 8.0 + 15.0 + 2.0        # answer, talk, default wrap-up, set-up
        stopped: set[str] = set()
        run_no = 0
        for level in plan.levels:
            rates = {name: share * level / paths[name].duration_s for name, share in MIX.items()}
            rates["agent"] = min(rates["agent"], 0.8 * len(agents) / agent_cycle)
            for system in plan.systems:
                if system in stopped:
                    continue
                run_no += 1
                drained = max([await taskprocessors_drained(n.admin) for n in nodes])
                row = await run_phase(system, level, run_no, rates, paths, plan, env, remote, work, conn, nodes,
                                      probe, agents, provinces, http_port, service_pid, farm.messages)
                row["taskprocessors_drain_wait_s"] = drained
                results.append(row)
                print(json.dumps(row), flush=True)
                if not row["clean"] and not plan.keep_going:
                    stopped.add(system)
                await asyncio.sleep(5.0)            # the last legs' wrap-up before the other system
            if stopped >= set(plan.systems):
                break
        if plan.trim_probe:
            results.append({"summary": True, "trim_probe": {
                n.name or "asterisk": await trim_probe(n.admin, n.pid) for n in nodes}})
            print(json.dumps(results[-1]), flush=True)
        if farm.proc is not None and farm.proc.returncode is not None:
            print(f"agent farm exited {farm.proc.returncode}:\n{farm.errors[-2000:]}", file=sys.stderr)
    finally:
        await conn.close()
        await farm.stop()
        if farm.folder.is_dir():
            shutil.copytree(farm.folder, work / "sipp-agents", dirs_exist_ok=True)
        for n in nodes:
            await n.admin.close()


@dataclass(frozen=True)
class Node:
    """One Asterisk of the stack: its name ("" for the one-node stack), admin AMI session, pid."""
    name: str
    admin: AmiClient
    pid: int


async def registered(env: dict[str, str], admin: AmiClient) -> int:
    """How many bench agents have a registered contact: in Asterisk (one node), or in Kamailio's
    location table (NODES=2: Kamailio is the registrar; the nodes' contacts are static)."""
    if "STACK_KAMAILIO_CTL" not in env:
        contacts = await admin_command(admin, "pjsip show contacts")
        return len(re.findall(r"Contact:\s+bench\d+/", contacts))
    proc = await asyncio.create_subprocess_exec(
        "kamcmd", "-s", f"unix:{env['STACK_KAMAILIO_CTL']}", "ul.dump",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    out, _ = await proc.communicate()
    return len(set(re.findall(r"AoR:\s*(bench\d+)", out.decode(errors="replace"))))


async def run_phase(system: str, level: int, run_no: int, rates: dict[str, float], paths: dict[str, Any],
                    plan: Plan, env: dict[str, str], remote: str, work: Path, conn: Any, nodes: list[Node],
                    probe: DispatchProbe, agents: list[dict[str, Any]], provinces: Any, http_port: int,
                    service_pid: int, farm_messages: Path) -> dict[str, Any]:
    """One system at one level: calls for warm-up + hold seconds, figures over the hold window.
    Several nodes: Asterisk's CPU, RSS and channels summed over them (and given per node)."""
    multi = len(nodes) > 1
    span = plan.warmup + plan.hold
    batches = []
    expected: dict[str, str] = {}
    for i, (name, rate) in enumerate(rates.items(), start=1):
        numbers = caller_numbers(i, max(1, round(rate * span)), run=run_no)
        expected.update(dict.fromkeys(numbers, paths[name].outcome))
        batches.append((paths[name], rate, numbers))
    number = HOTLINE if system == "ours" else BENCH_NUMBER
    t0 = time.monotonic()
    callers = asyncio.gather(*(
        run_callers(p, numbers, remote=remote, service=number, rate=rate, limit=level, workdir=work,
                    timeout=span + 900, media_port=free_port(socket.SOCK_DGRAM) if plan.media else None)
        for p, rate, numbers in batches))
    await asyncio.sleep(plan.warmup)
    before = await scrape(http_port)
    node_cpu0 = [cpu_seconds(n.pid) for n in nodes]
    cpu0 = (cpu_seconds(service_pid), sum(node_cpu0))
    box0 = box_cpu()
    kam0 = kamailio_cpu(env)
    w0 = time.time()
    await asyncio.sleep(plan.hold / 2)
    mids = [_channels(await admin_command(n.admin, "core show channels count")) for n in nodes]
    await asyncio.sleep(plan.hold / 2)
    w1 = time.time()
    node_cpu1 = [cpu_seconds(n.pid) for n in nodes]
    cpu1 = (cpu_seconds(service_pid), sum(node_cpu1))
    box1 = box_cpu()
    kam1 = kamailio_cpu(env)
    after = await scrape(http_port)
    tps_by_node = {}
    for n in nodes:
        tps_by_node[n.name] = await admin_command(n.admin, "core show taskprocessors")
        suffix = f"-{n.name}" if n.name else ""
        (work / f"taskprocessors-{system}-{level}{suffix}.txt").write_text(tps_by_node[n.name])
    runs = await callers
    wall = time.monotonic() - t0
    check = RecordCheck()
    if system == "ours":
        for _ in range(30):
            check = await check_records(conn, expected)
            if check.exact_or_refused:
                break
            await asyncio.sleep(1.0)
    logs = work / f"sipp-{system}-{level}"
    logs.mkdir(exist_ok=True)
    for r in runs:
        for f in r.folder.glob("*_errors.log"):
            shutil.copy(f, logs / f"{r.name}-{f.name}")
    left = sum([await channels_left(n.admin) for n in nodes])
    memories = {n.name: await asterisk_memory(n.admin, n.pid) for n in nodes}
    lat: list[float] = []
    lat_invite: list[float] = []
    split: list[tuple[float, float]] = []     # ours: (join -> Originate sent, sent -> INVITE at the farm)
    ready: list[float] = []
    joined = 0
    stamped_fields: dict[str, Any] = {}
    if not multi:       # the probe's one admin session sees one Asterisk (left out with --nodes 2)
        eligible = eligible_map(expected, agents, provinces)
        lat, joined = probe.probe.dispatch(system, w0, w1, eligible=eligible, wrap_up_s=15.0)
        # the end point: the agent's INVITE reaching the farm (SIPp's own receipt instant)
        invites = farm_invites(farm_messages)
        lat_invite, _ = probe.probe.dispatch(system, w0, w1, eligible=eligible, wrap_up_s=15.0, split=split,
                                             invites=invites)
        if system == "app_queue":     # the same callers timed from QueueCallerJoin's Timestamp, and its wait
            stamped, _ = probe.probe.dispatch(system, w0, w1, eligible=eligible, wrap_up_s=15.0, stamped_join=True)
            lag = probe.probe.join_stamp_lag()
            stamped_fields = {"dispatch_stamped_join_p50_s": _r(percentile(stamped, 0.5)),
                              "dispatch_stamped_join_p99_s": _r(percentile(stamped, 0.99)),
                              "join_stamp_lag_p50_s": _r(percentile(lag, 0.5)),
                              "join_stamp_lag_p99_s": _r(percentile(lag, 0.99))}
        agent_path = {n for n, outcome in expected.items() if outcome == paths["agent"].outcome}
        ready = probe.probe.redispatch(system, w0, w1, homes={a["id"]: a["home_province"] for a in agents},
                                       province_of={n: provinces.lookup_caller(n) for n in agent_path},
                                       region_of=provinces.region_of_map(), wrap_up_s=15.0, region_after_s=15.0,
                                       nation_after_s=30.0)
    row = level_row(system, level, plan, wall, rates, runs, check, cpu0, cpu1, before, after, service_pid,
                    [n.pid for n in nodes])
    offered_in_window = sum(rates.values()) * plan.hold
    events = {fate: counter(after, "switchboard_ami_events_total", fate=fate)
              - counter(before, "switchboard_ami_events_total", fate=fate) for fate in ("delivered", "skipped")}
    mid: dict[str, int] = {}
    for m in mids:
        for k, v in m.items():
            mid[k] = mid.get(k, 0) + v
    row.update({
        "service_cpu_s_per_call": round((cpu1[0] - cpu0[0]) / offered_in_window, 4),
        "asterisk_cpu_s_per_call": round((cpu1[1] - cpu0[1]) / offered_in_window, 4),
        "service_cpu_cores": round((cpu1[0] - cpu0[0]) / (w1 - w0), 3),
        "asterisk_cpu_cores": round((cpu1[1] - cpu0[1]) / (w1 - w0), 3),
        "box_busy_cores": round((box1[0] - box0[0]) / (w1 - w0), 3),
        "loadavg_end": loadavg(),
        "channels_mid": mid,
        "ami_events_per_call": round(sum(events.values()) / offered_in_window, 1),
        "ami_events_per_call_by_fate": {k: round(v / offered_in_window, 1) for k, v in events.items()},
        "ami_events_per_s": round(sum(events.values()) / (w1 - w0), 1),
        "calls_by_node": await calls_by_node(conn, list(expected)) if system == "ours" else {},
        "stored_events_per_call": await stored_events_per_call(conn, list(expected)) if system == "ours" else None,
        "dispatch_n": len(lat), "dispatch_joined": joined,
        "dispatch_p50_s": _r(percentile(lat, 0.5)), "dispatch_p99_s": _r(percentile(lat, 0.99)),
        "dispatch_max_s": _r(max(lat) if lat else None),
        "dispatch_invite_n": len(lat_invite),
        "dispatch_invite_p50_s": _r(percentile(lat_invite, 0.5)),
        "dispatch_invite_p99_s": _r(percentile(lat_invite, 0.99)),
        "dispatch_invite_max_s": _r(max(lat_invite) if lat_invite else None),
        **({"dispatch_service_p50_s": _r(percentile([a for a, _ in split], 0.5)),
            "dispatch_service_p99_s": _r(percentile([a for a, _ in split], 0.99)),
            "dispatch_asterisk_p50_s": _r(percentile([b for _, b in split], 0.5)),
            "dispatch_asterisk_p99_s": _r(percentile([b for _, b in split], 0.99))} if split else {}),
        **stamped_fields,
        "ready_dispatch_n": len(ready), "ready_dispatch_p50_s": _r(percentile(ready, 0.5)),
        "ready_dispatch_p99_s": _r(percentile(ready, 0.99)),
        "taskprocessors_top": top_taskprocessors(tps_by_node[nodes[0].name]),
        "sipp_errors": str(logs.relative_to(REPO)),
        "sip_refusals": sip_refusals("".join(r.errors for r in runs)),
        "channels_left": left,
        "asterisk_after": memories[nodes[0].name],
    })
    if multi:
        row.update({
            "nodes": [n.name for n in nodes],
            "dispatch_note": "left out with --nodes 2 (the probe's admin session sees one node)",
            "kamailio_cpu_s_per_call": round((kam1 - kam0) / offered_in_window, 5) if kam0 is not None
            and kam1 is not None else None,
            "kamailio_cpu_cores": round((kam1 - kam0) / (w1 - w0), 4) if kam0 is not None
            and kam1 is not None else None,
            "per_node": {n.name: {
                "asterisk_cpu_s_per_call": round((c1 - c0) / offered_in_window, 4),
                "asterisk_cpu_cores": round((c1 - c0) / (w1 - w0), 3),
                "asterisk_rss_mb": round(rss_mb(n.pid), 1), "channels_mid": m,
                "taskprocessors_top": top_taskprocessors(tps_by_node[n.name], n=2),
                "asterisk_after": memories[n.name]}
                for n, c0, c1, m in zip(nodes, node_cpu0, node_cpu1, mids, strict=True)},
        })
    # past the limit, a clean refusal: every SIPp failure is a caller the gate refused (busy message,
    # then the service's BYE; record outcome `overload`), never a SIP error, and no channel left behind
    refused = len(check.refused)
    row["refused_overload"] = refused
    row["records_wrong_sample"] = [w for w in check.wrong_outcome if w[2] != "overload"][:10]
    row["records_wrong_kinds"] = {f"{e}->{g}": sum(1 for _n, e2, g2 in check.wrong_outcome if (e2, g2) == (e, g))
                                  for _n, e, g in check.wrong_outcome}
    if system == "app_queue":
        for _ in range(10):
            outcomes = check_outcomes(probe.probe, expected)
            if not (outcomes["missing"] or outcomes["duplicated"] or outcomes["wrong_outcome"]):
                break
            await asyncio.sleep(1.0)
        row["outcomes"] = outcomes
        row["outcomes_exact"] = not (outcomes["missing"] or outcomes["duplicated"] or outcomes["wrong_outcome"])
        for k in ("records", "records_exact", "agi_ack_p50_s", "agi_ack_p99_s", "agi_round_trip_fast",
                  "loop_lag_p99_s"):
            row.pop(k, None)
        row["clean"] = (row["failed"] == 0 and row["completed"] == row["offered"] and row["outcomes_exact"]
                        and not row["sip_refusals"] and left == 0)
    else:
        # a refused caller whose own script ends before the busy message does counts as completed
        # in SIPp, so SIPp's failures are at most the refused callers (each with its record)
        row["clean"] = (row["failed"] <= refused and row["completed"] + row["failed"] == row["offered"]
                        and check.exact_or_refused and not row["sip_refusals"] and left == 0)
    return row


async def trim_probe(admin: AmiClient, pid: int) -> dict[str, Any]:
    """Asterisk's memory once every level is over, then again after glibc's ``malloc_trim(0)``
    (called in Asterisk through gdb, for a second): what falls is heap Asterisk had freed and
    malloc kept (high-water of the busiest level), what stays is in use."""
    await channels_left(admin)
    before = await asterisk_memory(admin, pid)
    proc = await asyncio.create_subprocess_exec(
        "gdb", "-p", str(pid), "-batch", "-ex", f"set sysroot /proc/{pid}/root", "-ex", "call (int) malloc_trim(0)",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    await asyncio.sleep(1.0)
    after = await asterisk_memory(admin, pid)
    said = [ln for ln in out.decode(errors="replace").splitlines() if ln.startswith("$1")]
    return {"before": before, "after_malloc_trim": after, "gdb": said[0] if said else f"rc={proc.returncode}"}


def proc_status(pid: int) -> dict[str, int]:
    """RSS, its peak, anonymous RSS (kB) and threads of a process (/proc/PID/status)."""
    out = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "Threads"):
                out[key] = int(value.split()[0])
    return out


async def asterisk_memory(admin: AmiClient, pid: int) -> dict[str, Any]:
    """What Asterisk holds once a level's callers are gone: RSS (and its peak), threads, events
    waiting in the manager's queue for a session to read them (``manager show eventq``), the
    deepest taskprocessor queue now."""
    status = proc_status(pid)
    eventq = await admin_command(admin, "manager show eventq")
    tps = top_taskprocessors(await admin_command(admin, "core show taskprocessors"), n=1000)
    return {"rss_mb": round(status.get("VmRSS", 0) / 1024, 1), "peak_rss_mb": round(status.get("VmHWM", 0) / 1024, 1),
            "anon_mb": round(status.get("RssAnon", 0) / 1024, 1), "threads": status.get("Threads", 0),
            "manager_eventq": eventq.count("Usecount:"),
            "taskprocessor_in_queue_max": max((r["in_queue"] for r in tps), default=0)}


async def taskprocessors_drained(admin: AmiClient, *, limit_s: float = 300.0, deepest: int = 50) -> float:
    """Wait until no Asterisk taskprocessor has more than ``deepest`` tasks queued; the seconds waited.

    While any queue is past its high-water mark, res_pjsip's distributor silently ignores new
    requests over UDP (pjsip_distributor.c: "Taskprocessor overload alert"), so every INVITE of
    a phase started then times out. Loading the baseline's queue members (one device-state
    fan-out per member) queues tens of thousands of tasks on ``stasis/m:devicestate:all``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        rows = top_taskprocessors(await admin_command(admin, "core show taskprocessors"), n=1000)
        if max((r["in_queue"] for r in rows), default=0) <= deepest:
            break
        await asyncio.sleep(2.0)
    return round(time.monotonic() - t0, 1)


async def channels_left(admin: AmiClient, *, settle_s: float = 30.0) -> int:
    """Channels still up once every SIPp caller of the level is gone (0 expected: agent legs end with
    their caller); waits up to ``settle_s`` for the last hang-ups to land."""
    deadline = time.monotonic() + settle_s
    while True:
        n = _channels(await admin_command(admin, "core show channels count")).get("channels", 0)
        if n == 0 or time.monotonic() > deadline:
            return n
        await asyncio.sleep(1.0)


def counter(text: str, name: str, **labels: str) -> float:
    """The value of counter ``name`` with exactly these labels in a /metrics scrape (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def calls_by_node(conn: Any, numbers: list[str]) -> dict[str, int]:
    """The level's calls per Asterisk node (the records' ``asterisk_node``)."""
    rows = await conn.fetch("SELECT coalesce(asterisk_node, '-') AS node, count(*) AS n FROM calls "
                            "WHERE caller = ANY($1::text[]) GROUP BY 1 ORDER BY 1", numbers)
    return {r["node"]: int(r["n"]) for r in rows}


async def stored_events_per_call(conn: Any, numbers: list[str]) -> float | None:
    """``call_events`` rows per call of the level (what the writer stores: PostgreSQL's load per call)."""
    row = await conn.fetchrow("SELECT count(DISTINCT c.call_id) AS calls, count(e.call_id) AS events FROM calls c "
                              "LEFT JOIN call_events e ON e.call_id = c.call_id WHERE c.caller = ANY($1::text[])",
                              numbers)
    return round(row["events"] / row["calls"], 1) if row["calls"] else None


def farm_invites(path: Path) -> dict[str, list[float]]:
    """The agent farm's INVITE receipts so far (its SIPp message trace; {} before any)."""
    return read_invites(path.read_text(errors="replace")) if path.is_file() else {}


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _channels(text: str) -> dict[str, int]:
    out = {}
    for n, what in re.findall(r"(\d+) active (channels|calls)", text):
        out[what] = int(n)
    return out


def top_taskprocessors(text: str, n: int = 4) -> list[dict[str, Any]]:
    """The taskprocessors with the deepest queue seen (``Max Depth``)."""
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[1].isdigit() and parts[3].isdigit():
            rows.append({"name": parts[0], "processed": int(parts[1]), "in_queue": int(parts[2]),
                         "max_depth": int(parts[3])})
    return sorted(rows, key=lambda r: -r["max_depth"])[:n]


def level_row(system: str, level: int, plan: Plan, wall: float, rates: dict[str, float], runs: list[Any],
              check: RecordCheck, cpu0: tuple[float, float], cpu1: tuple[float, float], before: str, after: str,
              service_pid: int, ast_pids: list[int]) -> dict[str, Any]:
    calls = sum(r.created for r in runs)
    rt_a, rt_b = (parse_histograms(x, "switchboard_agi_round_trip_seconds") for x in (after, before))
    ack_a, ack_b = (parse_histograms(x, "switchboard_agi_ack_seconds") for x in (after, before))
    lag_a, lag_b = (parse_histograms(x, "switchboard_event_loop_lag_seconds") for x in (after, before))
    gc_a, gc_b = (parse_histograms(x, "switchboard_gc_pause_seconds") for x in (after, before))
    full_a, full_b = gc_a.get("2", {}), gc_b.get("2", {})
    full_n = int(full_a.get(float("inf"), 0.0) - full_b.get(float("inf"), 0.0))
    fast = {v: {"p50_s": quantile(rt_a[v], rt_b.get(v, {}), 0.5), "p99_s": quantile(rt_a[v], rt_b.get(v, {}), 0.99)}
            for v in FAST_VERBS if v in rt_a}
    all_ack: dict[float, float] = {}
    all_ack_b: dict[float, float] = {}
    for v, h in ack_a.items():
        for b, c in h.items():
            all_ack[b] = all_ack.get(b, 0.0) + c
            all_ack_b[b] = all_ack_b.get(b, 0.0) + ack_b.get(v, {}).get(b, 0.0)
    return {
        "system": system, "level": level, "media": plan.media, "hold_s": plan.hold, "warmup_s": plan.warmup, "wall_s": round(wall, 1),
        "rates": {k: round(v, 3) for k, v in rates.items()}, "calls_per_s": round(sum(rates.values()), 2),
        "offered": calls, "completed": sum(r.successful for r in runs), "failed": sum(r.failed for r in runs),
        "sipp_rc": [r.returncode for r in runs],
        "records": check.as_dict(), "records_exact": check.exact,
        "service_rss_mb": round(rss_mb(service_pid), 1), "asterisk_rss_mb": round(sum(rss_mb(p) for p in ast_pids), 1),
        "agi_ack_p50_s": quantile(all_ack, all_ack_b, 0.5), "agi_ack_p99_s": quantile(all_ack, all_ack_b, 0.99),
        "agi_round_trip_fast": fast,
        "loop_lag_p99_s": quantile(lag_a.get("", {}), lag_b.get("", {}), 0.99),
        # the interpreter's full collections in the window: how many, and the bucket bound of the longest
        "gc_full_pauses": full_n, "gc_full_max_s": quantile(full_a, full_b, 1.0) if full_n else None,
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
