"""The CRM look-up of the IVR's ``lookup`` node: participants by social-insurance code or phone.

It is on the call path (a caller waits on it), so it keeps its latency under load:

* its own small connection pool (``database.lookup_pool_max``, opened lazily):
  HTTP pages, reports and the event writer use other connections and cannot
  starve it, and it never takes more than its share of the server;
* a bounded TTL cache of recent answers (participants change rarely):
  ``database.lookup_cache_ttl_s`` for a participant found, at most 10 s for
  "not found", at most ``database.lookup_cache_size`` entries (least recently
  used dropped first);
* two fixed SQL texts, prepared once per connection (asyncpg's statement
  cache), never rebuilt per call;
* one deadline (``database.lookup_timeout_s``) over waiting for a connection
  and the query: past it :class:`LookupUnavailable` is raised, which the IVR
  runner turns into the node's ``on_error`` path (``lookup_unavailable``: the
  caller is told and put through to an agent), recorded as ``ivr.lookup``
  with ``error: true``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import asyncpg

from switchboard.config import DatabaseSettings

__all__ = ["LookupUnavailable", "ParticipantLookup", "TtlCache"]

log = logging.getLogger("switchboard.store.participants")

_COLUMNS = ("SELECT insurance_code, full_name, province, contribution_status, months_contributed, "
            "last_contribution, health_card_valid_to FROM participants ")
SQL_BY_SI_CODE = _COLUMNS + "WHERE insurance_code = $1 LIMIT 1"
SQL_BY_PHONE = _COLUMNS + "WHERE phone = $1 LIMIT 1"
NOT_FOUND_TTL_S = 10.0


class LookupUnavailable(Exception):
    """The CRM did not answer within the deadline (or the database is away)."""


class TtlCache:
    """A bounded map whose entries expire ``ttl`` seconds after they were put. Pure."""

    def __init__(self, *, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self._items: OrderedDict[Any, tuple[float, Any]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Any) -> tuple[bool, Any]:
        """(found, value); an expired entry is dropped and not found."""
        item = self._items.get(key)
        if item is None or item[0] <= self.clock():
            if item is not None:
                del self._items[key]
            self.misses += 1
            return False, None
        self._items.move_to_end(key)
        self.hits += 1
        return True, item[1]

    def put(self, key: Any, value: Any, *, ttl: float) -> None:
        if self.max_entries <= 0 or ttl <= 0:
            return
        self._items[key] = (self.clock() + ttl, value)
        self._items.move_to_end(key)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)


class ParticipantLookup:
    """``await lookup(by, value)`` -> the participant's fields for the flow, or None.

    ``by`` is ``si_code`` or ``phone`` (``normalize`` is applied to phone numbers);
    ``province_id(name)`` maps the CRM's province name to the router's province id
    (None when unknown). A part: ``start`` opens the pool lazily, ``stop`` closes it.
    ``connect`` replaces ``asyncpg.create_pool`` (tests).
    """

    name = "participant-lookup"

    def __init__(self, settings: DatabaseSettings, *, province_id: Callable[[str], str | None],
                 normalize: Callable[[str], str | None] = lambda v: v,
                 clock: Callable[[], float] = time.monotonic, connect: Callable[..., Any] | None = None) -> None:
        self.settings = settings
        self.province_id = province_id
        self.normalize = normalize
        self.timeout_s = settings.lookup_timeout_s
        self.cache = TtlCache(max_entries=settings.lookup_cache_size, clock=clock)
        self._connect = connect or asyncpg.create_pool
        self.pool: Any = None
        self.failures = 0

    async def start(self) -> None:
        # min_size 0: nothing is opened (or waited for) until the first caller needs it
        self.pool = self._connect(self.settings.dsn, min_size=0, max_size=max(1, self.settings.lookup_pool_max),
                                  timeout=self.timeout_s, command_timeout=self.timeout_s,
                                  max_inactive_connection_lifetime=300.0,
                                  server_settings={"application_name": "switchboard-lookup"})
        if hasattr(self.pool, "__await__"):
            self.pool = await self.pool

    async def stop(self) -> None:
        if self.pool is not None:
            try:
                await asyncio.wait_for(self.pool.close(), timeout=5)
            except TimeoutError:
                self.pool.terminate()

    async def __call__(self, by: str, value: str) -> dict[str, str] | None:
        if by == "phone":
            value = self.normalize(value) or value
        key = (by, value)
        cached, found = self.cache.get(key)
        if cached:
            return dict(found) if found is not None else None
        try:
            async with asyncio.timeout(self.timeout_s):
                row = await self._fetch(SQL_BY_SI_CODE if by == "si_code" else SQL_BY_PHONE, value)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            self.failures += 1
            raise LookupUnavailable(f"lookup by {by}: {exc!r}") from exc
        result = self._fields(row) if row is not None else None
        ttl = self.settings.lookup_cache_ttl_s
        self.cache.put(key, result, ttl=ttl if result is not None else min(ttl, NOT_FOUND_TTL_S))
        return dict(result) if result is not None else None

    async def _fetch(self, sql: str, value: str) -> Any:
        if self.pool is None:
            raise LookupUnavailable("the look-up pool is not started")
        async with self.pool.acquire() as conn:
            return await conn.fetchrow(sql, value)

    def _fields(self, row: Any) -> dict[str, str]:
        last = row["last_contribution"]
        province = row["province"] or ""
        # The CRM stores a display name (possibly a pre-2025 one); the router needs the unit's id.
        unit = self.province_id(province) if province else None
        if province and unit is None:
            log.warning("lookup: participant with an unknown province %r", province)
        return {"id": row["insurance_code"], "name": row["full_name"], "province": unit or "",
                "status": row["contribution_status"], "months": str(row["months_contributed"]),
                "paid_month": f"{last.month:02d}" if last else "", "paid_year": str(last.year) if last else ""}
