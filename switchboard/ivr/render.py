"""Draw a flow with Graphviz: one box per node, one arrow per destination."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from switchboard.ivr import model as m

__all__ = ["RenderError", "render_svg", "to_dot"]

_SHAPE = {
    m.Kind.PLAY: ("box", "#e8f0fe"),
    m.Kind.MENU: ("box3d", "#fff3cd"),
    m.Kind.COLLECT: ("box3d", "#fff3cd"),
    m.Kind.SURVEY: ("box3d", "#fff3cd"),
    m.Kind.CALLBACK_OFFER: ("box3d", "#fff3cd"),
    m.Kind.BRANCH: ("diamond", "#f1f3f4"),
    m.Kind.SET: ("note", "#f1f3f4"),
    m.Kind.LOOKUP: ("cylinder", "#e6f4ea"),
    m.Kind.QUEUE: ("doubleoctagon", "#d2e3fc"),
    m.Kind.TRANSFER: ("cds", "#fce8e6"),
    m.Kind.RECORD: ("box", "#fce8e6"),
    m.Kind.HANGUP: ("octagon", "#fce8e6"),
    m.Kind.CONFERENCE: ("tab", "#d2e3fc"),
}


class RenderError(Exception):
    pass


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _prompt_names(items: tuple[m.PromptItem, ...], limit: int = 3) -> str:
    names = []
    for item in items:
        if isinstance(item, m.PromptRef):
            names.append(item.name)
        elif isinstance(item, m.SayNumber):
            names.append(f"<number {item.var}>")
        else:
            names.append(f"<digits {item.var}>")
    if len(names) > limit:
        names = [*names[:limit], f"... +{len(names) - limit}"]
    return ", ".join(names)


def _label(node: m.Node) -> str:
    lines = [node.name, f"[{node.kind.value}]"]
    prompts = getattr(node, "prompts", ())
    if prompts:
        lines.append(_prompt_names(prompts))
    if isinstance(node, m.Queue):
        lines.append(f"topic {node.topic}, province {node.province}")
    elif isinstance(node, m.Lookup):
        lines.append(f"by {node.by} = {node.value}")
    elif isinstance(node, m.Collect):
        lines.append(f"-> ${node.var} ({node.min_digits}-{node.max_digits} digits)")
    elif isinstance(node, m.Set):
        lines.append(", ".join(f"{k}={v}" for k, v in node.values))
    elif isinstance(node, m.Transfer):
        lines.append(f"to {node.to or 'flow ' + node.flow}")
    return "\n".join(lines)


def _case_label(case: m.Case) -> str:
    parts = []
    for c in case.conds:
        if c.what == "var":
            parts.append(f"{c.var} {c.op} {'|'.join(c.values)}".strip())
        elif c.what in ("open", "holiday"):
            parts.append(c.what if c.flag else f"not {c.what}")
        else:
            parts.append(f"{c.what} {'|'.join(c.values)}")
    return " & ".join(parts)


def to_dot(flow: m.Flow) -> str:
    out = [f"digraph {_q(flow.name)} {{", "  rankdir=LR;", '  node [fontname="DejaVu Sans", fontsize=10, style=filled];',
           '  edge [fontname="DejaVu Sans", fontsize=9];',
           f"  labelloc=t; label={_q(f'{flow.name} (version {flow.version})')};"]
    for node in flow.nodes.values():
        shape, colour = _SHAPE[node.kind]
        extra = ", penwidth=2" if node.name == flow.start else ""
        out.append(f"  {_q(node.name)} [label={_q(_label(node))}, shape={shape}, fillcolor={_q(colour)}{extra}];")
    for node in flow.nodes.values():
        labels = list(node.destinations())
        if isinstance(node, m.Branch):
            labels = [(_case_label(c), c.next) for c in node.cases] + [("else", node.default)]
        seen: set[tuple[str, str]] = set()
        for label, dest in labels:
            if not dest or (label, dest) in seen:
                continue
            seen.add((label, dest))
            style = ', style=dashed' if label in ("invalid", "timeout", "fail", "no answer", "error") else ""
            out.append(f"  {_q(node.name)} -> {_q(dest)} [label={_q(label)}{style}];")
    out.append("}")
    return "\n".join(out) + "\n"


def render_svg(flow: m.Flow, out: Path, *, timeout: float = 60.0) -> None:
    dot = shutil.which("dot")
    if dot is None:
        raise RenderError("Graphviz 'dot' is not installed (apt-get install graphviz)")
    fmt = out.suffix.lstrip(".") or "svg"
    proc = subprocess.run([dot, f"-T{fmt}", "-o", str(out)], input=to_dot(flow), capture_output=True, text=True,
                          timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RenderError(f"dot failed: {proc.stderr.strip()}")
