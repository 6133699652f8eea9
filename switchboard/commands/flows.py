"""``switchboard flows validate [PATH]`` / ``flows render FLOW -o FILE.svg`` / ``flows list``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from switchboard.config import Settings


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("flows", help="IVR flows: validate, render, list")
    fsub = p.add_subparsers(dest="flows_command", metavar="ACTION", required=True)
    v = fsub.add_parser("validate", help="check flow files; lists every error, exits 1 if any")
    v.add_argument("path", nargs="?", help="a flow file or a folder (default: paths.flows_dir)")
    v.add_argument("--no-audio", action="store_true", help="skip the check that prompt audio exists")
    v.set_defaults(func=_validate)
    r = fsub.add_parser("render", help="draw a flow with Graphviz")
    r.add_argument("flow", help="flow name (in paths.flows_dir) or a flow file")
    r.add_argument("-o", "--output", required=True, help="output file (.svg, .png, .pdf or .dot)")
    r.set_defaults(func=_render)
    lst = fsub.add_parser("list", help="list flows and the dialed numbers that enter them")
    lst.set_defaults(func=_list)


def _validate(args: argparse.Namespace, settings: Settings) -> int:
    from switchboard.ivr.registry import validate_tree

    path = Path(args.path or settings.paths.flows_dir)
    prompts = None if args.no_audio else Path(settings.paths.prompts_dir)
    errors = validate_tree(path, prompts)
    for err in errors:
        print(err)
    if errors:
        print(f"{len(errors)} error(s)", file=sys.stderr)
        return 1
    print(f"{path}: ok")
    return 0


def _render(args: argparse.Namespace, settings: Settings) -> int:
    from switchboard.ivr.loader import FlowLoadError, load_flow
    from switchboard.ivr.registry import flow_files
    from switchboard.ivr.render import RenderError, render_svg, to_dot

    path = Path(args.flow)
    if not path.is_file():
        flows_dir = Path(settings.paths.flows_dir)
        path = flows_dir / f"{args.flow}.yaml"
        if not path.is_file():
            names = [p.stem for p in flow_files(flows_dir)]
            print(f"no flow {args.flow!r} (known: {', '.join(names)})", file=sys.stderr)
            return 2
    try:
        flow = load_flow(path)
    except FlowLoadError as exc:
        print(exc, file=sys.stderr)
        return 1
    out = Path(args.output)
    if out.suffix == ".dot":
        out.write_text(to_dot(flow), encoding="utf-8")
        return 0
    try:
        render_svg(flow, out)
    except RenderError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{out}: {len(flow.nodes)} nodes")
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from switchboard.ivr.registry import FlowRegistry

    reg = FlowRegistry(settings.paths.flows_dir, settings.paths.prompts_dir)
    report = reg.reload()
    for err in report.errors:
        print(err, file=sys.stderr)
    for name, flow in sorted(reg.flows.items()):
        print(f"{name}\t{flow.version}\t{len(flow.nodes)} nodes\t{','.join(flow.languages)}\t{flow.file}")
    return 0 if report.ok else 1
