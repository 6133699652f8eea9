"""Bearer tokens, web sessions, access rules and the failed-login limiter.

A token reads ``sb_<id>.<secret>``: ``id`` (12 hex digits) finds the row,
``secret`` (32 random bytes, base64url) is checked against the stored SHA-256
with a constant-time compare. The database never holds a token, only its hash;
the token is shown once when it is created. Web pages log in with a token and
get a session (a short-lived token of kind ``session``) in an HttpOnly,
SameSite=Strict cookie; requests authenticated by that cookie that change
something must also carry the ``X-Switchboard-CSRF: 1`` header, which a
cross-site form cannot send.

Nothing here logs a token or a secret.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from switchboard.api.services import StoredToken, TokenStore

ROLES = ("agent", "supervisor", "admin")
SESSION_COOKIE = "sb_session"
CSRF_HEADER = "X-Switchboard-CSRF"
_TOKEN_RE = re.compile(r"sb_([0-9a-f]{12})\.([A-Za-z0-9_-]{20,100})")
_DUMMY_HASH = hashlib.sha256(b"switchboard-dummy").digest()
#: How many parents a token's validity is checked through (a session has one: its login token).
MAX_PARENT_DEPTH = 4
_ENDPOINT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # a PJSIP section name


class Access(enum.StrEnum):
    """Who may call a route."""

    OPEN = "open"                   # no token (health, metrics, pages, openapi, login)
    ANY = "any"                     # any valid token
    SELF = "self"                   # the token's agent_id is the {agent_id} in the path
    SELF_OR_SUPERVISOR = "self-or-supervisor"
    SUPERVISOR = "supervisor"       # supervisor or admin
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: str
    role: str
    agent_id: str | None
    name: str
    kind: str  # api | session
    # The moment this principal stops being valid: its own expiry or its parent's, whichever is first.
    expires_at: datetime | None = None
    parent_id: str | None = None
    sip_endpoint: str | None = None  # a supervisor's own phone, where spy legs ring

    @property
    def is_supervisor(self) -> bool:
        return self.role in ("supervisor", "admin")


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii")).digest()


def new_token() -> tuple[str, str, str]:
    """A fresh token as ``(token, id, secret)``."""
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return f"sb_{token_id}.{secret}", token_id, secret


def parse_token(token: str) -> tuple[str, str] | None:
    m = _TOKEN_RE.fullmatch(token)
    return (m.group(1), m.group(2)) if m else None


async def create_token(
    store: TokenStore,
    *,
    role: str,
    agent_id: str | None = None,
    name: str = "",
    kind: str = "api",
    ttl: timedelta | None = None,
    now: datetime | None = None,
    parent_id: str | None = None,
    sip_endpoint: str | None = None,
) -> tuple[str, StoredToken]:
    """Create and store a token; returns the token (to show once) and its row.

    ``sip_endpoint``: a supervisor's (or admin's) own PJSIP endpoint, the only
    phone their listen / whisper / barge legs ring."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r} (expected one of {', '.join(ROLES)})")
    if role == "agent" and not agent_id:
        raise ValueError("an agent token needs an agent id")
    if sip_endpoint is not None:
        if role == "agent":
            raise ValueError("only supervisor and admin tokens carry a SIP endpoint")
        if not _ENDPOINT_RE.fullmatch(sip_endpoint):
            raise ValueError(f"not a PJSIP endpoint name: {sip_endpoint!r}")
    created = now or datetime.now(UTC)
    token, token_id, secret = new_token()
    row = StoredToken(
        id=token_id,
        secret_hash=hash_secret(secret),
        role=role,
        agent_id=agent_id,
        name=name,
        kind=kind,
        created_at=created,
        expires_at=created + ttl if ttl is not None else None,
        parent_id=parent_id,
        sip_endpoint=sip_endpoint,
    )
    await store.insert(row)
    return token, row


async def verify_token(store: TokenStore, token: str, *, now: datetime | None = None) -> Principal | None:
    """The principal of a valid token; None for anything else (malformed,
    unknown, wrong secret, revoked, expired)."""
    parsed = parse_token(token)
    if parsed is None:
        return None
    token_id, secret = parsed
    row = await store.fetch(token_id)
    given = hash_secret(secret)
    if row is None:
        hmac.compare_digest(given, _DUMMY_HASH)  # same work whether or not the id exists
        return None
    if not hmac.compare_digest(given, row.secret_hash):
        return None
    moment = now or datetime.now(UTC)
    alive, expires_at = await _chain(store, row, moment)
    if not alive:
        return None
    return Principal(token_id=row.id, role=row.role, agent_id=row.agent_id, name=row.name, kind=row.kind,
                     expires_at=expires_at, parent_id=row.parent_id,
                     sip_endpoint=row.sip_endpoint)


def _alive(row: StoredToken, moment: datetime) -> bool:
    return row.revoked_at is None and (row.expires_at is None or row.expires_at > moment)


async def _chain(store: TokenStore, row: StoredToken, moment: datetime) -> tuple[bool, datetime | None]:
    """(alive, earliest expiry) along ``row`` and its parents: dead when any of them is
    revoked, expired or missing, so a session never outlives the token it was opened with."""
    earliest: datetime | None = None
    current: StoredToken | None = row
    for _ in range(MAX_PARENT_DEPTH + 1):
        if current is None or not _alive(current, moment):
            return False, None
        if current.expires_at is not None and (earliest is None or current.expires_at < earliest):
            earliest = current.expires_at
        if current.parent_id is None:
            return True, earliest
        current = await store.fetch(current.parent_id)
    return False, None  # deeper than any token we mint: refuse


async def active_ids(store: TokenStore, token_ids: Iterable[str], *, now: datetime | None = None) -> set[str]:
    """Which of ``token_ids`` are still valid (not revoked or expired, nor any parent).
    Uses the store's one-query ``active`` when it has one."""
    ids = set(token_ids)
    batch = getattr(store, "active", None)
    if batch is not None:
        found: set[str] = await batch(ids)
        return found
    moment = now or datetime.now(UTC)
    alive: set[str] = set()
    for token_id in ids:
        row = await store.fetch(token_id)
        if row is not None and (await _chain(store, row, moment))[0]:
            alive.add(token_id)
    return alive


def may_access(principal: Principal, access: Access, agent_id: str | None) -> bool:
    """The access rule of a route, for an authenticated principal."""
    if access in (Access.OPEN, Access.ANY):
        return True
    if access is Access.ADMIN:
        return principal.role == "admin"
    if access is Access.SUPERVISOR:
        return principal.is_supervisor
    own = agent_id is not None and principal.agent_id == agent_id
    if access is Access.SELF:
        return own
    if access is Access.SELF_OR_SUPERVISOR:
        return own or principal.is_supervisor
    raise AssertionError(access)  # pragma: no cover


class FailureLimiter:
    """Counts failures per key (an IP, an identity) in a sliding window.

    A key with ``max_failures`` failures in the last ``window_s`` seconds is
    blocked until the oldest of them leaves the window. Memory is bounded:
    at most ``max_keys`` keys, the least recently failed dropped first.
    """

    def __init__(self, *, max_failures: int = 5, window_s: float = 300.0, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_keys = max_keys
        self._clock = clock
        self._failures: OrderedDict[str, list[float]] = OrderedDict()

    def _recent(self, key: str) -> list[float]:
        now = self._clock()
        stamps = [t for t in self._failures.get(key, ()) if now - t < self.window_s]
        if stamps:
            self._failures[key] = stamps
        else:
            self._failures.pop(key, None)
        return stamps

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may try again; 0 when it is not blocked."""
        stamps = self._recent(key)
        if len(stamps) < self.max_failures:
            return 0.0
        return max(0.0, stamps[-self.max_failures] + self.window_s - self._clock())

    def failed(self, key: str) -> None:
        stamps = self._recent(key)
        stamps.append(self._clock())
        self._failures[key] = stamps
        self._failures.move_to_end(key)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)
