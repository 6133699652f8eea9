"""Agent records: read and check an agent list (YAML or CSV), render their PJSIP sections.

Pure: no database, no network. ``switchboard agents import`` writes the records
to PostgreSQL; ``switchboard agents render-pjsip`` writes the Asterisk endpoints
from the same list.

YAML::

    agents:
      - id: agent1001
        name: "Nguyễn Thị Lan"
        sip_endpoint: agent1001          # default: the id
        home_province: ha-noi            # id or any name geo knows ("Thừa Thiên Huế")
        languages: [vi]                  # default [vi]
        skills: {social.pension: 5, health.card: 3}
        active: true                     # default true

    supervisors:                         # their own phones: where listen/whisper/barge legs ring
      - id: sup1
        name: "Đỗ Thanh Tâm"
        sip_endpoint: sup1               # default: the id; bind it to their token with
                                         # `switchboard tokens create --role supervisor --sip-endpoint sup1`

CSV (header required): ``id,name,sip_endpoint,home_province,languages,skills,active``
with ``languages`` as ``vi;en`` and ``skills`` as ``social.pension=5;health.card=3``.

SIP passwords are never in the list: each is derived at render time from one
secret (``sip_password``), so the list can be committed and the secret cannot.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from switchboard.geo import ProvinceTable, load_provinces

__all__ = ["AgentFileError", "AgentRecord", "SupervisorRecord", "load_agents", "load_supervisors", "parse_agents",
           "parse_supervisors", "render_pjsip", "sip_password"]

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SKILL = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")
_LANG = re.compile(r"^[a-z]{2,3}$")


class AgentFileError(ValueError):
    """The agent list is malformed; the message names the entry and the field."""


@dataclass(frozen=True, slots=True)
class AgentRecord:
    id: str
    name: str
    sip_endpoint: str
    home_province: str | None
    skills: Mapping[str, int] = field(default_factory=dict)
    languages: tuple[str, ...] = ("vi",)
    active: bool = True


@dataclass(frozen=True, slots=True)
class SupervisorRecord:
    """A supervisor's own SIP phone: no skills, never offered calls; spy legs ring it."""

    id: str
    name: str
    sip_endpoint: str
    active: bool = True


def _bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "y", ""):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "n"):
        return False
    raise AgentFileError(f"{where}: active must be true/false, got {value!r}")


def _record(raw: Mapping[str, Any], where: str, provinces: ProvinceTable) -> AgentRecord:
    unknown = set(raw) - {"id", "name", "sip_endpoint", "home_province", "languages", "skills", "active"}
    if unknown:
        raise AgentFileError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    agent_id = str(raw.get("id") or "").strip()
    if not _ID.match(agent_id):
        raise AgentFileError(f"{where}: id {agent_id!r} must be letters, digits, '_', '.', '-'")
    where = f"{where} ({agent_id})"
    name = str(raw.get("name") or "").strip()
    if not name:
        raise AgentFileError(f"{where}: name is required")
    endpoint = str(raw.get("sip_endpoint") or agent_id).strip()
    if not _ID.match(endpoint):
        raise AgentFileError(f"{where}: sip_endpoint {endpoint!r} is not a valid PJSIP section name")
    province: str | None = None
    prov_raw = raw.get("home_province")
    if prov_raw not in (None, ""):
        found = provinces.find(str(prov_raw))
        if found is None:
            raise AgentFileError(f"{where}: unknown home_province {prov_raw!r}")
        province = found.id
    langs_raw = raw.get("languages") or ["vi"]
    if isinstance(langs_raw, str):
        langs_raw = [x for x in re.split(r"[;, ]+", langs_raw) if x]
    languages = tuple(str(x).strip().lower() for x in langs_raw)
    for lang in languages:
        if not _LANG.match(lang):
            raise AgentFileError(f"{where}: language {lang!r} must be an ISO 639 code such as 'vi'")
    skills_raw = raw.get("skills") or {}
    if isinstance(skills_raw, str):
        pairs: dict[str, Any] = {}
        for part in (p.strip() for p in skills_raw.split(";")):
            if part:
                key, sep, value = part.partition("=")
                if not sep:
                    raise AgentFileError(f"{where}: skill {part!r} must be skill=proficiency")
                pairs[key.strip()] = value.strip()
        skills_raw = pairs
    if not isinstance(skills_raw, Mapping):
        raise AgentFileError(f"{where}: skills must be a mapping skill -> proficiency")
    skills: dict[str, int] = {}
    for skill, level in skills_raw.items():
        skill = str(skill).strip()
        if not _SKILL.match(skill):
            raise AgentFileError(f"{where}: skill {skill!r} must look like 'social.pension'")
        try:
            prof = int(level)
        except (TypeError, ValueError):
            raise AgentFileError(f"{where}: proficiency of {skill} must be 1-5, got {level!r}") from None
        if not 1 <= prof <= 5 or isinstance(level, bool):
            raise AgentFileError(f"{where}: proficiency of {skill} must be 1-5, got {level!r}")
        skills[skill] = prof
    return AgentRecord(agent_id, name, endpoint, province, skills, languages, _bool(raw.get("active", True), where))


def _check_unique(records: Sequence[AgentRecord]) -> list[AgentRecord]:
    seen_ids: set[str] = set()
    seen_endpoints: set[str] = set()
    for r in records:
        if r.id in seen_ids:
            raise AgentFileError(f"agent id {r.id!r} appears twice")
        if r.sip_endpoint in seen_endpoints:
            raise AgentFileError(f"sip_endpoint {r.sip_endpoint!r} appears twice")
        seen_ids.add(r.id)
        seen_endpoints.add(r.sip_endpoint)
    return list(records)


def parse_agents(text: str, *, fmt: str, provinces: ProvinceTable | None = None) -> list[AgentRecord]:
    """Parse an agent list; ``fmt`` is ``yaml`` or ``csv``."""
    provinces = provinces or load_provinces()
    if fmt == "yaml":
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise AgentFileError(f"invalid YAML: {exc}") from None
        items = data.get("agents") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise AgentFileError("expected a list of agents (or a mapping with an 'agents' list)")
        return _check_unique([
            _record(item if isinstance(item, dict) else _not_mapping(i), f"agent #{i + 1}", provinces)
            for i, item in enumerate(items)
        ])
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "id" not in reader.fieldnames:
            raise AgentFileError("CSV needs a header line with at least id,name")
        rows: list[AgentRecord] = []
        for row in reader:
            clean = {k.strip(): v for k, v in row.items() if k is not None and v not in (None, "")}
            rows.append(_record(clean, f"line {reader.line_num}", provinces))
        return _check_unique(rows)
    raise AgentFileError(f"unknown format {fmt!r} (yaml or csv)")


def parse_supervisors(text: str, *, agents: Sequence[AgentRecord] = ()) -> list[SupervisorRecord]:
    """The ``supervisors:`` list of a YAML agent file (none when absent). An endpoint or id
    shared with an agent is an error: a supervisor's phone is never an agent's."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AgentFileError(f"invalid YAML: {exc}") from None
    items = data.get("supervisors") if isinstance(data, dict) else None
    if items is None:
        return []
    if not isinstance(items, list):
        raise AgentFileError("'supervisors' must be a list")
    taken_ids = {a.id for a in agents}
    taken_endpoints = {a.sip_endpoint for a in agents}
    out: list[SupervisorRecord] = []
    for i, raw in enumerate(items):
        where = f"supervisor #{i + 1}"
        if not isinstance(raw, dict):
            raise AgentFileError(f"{where}: expected a mapping")
        unknown = set(raw) - {"id", "name", "sip_endpoint", "active"}
        if unknown:
            raise AgentFileError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        sup_id = str(raw.get("id") or "").strip()
        if not _ID.match(sup_id):
            raise AgentFileError(f"{where}: id {sup_id!r} must be letters, digits, '_', '.', '-'")
        where = f"{where} ({sup_id})"
        name = str(raw.get("name") or "").strip()
        if not name:
            raise AgentFileError(f"{where}: name is required")
        endpoint = str(raw.get("sip_endpoint") or sup_id).strip()
        if not _ID.match(endpoint):
            raise AgentFileError(f"{where}: sip_endpoint {endpoint!r} is not a valid PJSIP section name")
        if sup_id in taken_ids or endpoint in taken_endpoints:
            raise AgentFileError(f"{where}: id or sip_endpoint already used by an agent or another supervisor")
        taken_ids.add(sup_id)
        taken_endpoints.add(endpoint)
        out.append(SupervisorRecord(sup_id, name, endpoint, _bool(raw.get("active", True), where)))
    return out


def load_supervisors(path: str | Path, *, provinces: ProvinceTable | None = None) -> list[SupervisorRecord]:
    p = Path(path)
    if p.suffix.lower() == ".csv":
        return []
    return parse_supervisors(p.read_text(encoding="utf-8"), agents=load_agents(p, provinces=provinces))


def _not_mapping(i: int) -> Mapping[str, Any]:
    raise AgentFileError(f"agent #{i + 1}: expected a mapping")


def load_agents(path: str | Path, *, provinces: ProvinceTable | None = None) -> list[AgentRecord]:
    p = Path(path)
    fmt = "csv" if p.suffix.lower() == ".csv" else "yaml"
    return parse_agents(p.read_text(encoding="utf-8"), fmt=fmt, provinces=provinces)


def sip_password(secret: str, endpoint: str) -> str:
    """The SIP password of ``endpoint``: HMAC-SHA256(secret, endpoint), 24 hex characters."""
    if not secret:
        raise ValueError("the agent SIP secret is empty")
    return hmac.new(secret.encode(), f"sip-agent:{endpoint}".encode(), hashlib.sha256).hexdigest()[:24]


def render_pjsip(
    agents: Iterable[AgentRecord], secret: str, *, context: str = "agents", transport: str = "",
    codecs: str = "ulaw,alaw", dtmf_mode: str = "rfc4733", supervisors: Iterable[SupervisorRecord] = (),
    supervisor_context: str = "supervisors", templates: str = "reap-vanished",
) -> str:
    """``pjsip.conf`` sections (endpoint, auth, aor) for every active agent and supervisor.

    A supervisor's endpoint has its own context (no dialplan of ours: it dials
    nothing) and no ``SWITCHBOARD_AGENT`` variable: it only receives spy legs.
    Each endpoint uses the ``templates`` defined in ``deploy/asterisk/pjsip.conf``
    (``reap-vanished``: RTP timeout and session timers, so a vanished softphone is
    hung up); "" for none."""
    out = ["; generated by `switchboard agents render-pjsip` - do not edit; passwords derive from a secret",
           ""]
    phones: list[tuple[AgentRecord | SupervisorRecord, str]] = [(a, context) for a in agents]
    phones += [(s, supervisor_context) for s in supervisors]
    for a, ctx in phones:
        if not a.active:
            continue
        ext = re.sub(r"\D", "", a.sip_endpoint) or a.sip_endpoint
        name = a.name.replace('"', "'")
        lines = [
            f"[{a.sip_endpoint}]({templates})" if templates else f"[{a.sip_endpoint}]",
            "type=endpoint",
            f"context={ctx}",
            "disallow=all",
            f"allow={codecs}",
            f"auth={a.sip_endpoint}-auth",
            f"aors={a.sip_endpoint}",
            f'callerid="{name}" <{ext}>',
            "direct_media=no",
            "rtp_symmetric=yes",
            "force_rport=yes",
            "rewrite_contact=yes",
            f"dtmf_mode={dtmf_mode}",
        ]
        if isinstance(a, AgentRecord):
            lines.append(f"set_var=SWITCHBOARD_AGENT={a.id}")
        if transport:
            lines.insert(2, f"transport={transport}")
        lines += [
            "",
            f"[{a.sip_endpoint}-auth]",
            "type=auth",
            "auth_type=userpass",
            f"username={a.sip_endpoint}",
            f"password={sip_password(secret, a.sip_endpoint)}",
            "",
            f"[{a.sip_endpoint}]",
            "type=aor",
            "max_contacts=1",
            "remove_existing=yes",
            "qualify_frequency=30",
            "",
        ]
        out += lines
    return "\n".join(out)
