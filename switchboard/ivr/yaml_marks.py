"""Reading YAML with its marks: flow errors and the readers of one YAML value.

Owns: ``FlowError`` / ``FlowLoadError`` (what every flow check reports), the reading
context ``Ctx`` that turns a ``yaml.compose`` node into ``file:line:column``, and the
readers of one value (mapping, string, integer, number, true/false, string list,
``$variable`` reference). A reader raises ``Bad(node, message)`` for a value it cannot
use; the caller reports it at that node. Knows nothing of node kinds, graphs or audio.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, ScalarNode, SequenceNode
from yaml.nodes import Node as YNode

from switchboard.ivr import model as m

__all__ = ["NAME", "Bad", "Ctx", "FlowError", "FlowLoadError", "Getter", "YNode", "compose", "flag", "integer",
           "mapping", "number", "ref_or_literal", "string", "strings", "top_level"]

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


@dataclass(frozen=True, slots=True, order=True)
class FlowError:
    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class FlowLoadError(Exception):
    """A flow (or the entry map) is invalid; ``errors`` lists every problem found."""

    def __init__(self, errors: list[FlowError]) -> None:
        self.errors = sorted(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


class Bad(Exception):
    """A value that cannot be used, reported at ``node``."""

    def __init__(self, node: YNode, message: str) -> None:
        super().__init__(message)
        self.node = node
        self.message = message


class Ctx:
    """One file's reading: its errors, and the destinations and node names seen so far."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.errors: list[FlowError] = []
        self.edges: list[tuple[str, str, m.Where]] = []  # (from node, to node, where)
        self.constructor = SafeConstructor()
        self.declared: set[str] = set()  # every node name written, even one that failed to build
        self.owner = ""  # the node being read: the source of the destinations it names

    def where(self, node: YNode) -> m.Where:
        return m.Where(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def error(self, node: YNode, message: str) -> None:
        w = self.where(node)
        self.errors.append(FlowError(w.file, w.line, w.column, message))

    def value(self, node: YNode) -> Any:
        return self.constructor.construct_object(node, deep=True)


def compose(ctx: Ctx, text: str) -> YNode | None:
    """The YAML node tree of ``text``, or None with a syntax error reported."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        ctx.errors.append(FlowError(ctx.file, line, col, f"YAML syntax: {exc.problem or exc}"))
    except yaml.YAMLError as exc:
        ctx.errors.append(FlowError(ctx.file, 0, 0, f"YAML: {exc}"))
    return None


def mapping(ctx: Ctx, node: YNode, what: str) -> dict[str, tuple[ScalarNode, YNode]]:
    if not isinstance(node, MappingNode):
        raise Bad(node, f"{what} must be a mapping")
    out: dict[str, tuple[ScalarNode, YNode]] = {}
    for key, val in node.value:
        if not isinstance(key, ScalarNode):
            ctx.error(key, f"{what}: keys must be plain strings")
            continue
        if key.value in out:
            ctx.error(key, f"{what}: duplicate key {key.value!r}")
            continue
        out[key.value] = (key, val)
    return out


def string(ctx: Ctx, node: YNode, what: str) -> str:
    if not isinstance(node, ScalarNode) or node.tag == "tag:yaml.org,2002:null":
        raise Bad(node, f"{what} must be a string")
    if node.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float") and node.style is None:
        return str(node.value)  # digits written without quotes: keep them as written ("01")
    if node.tag != "tag:yaml.org,2002:str":
        raise Bad(node, f"{what} must be a string, got {node.value!r}")
    return str(node.value)


def integer(ctx: Ctx, node: YNode, what: str, lo: int = 0, hi: int = 10**6) -> int:
    v = ctx.value(node) if isinstance(node, ScalarNode) else None
    if not isinstance(v, int) or isinstance(v, bool):
        raise Bad(node, f"{what} must be an integer")
    if not lo <= v <= hi:
        raise Bad(node, f"{what} must be between {lo} and {hi}, got {v}")
    return v


def number(ctx: Ctx, node: YNode, what: str, lo: float = 0.0, hi: float = 3600.0) -> float:
    v = ctx.value(node) if isinstance(node, ScalarNode) else None
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        raise Bad(node, f"{what} must be a number")
    if not lo <= v <= hi:
        raise Bad(node, f"{what} must be between {lo:g} and {hi:g}, got {v}")
    return float(v)


def flag(ctx: Ctx, node: YNode, what: str) -> bool:
    v = ctx.value(node) if isinstance(node, ScalarNode) else None
    if not isinstance(v, bool):
        raise Bad(node, f"{what} must be true or false")
    return v


def strings(ctx: Ctx, node: YNode, what: str) -> tuple[str, ...]:
    """A string or a list of strings."""
    if isinstance(node, SequenceNode):
        return tuple(string(ctx, item, what) for item in node.value)
    return (string(ctx, node, what),)


def ref_or_literal(ctx: Ctx, node: YNode, what: str) -> str:
    s = string(ctx, node, what)
    if s.startswith("$") and not NAME.fullmatch(s[1:]):
        raise Bad(node, f"{what}: bad variable reference {s!r}")
    return s


#: Reads one top-level key: ``get(key, reader, default)``; a ``Bad`` value is reported, the default kept.
Getter = Callable[[str, Callable[[YNode], Any], Any], Any]


def top_level(ctx: Ctx, root: YNode, *, what: str, allowed: Collection[str],
              required: Collection[str]) -> tuple[dict[str, tuple[ScalarNode, YNode]], Getter] | None:
    """The top-level mapping of a file (unknown and missing keys reported) and its key reader;
    None (reported) when the file is not a mapping."""
    try:
        top = mapping(ctx, root, what)
    except Bad as exc:
        ctx.error(exc.node, exc.message)
        return None
    for key in sorted(set(top) - set(allowed)):
        ctx.error(top[key][0], f"unknown top-level key {key!r} (allowed: {', '.join(sorted(allowed))})")
    for key in required:
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

    return top, get
