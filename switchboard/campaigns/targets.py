"""A campaign's contacts: from a CSV file or the rows of a named selection, each number
through the one number policy before it is stored (pure: rows in, contacts out).

CSV: a header line; ``number`` (or ``phone``) is required, ``name``, ``participant_id``
(or ``insurance_code``) and ``province`` are read when present, every other column goes
to the contact's ``data`` (variables handed to the flow, e.g. ``card_valid_to``).
A refused number (malformed, premium, international...) or a number already listed is
reported with its line and reason and never stored.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from switchboard.telephony.numbers import NumberPolicy

__all__ = ["Contact", "Refused", "contacts_from_csv", "contacts_from_rows"]

MAX_CONTACTS = 200_000
_KNOWN = {"number", "phone", "name", "participant_id", "insurance_code", "province"}


@dataclass(frozen=True, slots=True)
class Contact:
    number: str                     # normalised by the number policy
    name: str = ""
    participant_id: str = ""
    province: str = ""
    data: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Refused:
    line: int                       # CSV line (1 = header) or row index
    raw: str
    reason: str                     # the number policy's refusal, or duplicate / missing_number


def contacts_from_csv(text: str, policy: NumberPolicy) -> tuple[list[Contact], list[Refused]]:
    """Contacts of a CSV text; ``ValueError`` when there is no number column or too many rows."""
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip().lower() for f in (reader.fieldnames or [])]
    if "number" not in fields and "phone" not in fields:
        raise ValueError("CSV: the header needs a 'number' (or 'phone') column")
    rows: list[tuple[int, dict[str, str]]] = []
    for i, row in enumerate(reader):
        if i >= MAX_CONTACTS:
            raise ValueError(f"CSV: more than {MAX_CONTACTS} contacts")
        clean = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items() if k is not None}
        rows.append((reader.line_num, clean))
    return _contacts(rows, policy)


def contacts_from_rows(rows: Iterable[Mapping[str, Any]], policy: NumberPolicy) -> tuple[list[Contact], list[Refused]]:
    """Contacts of selected participants (``phone``, ``full_name``, ``insurance_code``, ``province``...)."""
    out = []
    for i, r in enumerate(rows, start=1):
        d = {k: ("" if v is None else str(v)) for k, v in r.items()}
        d.setdefault("name", d.pop("full_name", ""))
        out.append((i, d))
    return _contacts(out, policy)


def _contacts(rows: Iterable[tuple[int, dict[str, str]]], policy: NumberPolicy) -> tuple[list[Contact], list[Refused]]:
    contacts: list[Contact] = []
    refused: list[Refused] = []
    seen: set[str] = set()
    for line, row in rows:
        raw = row.get("number") or row.get("phone") or ""
        if not raw:
            refused.append(Refused(line, "", "missing_number"))
            continue
        decision = policy.check(raw)
        if not decision.ok:
            refused.append(Refused(line, raw[:40], decision.reason))
            continue
        if decision.number in seen:
            refused.append(Refused(line, raw[:40], "duplicate"))
            continue
        seen.add(decision.number)
        data = {k: v for k, v in row.items() if k not in _KNOWN and v}
        contacts.append(Contact(number=decision.number, name=row.get("name", ""),
                                participant_id=row.get("participant_id") or row.get("insurance_code") or "",
                                province=row.get("province", ""), data=data))
    return contacts, refused
