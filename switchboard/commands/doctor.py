"""``switchboard doctor``: check every dependency and print a table.

Checks AMI reachability and login (and the few actions the service needs),
the database and its migration level, the flows folder, the prompt audio,
the spool folder, whether the AMI parser's C fast path is built, whether the
host's own name resolves locally and quickly (and Asterisk's ``/etc/hosts``
names it and ``A.ROOT-SERVERS.NET``: docs/operations.md, "Name look-ups"), whether
Asterisk's RTP port range holds more channels than the overload gate lets in
(docs/operations.md, "RTP ports"), and whether a running service answers on its HTTP port.
Exits non-zero when any check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import socket
import sys
import time
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from switchboard.config import Settings, redact_dsn


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    optional: bool = False


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("doctor", help="check AMI, database, flows and prompts")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per network check (default 5)")
    p.set_defaults(func=_doctor)


async def check_ami(settings: Settings, timeout: float) -> list[Check]:
    """One Asterisk, or each node of ``ami.nodes`` (its checks named after it, and its
    ``systemname`` checked: the node's call ids must start with its name)."""
    s = settings.ami
    if not s.nodes:
        return await check_one_ami(s, timeout)
    per_node = await asyncio.gather(*(
        check_one_ami(replace(s, host=host, port=port, nodes=()), timeout, node=name)
        for name, host, port, _sip in s.node_list()))
    return [c for checks in per_node for c in checks]


async def check_one_ami(s: Any, timeout: float, *, node: str = "") -> list[Check]:
    where = f"{s.host}:{s.port} as {s.username}"
    out = await _check_one_ami(s, timeout, where, node)
    return [replace(c, name=f"{c.name} (node {node})") for c in out] if node else out


async def _check_one_ami(s: Any, timeout: float, where: str, node: str) -> list[Check]:
    from switchboard.ami.client import AmiClient
    from switchboard.telephony import heartbeat

    try:
        secret = s.resolved_secret()
    except OSError as exc:
        return [Check("AMI login", False, f"cannot read ami.secret_file: {exc}")]
    if not secret:
        return [Check("AMI login", False, "no AMI secret (ami.secret or ami.secret_file)")]
    client = AmiClient(s)
    out: list[Check] = []
    try:
        try:
            await client.start(timeout=timeout)
        except Exception as exc:
            reason = getattr(client, "last_disconnect_reason", "") or str(exc)
            return [Check("AMI login", False, f"{where}: {reason}")]
        out.append(Check("AMI login", True, f"{where} ({s.auth}), {client.asterisk_version or 'AMI'}"))
        t0 = time.monotonic()
        pong = await client.send({"Action": "Ping"}, timeout=timeout)
        out.append(Check("AMI ping", pong.success, f"{(time.monotonic() - t0) * 1000:.1f} ms"))
        got = await client.send(heartbeat.get_action(), timeout=timeout)
        beat, leader_epoch = heartbeat.parse_beat((got.headers.get("Value") or "") if got.success else "")
        if beat:
            age = time.time() - beat
            led = f", leader epoch {leader_epoch}" if leader_epoch else ""
            out.append(Check("service heartbeat", age < 15, f"written {age:.0f}s ago{led}"
                             + ("" if age < 15 else " (stale: calls go to the fallback queue)"), optional=True))
        else:
            out.append(Check("service heartbeat", False, "none in Asterisk (service not running: calls go to the "
                             "fallback queue)", optional=True))
        if node:
            core = await client.send({"Action": "CoreSettings"}, timeout=timeout)
            system = (core.headers.get("SystemName") or "") if core.success else ""
            out.append(Check("systemname", system == node,
                             f"{system or '(none)'}" + ("" if system == node else
                                                         f": must be {node!r} (asterisk.conf [options] systemname)")))
        chans = await client.send({"Action": "CoreShowChannels"}, timeout=timeout)
        n = len(getattr(chans, "events", ()))
        out.append(Check("AMI channel list", chans.success, f"{n} channel(s) up"))
    except Exception as exc:
        out.append(Check("AMI actions", False, f"{type(exc).__name__}: {exc}"))
    finally:
        await client.close()
    return out


async def check_database(settings: Settings, timeout: float, facts: dict[str, int] | None = None) -> list[Check]:
    import asyncpg

    from switchboard.store.agents import count_active_agents
    from switchboard.store.migrate import current_level, server_version

    dsn = settings.database.dsn
    try:
        conn = await asyncpg.connect(dsn, timeout=timeout)
    except Exception as exc:
        return [Check("database", False, f"{redact_dsn(dsn)}: {type(exc).__name__}: {exc}")]
    try:
        version = await server_version(conn, timeout=timeout)
        out = [Check("database", True, f"{redact_dsn(dsn)} (PostgreSQL {version})")]
        applied, available = await current_level(conn)
        out.append(Check("migrations", applied == available,
                         f"{applied}/{available} applied" + ("" if applied == available else
                                                             ": run `switchboard migrate`")))
        if applied:
            agents = await count_active_agents(conn, timeout=timeout)
            if facts is not None:
                facts["agents"] = int(agents)
            out.append(Check("agents", agents > 0, f"{agents} active agent(s)"
                             + ("" if agents else ": `switchboard agents import FILE`")))
        return out
    except Exception as exc:
        return [Check("database", False, f"{type(exc).__name__}: {exc}")]
    finally:
        await conn.close(timeout=timeout)


def check_flows(settings: Settings) -> list[Check]:
    from switchboard.acd.hold import HOLD_PROMPTS
    from switchboard.audio.numbers import word_prompts
    from switchboard.ivr.callback_notice import NOTICE_PROMPTS
    from switchboard.ivr.registry import FlowRegistry

    flows_dir = Path(settings.paths.flows_dir)
    prompts_dir = Path(settings.paths.prompts_dir)
    if not flows_dir.is_dir():
        return [Check("IVR flows", False, f"{flows_dir}: no such folder")]
    registry = FlowRegistry(flows_dir, prompts_dir, log_errors=False)
    report = registry.reload()
    out = []
    if registry.flows and report.ok:
        out.append(Check("IVR flows", True, f"{flows_dir}: " + ", ".join(sorted(registry.flows))))
    else:
        errors = getattr(report, "errors", [])
        first = "; ".join(str(e) for e in list(errors)[:3])
        out.append(Check("IVR flows", False, f"{flows_dir}: {len(errors)} error(s): {first}"))
    # The flows' own prompts are checked by the loader; the ACD's announcements and numbers here.
    missing: list[str] = []
    languages = sorted({lang for f in registry.flows.values() for lang in f.languages}) or ["vi"]
    for lang in languages:
        for name in [*HOLD_PROMPTS, *NOTICE_PROMPTS.get(lang, ()), *word_prompts(lang)]:
            if not (prompts_dir / lang / f"{name}.wav").is_file():
                missing.append(f"{lang}/{name}")
    out.append(Check("prompt audio", not missing,
                     f"{prompts_dir}: " + ("all present for " + ", ".join(languages) if not missing
                                           else f"{len(missing)} missing: {', '.join(missing[:5])}"
                                           " (run `switchboard prompts build`)")))
    return out


def check_spool(settings: Settings) -> Check:
    spool = Path(settings.database.spool_dir)
    try:
        spool.mkdir(parents=True, exist_ok=True)
        probe = spool / f".doctor-{os.getpid()}"
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as exc:
        return Check("spool folder", False, f"{spool}: {exc}")
    used = sum(p.stat().st_size for p in spool.glob("*") if p.is_file())
    return Check("spool folder", True, f"{spool}: writable, {used} bytes spooled")


def check_parser() -> Check:
    """Whether the AMI parser runs its C fast path (a warning only: the pure path is correct, slower)."""
    from switchboard.ami import protocol

    if protocol.SPEEDUPS:
        return Check("parser (AMI)", True, "C fast path (switchboard.ami._speedups)", optional=True)
    why = ("SWITCHBOARD_NO_EXTENSIONS is set" if os.environ.get("SWITCHBOARD_NO_EXTENSIONS")
           else "switchboard.ami._speedups is not built (`pip install -e .` builds it)")
    return Check("parser (AMI)", False, f"pure Python, about half the speed: {why}", optional=True)


#: Names Asterisk looks up for every new channel when it cannot tell its own address otherwise.
ROOT_SERVER = "a.root-servers.net"
SLOW_RESOLVE_S = 0.5


def hosts_names(text: str) -> set[str]:
    """Every name an ``/etc/hosts`` text maps to an address (lower case)."""
    names: set[str] = set()
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2:
            names.update(n.lower() for n in fields[1:])
    return names


def asterisk_hosts_file(settings: Settings, environ: dict[str, str] | os._Environ[str] = os.environ) -> Path | None:
    """The ``/etc/hosts`` Asterisk reads: its root's (the local stack, ``STACK_ASTERISK_ROOT`` or
    ``ASTERISK_ROOT``), else this host's when AMI is on this host; None when unknown (remote Asterisk)."""
    root = environ.get("STACK_ASTERISK_ROOT") or environ.get("ASTERISK_ROOT") or ""
    if root:
        return Path(root) / "etc" / "hosts"
    try:
        local = ipaddress.ip_address(settings.ami.host).is_loopback
    except ValueError:
        local = settings.ami.host in ("localhost", socket.gethostname())
    return Path("/etc/hosts") if local else None


def check_host_names(settings: Settings, *, hostname: str | None = None,
                     resolve: Any = socket.getaddrinfo, hosts_file: Path | bool | None = True,
                     slow_s: float = SLOW_RESOLVE_S) -> Check:
    """A warning when the host's name does not resolve locally and quickly, or when Asterisk's
    ``/etc/hosts`` lacks the host's name or ``A.ROOT-SERVERS.NET`` (per-channel DNS look-ups)."""
    name = hostname or socket.gethostname()
    t0 = time.monotonic()
    try:
        resolve(name, None)
        took = time.monotonic() - t0
        problem = f"`{name}` took {took:.2f}s to resolve" if took > slow_s else ""
    except OSError as exc:
        took = time.monotonic() - t0
        problem = f"`{name}` does not resolve ({exc})"
    path = asterisk_hosts_file(settings) if hosts_file is True else (hosts_file or None)
    where = ""
    if path is not None:
        try:
            names = hosts_names(path.read_text(encoding="utf-8", errors="replace"))
            missing = [n for n in (name.lower(), ROOT_SERVER) if n not in names]
            if missing:
                problem = "; ".join(filter(None, [problem, f"{path} lacks {', '.join(missing)}"]))
            where = f"; {path} names both"
        except OSError as exc:
            problem = "; ".join(filter(None, [problem, f"{path}: {exc}"]))
    if problem:
        return Check("host names", False, f"{problem}: Asterisk would look names up in DNS for every new "
                     "channel (docs/operations.md, \"Name look-ups\")", optional=True)
    return Check("host names", True, f"`{name}` resolves locally in {took * 1000:.0f} ms{where}", optional=True)


def _standby(raw: bytes) -> str:
    """What a standby's ``/readyz`` says of the leader ("" when it is no standby's answer)."""
    try:
        body = json.loads(raw)
    except ValueError:
        return ""
    if not isinstance(body, dict) or body.get("role") != "standby":
        return ""
    return (f"standby (instance {body.get('instance')}); leader {body.get('leader') or '?'} "
            f"({body.get('leader_url') or '?'}), epoch {body.get('leader_epoch')}")


def _without_lock(raw: bytes) -> str:
    """What a leader's ``/readyz`` says when it leads without its PostgreSQL lock ("" otherwise)."""
    try:
        body = json.loads(raw)
    except ValueError:
        return ""
    if not isinstance(body, dict) or body.get("role") != "leader" or body.get("lock") is not False:
        return ""
    return (f"leader (instance {body.get('instance')}, epoch {body.get('epoch')}) without its PostgreSQL lock "
            f"for {body.get('lock_lost_s')}s: it serves and spools until it takes the lock back or a standby "
            "takes over (docs/ha.md)")


#: Asterisk's own range when rtp.conf names none (res_rtp_asterisk.c DEFAULT_RTP_START / _END).
ASTERISK_RTP_DEFAULT = (5000, 31000)


def rtp_range(text: str) -> tuple[int, int]:
    """``(rtpstart, rtpend)`` of an ``rtp.conf`` text's ``[general]`` section."""
    start, end = ASTERISK_RTP_DEFAULT
    section = ""
    for line in text.splitlines():
        line = line.split(";", 1)[0].strip()
        if line.startswith("[") and "]" in line:
            section = line[1:line.index("]")].strip().lower()
        elif "=" in line and section == "general":
            key, _, value = (p.strip() for p in line.partition("="))
            if key.lower() in ("rtpstart", "rtpend") and value.lstrip("=> ").isdigit():
                if key.lower() == "rtpstart":
                    start = int(value.lstrip("=> "))
                else:
                    end = int(value.lstrip("=> "))
    return start, end


def asterisk_rtp_conf(settings: Settings, environ: dict[str, str] | os._Environ[str] = os.environ) -> Path | None:
    """The ``rtp.conf`` Asterisk reads: the local stack's (in its root), else this host's
    ``/etc/asterisk/rtp.conf`` when AMI is on this host; None when unknown (remote Asterisk)."""
    root = environ.get("STACK_ASTERISK_ROOT") or environ.get("ASTERISK_ROOT") or ""
    if root:
        return Path(root + environ.get("STACK_ASTERISK_ETC", "/etc/asterisk-switchboard")) / "rtp.conf"
    hosts = asterisk_hosts_file(settings, environ)
    return Path("/etc/asterisk/rtp.conf") if hosts is not None else None


def check_rtp_ports(settings: Settings, *, agents: int, path: Path | bool | None = True) -> Check:
    """A warning when Asterisk's RTP range cannot hold the channels the overload gate lets in:
    the callers past it would get a SIP 488 instead of the busy message."""
    from switchboard.telephony.overload import rtp_ports_needed

    conf = asterisk_rtp_conf(settings) if path is True else (path or None)
    if conf is None:
        return Check("RTP ports", True, "Asterisk is not on this host: size its rtp.conf by hand "
                     "(docs/operations.md, \"RTP ports\")", optional=True)
    try:
        start, end = rtp_range(conf.read_text(encoding="utf-8", errors="replace"))
    except OSError as exc:
        return Check("RTP ports", False, f"{conf}: {exc}", optional=True)
    ports = end - start + 1
    limit = settings.overload.max_calls if settings.overload.enabled else 0
    if limit <= 0:
        return Check("RTP ports", False, f"{conf}: {start}-{end} ({ports // 2} channels) and no overload "
                     "limit (overload.max_calls = 0): callers past the range get a SIP 488", optional=True)
    need = rtp_ports_needed(max_calls=limit, agents=agents)
    detail = (f"{conf}: {start}-{end} = {ports} ports ({ports // 2} channels); overload.max_calls = {limit} "
              f"with {agents} agent(s) needs {need}")
    if ports < need:
        return Check("RTP ports", False, detail + ": callers past the range would get a SIP 488, not the busy "
                     "message (docs/operations.md, \"RTP ports\")", optional=True)
    return Check("RTP ports", True, detail, optional=True)


def check_service(settings: Settings, timeout: float) -> Check:
    url = f"http://{settings.http.host}:{settings.http.port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            raw_ok = resp.read()
            cut_off = _without_lock(raw_ok)
            if cut_off:
                return Check("service /readyz", False, f"{url}: {cut_off}", optional=True)
            body = raw_ok.decode(errors="replace")
            return Check("service /readyz", True, f"{url}: {resp.status} {body[:80]}", optional=True)
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        standby = _standby(raw)
        if exc.code == 503 and standby:   # active/standby (docs/ha.md): a standby is not ready, by design
            return Check("service /readyz", True, f"{url}: {standby}", optional=True)
        return Check("service /readyz", False, f"{url}: {exc.code} {raw[:120]!r}", optional=True)
    except OSError as exc:
        return Check("service /readyz", False, f"{url}: not answering ({exc})", optional=True)


def check_clock(settings: Settings) -> Check:
    """The running service's local clock: real, shifted, or the demo setting (its note in the run folder)."""
    from switchboard.ivr.clock import NOTE_FILE, read_clock_note

    note = read_clock_note(settings.paths.run_dir)
    if note is None:
        return Check("clock (IVR)", True, f"ivr.demo_clock={settings.ivr.demo_clock} (no {NOTE_FILE} in "
                     f"{settings.paths.run_dir}: the service has not started here)", optional=True)
    return Check("clock (IVR)", True, f"{note.get('describe', '?')} (at the service's start, "
                 f"{note.get('written_at', '?')[:19]} UTC)", optional=True)


def run_checks(settings: Settings, *, timeout: float) -> list[Check]:
    facts: dict[str, int] = {}

    async def network() -> list[Check]:
        ami, db = await asyncio.gather(check_ami(settings, timeout), check_database(settings, timeout, facts))
        return [*ami, *db]

    checks = asyncio.run(network())
    checks += check_flows(settings)
    checks.append(check_spool(settings))
    checks.append(check_parser())
    checks.append(check_host_names(settings))
    checks.append(check_rtp_ports(settings, agents=facts.get("agents", 0)))
    checks.append(check_service(settings, timeout))
    checks.append(check_clock(settings))
    return checks


def _doctor(args: argparse.Namespace, settings: Settings) -> int:
    import logging

    logging.getLogger().setLevel(logging.CRITICAL)   # the table says it all
    checks = run_checks(settings, timeout=args.timeout)
    failed = [c for c in checks if not c.ok and not c.optional]
    if args.json:
        print(json.dumps([c.__dict__ for c in checks], ensure_ascii=False, indent=1))
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            mark = "ok  " if c.ok else ("warn" if c.optional else "FAIL")
            print(f"{mark}  {c.name:<{width}}  {c.detail}")
        print()
        print("all checks passed" if not failed else f"{len(failed)} check(s) failed", file=sys.stdout)
    return 1 if failed else 0
