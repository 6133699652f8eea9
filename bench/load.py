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
* per level, one JSON object: SIPp's own counts, the records check (exactly one closed record
  per call with the outcome of its path, one start and one end in its timeline), CPU seconds per
  call of the service and of Asterisk, the service's RSS, AGI ack/round-trip p50/p99 by command
  and the event loop's lag p99 (from the service's own histograms, differences over the level).

What this does not measure yet: the app_queue baseline and the dispatch latency (issue 12).

Usage: .venv/bin/python bench/load.py [--levels 25,50,100] [--agents 60] [--hold 60] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from switchboard.acd.agents import sip_password  # noqa: E402
from switchboard.api import auth  # noqa: E402
from switchboard.api.pg_tokens import PgTokenStore  # noqa: E402
from switchboard.config import read_env_file  # noqa: E402
from switchboard.demo.load import (  # noqa: E402
    AgentFarm,
    RecordCheck,
    caller_numbers,
    caller_paths,
    check_records,
    run_callers,
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
        out.setdefault(labels.get("command", ""), {})[float("inf") if le == "+Inf" else float(le)] = float(m.group(2))
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


def asterisk_pid(env: dict[str, str]) -> int:
    return int((Path(env["STACK_ASTERISK_ROOT"]) / "run/asterisk/asterisk.pid").read_text().strip())


def sh(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(args, cwd=REPO, check=True, env={**os.environ, **(env or {})})


async def _sql(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        for st in statements:
            await conn.execute(st)
    finally:
        await conn.close()


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--levels", default="25,50,100,200,400")
    ap.add_argument("--agents", type=int, default=60)
    ap.add_argument("--hold", type=float, default=60.0, help="seconds of new calls per level")
    ap.add_argument("--quick", action="store_true", help="one level of 25 for 30 s, 20 agents")
    args = ap.parse_args(argv)
    if args.quick:
        args.levels, args.agents, args.hold = "25", 20, 30.0
    levels = [int(x) for x in args.levels.split(",")]
    work = RUN / "bench-load"
    work.mkdir(parents=True, exist_ok=True)

    was_up = (RUN / "stack.env").is_file() and subprocess.run(
        ["python3", "deploy/local/wait_ami.py", "127.0.0.1", read_env_file(RUN / "stack.env")["SWITCHBOARD_AMI_PORT"],
         "switchboard", str(RUN / "ami.secret"), "2"], cwd=REPO, capture_output=True).returncode == 0
    agents_file = work / "agents.yaml"
    agents = generate_agents(args.agents, agents_file)
    sh("bash", "deploy/local/stack-up.sh", env={"STACK_AGENTS_FILE": str(agents_file)})
    env = read_env_file(RUN / "stack.env")
    server = env["SWITCHBOARD_DSN"].rsplit("/", 1)[0]
    db = f"sbbench_{os.getpid()}"
    asyncio.run(_sql(f"{server}/postgres", f'CREATE DATABASE "{db}"'))
    dsn = f"{server}/{db}"
    http_port = free_port()
    config = work / "switchboard.toml"
    config.write_text(f"""# bench/load.py: the stack's settings (run/switchboard.toml), its own database and HTTP port
[ami]
host = "127.0.0.1"
port = {env['SWITCHBOARD_AMI_PORT']}
username = "{env['SWITCHBOARD_AMI_USERNAME']}"
secret_file = "{env['SWITCHBOARD_AMI_SECRET_FILE']}"

[database]
dsn = "{dsn}"
spool_dir = "{work}/spool"

[http]
host = "127.0.0.1"
port = {http_port}

[paths]
flows_dir = "{REPO}/ivr_flows"
recordings_dir = "{REPO}/recordings"
prompts_dir = "{REPO}/recordings/prompts"
run_dir = "{work}"
asterisk_prompts_dir = "{env['STACK_SOUND_PREFIX']}"
asterisk_recordings_dir = "{env['STACK_RECORDINGS_IN_ASTERISK']}"

[ivr]
clock_offset_s = {open_hours_offset():.0f}
""")
    cli = [str(REPO / ".venv/bin/switchboard"), "--config", str(config)]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    subprocess.run([*cli, "migrate", "--seed-demo"], check=True, env=clean, capture_output=True)
    subprocess.run([*cli, "agents", "import", str(agents_file)], check=True, env=clean, capture_output=True)
    secret = Path(env["STACK_SIP_AGENTS_SECRET_FILE"]).read_text().strip()
    results: list[dict[str, Any]] = []
    with (work / "service.log").open("ab") as log:
        service = subprocess.Popen([*cli, "run"], env=clean, stdout=log, stderr=log, start_new_session=True)
        try:
            asyncio.run(measure(env, dsn, http_port, service.pid, agents, secret, levels, args.hold, work, results))
        finally:
            service.terminate()
            try:
                service.wait(20)
            except subprocess.TimeoutExpired:
                service.kill()
            asyncio.run(_sql(f"{server}/postgres", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
            if was_up:
                sh("bash", "deploy/local/stack-up.sh")          # back to the stack's own agents
            else:
                sh("bash", "deploy/local/stack-down.sh")
    ok_levels = [r["level"] for r in results if not r["failed"] and r["records_exact"]]
    print(json.dumps({"levels": results, "max_clean_level": max(ok_levels) if ok_levels else 0,
                      "nproc": os.cpu_count()}))
    return 0


async def measure(env: dict[str, str], dsn: str, http_port: int, service_pid: int, agents: list[dict[str, Any]],
                  secret: str, levels: list[int], hold: float, work: Path, results: list[dict[str, Any]]) -> None:
    remote = f"127.0.0.1:{env['STACK_SIP_PORT']}"
    farm = AgentFarm([(a["id"], sip_password(secret, a["id"])) for a in agents], remote=remote,
                     port=free_port(socket.SOCK_DGRAM), workdir=work, answer_after=1.0, talk=8.0)
    for _ in range(100):
        try:
            await scrape(http_port)
            break
        except (aiohttp.ClientError, OSError):
            await asyncio.sleep(0.3)
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        tokens = {}
        for a in agents:
            tokens[a["id"]], _ = await auth.create_token(PgTokenStore(conn), role="agent", agent_id=a["id"],
                                                         name="bench")
        await farm.start()
        await asyncio.sleep(3.0)
        async with aiohttp.ClientSession() as s:
            for a in agents:
                async with s.post(f"http://127.0.0.1:{http_port}/api/agents/{a['id']}/ready", json={},
                                  headers={"Authorization": f"Bearer {tokens[a['id']]}"}) as r:
                    if r.status != 200:
                        raise RuntimeError(f"{a['id']} ready: {r.status} {await r.text()}")
        paths = caller_paths(queue_topic_keys=("0",))
        agent_cycle = 1.0 + 8.0 + 15.0 + 2.0        # answer, talk, default wrap-up, set-up
        ast_pid = asterisk_pid(env)
        for run_no, level in enumerate(levels, start=1):
            rates = {name: share * level / paths[name].duration_s for name, share in MIX.items()}
            rates["agent"] = min(rates["agent"], 0.8 * len(agents) / agent_cycle)
            plan = []
            expected: dict[str, str] = {}
            for i, (name, rate) in enumerate(rates.items(), start=1):
                numbers = caller_numbers(i, max(1, int(rate * hold)), run=run_no)
                expected.update(dict.fromkeys(numbers, paths[name].outcome))
                plan.append((paths[name], rate, numbers))
            before = await scrape(http_port)
            cpu0 = (cpu_seconds(service_pid), cpu_seconds(ast_pid))
            t0 = time.monotonic()
            runs = await asyncio.gather(*(
                run_callers(p, numbers, remote=remote, service=HOTLINE, rate=rate, limit=level, workdir=work,
                            timeout=hold + 900) for p, rate, numbers in plan))
            wall = time.monotonic() - t0
            cpu1 = (cpu_seconds(service_pid), cpu_seconds(ast_pid))
            after = await scrape(http_port)
            check = RecordCheck()
            for _ in range(30):
                check = await check_records(conn, expected)
                if check.exact:
                    break
                await asyncio.sleep(1.0)
            results.append(level_row(level, hold, len(agents), wall, rates, runs, check, cpu0, cpu1, before, after,
                                     service_pid, ast_pid))
            print(json.dumps(results[-1]), flush=True)
            if results[-1]["failed"] or not check.exact:
                break
    finally:
        await conn.close()
        await farm.stop()


def level_row(level: int, hold: float, agents: int, wall: float, rates: dict[str, float], runs: list[Any],
              check: RecordCheck, cpu0: tuple[float, float], cpu1: tuple[float, float], before: str, after: str,
              service_pid: int, ast_pid: int) -> dict[str, Any]:
    calls = sum(r.created for r in runs)
    rt_a, rt_b = (parse_histograms(x, "switchboard_agi_round_trip_seconds") for x in (after, before))
    ack_a, ack_b = (parse_histograms(x, "switchboard_agi_ack_seconds") for x in (after, before))
    lag_a, lag_b = (parse_histograms(x, "switchboard_event_loop_lag_seconds") for x in (after, before))
    fast = {v: {"p50_s": quantile(rt_a[v], rt_b.get(v, {}), 0.5), "p99_s": quantile(rt_a[v], rt_b.get(v, {}), 0.99)}
            for v in FAST_VERBS if v in rt_a}
    all_ack: dict[float, float] = {}
    all_ack_b: dict[float, float] = {}
    for v, h in ack_a.items():
        for b, c in h.items():
            all_ack[b] = all_ack.get(b, 0.0) + c
            all_ack_b[b] = all_ack_b.get(b, 0.0) + ack_b.get(v, {}).get(b, 0.0)
    return {
        "level": level, "hold_s": hold, "agents": agents, "wall_s": round(wall, 1),
        "rates": {k: round(v, 3) for k, v in rates.items()},
        "offered": calls, "completed": sum(r.successful for r in runs), "failed": sum(r.failed for r in runs),
        "records": check.as_dict(), "records_exact": check.exact,
        "service_cpu_s_per_call": round((cpu1[0] - cpu0[0]) / max(1, calls), 4),
        "asterisk_cpu_s_per_call": round((cpu1[1] - cpu0[1]) / max(1, calls), 4),
        "service_rss_mb": round(rss_mb(service_pid), 1), "asterisk_rss_mb": round(rss_mb(ast_pid), 1),
        "agi_ack_p50_s": quantile(all_ack, all_ack_b, 0.5), "agi_ack_p99_s": quantile(all_ack, all_ack_b, 0.99),
        "agi_round_trip_fast": fast,
        "loop_lag_p99_s": quantile(lag_a.get("", {}), lag_b.get("", {}), 0.99),
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
