"""The transfer directory: the only outside numbers a call may be transferred to.

Owns: reading ``deploy/directory.yaml`` (``directory:`` a list of ``{code, name,
number}``) into :class:`DirectoryEntry` records, each number checked by the one
number policy at load time; a bad file is a :class:`DirectoryError` that names
``file:line``. Agents pick an entry by its ``code``; the number itself never comes
from a client.

Pure: no asyncio, no AMI. The dial string is the policy's output (``dial_string``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from switchboard.telephony.numbers import NumberPolicy

__all__ = ["CODE_RE", "Directory", "DirectoryEntry", "DirectoryError", "load_directory", "parse_directory"]

CODE_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


class DirectoryError(ValueError):
    """A directory file that cannot be used; the message starts with ``file:line``."""


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    code: str         # what the panel and the softphone choose (``*6<n>#`` picks the n-th, from 1)
    name: str
    number: str       # the number policy's normalised form
    dial: str         # what the dialplan dials (the policy's dial string: digits, or + and digits)


@dataclass(frozen=True, slots=True)
class Directory:
    entries: tuple[DirectoryEntry, ...] = ()

    def find(self, code: str) -> DirectoryEntry | None:
        return next((e for e in self.entries if e.code == code), None)

    def by_position(self, n: int) -> DirectoryEntry | None:
        return self.entries[n - 1] if 1 <= n <= len(self.entries) else None


def _where(name: str, node: Node) -> str:
    return f"{name}:{node.start_mark.line + 1}"


def parse_directory(text: str, policy: NumberPolicy, *, name: str = "directory.yaml") -> Directory:
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"{mark.line + 1}" if mark is not None else "1"
        raise DirectoryError(f"{name}:{line}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if root is None:
        return Directory()
    if not isinstance(root, MappingNode):
        raise DirectoryError(f"{_where(name, root)}: expected a mapping with a 'directory' list")
    items: Node | None = None
    for k, v in root.value:
        if not isinstance(k, ScalarNode) or k.value != "directory":
            raise DirectoryError(f"{_where(name, k)}: unknown key {getattr(k, 'value', '?')!r} (only 'directory')")
        items = v
    if items is None or (isinstance(items, ScalarNode) and items.value in ("", "null", "~")):
        return Directory()
    if not isinstance(items, SequenceNode):
        raise DirectoryError(f"{_where(name, items)}: 'directory' must be a list of {{code, name, number}}")
    entries: list[DirectoryEntry] = []
    for item in items.value:
        if not isinstance(item, MappingNode):
            raise DirectoryError(f"{_where(name, item)}: an entry must be a mapping {{code, name, number}}")
        fields: dict[str, ScalarNode] = {}
        for k, v in item.value:
            key = getattr(k, "value", "?")
            if key not in ("code", "name", "number"):
                raise DirectoryError(f"{_where(name, k)}: unknown field {key!r} (code, name, number)")
            if not isinstance(v, ScalarNode) or not str(v.value).strip():
                raise DirectoryError(f"{_where(name, v)}: {key} must be a non-empty text")
            fields[key] = v
        for key in ("code", "name", "number"):
            if key not in fields:
                raise DirectoryError(f"{_where(name, item)}: the entry has no {key}")
        code = fields["code"].value.strip()
        if not CODE_RE.fullmatch(code):
            raise DirectoryError(f"{_where(name, fields['code'])}: code {code!r} must be lower-case letters, "
                                 "digits, '_' or '-' (at most 32)")
        if any(e.code == code for e in entries):
            raise DirectoryError(f"{_where(name, fields['code'])}: code {code!r} appears twice")
        decision = policy.check(fields["number"].value)
        if not decision.ok:
            raise DirectoryError(f"{_where(name, fields['number'])}: number {fields['number'].value!r} refused by "
                                 f"the number policy ({decision.reason}{': ' + decision.detail if decision.detail else ''})")
        entries.append(DirectoryEntry(code=code, name=fields["name"].value.strip(), number=decision.number,
                                      dial=policy.dial_string(decision)))
    return Directory(tuple(entries))


def load_directory(path: str | Path, policy: NumberPolicy) -> Directory:
    """The directory at ``path``; an empty one when the file does not exist."""
    p = Path(path)
    if not p.exists():
        return Directory()
    return parse_directory(p.read_text(encoding="utf-8"), policy, name=str(path))
