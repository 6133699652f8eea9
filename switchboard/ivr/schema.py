"""The flow node schema: each node kind's fields, declared once, and a node built from its YAML.

Owns: ``NODES`` (kind -> model class, and per field: its reader, whether it is required,
a rule on its value), the readers of the compound field kinds (prompts, destinations, menu
options, variables, choices, branch cases) and ``build_node``, which applies the flow's
defaults and the few rules that span fields. Every problem is reported at the YAML node it
came from (``yaml_marks``). Must not touch files, the flow's top level or its graph
(``loader``), nor the running machine.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from yaml.nodes import ScalarNode, SequenceNode

from switchboard.ivr import model as m
from switchboard.ivr.yaml_marks import (
    NAME,
    Bad,
    Ctx,
    YNode,
    flag,
    integer,
    mapping,
    number,
    ref_or_literal,
    string,
    strings,
)

__all__ = ["NODES", "Field", "NodeSpec", "build_node"]

_DTMF = re.compile(r"[0-9*#]+")
_TOPIC = re.compile(r"[a-z][a-z_]*(\.[a-z][a-z_]*)*")

# ------------------------------------------------------------ compound field kinds


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


def _dest(ctx: Ctx, node: YNode, what: str) -> str:
    """A node name to go to, remembered as an edge of the node being read."""
    name = string(ctx, node, what)
    ctx.edges.append((ctx.owner, name, ctx.where(node)))
    return name


def _options(ctx: Ctx, node: YNode, what: str) -> dict[str, m.MenuOption]:
    out: dict[str, m.MenuOption] = {}
    for digit, (knode, vnode) in mapping(ctx, node, "options").items():
        if not _DTMF.fullmatch(digit):
            ctx.error(knode, f"options: {digit!r} is not a keypad key (0-9, *, #)")
            continue
        try:
            if isinstance(vnode, ScalarNode):
                out[digit] = m.MenuOption(_dest(ctx, vnode, f"options.{digit}"))
                continue
            f = mapping(ctx, vnode, f"options.{digit}")
            unknown = set(f) - {"next", "set"}
            for key in sorted(unknown):
                ctx.error(f[key][0], f"options.{digit}: unknown key {key!r} (allowed: next, set)")
            if "next" not in f:
                raise Bad(vnode, f"options.{digit}: missing 'next'")
            sets = _vars(ctx, f["set"][1], f"options.{digit}.set") if "set" in f else ()
            out[digit] = m.MenuOption(_dest(ctx, f["next"][1], f"options.{digit}.next"), sets)
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


def _cases(ctx: Ctx, node: YNode, what: str) -> tuple[m.Case, ...]:
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
            out.append(m.Case(conds, _dest(ctx, f["next"][1], f"cases[{i}].next")))
        except Bad as exc:
            ctx.error(exc.node, exc.message)
    return tuple(out)


def _outcomes(ctx: Ctx, node: YNode, what: str) -> dict[str, str]:
    return {k: _dest(ctx, v, f"outcomes.{k}") for k, (_, v) in mapping(ctx, node, "outcomes").items()}




# ------------------------------------------------------------ the declaration

Reader = Callable[[Ctx, YNode, str], Any]  # (ctx, value node, field name) -> value; raises Bad
Check = Callable[[Any, str], str | None]  # (value read, field name) -> a problem; the node is still built
Rule = Callable[[Ctx, str, YNode, dict[str, Any], Mapping[str, tuple[ScalarNode, YNode]]], bool]


@dataclass(frozen=True, slots=True)
class Field:
    read: Reader
    required: bool = False
    check: Check | None = None
    attr: str = ""  # the model's name for it, when not the YAML key


@dataclass(frozen=True, slots=True)
class NodeSpec:
    cls: type[m.Node]
    fields: Mapping[str, Field]
    falls_back: tuple[str, ...] = ()  # destinations that default to on_fail, then defaults.on_fail
    rule: Rule | None = None  # rules that span fields; False: the node is not built


def _int_in(lo: int, hi: int) -> Reader:
    return lambda ctx, node, what: integer(ctx, node, what, lo, hi)


def _var_name(ctx: Ctx, node: YNode, what: str) -> str:
    return string(ctx, node, what).lstrip("$")


def _one_of(allowed: tuple[str, ...], said: str, *, got: bool = False) -> Check:
    def check(v: Any, what: str) -> str | None:
        return None if v in allowed else f"{what} must be {said}" + (f", got {v!r}" if got else "")
    return check


def _regex(v: Any, what: str) -> str | None:
    try:
        re.compile(v)
    except re.error as exc:
        return f"bad {what}: {exc}"
    return None


def _topic(v: Any, what: str) -> str | None:
    ok = v.startswith("$") or _TOPIC.fullmatch(v)
    return None if ok else f"bad topic skill {v!r} (like social.pension)"


def _priority(v: Any, what: str) -> str | None:
    ok = v.startswith("$") or v.lstrip("-").isdigit()
    return None if ok else "priority must be an integer or $variable"


def _keypad_key(v: Any, what: str) -> str | None:
    return None if re.fullmatch(r"[0-9*#]", v) else f"{what} must be one keypad key"


def _collect_rule(ctx: Ctx, name: str, vnode: YNode, kw: dict[str, Any],
                  fields: Mapping[str, tuple[ScalarNode, YNode]]) -> bool:
    if "choices" in kw:
        widths = [len(k) for k in kw["choices"]]
        kw.setdefault("min_digits", min(widths, default=1))
        kw.setdefault("max_digits", max(widths, default=1))
    kw.setdefault("max_digits", kw.get("min_digits", 1))
    if kw.get("min_digits", 1) > kw.get("max_digits", 1):
        ctx.error(fields.get("min_digits", (vnode, vnode))[1], f"node {name}: min_digits > max_digits")
    return True


def _callback_rule(ctx: Ctx, name: str, vnode: YNode, kw: dict[str, Any],
                   fields: Mapping[str, tuple[ScalarNode, YNode]]) -> bool:
    if kw.get("accept", "1") == kw.get("decline", "2"):
        ctx.error(vnode, f"node {name}: accept and decline must be different keys")
    return True


def _transfer_rule(ctx: Ctx, name: str, vnode: YNode, kw: dict[str, Any],
                   fields: Mapping[str, tuple[ScalarNode, YNode]]) -> bool:
    if bool(kw.get("to")) == bool(kw.get("flow")):
        ctx.error(vnode, f"node {name}: a transfer needs exactly one of 'to' (a number) or 'flow'")
        return False
    return True


PROMPTS = Field(_prompts, required=True)
NEXT = Field(_dest, required=True)
OPT_PROMPTS, OPT_DEST, OPT_STR, OPT_REF = Field(_prompts), Field(_dest), Field(string), Field(ref_or_literal)
ASK = {  # what every kind that waits for keys has; timeout and retries default to the flow's
    "timeout": Field(lambda ctx, node, what: number(ctx, node, what, 0.5, 120)),
    "retries": Field(_int_in(0, 10)),
    "invalid_prompt": OPT_PROMPTS,
}

NODES: dict[m.Kind, NodeSpec] = {
    m.Kind.PLAY: NodeSpec(m.Play, {"prompts": PROMPTS, "barge_in": Field(flag), "next": NEXT}),
    m.Kind.MENU: NodeSpec(m.Menu, {
        "prompts": PROMPTS, "options": Field(_options, required=True), **ASK, "timeout_prompt": OPT_PROMPTS,
        "on_invalid": OPT_DEST, "on_timeout": OPT_DEST, "on_fail": OPT_DEST,
    }, falls_back=("on_invalid", "on_timeout")),
    m.Kind.COLLECT: NodeSpec(m.Collect, {
        "prompts": PROMPTS, "var": Field(_var_name, required=True), "min_digits": Field(_int_in(1, 32)),
        "max_digits": Field(_int_in(1, 32)), "terminator": Field(string, check=_one_of(("#", "*", ""), "'#', '*' or ''")),
        "pattern": Field(string, check=_regex), "choices": Field(_choices), **ASK,
        "timeout_prompt": OPT_PROMPTS, "next": NEXT, "on_fail": OPT_DEST,
    }, falls_back=("on_fail",), rule=_collect_rule),
    m.Kind.BRANCH: NodeSpec(m.Branch, {"cases": Field(_cases, required=True), "default": NEXT}),
    m.Kind.SET: NodeSpec(m.Set, {"vars": Field(_vars, required=True, attr="values"), "next": NEXT}),
    m.Kind.LOOKUP: NodeSpec(m.Lookup, {
        "by": Field(string, required=True, check=_one_of(("phone", "si_code", "live_session"),
                                                            "'phone', 'si_code' or 'live_session'", got=True)), "value": OPT_REF,
        "into": Field(_var_name), "next": NEXT, "not_found": NEXT, "on_error": OPT_DEST,
    }),
    m.Kind.QUEUE: NodeSpec(m.Queue, {
        "topic": Field(ref_or_literal, required=True, check=_topic), "province": OPT_REF,
        "province_source": OPT_REF, "priority": Field(ref_or_literal, check=_priority), "language": OPT_REF,
        "next": NEXT, "outcomes": Field(_outcomes),
    }),
    m.Kind.CALLBACK_OFFER: NodeSpec(m.CallbackOffer, {
        "prompts": PROMPTS, "number": OPT_REF, "topic": OPT_REF, "accept": Field(string, check=_keypad_key),
        "decline": Field(string, check=_keypad_key), **ASK, "next": NEXT, "on_declined": OPT_DEST,
        "on_fail": OPT_DEST,
    }, falls_back=("on_declined",), rule=_callback_rule),
    m.Kind.TRANSFER: NodeSpec(m.Transfer, {"to": OPT_REF, "flow": OPT_STR, "prompts": OPT_PROMPTS},
                              rule=_transfer_rule),
    m.Kind.SURVEY: NodeSpec(m.Survey, {
        "prompts": PROMPTS, "var": Field(_var_name), **ASK, "thanks": OPT_PROMPTS, "next": NEXT,
        "on_fail": OPT_DEST,
    }, falls_back=("on_fail",)),
    m.Kind.RECORD: NodeSpec(m.Record, {
        "prompts": OPT_PROMPTS, "max_seconds": Field(_int_in(1, 3600)), "silence_seconds": Field(_int_in(0, 60)),
        "beep": Field(flag), "terminator": OPT_STR, "next": NEXT,
    }),
    m.Kind.CONFERENCE: NodeSpec(m.Conference, {"session": OPT_REF, "prompts": OPT_PROMPTS, "full": NEXT,
                                                "elsewhere": OPT_DEST}),
    m.Kind.HANGUP: NodeSpec(m.Hangup, {"prompts": OPT_PROMPTS, "reason": OPT_STR}),
}

_KINDS = ", ".join(k.value for k in m.Kind)


# ------------------------------------------------------------ building a node


def build_node(ctx: Ctx, name: str, knode: ScalarNode, vnode: YNode, defaults: m.FlowDefaults) -> m.Node | None:
    """The node ``name: vnode`` per ``NODES``, or None (its problems reported); raises ``Bad``
    when ``vnode`` is not a mapping."""
    fields = mapping(ctx, vnode, f"node {name}")
    if "type" not in fields:
        ctx.error(vnode, f"node {name}: missing 'type' (one of: {_KINDS})")
        return None
    tnode = fields["type"][1]
    try:
        kind = m.Kind(string(ctx, tnode, "type"))
    except (ValueError, Bad):
        ctx.error(tnode, f"node {name}: unknown type {getattr(tnode, 'value', '?')!r} (one of: {_KINDS})")
        return None
    spec = NODES[kind]
    ok = True
    for key, (kn, _) in fields.items():
        if key != "type" and key not in spec.fields:
            ctx.error(kn, f"node {name}: unknown key {key!r} for type {kind.value} "
                          f"(allowed: {', '.join(sorted(spec.fields))})")
            ok = False
    kw: dict[str, Any] = {}
    ctx.owner = name
    for key, f in spec.fields.items():
        if key not in fields:
            if f.required:
                ctx.error(vnode, f"node {name}: missing {key!r} (required for type {kind.value})")
                ok = False
            continue
        try:
            value = kw[f.attr or key] = f.read(ctx, fields[key][1], key)
        except Bad as exc:
            ctx.error(exc.node, f"node {name}: {exc.message}")
            ok = False
            continue
        if f.check is not None and (problem := f.check(value, key)):
            ctx.error(fields[key][1], f"node {name}: {problem}")
    built = _finish(ctx, spec, name, ctx.where(knode), vnode, kw, defaults, fields)
    return built if ok else None


def _finish(ctx: Ctx, spec: NodeSpec, name: str, where: m.Where, vnode: YNode, kw: dict[str, Any],
            defaults: m.FlowDefaults, fields: Mapping[str, tuple[ScalarNode, YNode]]) -> m.Node | None:
    """Apply the flow's defaults and the kind's cross-field rule, then build."""
    if "timeout" in spec.fields:
        kw.setdefault("timeout", defaults.timeout)
        kw.setdefault("retries", defaults.retries)
    fail = kw.pop("on_fail", "") or defaults.on_fail
    for key in spec.falls_back:
        kw[key] = kw.get(key) or fail
    need_fail = [key for key in spec.falls_back if not kw[key]]
    if need_fail:
        ctx.error(vnode, f"node {name}: no destination for {', '.join(need_fail)} (set it, or on_fail, "
                         "or defaults.on_fail)")
    if spec.rule is not None and not spec.rule(ctx, name, vnode, kw, fields):
        return None
    if need_fail:
        return None
    try:
        return spec.cls(name=name, where=where, **kw)
    except TypeError:  # a required field failed to read; already reported
        return None
