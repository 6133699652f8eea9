"""Campaign definitions from YAML (``campaigns/*.yaml``) or an API body, validated.

Every problem is reported with its place (``file:line:column``, the IVR flows' format:
``ivr.yaml_marks``), all of them at once; a body given to the API is read the same way
(its "file" is ``<api>``). Pure: the known flow names come in.

Format (docs/campaigns.md)::

    campaign: card-expiry              # id: lower case, digits, - _
    description: "Health cards expiring within 30 days"
    flow: reminder-card                # a flow of ivr_flows/ played when the contact answers
    mode: progressive                  # message | progressive | preview
    connect: caller_first              # progressive: caller_first | agent_first
    topic: health.card                 # agents' skill (progressive, preview, press 1)
    province: ""                       # agents' province, "" = any
    window: "07:30-20:00"              # callee's local time; public holidays closed
    timezone: Asia/Ho_Chi_Minh
    public_holidays: true
    max_attempts: 3
    retry: {no_answer: 2h, busy: 15m, failed: 1h}   # seconds, or 30s / 15m / 2h; 0 = never
    abandon_limit: 0.03                # live answers with no agent / answered, per day
    ring_seconds: 30
    caller_id: "19009068"
    targets: {selection: cards_expiring, params: {days: 30}}    # or {csv: card-expiry.csv}
"""

from __future__ import annotations

import enum
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from yaml.nodes import ScalarNode

from switchboard.campaigns.model import CAMPAIGN_ID, SELECTIONS, Campaign, Connect, Mode, RetryRules, Targets
from switchboard.ivr.calendar import parse_ranges
from switchboard.ivr.yaml_marks import (
    Bad,
    Ctx,
    FlowError,
    FlowLoadError,
    YNode,
    compose,
    flag,
    integer,
    mapping,
    number,
    string,
    top_level,
)

__all__ = ["CampaignError", "duration", "load_campaign", "load_campaign_text", "load_campaigns"]

CampaignError = FlowLoadError   # the same error type (a list of file:line:column problems)

_TOP = {"campaign", "description", "flow", "mode", "connect",
        "topic", "province", "window", "timezone", "public_holidays",
        "max_attempts", "retry", "abandon_limit", "ring_seconds", "caller_id", "targets"}
E = TypeVar("E", bound=enum.StrEnum)
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([smh]?)")


def duration(ctx: Ctx, node: YNode, what: str, hi: float = 7 * 86400.0) -> float:
    """Seconds: a number, or ``30s`` / ``15m`` / ``2h``."""
    if isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:str":
        m = _DURATION.fullmatch(node.value.strip())
        if m is None:
            raise Bad(node, f"{what}: expected seconds or 30s / 15m / 2h, got {node.value!r}")
        v = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]
        if v > hi:
            raise Bad(node, f"{what} must be at most {hi:g} s, got {v:g}")
        return v
    return number(ctx, node, what, 0.0, hi)


def load_campaign(path: str | Path, *, flows: Collection[str] | None = None) -> Campaign:
    p = Path(path)
    return load_campaign_text(p.read_text(encoding="utf-8"), str(p), flows=flows)


def load_campaigns(folder: str | Path, *, flows: Collection[str] | None = None) -> list[Campaign]:
    """Every ``*.yaml`` of ``folder``; ``FlowLoadError`` with every problem of every file."""
    out: list[Campaign] = []
    errors: list[FlowError] = []
    seen: dict[str, str] = {}
    for p in sorted(Path(folder).glob("*.yaml")):
        try:
            c = load_campaign(p, flows=flows)
        except FlowLoadError as exc:
            errors.extend(exc.errors)
            continue
        if c.campaign_id in seen:
            errors.append(FlowError(str(p), 1, 1, f"campaign {c.campaign_id!r} is also defined in {seen[c.campaign_id]}"))
            continue
        seen[c.campaign_id] = str(p)
        out.append(c)
    if errors:
        raise FlowLoadError(errors)
    return out


def load_campaign_text(text: str, file: str, *, flows: Collection[str] | None = None) -> Campaign:
    """``FlowLoadError`` listing every problem; ``flows``: known flow names (None = not checked)."""
    ctx = Ctx(file)
    root = compose(ctx, text)
    campaign = _campaign(ctx, root, flows) if root is not None else None
    if root is None and not ctx.errors:
        ctx.errors.append(FlowError(file, 1, 1, "empty campaign file"))
    if ctx.errors or campaign is None:
        raise FlowLoadError(ctx.errors or [FlowError(file, 1, 1, "not a campaign")])
    return campaign


def _campaign(ctx: Ctx, root: YNode, flows: Collection[str] | None) -> Campaign | None:
    read = top_level(ctx, root, what="campaign file", allowed=_TOP, required=("campaign", "flow", "targets"))
    if read is None:
        return None
    top, get = read
    cid = get("campaign", lambda n: string(ctx, n, "campaign"), "")
    if cid and not re.fullmatch(CAMPAIGN_ID, cid):
        ctx.error(top["campaign"][1], f"campaign id {cid!r}: lower-case letters, digits, - and _ (at most 48)")
    flow = get("flow", lambda n: string(ctx, n, "flow"), "")
    if flow and flows is not None and flow not in flows:
        ctx.error(top["flow"][1], f"flow {flow!r} does not exist (known: {', '.join(sorted(flows)) or 'none'})")
    mode = _choice(ctx, top, get, "mode", Mode, Mode.MESSAGE)
    connect = _choice(ctx, top, get, "connect", Connect, Connect.CALLER_FIRST)
    if "connect" in top and mode is not Mode.PROGRESSIVE and connect is not Connect.CALLER_FIRST:
        ctx.error(top["connect"][1], "connect: agent_first is for mode progressive (preview always rings the "
                                     "agent first)")
    topic = get("topic", lambda n: string(ctx, n, "topic"), "general")
    if not re.fullmatch(r"[a-z0-9_/.-]{1,48}", topic):
        ctx.error(top["topic"][1], f"topic {topic!r}: lower-case skill name (e.g. health.card)")
    province = get("province", lambda n: string(ctx, n, "province"), "")
    if province and not re.fullmatch(r"[a-z0-9-]{1,48}", province):
        ctx.error(top["province"][1], f"province {province!r}: a province id (e.g. ha-noi)")
    window = get("window", lambda n: _window(ctx, n), "07:30-20:00")
    timezone = get("timezone", lambda n: _zone(ctx, n), "Asia/Ho_Chi_Minh")
    holidays = get("public_holidays", lambda n: flag(ctx, n, "public_holidays"), True)
    max_attempts = get("max_attempts", lambda n: integer(ctx, n, "max_attempts", 1, 20), 3)
    retry = get("retry", lambda n: _retry(ctx, n), RetryRules())
    abandon = get("abandon_limit", lambda n: number(ctx, n, "abandon_limit", 0.0, 1.0), 0.03)
    ring = get("ring_seconds", lambda n: duration(ctx, n, "ring_seconds", 120.0), 30.0)
    if "ring_seconds" in top and ring < 5:
        ctx.error(top["ring_seconds"][1], "ring_seconds must be at least 5")
    caller_id = get("caller_id", lambda n: string(ctx, n, "caller_id"), "")
    if caller_id and not re.fullmatch(r"\+?[0-9]{3,20}", caller_id):
        ctx.error(top["caller_id"][1], f"caller_id {caller_id!r}: digits only (a leading + allowed)")
    targets = get("targets", lambda n: _targets(ctx, n), Targets())
    description = get("description", lambda n: string(ctx, n, "description"), "")
    if not cid or not flow or "targets" not in top:
        return None
    return Campaign(campaign_id=cid, flow=flow, mode=mode, connect=connect, description=description, topic=topic,
                    province=province,
                    window=window, timezone=timezone, public_holidays=holidays, max_attempts=max_attempts,
                    retry=retry, abandon_limit=abandon, ring_s=ring, caller_id=caller_id, targets=targets)


def _choice(ctx: Ctx, top: Any, get: Any, key: str, kind: type[E], default: E) -> E:
    """An enum-valued key (``mode``, ``connect``): its value, or an error listing the choices."""
    text = get(key, lambda n: string(ctx, n, key), default.value)
    try:
        return kind(text)
    except ValueError:
        ctx.error(top[key][1], f"{key} {text!r}: one of {', '.join(m.value for m in kind)}")
        return default


def _window(ctx: Ctx, node: YNode) -> str:
    text = string(ctx, node, "window")
    try:
        if not parse_ranges(text):
            raise Bad(node, "window: at least one range (e.g. \"07:30-20:00\")")
    except ValueError as exc:
        raise Bad(node, f"window: {exc}") from None
    return text


def _zone(ctx: Ctx, node: YNode) -> str:
    text = string(ctx, node, "timezone")
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise Bad(node, f"timezone: unknown time zone {text!r}") from None
    return text


def _retry(ctx: Ctx, node: YNode) -> RetryRules:
    f = mapping(ctx, node, "retry")
    allowed = {"no_answer", "busy", "failed"}
    for key in sorted(set(f) - allowed):
        ctx.error(f[key][0], f"retry: unknown result {key!r} (retried: busy, failed, no_answer)")
    d = RetryRules()
    values = {"no_answer": d.no_answer_s, "busy": d.busy_s, "failed": d.failed_s}
    for key in allowed & set(f):
        try:
            values[key] = duration(ctx, f[key][1], f"retry.{key}")
        except Bad as exc:
            ctx.error(exc.node, exc.message)
    return RetryRules(values["no_answer"], values["busy"], values["failed"])


def _targets(ctx: Ctx, node: YNode) -> Targets:
    f = mapping(ctx, node, "targets")
    for key in sorted(set(f) - {"csv", "selection", "params"}):
        ctx.error(f[key][0], f"targets: unknown key {key!r} (allowed: csv, params, selection)")
    if ("csv" in f) == ("selection" in f):
        raise Bad(node, "targets: give exactly one of csv (a file) or selection (a named query)")
    if "csv" in f:
        if "params" in f:
            ctx.error(f["params"][0], "targets.params: only with a selection")
        path = string(ctx, f["csv"][1], "targets.csv")
        if not path.endswith(".csv") or ".." in Path(path).parts or Path(path).is_absolute():
            raise Bad(f["csv"][1], f"targets.csv {path!r}: a .csv file beside the campaign (no .., not absolute)")
        return Targets(csv=path)
    name = string(ctx, f["selection"][1], "targets.selection")
    spec = SELECTIONS.get(name)
    if spec is None:
        raise Bad(f["selection"][1], f"targets.selection {name!r}: one of {', '.join(sorted(SELECTIONS))}")
    params: dict[str, int] = {k: p.default for k, p in spec.items()}
    if "params" in f:
        for key, (knode, vnode) in mapping(ctx, f["params"][1], "targets.params").items():
            if key not in spec:
                ctx.error(knode, f"targets.params: {name} takes {', '.join(sorted(spec)) or 'no parameters'}")
                continue
            try:
                params[key] = integer(ctx, vnode, f"targets.params.{key}", spec[key].lo, spec[key].hi)
            except Bad as exc:
                ctx.error(exc.node, exc.message)
    return Targets(selection=name, params=params)
