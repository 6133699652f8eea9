"""Pure guards for hostile input: JSON nesting, client address behind proxies,
rate-limit keys, date ranges and paging bounds.

No aiohttp, no asyncio: each function takes plain values and either returns
the cleaned value or raises :class:`~switchboard.api.errors.ValidationFailed`
(a 400 with a stable ``error_id``), so a hostile request never reaches code
that would answer it with a 500.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from switchboard.api.errors import ValidationFailed

#: JSON bodies and websocket messages may nest objects/arrays this deep, no deeper.
MAX_JSON_DEPTH = 32
#: Dates accepted in query parameters (a report or a figure outside these is a typo or a probe).
MIN_DATE = date(2000, 1, 1)
MAX_DATE = date(2199, 12, 31)
#: The longest report range, in days (inclusive of both ends).
MAX_RANGE_DAYS = 366
#: The largest ``offset`` of a paged search (PostgreSQL's OFFSET is a bigint; nobody pages this far).
MAX_OFFSET = 1_000_000

_TOKEN_ID_RE = re.compile(r"sb_([0-9a-f]{12})\.")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def json_depth(raw: str | bytes) -> int:
    """The deepest nesting of objects/arrays in ``raw`` (strings skipped), without parsing it."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return text.count("[") + text.count("{")  # an upper bound, small enough: no scan needed
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def parse_json(raw: str | bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` that refuses documents nested deeper than ``max_depth``
    (which would exhaust the interpreter's recursion) with a 400 ``invalid-json``."""
    if json_depth(raw) > max_depth:
        raise ValidationFailed(f"the JSON document nests deeper than {max_depth} levels", error_id="invalid-json")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise ValidationFailed("the request body is not valid JSON", error_id="invalid-json") from None


def parse_networks(items: Iterable[str]) -> tuple[Network, ...]:
    """``http.trusted_proxies`` entries (addresses or CIDR blocks) as networks; ValueError if one is not."""
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(addr: ipaddress.IPv4Address | ipaddress.IPv6Address | None, trusted: Sequence[Network]) -> bool:
    return addr is not None and any(addr in net for net in trusted if net.version == addr.version)


def client_address(remote: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy.

    Behind trusted proxies, ``X-Forwarded-For`` is read from the right (the
    entry the nearest proxy appended) and the first address that is not itself
    a trusted proxy is the client. Entries a client wrote itself (left of
    that) are never believed, and the header is ignored altogether when the
    peer is not trusted.
    """
    peer = remote or "unknown"
    if not _trusted(_address(peer), trusted):
        return peer
    hops = [h.strip() for line in forwarded_for for h in line.split(",") if h.strip()]
    for hop in reversed(hops):
        addr = _address(hop)
        if addr is None:
            return peer  # a garbled chain: fall back to the proxy itself
        if not _trusted(addr, trusted):
            return str(addr)
    return str(_address(hops[0])) if hops else peer


def claimed_principal(token: str, agent_id: str | None = None) -> str:
    """Who a login or a bearer token claims to be, for rate limiting: the token's
    id when it has one, else the agent id given, else ``-``. Never the secret."""
    m = _TOKEN_ID_RE.match(token)
    if m:
        return f"token:{m.group(1)}"
    if agent_id:
        return f"agent:{agent_id}"
    return "-"


def limiter_key(principal: str, ip: str) -> str:
    """Failures are counted per (claimed principal, client address): one principal's
    failures never block another, nor the same principal from elsewhere."""
    return f"{principal}|{ip}"


def _problem(name: str, text: str) -> ValidationFailed:
    return ValidationFailed("the query parameters are invalid",
                            details={"problems": [{"field": name, "problem": text}]})


def check_date(value: str, name: str) -> date:
    """A query date within [MIN_DATE, MAX_DATE]."""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise _problem(name, "must be a date YYYY-MM-DD") from None
    if not MIN_DATE <= day <= MAX_DATE:
        raise _problem(name, f"must be between {MIN_DATE} and {MAX_DATE}")
    return day


def check_range(first: date, last: date, *, max_days: int = MAX_RANGE_DAYS) -> tuple[date, date]:
    """``first..last`` in order and at most ``max_days`` days long (both ends included)."""
    if last < first:
        raise _problem("to", "must not be before from")
    if (last - first).days + 1 > max_days:
        raise _problem("to", f"the range may cover at most {max_days} days")
    return first, last
