"""One typed Settings object: defaults < TOML file < SWITCHBOARD_* environment.

Every section is a frozen dataclass. Keys are validated against the dataclass
fields: an unknown key or a value of the wrong type is a ``ConfigError`` that
names the key (``ami.port``, ``SWITCHBOARD_AMI_PORT``) and what was wrong.

Environment variables are ``SWITCHBOARD_<SECTION>_<KEY>`` in upper case, e.g.
``SWITCHBOARD_AMI_SECRET`` or ``SWITCHBOARD_DATABASE_DSN``. Two short forms are
accepted for convenience: ``SWITCHBOARD_DSN`` (= database.dsn) and
``SWITCHBOARD_AMI_SECRET_FILE``.

Why one long file: every setting of the service is declared here with its default and
its check, so an operator (and ``doctor``) reads one table; the sections are small classes.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "AmiSettings",
    "ConfigError",
    "DatabaseSettings",
    "HttpSettings",
    "IvrSettings",
    "LogSettings",
    "NumberSettings",
    "OverloadSettings",
    "PathSettings",
    "RoutingSettings",
    "SessionSettings",
    "Settings",
    "load_settings",
]

ENV_PREFIX = "SWITCHBOARD_"


class ConfigError(ValueError):
    """A configuration key is unknown or its value is invalid."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


@dataclass(frozen=True, slots=True)
class AmiSettings:
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "switchboard"
    secret: str = dataclasses.field(default="", repr=False)
    secret_file: str = ""
    tls: bool = False
    auth: str = "md5"  # md5 | plain
    connect_timeout: float = 5.0
    action_timeout: float = 10.0
    ping_interval: float = 5.0
    ping_timeout: float = 3.0
    reconnect_min: float = 0.5
    reconnect_max: float = 15.0
    event_queue_size: int = 10000
    heartbeat_interval: float = 3.0
    # Compare Asterisk's channels with the service's calls this often (0: never); a channel
    # younger than reconcile_min_age_s is left alone (its AGI start may be on its way).
    reconcile_interval_s: float = 30.0
    reconcile_min_age_s: float = 10.0
    # Several Asterisk nodes behind Kamailio (docs/scale.md): "name=host:port[/sip port]" each
    # (the AMI port; the SIP port, when given, is asked OPTIONS before the node is declared
    # lost). TOML: a list of such strings, or of tables with name, host, port, sip_port. Empty: one Asterisk at
    # host:port above. Every node uses the username and secret above, and its Asterisk must
    # have ``systemname`` = the node's name (uniqueids and call ids then say their node).
    nodes: tuple[str, ...] = ()
    # A node whose AMI link stays down this long is lost: its calls are recorded as failed
    # (cause node_lost), offers to agents from it end and the agents are routed again.
    node_lost_after_s: float = 6.0
    # A second AMI session per Asterisk, with events off, for the Originates (agents' legs,
    # callbacks, consults, campaigns): Asterisk's manager serves one session's actions and its
    # event writes on one thread, so on the events session an Originate waits behind the events
    # being written to us (docs/capacity.md, dispatch latency). Off: everything on one session.
    action_lane: bool = True

    def node_list(self) -> list[tuple[str, str, int, int | None]]:
        """(name, host, AMI port, SIP port or None) of each node in ``nodes`` (checked at load)."""
        out = []
        for item in self.nodes:
            name, _, addr = item.partition("=")
            addr, _, sip = addr.partition("/")
            host, _, port = addr.rpartition(":")
            out.append((name.strip(), host.strip(), int(port), int(sip) if sip else None))
        return out

    def resolved_secret(self) -> str:
        """The AMI secret, read from ``secret_file`` when one is set."""
        if self.secret_file:
            return Path(self.secret_file).read_text(encoding="utf-8").strip()
        return self.secret

    def __repr__(self) -> str:  # never print the secret
        return f"AmiSettings(host={self.host!r}, port={self.port}, username={self.username!r}, secret=***)"


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    dsn: str = dataclasses.field(default="postgresql://postgres@127.0.0.1:5432/switchboard", repr=False)
    pool_min: int = 1
    pool_max: int = 10
    command_timeout: float = 10.0
    spool_dir: str = "run/spool"
    spool_max_bytes: int = 512 * 1024 * 1024
    batch_size: int = 2000
    flush_interval: float = 0.2
    queue_size: int = 100_000
    retention_days_calls: int = 730
    retention_days_recordings: int = 180
    # The IVR's CRM look-up (switchboard.store.participants): its own small pool, one deadline
    # over connection and query (past it the flow takes its on_error path), a cache of hot rows.
    lookup_pool_max: int = 4
    lookup_timeout_s: float = 2.0
    lookup_cache_ttl_s: float = 60.0
    lookup_cache_size: int = 5000

    def __repr__(self) -> str:
        return f"DatabaseSettings(dsn={redact_dsn(self.dsn)!r})"


@dataclass(frozen=True, slots=True)
class HttpSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    shutdown_timeout: float = 5.0
    websocket_buffer: int = 256
    # Set the session cookie's Secure flag (true whenever browsers reach the API over HTTPS).
    secure_cookies: bool = False
    # Reverse proxies (addresses or CIDR blocks) whose X-Forwarded-For is believed; empty: none.
    trusted_proxies: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PathSettings:
    flows_dir: str = "ivr_flows"
    recordings_dir: str = "recordings"
    prompts_dir: str = "recordings/prompts"
    run_dir: str = "run"
    # The same folders as Asterisk sees them (differs when Asterisk runs in a
    # chroot or on another host sharing the files); empty = same as above.
    asterisk_prompts_dir: str = ""
    asterisk_recordings_dir: str = ""
    # outside numbers a call may be transferred to (docs/transfers.md)
    directory_file: str = "deploy/directory.yaml"
    # the agent file whose supervisors: list names the supervisors' own phones (transfer and
    # consult targets); absent: no supervisor can be a target
    supervisors_file: str = "deploy/agents.yaml"


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    # Widen from own province to the region, then the nation, after this wait.
    # 15 s / 30 s meets 80/20 on the simulated 100-Erlang day (bench/RESULTS.md, routing_quality).
    region_after_s: float = 15.0
    nation_after_s: float = 30.0
    # A freed agent takes a caller of its own province whose wait is within this many seconds of
    # the oldest call it may take (a call-agent pair in-province counts as joined this much earlier).
    # 0 = plain longest-wait order. docs/routing.md, "Province preference".
    province_preference_s: float = 0.0
    # An agent from outside the caller's province is taken from the province with the most free
    # agents for the topic (then proficiency): a province's last free agent stays for its own callers.
    # More calls answered in-province at the same service level (bench/RESULTS.md, routing_quality).
    keep_local_cover: bool = True
    min_proficiency_province: int = 1
    min_proficiency_region: int = 2
    min_proficiency_nation: int = 3
    reevaluate_interval_s: float = 1.0
    ring_timeout_s: float = 15.0
    wrap_up_s: float = 15.0
    no_answer_limit: int = 3
    sticky_days: int = 7
    sticky_max_wait_s: float = 30.0
    service_level_s: float = 20.0
    short_abandon_s: float = 5.0
    # Targets the reports page draws: 80 % answered within service_level_s ("80/20"), and the
    # share of surveyed callers satisfied (score 4-5; VSS aims at 90 %+).
    service_level_target: float = 0.8
    satisfaction_target: float = 0.9
    announce_interval_s: float = 45.0
    callback_max_attempts: int = 3
    # Owed callbacks are read back from the database at start and every callback_sweep_s
    # (a restart loses none; after-hours requests join the line); older ones close as expired.
    callback_sweep_s: float = 60.0
    callback_max_age_h: float = 48.0
    # At start, agents take back their last logged state (ready / paused with its reason) when
    # it is younger than this: a restart does not log everybody out. 0 = everybody logs in again.
    restore_agent_states_h: float = 12.0
    # a blind transfer to a named agent: that agent's turn (one offer) lasts at most this long
    transfer_ring_s: float = 20.0
    # a consult: the agent's leg waits for the colleague at most this long (the dialplan's
    # SB_CONSULT_WAIT), then goes back to its caller by itself, even with the service away
    consult_max_wait_s: float = 300.0


@dataclass(frozen=True, slots=True)
class IvrSettings:
    # Shift the IVR's clock (business hours, holidays) by this many seconds:
    # for drills and tests of the after-hours path; 0 in production.
    clock_offset_s: float = 0.0
    # real: the IVR clock is the real one (plus the offset). open: a demo setting (`make run`
    # sets it unless DEMO_CLOCK=real): if the hotline is closed when the service starts, the
    # IVR clock jumps ahead to the hotline's next opening, so a demo routes calls at any hour.
    demo_clock: str = "real"
    announce_first_s: float = 8.0       # first position announcement after joining the line
    moh_class: str = "default"
    callbacks: bool = True              # offer "press 1 for a callback" while waiting
    transfer_dial: str = "PJSIP/{number}@trunk"


@dataclass(frozen=True, slots=True)
class NumberSettings:
    """The number policy (switchboard.telephony.numbers): what the switchboard may dial."""

    # National prefixes of mobile numbers (0 + 9 digits); landlines come from the area codes.
    mobile_prefixes: tuple[str, ...] = ("03", "05", "07", "08", "09")
    # Extra prefixes accepted besides subscriber numbers (e.g. "1800", "+855"); the deny-list wins.
    allow_prefixes: tuple[str, ...] = ()
    # Never dialled: premium (1900) and toll-free service numbers (1800).
    deny_prefixes: tuple[str, ...] = ("1900", "1800")
    dial_format: str = "national"        # national (0912345678) | e164 (+84912345678) on the trunk
    callbacks_per_day: int = 3           # callbacks granted per number per local day; 0 = no cap
    timezone: str = "Asia/Ho_Chi_Minh"   # the callee's local time: the cap's day, the calling window
    # Citizens are called (callbacks, and any later outbound call) only inside this window of
    # local time, and not on public holidays of the IVR calendar (switchboard.telephony.windows).
    call_window: str = "07:30-20:00"
    call_window_holidays: bool = True


@dataclass(frozen=True, slots=True)
class CampaignSettings:
    """Outbound campaigns (switchboard.campaigns, docs/campaigns.md)."""

    enabled: bool = True
    campaigns_dir: str = "campaigns"     # campaigns/*.yaml, stored at start (new ones paused)
    tick_s: float = 1.0                  # how often the dialer looks for numbers to dial
    max_lines: int = 10                  # calls in flight per campaign (its share of the trunk)
    context: str = "campaign-answered"   # the dialplan context an answered contact enters (AsyncAGI)
    no_agent_after_s: float = 2.0        # a live answer with no agent by then hears the sorry message
    # Inbound first: progressive campaigns dial nothing while the inbound service level of the
    # day is under this fraction (of calls answered within routing.service_level_s).
    inbound_sl_target: float = 0.8
    # Agent first (preview, progressive with connect: agent_first): the agent's leg is originated
    # into this context (the contact's number, the number policy's digits, is its extension).
    agent_context: str = "campaign-agent"
    agent_ring_s: float = 15.0           # how long the agent's phone rings before the attempt is given back
    preview_hold_s: float = 120.0        # how long a previewed contact stays held for its agent


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """Scheduled policy Q&A sessions (switchboard.sessions, docs/sessions.md)."""

    enabled: bool = True
    sessions_dir: str = "sessions"       # sessions/*.yaml, stored at start when new
    tick_s: float = 1.0                  # how often sessions are started and ended by their times
    context: str = "session-join"        # where a caller who pressed 5 goes (ConfBridge, then the survey)
    moderator_context: str = "session-moderator"   # the moderator's leg (originated at the start)
    moderator_ring_s: float = 45.0       # how long the moderator's phone rings
    seat_hold_s: float = 20.0            # a seat reserved for a caller on the way in is freed after this


@dataclass(frozen=True, slots=True)
class OverloadSettings:
    """Refuse new hotline callers cleanly past capacity (switchboard.telephony.overload)."""

    enabled: bool = True
    # Callers the service holds at once (IVR, queue, talking) before new ones are refused.
    # Size it from `make bench-load` on the box (docs/operations.md); 0 = no limit.
    max_calls: int = 400
    # Event-loop lag p99 over the last minute (the 10 ms ticker); 0 = not checked.
    max_loop_lag_s: float = 0.25
    # AGI command acknowledged by Asterisk (AMI response), p99 over the last minute; 0 = not checked.
    max_agi_ack_s: float = 1.0
    # Hysteresis: once refusing, accept again only when every figure is below
    # resume_ratio x its limit, and has stayed there for hold_s seconds.
    resume_ratio: float = 0.8
    hold_s: float = 10.0
    # busy: play "all lines are busy, please call later" (vi, en) and hang up;
    # fallback: hand the caller straight to the fallback queue (hotline-rescue).
    action: str = "busy"
    busy_prompt: str = "all_lines_busy"
    busy_languages: tuple[str, ...] = ("vi", "en")


@dataclass(frozen=True, slots=True)
class HaSettings:
    """Active/standby instances (switchboard.ha, docs/ha.md): off = one instance leads alone."""

    enabled: bool = False
    # The PostgreSQL session-level advisory lock every instance of one deployment contends for.
    lock_key: int = 0x5342_4C44  # "SBLD"
    # How often a standby tries the lock and the leader probes its lock connection (seconds).
    poll_s: float = 0.5
    # A probe of the lock connection without an answer within this: the lock counts as lost (a
    # connection closed under it is noticed at once; this covers a silent one; too short, and a
    # busy machine steps down for nothing: 1 s did under a load average of 20).
    probe_timeout_s: float = 3.0
    # How often a standby reads the heartbeat's epoch from Asterisk (shown in /readyz and metrics).
    watch_s: float = 0.5
    # How often the leader reads it (a higher epoch than its own fences it): the longest an old
    # leader cut from PostgreSQL acts on after a standby wrote a higher epoch, load aside.
    fence_watch_s: float = 0.1
    # A new leader waits this long between writing its epoch and acting, so an old leader that
    # still reaches Asterisk has read it and stopped (a few fence_watch_s: loop lag on a busy machine).
    takeover_grace_s: float = 0.5
    # Where clients reach this instance's API (told to clients a standby refuses a write).
    advertise_url: str = ""
    # This instance's name in the leader table and the logs ("" = host:http port).
    instance: str = ""


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str = "INFO"
    format: str = "text"  # text | json


@dataclass(frozen=True, slots=True)
class Settings:
    ami: AmiSettings = field(default_factory=AmiSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    paths: PathSettings = field(default_factory=PathSettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    ivr: IvrSettings = field(default_factory=IvrSettings)
    numbers: NumberSettings = field(default_factory=NumberSettings)
    overload: OverloadSettings = field(default_factory=OverloadSettings)
    ha: HaSettings = field(default_factory=HaSettings)
    campaigns: CampaignSettings = field(default_factory=CampaignSettings)
    sessions: SessionSettings = field(default_factory=SessionSettings)
    log: LogSettings = field(default_factory=LogSettings)

    def replace(self, **sections: Any) -> Settings:
        return dataclasses.replace(self, **sections)


_SECTIONS: dict[str, type[Any]] = {
    f.name: typing.get_type_hints(Settings)[f.name] for f in dataclasses.fields(Settings)
}

_CHOICES: dict[str, tuple[str, ...]] = {
    "ami.auth": ("md5", "plain"),
    "log.format": ("text", "json"),
    "numbers.dial_format": ("national", "e164"),
    "overload.action": ("busy", "fallback"),
    "ivr.demo_clock": ("real", "open"),
    "log.level": ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
}


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of a shell environment file (``run/stack.env``) as a dict: blank
    lines and ``#`` comments skipped, spaces around keys and values and quotes around values
    removed, as ``source`` would read them."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            env[k.strip()] = v.strip().strip("'\"")
    return env


def redact_dsn(dsn: str) -> str:
    """A DSN with its password replaced by ``***`` (safe to log)."""
    if "://" not in dsn or "@" not in dsn:
        return dsn
    scheme, rest = dsn.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    if ":" in creds:
        creds = creds.split(":", 1)[0] + ":***"
    return f"{scheme}://{creds}@{host}"


def _coerce(key: str, hint: Any, value: Any, *, from_env: bool) -> Any:
    if hint is bool:
        if isinstance(value, bool):
            return value
        if from_env and isinstance(value, str):
            low = value.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
        raise ConfigError(key, f"expected true/false, got {value!r}")
    if hint is int:
        if isinstance(value, bool):
            raise ConfigError(key, f"expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if from_env and isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ConfigError(key, f"expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, bool):
            raise ConfigError(key, f"expected a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if from_env and isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise ConfigError(key, f"expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(key, f"expected a string, got {value!r}")
    if hint == tuple[str, ...] and key.endswith("ami.nodes") and isinstance(value, list) \
            and all(isinstance(v, dict) for v in value):
        try:   # [[ami.nodes]] tables: name, host, port
            value = [f"{v['name']}={v.get('host', '127.0.0.1')}:{int(v['port'])}"
                     + (f"/{int(v['sip_port'])}" if v.get("sip_port") else "") for v in value]
        except (KeyError, TypeError, ValueError):
            raise ConfigError(key, "each [[ami.nodes]] needs name and port (and host)") from None
    if hint == tuple[str, ...]:
        if from_env and isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(key, f"expected a list of strings, got {value!r}")
    if isinstance(hint, types.GenericAlias) or typing.get_origin(hint) is not None:
        return value
    raise ConfigError(key, f"unsupported type {hint!r}")  # pragma: no cover


def _check(key: str, value: Any) -> None:
    choices = _CHOICES.get(key)
    if choices is not None:
        if key == "log.level":
            value = str(value).upper()
        if value not in choices:
            raise ConfigError(key, f"must be one of {', '.join(choices)}; got {value!r}")
    if key == "http.trusted_proxies":
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ConfigError(key, f"not an address or CIDR block: {item!r}") from None
    if key == "ami.nodes":
        import re

        names = set()
        for item in value:
            m = re.fullmatch(r"([a-z][a-z0-9_]{0,15})=([A-Za-z0-9.:\[\]-]+):(\d{1,5})(?:/(\d{1,5}))?", item)
            if m is None or not 0 < int(m.group(3)) <= 65535 or not 0 <= int(m.group(4) or 0) <= 65535:
                raise ConfigError(key, f"expected name=host:port[/sip port] (name: a-z, 0-9, _), got {item!r}")
            if m.group(1) in names:
                raise ConfigError(key, f"node {m.group(1)!r} given twice")
            names.add(m.group(1))
    if key == "numbers.call_window":
        from switchboard.ivr.calendar import parse_ranges

        try:
            parse_ranges(value)
        except ValueError as exc:
            raise ConfigError(key, f"{exc} (expected e.g. 07:30-20:00)") from None
    if key in ("routing.service_level_target", "routing.satisfaction_target") and not 0 < value <= 1:
        raise ConfigError(key, f"must be a share in (0, 1]: {value}")
    if key == "routing.province_preference_s" and not math.isfinite(value):
        raise ConfigError(key, f"must be a finite number of seconds: {value}")
    if key == "overload.resume_ratio" and not 0 < value <= 1:
        raise ConfigError(key, f"must be in (0, 1]: {value}")
    if key.endswith(("port",)) and isinstance(value, int) and not 0 <= value <= 65535:
        raise ConfigError(key, f"port out of range: {value}")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        raise ConfigError(key, f"must not be negative: {value}")


def _build_section(name: str, cls: type[Any], values: Mapping[str, Any], origin: Mapping[str, str]) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, raw in values.items():
        label = origin.get(key, f"{name}.{key}")
        if key not in known:
            raise ConfigError(label, f"unknown key (known keys in [{name}]: {', '.join(sorted(known))})")
        value = _coerce(label, hints[key], raw, from_env=label.startswith(ENV_PREFIX))
        if name == "log" and key == "level":
            value = str(value).upper()
        try:
            _check(f"{name}.{key}", value)
        except ConfigError as exc:
            raise ConfigError(label, exc.message) from None
        kwargs[key] = value
    return cls(**kwargs)


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Build the Settings: defaults < TOML file < environment < explicit overrides.

    ``path`` None means ``switchboard.toml`` in the current folder if it exists.
    """
    env = os.environ if environ is None else environ
    data: dict[str, dict[str, Any]] = {}
    origin: dict[str, dict[str, str]] = {}

    if path is None and env.get(ENV_PREFIX + "CONFIG"):
        path = env[ENV_PREFIX + "CONFIG"]
    if path is None and Path("switchboard.toml").is_file():
        path = "switchboard.toml"
    if path is not None:
        p = Path(path)
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(str(p), "config file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(p), f"invalid TOML: {exc}") from None
        for section, values in raw.items():
            if section not in _SECTIONS:
                raise ConfigError(section, f"unknown section (known: {', '.join(_SECTIONS)})")
            if not isinstance(values, dict):
                raise ConfigError(section, "must be a table")
            data.setdefault(section, {}).update(values)

    aliases = {"DSN": ("database", "dsn")}
    # the file; the pure-Python AMI parser; the local stack's PostgreSQL folder (deploy/local/lib.sh)
    not_settings = (ENV_PREFIX + "CONFIG", ENV_PREFIX + "NO_EXTENSIONS", ENV_PREFIX + "PG_DIR")
    for var, value in env.items():
        if not var.startswith(ENV_PREFIX) or var in not_settings:
            continue
        rest = var[len(ENV_PREFIX):]
        if rest in aliases:
            section, key = aliases[rest]
        else:
            section = next((s for s in _SECTIONS if rest.startswith(s.upper() + "_")), "")
            if not section:
                raise ConfigError(var, "unknown setting (expected SWITCHBOARD_<SECTION>_<KEY>)")
            key = rest[len(section) + 1:].lower()
        data.setdefault(section, {})[key] = value
        origin.setdefault(section, {})[key] = var

    for section, values in (overrides or {}).items():
        data.setdefault(section, {}).update(values)
        for key in values:
            origin.setdefault(section, {}).pop(key, None)

    built = {
        name: _build_section(name, cls, data.get(name, {}), origin.get(name, {}))
        for name, cls in _SECTIONS.items()
    }
    return Settings(**built)
