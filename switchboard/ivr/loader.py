"""Load and validate flows (``ivr_flows/*.yaml``) and the DID entry map.

Owns: reading a flow file, its top level (name, start, languages, defaults, hours),
the checks on the whole flow (dangling destinations, unreachable nodes, loops that never
wait for input, prompts with no audio for a language the flow offers) and ``entries.yaml``.
The nodes themselves are declared and built in ``schema``; errors and their
``file:line:column`` marks come from ``yaml_marks`` (the loader works on ``yaml.compose``
nodes, not plain dicts, to keep the marks). One run reports every error it can find.
Must not touch the running machine or the registry of loaded flows.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from yaml.nodes import SequenceNode

from switchboard.audio.numbers import word_prompts
from switchboard.ivr import model as m
from switchboard.ivr.calendar import BusinessHours
from switchboard.ivr.schema import build_node
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
    string,
    strings,
    top_level,
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
    read = top_level(ctx, root, what="flow file", allowed=_TOP, required=("flow", "start", "nodes"))
    if read is None:
        return None
    top, get = read
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
                built = build_node(ctx, node_name, knode, vnode, defaults)
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
            if isinstance(item, m.PromptRef) and item.name.startswith("$"):
                continue   # named by a variable at run time (a session's title prompt)
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
