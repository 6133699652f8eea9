"""Load and validate flows (``ivr_flows/*.yaml``) and the DID entry map.

Errors carry the file, line and column of the offending YAML node (the loader
works on ``yaml.compose`` nodes, not on plain dicts, to keep the marks). One
run reports every error it can find: schema errors, dangling destinations,
unreachable nodes, loops that never wait for input and prompts with no audio
for a language the flow offers.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from yaml.nodes import ScalarNode, SequenceNode

from switchboard.audio.numbers import word_prompts
from switchboard.ivr import model as m
from switchboard.ivr.calendar import BusinessHours
from switchboard.ivr.yaml_marks import (
    NAME,
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
    ref_or_literal,
    string,
    strings,
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "ENTRIES_FILE",
    "FlowError",
    "FlowLoadError",
    "load_entries",
    "load_flow",
    "load_flow_text",
    "missing_audio",
]

ENTRIES_FILE = "entries.yaml"
AUDIO_EXTENSIONS = (".wav", ".ulaw", ".alaw", ".gsm", ".sln")
_DTMF = re.compile(r"[0-9*#]+")
_TOPIC = re.compile(r"[a-z][a-z_]*(\.[a-z][a-z_]*)*")


# ------------------------------------------------------------ field readers


def _prompt_item(ctx: Ctx, node: YNode, what: str) -> m.PromptItem:
    if isinstance(node, ScalarNode):
        name = string(ctx, node, what)
        if not NAME.fullmatch(name):
            raise Bad(node, f"{what}: bad prompt name {name!r}")
        return m.PromptRef(name, None, ctx.where(node))
    fields = mapping(ctx, node, what)
    keys = set(fields)
    if keys == {"number"} or keys == {"digits"}:
        kind = next(iter(keys))
        var = string(ctx, fields[kind][1], f"{what}.{kind}").lstrip("$")
        cls = m.SayNumber if kind == "number" else m.SayDigits
        return cls(var, ctx.where(node))
    if "prompt" in keys and keys <= {"prompt", "lang"}:
        name = string(ctx, fields["prompt"][1], f"{what}.prompt")
        lang = string(ctx, fields["lang"][1], f"{what}.lang") if "lang" in fields else None
        return m.PromptRef(name, lang, ctx.where(fields["prompt"][1]))
    raise Bad(node, f"{what}: a prompt is a name, {{prompt: NAME, lang: LANG}}, {{number: VAR}} or {{digits: VAR}}")


def _prompts(ctx: Ctx, node: YNode, what: str) -> tuple[m.PromptItem, ...]:
    if isinstance(node, SequenceNode):
        items = tuple(_prompt_item(ctx, item, what) for item in node.value)
    else:
        items = (_prompt_item(ctx, node, what),)
    return items


def _dest(ctx: Ctx, node: YNode, what: str, owner: str) -> str:
    name = string(ctx, node, what)
    ctx.edges.append((owner, name, ctx.where(node)))
    return name


def _options(ctx: Ctx, node: YNode, owner: str) -> dict[str, m.MenuOption]:
    out: dict[str, m.MenuOption] = {}
    for digit, (knode, vnode) in mapping(ctx, node, "options").items():
        if not _DTMF.fullmatch(digit):
            ctx.error(knode, f"options: {digit!r} is not a keypad key (0-9, *, #)")
            continue
        try:
            if isinstance(vnode, ScalarNode):
                out[digit] = m.MenuOption(_dest(ctx, vnode, f"options.{digit}", owner))
                continue
            f = mapping(ctx, vnode, f"options.{digit}")
            unknown = set(f) - {"next", "set"}
            for key in sorted(unknown):
                ctx.error(f[key][0], f"options.{digit}: unknown key {key!r} (allowed: next, set)")
            if "next" not in f:
                raise Bad(vnode, f"options.{digit}: missing 'next'")
            sets = _vars(ctx, f["set"][1], f"options.{digit}.set") if "set" in f else ()
            out[digit] = m.MenuOption(_dest(ctx, f["next"][1], f"options.{digit}.next", owner), sets)
        except Bad as exc:
            ctx.error(exc.node, exc.message)
    lengths = {len(k) for k in out}
    if len(lengths) > 1:
        ctx.error(node, "options: all keys of a menu must have the same length")
    return out


def _vars(ctx: Ctx, node: YNode, what: str) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for key, (knode, vnode) in mapping(ctx, node, what).items():
        if not NAME.fullmatch(key):
            ctx.error(knode, f"{what}: bad variable name {key!r}")
            continue
        if isinstance(vnode, ScalarNode) and vnode.tag == "tag:yaml.org,2002:null":
            out.append((key, ""))
            continue
        if isinstance(vnode, ScalarNode) and vnode.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:bool"):
            out.append((key, str(vnode.value)))
            continue
        out.append((key, ref_or_literal(ctx, vnode, f"{what}.{key}")))
    return tuple(out)


def _choices(ctx: Ctx, node: YNode, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, (knode, vnode) in mapping(ctx, node, what).items():
        if not _DTMF.fullmatch(key):
            ctx.error(knode, f"{what}: {key!r} is not a digit string")
            continue
        if isinstance(vnode, ScalarNode) and vnode.tag == "tag:yaml.org,2002:null":
            out[key] = ""
        else:
            out[key] = string(ctx, vnode, f"{what}.{key}")
    return out


_WHEN_KEYS = {"var", "equals", "in", "set", "unset", "matches", "caller_prefix", "dialed", "open", "holiday",
              "weekday", "time"}


def _when(ctx: Ctx, node: YNode, what: str) -> tuple[m.Cond, ...]:
    f = mapping(ctx, node, what)
    conds: list[m.Cond] = []
    for key in sorted(set(f) - _WHEN_KEYS):
        ctx.error(f[key][0], f"{what}: unknown condition {key!r} (allowed: {', '.join(sorted(_WHEN_KEYS))})")
    ops = [k for k in ("equals", "in", "set", "unset", "matches") if k in f]
    if "var" in f:
        var = string(ctx, f["var"][1], f"{what}.var").lstrip("$")
        if len(ops) != 1:
            raise Bad(f["var"][0], f"{what}: 'var' needs exactly one of equals, in, set, unset, matches")
        op = ops[0]
        vnode = f[op][1]
        if op in ("set", "unset"):
            if not flag(ctx, vnode, f"{what}.{op}"):
                op = "unset" if op == "set" else "set"
            conds.append(m.Cond("var", var, op))
        elif op == "matches":
            pattern = string(ctx, vnode, f"{what}.matches")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise Bad(vnode, f"{what}.matches: bad regular expression: {exc}") from None
            conds.append(m.Cond("var", var, op, (pattern,)))
        else:
            conds.append(m.Cond("var", var, "in", strings(ctx, vnode, f"{what}.{op}")))
    elif ops:
        raise Bad(f[ops[0]][0], f"{what}: {ops[0]!r} needs 'var'")
    for key in ("caller_prefix", "dialed"):
        if key in f:
            conds.append(m.Cond(key, values=strings(ctx, f[key][1], f"{what}.{key}")))
    for key in ("open", "holiday"):
        if key in f:
            conds.append(m.Cond(key, flag=flag(ctx, f[key][1], f"{what}.{key}")))
    if "weekday" in f:
        days = strings(ctx, f["weekday"][1], f"{what}.weekday")
        for d in days:
            if d not in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"):
                raise Bad(f["weekday"][1], f"{what}.weekday: unknown day {d!r}")
        conds.append(m.Cond("weekday", values=days))
    if "time" in f:
        text = string(ctx, f["time"][1], f"{what}.time")
        match = re.fullmatch(r"\s*(\d\d:\d\d)\s*-\s*(\d\d:\d\d)\s*", text)
        if not match:
            raise Bad(f["time"][1], f"{what}.time: expected HH:MM-HH:MM")
        conds.append(m.Cond("time", values=(match[1], match[2])))
    if not conds:
        raise Bad(node, f"{what}: empty condition")
    return tuple(conds)


def _cases(ctx: Ctx, node: YNode, owner: str) -> tuple[m.Case, ...]:
    if not isinstance(node, SequenceNode):
        raise Bad(node, "cases must be a list of {when: ..., next: ...}")
    out: list[m.Case] = []
    for i, item in enumerate(node.value, 1):
        try:
            f = mapping(ctx, item, f"cases[{i}]")
            for key in sorted(set(f) - {"when", "next"}):
                ctx.error(f[key][0], f"cases[{i}]: unknown key {key!r} (allowed: when, next)")
            if "when" not in f or "next" not in f:
                raise Bad(item, f"cases[{i}]: needs 'when' and 'next'")
            conds = _when(ctx, f["when"][1], f"cases[{i}].when")
            out.append(m.Case(conds, _dest(ctx, f["next"][1], f"cases[{i}].next", owner)))
        except Bad as exc:
            ctx.error(exc.node, exc.message)
    return tuple(out)


def _outcomes(ctx: Ctx, node: YNode, owner: str) -> dict[str, str]:
    return {k: _dest(ctx, v, f"outcomes.{k}", owner) for k, (_, v) in mapping(ctx, node, "outcomes").items()}


# kind -> field -> (reader, required); readers get (ctx, node, what, owner)
Reader = Callable[[Ctx, YNode, str, str], Any]


def _r(fn: Callable[..., Any]) -> Reader:
    return lambda ctx, node, what, owner: fn(ctx, node, what)


R_PROMPTS = _r(_prompts)
R_STR = _r(string)
R_REF = _r(ref_or_literal)
R_BOOL = _r(flag)
R_TIMEOUT = _r(lambda ctx, node, what: number(ctx, node, what, 0.5, 120))
R_RETRIES = _r(lambda ctx, node, what: integer(ctx, node, what, 0, 10))
R_DIGITS = _r(lambda ctx, node, what: integer(ctx, node, what, 1, 32))
R_SECONDS = _r(lambda ctx, node, what: integer(ctx, node, what, 1, 3600))
R_VARNAME = _r(lambda ctx, node, what: string(ctx, node, what).lstrip("$"))


def R_DEST(ctx: Ctx, node: YNode, what: str, owner: str) -> str:
    return _dest(ctx, node, what, owner)


def R_OPTIONS(ctx: Ctx, node: YNode, what: str, owner: str) -> dict[str, m.MenuOption]:
    return _options(ctx, node, owner)


def R_CASES(ctx: Ctx, node: YNode, what: str, owner: str) -> tuple[m.Case, ...]:
    return _cases(ctx, node, owner)


def R_OUTCOMES(ctx: Ctx, node: YNode, what: str, owner: str) -> dict[str, str]:
    return _outcomes(ctx, node, owner)


def R_VARS(ctx: Ctx, node: YNode, what: str, owner: str) -> tuple[tuple[str, str], ...]:
    return _vars(ctx, node, what)


def R_CHOICES(ctx: Ctx, node: YNode, what: str, owner: str) -> dict[str, str]:
    return _choices(ctx, node, what)


_ASK = {"timeout": (R_TIMEOUT, False), "retries": (R_RETRIES, False), "invalid_prompt": (R_PROMPTS, False)}

SPEC: dict[m.Kind, tuple[type[m.Node], dict[str, tuple[Reader, bool]]]] = {
    m.Kind.PLAY: (m.Play, {"prompts": (R_PROMPTS, True), "barge_in": (R_BOOL, False), "next": (R_DEST, True)}),
    m.Kind.MENU: (m.Menu, {
        "prompts": (R_PROMPTS, True), "options": (R_OPTIONS, True), **_ASK,
        "timeout_prompt": (R_PROMPTS, False), "on_invalid": (R_DEST, False), "on_timeout": (R_DEST, False),
        "on_fail": (R_DEST, False),
    }),
    m.Kind.COLLECT: (m.Collect, {
        "prompts": (R_PROMPTS, True), "var": (R_VARNAME, True), "min_digits": (R_DIGITS, False),
        "max_digits": (R_DIGITS, False), "terminator": (R_STR, False), "pattern": (R_STR, False),
        "choices": (R_CHOICES, False), **_ASK, "timeout_prompt": (R_PROMPTS, False),
        "next": (R_DEST, True), "on_fail": (R_DEST, False),
    }),
    m.Kind.BRANCH: (m.Branch, {"cases": (R_CASES, True), "default": (R_DEST, True)}),
    m.Kind.SET: (m.Set, {"vars": (R_VARS, True), "next": (R_DEST, True)}),
    m.Kind.LOOKUP: (m.Lookup, {
        "by": (R_STR, True), "value": (R_REF, False), "into": (R_VARNAME, False), "next": (R_DEST, True),
        "not_found": (R_DEST, True), "on_error": (R_DEST, False),
    }),
    m.Kind.QUEUE: (m.Queue, {
        "topic": (R_REF, True), "province": (R_REF, False), "province_source": (R_REF, False),
        "priority": (R_REF, False), "language": (R_REF, False), "next": (R_DEST, True),
        "outcomes": (R_OUTCOMES, False),
    }),
    m.Kind.CALLBACK_OFFER: (m.CallbackOffer, {
        "prompts": (R_PROMPTS, True), "number": (R_REF, False), "topic": (R_REF, False),
        "accept": (R_STR, False), "decline": (R_STR, False), **_ASK, "next": (R_DEST, True),
        "on_declined": (R_DEST, False), "on_fail": (R_DEST, False),
    }),
    m.Kind.TRANSFER: (m.Transfer, {"to": (R_REF, False), "flow": (R_STR, False), "prompts": (R_PROMPTS, False)}),
    m.Kind.SURVEY: (m.Survey, {
        "prompts": (R_PROMPTS, True), "var": (R_VARNAME, False), **_ASK, "thanks": (R_PROMPTS, False),
        "next": (R_DEST, True), "on_fail": (R_DEST, False),
    }),
    m.Kind.RECORD: (m.Record, {
        "prompts": (R_PROMPTS, False), "max_seconds": (R_SECONDS, False),
        "silence_seconds": (_r(lambda c, n, w: integer(c, n, w, 0, 60)), False), "beep": (R_BOOL, False),
        "terminator": (R_STR, False), "next": (R_DEST, True),
    }),
    m.Kind.HANGUP: (m.Hangup, {"prompts": (R_PROMPTS, False), "reason": (R_STR, False)}),
}

_RENAME = {"vars": "values"}


# ------------------------------------------------------------ nodes


def _node(ctx: Ctx, name: str, knode: ScalarNode, vnode: YNode, defaults: m.FlowDefaults) -> m.Node | None:
    where = ctx.where(knode)
    fields = mapping(ctx, vnode, f"node {name}")
    if "type" not in fields:
        ctx.error(vnode, f"node {name}: missing 'type' (one of: {', '.join(k.value for k in m.Kind)})")
        return None
    tnode = fields["type"][1]
    try:
        kind = m.Kind(string(ctx, tnode, "type"))
    except (ValueError, Bad):
        ctx.error(tnode, f"node {name}: unknown type {getattr(tnode, 'value', '?')!r} "
                         f"(one of: {', '.join(k.value for k in m.Kind)})")
        return None
    cls, spec = SPEC[kind]
    kwargs: dict[str, Any] = {}
    ok = True
    for key, (kn, _) in fields.items():
        if key != "type" and key not in spec:
            ctx.error(kn, f"node {name}: unknown key {key!r} for type {kind.value} "
                          f"(allowed: {', '.join(sorted(spec))})")
            ok = False
    for key, (reader, required) in spec.items():
        if key not in fields:
            if required:
                ctx.error(vnode, f"node {name}: missing {key!r} (required for type {kind.value})")
                ok = False
            continue
        try:
            kwargs[_RENAME.get(key, key)] = reader(ctx, fields[key][1], key, name)
        except Bad as exc:
            ctx.error(exc.node, f"node {name}: {exc.message}")
            ok = False
    built = _finish_node(ctx, cls, name, where, vnode, kwargs, defaults, fields)
    return built if ok else None


def _finish_node(ctx: Ctx, cls: type[m.Node], name: str, where: m.Where, vnode: YNode, kw: dict[str, Any],
                 defaults: m.FlowDefaults, fields: Mapping[str, tuple[ScalarNode, YNode]]) -> m.Node | None:
    """Apply flow defaults and cross-field rules."""
    if cls in (m.Menu, m.Collect, m.Survey, m.CallbackOffer):
        kw.setdefault("timeout", defaults.timeout)
        kw.setdefault("retries", defaults.retries)
    fail = kw.pop("on_fail", "") or defaults.on_fail
    need_fail: list[str] = []
    if cls is m.Menu:
        kw["on_invalid"] = kw.get("on_invalid") or fail
        kw["on_timeout"] = kw.get("on_timeout") or fail
        need_fail = [k for k in ("on_invalid", "on_timeout") if not kw[k]]
    elif cls in (m.Collect, m.Survey):
        kw["on_fail"] = fail
        need_fail = [] if fail else ["on_fail"]
    elif cls is m.CallbackOffer:
        kw["on_declined"] = kw.get("on_declined") or fail
        need_fail = [] if kw["on_declined"] else ["on_declined"]
        if kw.get("accept", "1") == kw.get("decline", "2"):
            ctx.error(vnode, f"node {name}: accept and decline must be different keys")
    if need_fail:
        ctx.error(vnode, f"node {name}: no destination for {', '.join(need_fail)} (set it, or on_fail, "
                         "or defaults.on_fail)")
    if cls is m.Collect:
        if "choices" in kw:
            widths = [len(k) for k in kw["choices"]]
            kw.setdefault("min_digits", min(widths, default=1))
            kw.setdefault("max_digits", max(widths, default=1))
        kw.setdefault("max_digits", kw.get("min_digits", 1))
        if kw.get("min_digits", 1) > kw.get("max_digits", 1):
            ctx.error(fields.get("min_digits", (vnode, vnode))[1], f"node {name}: min_digits > max_digits")
        if kw.get("terminator", "#") not in ("", "#", "*"):
            ctx.error(fields["terminator"][1], f"node {name}: terminator must be '#', '*' or ''")
        if "pattern" in kw:
            try:
                re.compile(kw["pattern"])
            except re.error as exc:
                ctx.error(fields["pattern"][1], f"node {name}: bad pattern: {exc}")
    if cls is m.Lookup and kw.get("by", "phone") not in ("phone", "si_code"):
        ctx.error(fields["by"][1], f"node {name}: by must be 'phone' or 'si_code', got {kw['by']!r}")
    topic = kw.get("topic", "general")
    if cls is m.Queue and not topic.startswith("$") and not _TOPIC.fullmatch(topic):
        ctx.error(fields["topic"][1], f"node {name}: bad topic skill {kw['topic']!r} (like social.pension)")
    if cls is m.Queue and "priority" in kw and not kw["priority"].startswith("$"):
        if not kw["priority"].lstrip("-").isdigit():
            ctx.error(fields["priority"][1], f"node {name}: priority must be an integer or $variable")
    if cls is m.Transfer and bool(kw.get("to")) == bool(kw.get("flow")):
        ctx.error(vnode, f"node {name}: a transfer needs exactly one of 'to' (a number) or 'flow'")
        return None
    for key in ("accept", "decline"):
        if key in kw and not re.fullmatch(r"[0-9*#]", kw[key]):
            ctx.error(fields[key][1], f"node {name}: {key} must be one keypad key")
    if need_fail:
        return None
    try:
        return cls(name=name, where=where, **kw)
    except TypeError:  # a required field failed to read; already reported
        return None


# ------------------------------------------------------------ flow


_TOP = {"flow", "description", "start", "languages", "default_language", "defaults", "hours", "nodes"}


def load_flow(path: str | Path, *, prompts_dir: str | Path | None = None) -> m.Flow:
    """Load and validate one flow file; raises ``FlowLoadError`` with every error found.

    ``prompts_dir`` (``recordings/prompts``) turns on the audio check.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise FlowLoadError([FlowError(str(p), 0, 0, f"cannot read: {exc.strerror}")]) from None
    return load_flow_text(text, str(p), prompts_dir=prompts_dir)


def load_flow_text(text: str, file: str, *, prompts_dir: str | Path | None = None) -> m.Flow:
    ctx = Ctx(file)
    root = compose(ctx, text)
    if root is None:
        if not ctx.errors:
            ctx.errors.append(FlowError(file, 1, 1, "empty file"))
        raise FlowLoadError(ctx.errors)
    flow = _flow(ctx, root, text)
    if flow is not None:
        _check_graph(ctx, flow)
        if prompts_dir is not None:
            for item, lang in missing_audio(flow, Path(prompts_dir)):
                w = item.where
                name = item.name if isinstance(item, m.PromptRef) else "number words"
                ctx.errors.append(FlowError(w.file, w.line, w.column,
                                            f"prompt {name!r} has no audio for language {lang!r} "
                                            f"(run `switchboard prompts build`)"))
    if ctx.errors or flow is None:
        raise FlowLoadError(ctx.errors)
    return flow


def _flow(ctx: Ctx, root: YNode, text: str) -> m.Flow | None:
    try:
        top = mapping(ctx, root, "flow file")
    except Bad as exc:
        ctx.error(exc.node, exc.message)
        return None
    for key in sorted(set(top) - _TOP):
        ctx.error(top[key][0], f"unknown top-level key {key!r} (allowed: {', '.join(sorted(_TOP))})")
    for key in ("flow", "start", "nodes"):
        if key not in top:
            ctx.error(root, f"missing top-level {key!r}")

    def get(key: str, reader: Callable[[YNode], Any], default: Any) -> Any:
        if key not in top:
            return default
        try:
            return reader(top[key][1])
        except Bad as exc:
            ctx.error(exc.node, exc.message)
            return default

    name = get("flow", lambda n: string(ctx, n, "flow"), "")
    if name and not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
        ctx.error(top["flow"][1], f"flow name {name!r}: use lower-case letters, digits, - and _")
    start = get("start", lambda n: string(ctx, n, "start"), "")
    languages = get("languages", lambda n: strings(ctx, n, "languages"), ("vi",))
    for lang in languages:
        if not re.fullmatch(r"[a-z]{2,3}", lang):
            ctx.error(top["languages"][1], f"languages: bad language code {lang!r}")
    default_language = get("default_language", lambda n: string(ctx, n, "default_language"), languages[0])
    if default_language not in languages:
        ctx.error(top["default_language"][1], f"default_language {default_language!r} is not in languages")
    defaults = get("defaults", lambda n: _defaults(ctx, n), m.FlowDefaults())
    hours = get("hours", lambda n: _hours(ctx, n), None)
    nodes: dict[str, m.Node] = {}
    if "nodes" in top:
        try:
            for node_name, (knode, vnode) in mapping(ctx, top["nodes"][1], "nodes").items():
                ctx.declared.add(node_name)
                if not NAME.fullmatch(node_name):
                    ctx.error(knode, f"bad node name {node_name!r}")
                    continue
                built = _node(ctx, node_name, knode, vnode, defaults)
                if built is not None:
                    nodes[node_name] = built
        except Bad as exc:
            ctx.error(exc.node, exc.message)
    if start and "nodes" in top and start not in ctx.declared:
        ctx.error(top["start"][1], f"start node {start!r} does not exist")
    if not name or not start or "nodes" not in top:
        return None
    version = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    description = get("description", lambda n: string(ctx, n, "description"), "")
    return m.Flow(name, ctx.file, version, start, tuple(languages), default_language, nodes, hours, description)


def _defaults(ctx: Ctx, node: YNode) -> m.FlowDefaults:
    f = mapping(ctx, node, "defaults")
    for key in sorted(set(f) - {"timeout", "retries", "on_fail"}):
        ctx.error(f[key][0], f"defaults: unknown key {key!r} (allowed: on_fail, retries, timeout)")
    timeout = number(ctx, f["timeout"][1], "defaults.timeout", 0.5, 120) if "timeout" in f else 5.0
    retries = integer(ctx, f["retries"][1], "defaults.retries", 0, 10) if "retries" in f else 2
    on_fail = ""
    if "on_fail" in f:
        on_fail = string(ctx, f["on_fail"][1], "defaults.on_fail")
        ctx.edges.append(("", on_fail, ctx.where(f["on_fail"][1])))
    return m.FlowDefaults(timeout, retries, on_fail)


def _hours(ctx: Ctx, node: YNode) -> BusinessHours:
    f = mapping(ctx, node, "hours")
    allowed = {"timezone", "weekly", "public_holidays", "closed", "open"}
    for key in sorted(set(f) - allowed):
        ctx.error(f[key][0], f"hours: unknown key {key!r} (allowed: {', '.join(sorted(allowed))})")
    if "weekly" not in f:
        raise Bad(node, "hours: missing 'weekly' (e.g. mon-fri: \"07:30-11:30, 13:00-17:00\")")
    weekly: dict[str, str] = {}
    for day, (knode, vnode) in mapping(ctx, f["weekly"][1], "hours.weekly").items():
        weekly[day] = string(ctx, vnode, f"hours.weekly.{day}")
        try:
            BusinessHours.build(weekly={day: weekly[day]})
        except ValueError as exc:
            ctx.error(knode if "day" in str(exc) else vnode, f"hours.weekly.{day}: {exc}")
            del weekly[day]

    def dates(key: str) -> list[date]:
        if key not in f:
            return []
        seq = f[key][1]
        if not isinstance(seq, SequenceNode):
            raise Bad(seq, f"hours.{key} must be a list of dates (YYYY-MM-DD)")
        out: list[date] = []
        for item in seq.value:
            v = ctx.value(item)
            if not isinstance(v, date):
                ctx.error(item, f"hours.{key}: {getattr(item, 'value', '?')!r} is not a date (YYYY-MM-DD)")
            else:
                out.append(v)
        return out

    timezone = string(ctx, f["timezone"][1], "hours.timezone") if "timezone" in f else "Asia/Ho_Chi_Minh"
    public = flag(ctx, f["public_holidays"][1], "hours.public_holidays") if "public_holidays" in f else True
    try:
        return BusinessHours.build(timezone=timezone, weekly=weekly, public_holidays=public,
                                   closed=dates("closed"), open=dates("open"))
    except (ValueError, KeyError) as exc:
        raise Bad(f.get("timezone", (node, node))[1], f"hours.timezone: unknown time zone ({exc})") from None


def _check_graph(ctx: Ctx, flow: m.Flow) -> None:
    known_names = set(flow.nodes)
    # nodes that failed to build still count as existing for the dangling check
    for owner, dest, where in ctx.edges:
        if dest not in known_names and dest not in ctx.declared:
            who = f"node {owner}" if owner else "defaults"
            ctx.errors.append(FlowError(where.file, where.line, where.column,
                                        f"{who}: destination {dest!r} does not exist"))
    if flow.start not in flow.nodes:
        return
    graph: dict[str, list[str]] = {
        n: [d for _, d in node.destinations() if d in flow.nodes] for n, node in flow.nodes.items()
    }
    seen = {flow.start}
    todo = [flow.start]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    for name, node in flow.nodes.items():
        if name not in seen:
            w = node.where
            ctx.errors.append(FlowError(w.file, w.line, w.column, f"node {name} is unreachable from {flow.start!r}"))
    for cycle in _input_free_cycles(flow, graph):
        w = flow.nodes[cycle[0]].where
        ctx.errors.append(FlowError(w.file, w.line, w.column,
                                    "loop with no input: " + " -> ".join([*cycle, cycle[0]])))


def _input_free_cycles(flow: m.Flow, graph: Mapping[str, list[str]]) -> list[list[str]]:
    """Strongly connected groups of nodes (Tarjan) that never wait for input."""
    auto = {n for n, node in flow.nodes.items() if node.kind not in m.INPUT_KINDS}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in auto:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group: list[str] = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph[v]:
                order = [n for n in flow.nodes if n in group]
                found.append(order)

    for v in flow.nodes:
        if v in auto and v not in index:
            visit(v)
    return found


def _prompt_items(node: m.Node) -> Iterable[m.PromptItem]:
    for attr in ("prompts", "invalid_prompt", "timeout_prompt", "thanks"):
        yield from getattr(node, attr, ())


def missing_audio(flow: m.Flow, prompts_dir: Path) -> list[tuple[m.PromptItem, str]]:
    """(prompt item, language) for every prompt the flow may play that has no audio file."""
    out: list[tuple[m.PromptItem, str]] = []
    cache: dict[tuple[str, str], bool] = {}

    def exists(lang: str, name: str) -> bool:
        key = (lang, name)
        if key not in cache:
            cache[key] = any((prompts_dir / lang / f"{name}{ext}").is_file() for ext in AUDIO_EXTENSIONS)
        return cache[key]

    for node in flow.nodes.values():
        for item in _prompt_items(node):
            langs = (item.lang,) if isinstance(item, m.PromptRef) and item.lang else flow.languages
            for lang in langs:
                if isinstance(item, m.PromptRef):
                    ok = exists(lang, item.name)
                else:
                    ok = all(exists(lang, name) for name in word_prompts(lang))
                if not ok:
                    out.append((item, lang))
    return out


# ------------------------------------------------------------ entries


@dataclass(frozen=True, slots=True)
class Entry:
    dialed: str
    flow: str
    province: str = ""
    language: str = ""
    where: m.Where = field(default=m.NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Entries:
    by_dialed: Mapping[str, Entry]
    default_flow: str
    file: str = ""


def load_entries(path: str | Path) -> Entries:
    """``entries.yaml``: DID -> flow (+ fixed province); ``default`` flow for other numbers."""
    p = Path(path)
    ctx = Ctx(str(p))
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise FlowLoadError([FlowError(str(p), 0, 0, f"cannot read: {exc.strerror}")]) from None
    root = compose(ctx, text)
    by_dialed: dict[str, Entry] = {}
    default = ""
    if root is not None:
        try:
            top = mapping(ctx, root, "entries file")
            for key in sorted(set(top) - {"entries", "default"}):
                ctx.error(top[key][0], f"unknown key {key!r} (allowed: default, entries)")
            if "default" in top:
                default = string(ctx, top["default"][1], "default")
            seq = top["entries"][1] if "entries" in top else None
            if not isinstance(seq, SequenceNode):
                raise Bad(seq or root, "'entries' must be a list")
            for item in seq.value:
                try:
                    f = mapping(ctx, item, "entry")
                    for key in sorted(set(f) - {"dialed", "flow", "province", "language"}):
                        ctx.error(f[key][0], f"entry: unknown key {key!r}")
                    if "dialed" not in f or "flow" not in f:
                        raise Bad(item, "entry: needs 'dialed' and 'flow'")
                    entry = Entry(
                        dialed=string(ctx, f["dialed"][1], "dialed"),
                        flow=string(ctx, f["flow"][1], "flow"),
                        province=string(ctx, f["province"][1], "province") if "province" in f else "",
                        language=string(ctx, f["language"][1], "language") if "language" in f else "",
                        where=ctx.where(item),
                    )
                    if not re.fullmatch(r"\+?[0-9]+", entry.dialed):
                        ctx.error(f["dialed"][1], f"entry: dialed number {entry.dialed!r} must be digits")
                    elif entry.dialed in by_dialed:
                        ctx.error(f["dialed"][1], f"entry: {entry.dialed} is mapped twice")
                    else:
                        by_dialed[entry.dialed] = entry
                except Bad as exc:
                    ctx.error(exc.node, exc.message)
        except Bad as exc:
            ctx.error(exc.node, exc.message)
    if ctx.errors:
        raise FlowLoadError(ctx.errors)
    return Entries(by_dialed, default, str(p))
