"""FlowRegistry: the flows in service, reloadable without dropping a good version.

``reload()`` reads every ``<flows_dir>/*.yaml`` flow and ``entries.yaml``.
A file that fails validation is rejected and the version already loaded (if
any) keeps running; the errors come back in the report (and are logged). The
lead hooks SIGHUP and the admin API to ``reload()``. Swaps are whole-dict
assignments, so a call that already holds a ``Flow`` keeps it to the end.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from switchboard.ivr.loader import (
    ENTRIES_FILE,
    Entries,
    Entry,
    FlowError,
    FlowLoadError,
    load_entries,
    load_flow,
)
from switchboard.ivr.model import Flow, Transfer

__all__ = ["FlowRegistry", "ReloadReport", "Route", "flow_files", "validate_tree"]

log = logging.getLogger("switchboard.ivr")


@dataclass(frozen=True, slots=True)
class Route:
    """What to run for a dialed number."""

    flow: Flow
    province: str = ""  # fixed province of a provincial hotline number ("" = unknown)
    language: str = ""


@dataclass
class ReloadReport:
    loaded: list[str] = field(default_factory=list)  # flow names (re)loaded
    kept: list[str] = field(default_factory=list)  # flows whose new file was bad: old version kept
    errors: list[FlowError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def flow_files(flows_dir: Path) -> list[Path]:
    return sorted(p for p in flows_dir.glob("*.yaml") if p.name != ENTRIES_FILE)


def _digits(number: str) -> str:
    number = number.strip()
    if number.startswith("+84"):
        return "0" + number[3:]
    return number


class FlowRegistry:
    def __init__(self, flows_dir: str | Path, prompts_dir: str | Path | None, *,
                 loader: Callable[..., Flow] = load_flow, log_errors: bool = True) -> None:
        self._log_errors = log_errors
        self.flows_dir = Path(flows_dir)
        self.prompts_dir = Path(prompts_dir) if prompts_dir is not None else None
        self._load = loader
        self._flows: dict[str, Flow] = {}
        self._entries = Entries({}, "")

    # -- reading

    @property
    def flows(self) -> dict[str, Flow]:
        return dict(self._flows)

    def flow(self, name: str) -> Flow:
        return self._flows[name]

    def route(self, dialed: str) -> Route:
        """The flow for a dialed number: the entry map, else its default, else the only flow."""
        entry: Entry | None = self._entries.by_dialed.get(_digits(dialed))
        if entry is not None and entry.flow in self._flows:
            return Route(self._flows[entry.flow], entry.province, entry.language)
        name = self._entries.default_flow
        if name in self._flows:
            return Route(self._flows[name])
        if len(self._flows) == 1:
            return Route(next(iter(self._flows.values())))
        raise LookupError(f"no flow for dialed number {dialed!r}")

    # -- reloading

    def reload(self) -> ReloadReport:
        report = ReloadReport()
        new: dict[str, Flow] = {}
        files_seen: set[str] = set()
        for path in flow_files(self.flows_dir):
            try:
                flow = self._load(path, prompts_dir=self.prompts_dir)
            except FlowLoadError as exc:
                report.errors += exc.errors
                old = next((f for f in self._flows.values() if f.file == str(path)), None)
                if old is not None:
                    new[old.name] = old
                    report.kept.append(old.name)
                if self._log_errors:
                    keeping = f"; keeping version {old.version} of flow {old.name}" if old else ""
                    log.error("flow file %s rejected%s", path, keeping)
                    for err in exc.errors:
                        log.error("  %s", err)
                continue
            if flow.name in new:
                report.errors.append(FlowError(str(path), 1, 1, f"flow name {flow.name!r} is used twice"))
                continue
            files_seen.add(str(path))
            new[flow.name] = flow
            report.loaded.append(flow.name)
        report.errors += _cross_check(new)
        entries = self._entries
        entries_path = self.flows_dir / ENTRIES_FILE
        if entries_path.is_file():
            try:
                candidate = load_entries(entries_path)
                bad = _check_entries(candidate, new)
                if bad:
                    raise FlowLoadError(bad)
                entries = candidate
            except FlowLoadError as exc:
                report.errors += exc.errors
                log.error("entry map %s rejected; keeping the previous one", entries_path)
        self._flows = new
        self._entries = entries
        log.info("flows loaded: %s%s", ", ".join(f"{f.name}@{f.version}" for f in new.values()) or "none",
                 f"; kept old: {', '.join(report.kept)}" if report.kept else "")
        return report


def _cross_check(flows: dict[str, Flow]) -> list[FlowError]:
    errors = []
    for flow in flows.values():
        for node in flow.nodes.values():
            if isinstance(node, Transfer) and node.flow and node.flow not in flows:
                w = node.where
                errors.append(FlowError(w.file, w.line, w.column,
                                        f"node {node.name}: transfer to unknown flow {node.flow!r}"))
    return errors


def _check_entries(entries: Entries, flows: dict[str, Flow]) -> list[FlowError]:
    errors = []
    for entry in entries.by_dialed.values():
        if entry.flow not in flows:
            w = entry.where
            errors.append(FlowError(w.file, w.line, w.column, f"entry {entry.dialed}: unknown flow {entry.flow!r}"))
        elif entry.language and entry.language not in flows[entry.flow].languages:
            w = entry.where
            errors.append(FlowError(w.file, w.line, w.column,
                                    f"entry {entry.dialed}: flow {entry.flow} does not offer {entry.language!r}"))
    if entries.default_flow and entries.default_flow not in flows:
        errors.append(FlowError(entries.file, 1, 1, f"default flow {entries.default_flow!r} is not loaded"))
    return errors


def validate_tree(path: str | Path, prompts_dir: str | Path | None) -> list[FlowError]:
    """Every error in a flow file, or in a whole flows folder (flows, entries, cross-flow transfers)."""
    p = Path(path)
    if p.is_file():
        if p.name == ENTRIES_FILE:
            try:
                load_entries(p)
            except FlowLoadError as exc:
                return exc.errors
            return []
        try:
            load_flow(p, prompts_dir=prompts_dir)
        except FlowLoadError as exc:
            return exc.errors
        return []
    if not p.is_dir():
        return [FlowError(str(p), 0, 0, "no such file or folder")]
    registry = FlowRegistry(p, prompts_dir, log_errors=False)
    return sorted(registry.reload().errors)
