"""The campaigns' answers for the API and the CLI, over ``store.campaigns``.

Owns: creating a campaign from its YAML text (the API's body, or a file of ``campaigns/``)
with its contacts (an inline CSV, a CSV beside the file, or its named selection), the
state changes a supervisor asks for (pause, resume, stop), the report, the do-not-call
list. Typed errors (``api.services``: not found, conflict, unavailable) become the API's
JSON errors; an invalid definition or CSV is :class:`CampaignInvalid` with every problem.

No SQL here (``store/campaigns.py``); numbers only through the number policy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from switchboard.api.services import ConflictError, InvalidError, NotFoundError, UnavailableError
from switchboard.campaigns.loader import load_campaign_text
from switchboard.campaigns.model import Campaign, State
from switchboard.campaigns.targets import Contact, Refused, contacts_from_csv, contacts_from_rows
from switchboard.ivr.yaml_marks import FlowLoadError
from switchboard.store import campaigns as sc
from switchboard.store.errors import TRANSIENT_DB_ERRORS
from switchboard.store.pool import Db, acquire
from switchboard.telephony.numbers import NumberPolicy

__all__ = ["CampaignInvalid", "CampaignReport", "CampaignView", "Imported", "PgCampaignService"]

log = logging.getLogger("switchboard.campaigns")

#: Refused rows listed in an answer (the count is always complete).
MAX_REFUSED_SHOWN = 50


class CampaignInvalid(InvalidError):
    """The definition or the contacts cannot be used (HTTP 422, ``details.problems``)."""


@dataclass(frozen=True, slots=True)
class Imported:
    added: int
    skipped: int                     # numbers already in the campaign
    refused: int                     # refused by the number policy (or duplicates, no number)
    refused_rows: Sequence[dict[str, Any]] = ()


@dataclass(frozen=True, slots=True)
class CampaignView:
    campaign_id: str
    state: str
    mode: str
    flow: str
    topic: str
    description: str
    source: str
    contacts: int
    pending: int
    dialing: int
    done: int
    created_at: datetime
    updated_at: datetime
    state_by: str | None = None
    definition: dict[str, Any] = field(default_factory=dict)
    imported: Imported | None = None


@dataclass(frozen=True, slots=True)
class CampaignReport:
    campaign: CampaignView
    results: dict[str, int]          # attempts per result, in_flight, abandoned
    abandon_ratio: float | None      # abandoned / answered (all days)
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]


def _view(r: dict[str, Any], imported: Imported | None = None) -> CampaignView:
    d = r["definition"]
    return CampaignView(
        campaign_id=r["campaign_id"], state=r["state"], mode=d.get("mode", ""), flow=d.get("flow", ""),
        topic=d.get("topic", ""), description=d.get("description", ""), source=r["source"],
        contacts=int(r["contacts"]), pending=int(r["pending"]), dialing=int(r["dialing"]), done=int(r["done"]),
        created_at=r["created_at"], updated_at=r["updated_at"], state_by=r["state_by"], definition=d,
        imported=imported)


@asynccontextmanager
async def _database(what: str) -> AsyncIterator[None]:
    try:
        yield
    except TRANSIENT_DB_ERRORS as exc:
        log.warning("database unavailable while %s: %s: %s", what, type(exc).__name__, exc)
        raise UnavailableError("the database is not reachable", details={"doing": what}) from exc


def _refused_rows(refused: Sequence[Refused]) -> list[dict[str, Any]]:
    return [{"line": r.line, "number": r.raw, "reason": r.reason} for r in refused[:MAX_REFUSED_SHOWN]]


class PgCampaignService:
    """Campaigns for the API (``/api/campaigns``) and the ``switchboard campaign`` CLI."""

    def __init__(self, pool: Db, *, policy: NumberPolicy, flows: Callable[[], Collection[str]],
                 wall: Callable[[], datetime] = lambda: datetime.now(UTC), timeout: float = 30.0) -> None:
        #: the dialer (``campaigns.dialer.CampaignDialer``) for the agents' preview; None: 503
        self.dialer: Any = None
        self._pool = pool
        self.policy = policy
        self._flows = flows
        self._wall = wall
        self._timeout = timeout

    # ------------------------------------------------------------------ reads

    async def list_all(self) -> list[CampaignView]:
        async with _database("listing campaigns"), acquire(self._pool, timeout=self._timeout) as conn:
            return [_view(r) for r in await sc.campaign_rows(conn, timeout=self._timeout)]

    async def get(self, campaign_id: str) -> CampaignView:
        async with _database(f"reading campaign {campaign_id}"), acquire(self._pool, timeout=self._timeout) as conn:
            rows = await sc.campaign_rows(conn, campaign_id=campaign_id, timeout=self._timeout)
        if not rows:
            raise NotFoundError(f"no campaign {campaign_id}", details={"campaign_id": campaign_id})
        return _view(rows[0])

    async def report(self, campaign_id: str) -> CampaignReport:
        view = await self.get(campaign_id)
        async with _database(f"reporting campaign {campaign_id}"), \
                acquire(self._pool, timeout=self._timeout) as conn:
            results = await sc.result_counts(conn, campaign_id, timeout=self._timeout)
            rows = await sc.contact_report(conn, campaign_id, timeout=self._timeout)
        answered = sum(int(r[sc.CONTACT_REPORT_COLUMNS.index("answered")]) for r in rows)
        abandoned = results.get("abandoned", 0)
        return CampaignReport(campaign=view, results=results,
                              abandon_ratio=(abandoned / answered) if answered else None,
                              columns=sc.CONTACT_REPORT_COLUMNS, rows=rows)

    async def dnc_list(self) -> list[dict[str, Any]]:
        async with _database("reading the do-not-call list"), acquire(self._pool, timeout=self._timeout) as conn:
            return await sc.dnc_numbers(conn, timeout=self._timeout)

    # ------------------------------------------------------------------ changes

    def parse(self, source: str, *, file: str = "<api>") -> Campaign:
        try:
            return load_campaign_text(source, file, flows=set(self._flows()))
        except FlowLoadError as exc:
            raise CampaignInvalid("the campaign definition is invalid", error_id="invalid-campaign",
                                  details={"problems": [str(e) for e in exc.errors]}) from None

    async def create(self, source: str, *, contacts_csv: str | None, by: str) -> CampaignView:
        """A new campaign (paused) with its contacts: ``contacts_csv`` for a csv target (the
        file path of a definition is not read from the API), the selection otherwise."""
        campaign = self.parse(source)
        if campaign.targets.csv and contacts_csv is None:
            raise CampaignInvalid("a csv campaign created over the API needs contacts_csv (the CSV text)",
                                  error_id="invalid-campaign", details={"problems": ["contacts_csv missing"]})
        if not campaign.targets.csv and contacts_csv is not None:
            raise CampaignInvalid("contacts_csv is only for a csv campaign", error_id="invalid-campaign",
                                  details={"problems": ["contacts_csv given with a selection"]})
        async with _database("creating a campaign"), acquire(self._pool, timeout=self._timeout) as conn:
            if await sc.get_campaign(conn, campaign.campaign_id, timeout=self._timeout) is not None:
                raise ConflictError(f"campaign {campaign.campaign_id} exists", error_id="campaign-exists",
                                    details={"campaign_id": campaign.campaign_id})
            imported = await self._store(conn, campaign, source="api", csv_text=contacts_csv)
            rows = await sc.campaign_rows(conn, campaign_id=campaign.campaign_id, timeout=self._timeout)
        log.info("campaign %s created by %s: %d contacts added, %d refused", campaign.campaign_id, by,
                 imported.added, imported.refused)
        return _view(rows[0], imported)

    async def import_contacts(self, campaign_id: str, csv_text: str, *, by: str) -> Imported:
        async with _database("importing contacts"), acquire(self._pool, timeout=self._timeout) as conn:
            found = await sc.get_campaign(conn, campaign_id, timeout=self._timeout)
            if found is None:
                raise NotFoundError(f"no campaign {campaign_id}", details={"campaign_id": campaign_id})
            if found[1] == State.STOPPED.value:
                raise ConflictError(f"campaign {campaign_id} is stopped", error_id="campaign-state",
                                    details={"state": found[1]})
            contacts, refused = self._csv(csv_text)
            added = await sc.add_contacts(conn, campaign_id, contacts, now=self._wall(), timeout=self._timeout)
        log.info("campaign %s: %d contacts imported by %s (%d refused)", campaign_id, added, by, len(refused))
        return Imported(added, len(contacts) - added, len(refused), _refused_rows(refused))

    async def set_state(self, campaign_id: str, state: State, *, by: str) -> CampaignView:
        async with _database(f"changing campaign {campaign_id}"), acquire(self._pool, timeout=self._timeout) as conn:
            try:
                before = await sc.set_state(conn, campaign_id, state, by=by, timeout=self._timeout)
            except LookupError:
                raise NotFoundError(f"no campaign {campaign_id}", details={"campaign_id": campaign_id}) from None
            except sc.IllegalState as exc:
                raise ConflictError(str(exc), error_id="campaign-state",
                                    details={"state": exc.current, "wanted": exc.wanted}) from None
        log.info("campaign %s: %s -> %s by %s", campaign_id, before, state.value, by)
        return await self.get(campaign_id)

    async def add_dnc(self, raw: str, *, by: str) -> dict[str, Any]:
        d = self.policy.check(raw)
        if not d.number:
            raise CampaignInvalid("not a phone number", error_id="invalid-number", details={"reason": d.reason})
        async with _database("adding to the do-not-call list"), acquire(self._pool, timeout=self._timeout) as conn:
            added = await sc.add_dnc(conn, d.number, source="api", now=self._wall(), timeout=self._timeout)
        log.info("do-not-call: %s added by %s", d.number, by)
        return {"number": d.number, "added": added}

    # ------------------------------------------------------------------ preview (an agent on itself)

    @asynccontextmanager
    async def _preview(self, what: str) -> AsyncIterator[Any]:
        from switchboard.campaigns.dialer import PreviewRefused
        if self.dialer is None:
            raise UnavailableError("campaigns are not dialled by this service", error_id="service-unavailable")
        async with _database(what):
            try:
                yield self.dialer
            except PreviewRefused as exc:
                if exc.error_id == "not-found":
                    raise NotFoundError(str(exc), details=exc.details) from None
                raise ConflictError(str(exc), error_id=exc.error_id, details=exc.details) from None

    async def preview(self, agent_id: str) -> Any:
        """The contact the agent previews (held for it), None when none is due."""
        async with self._preview(f"previewing for {agent_id}") as dialer:
            return await dialer.preview(agent_id)

    async def preview_call(self, agent_id: str, contact_id: int) -> Any:
        """Ring the agent, then the contact it holds (the number from the campaign's list)."""
        async with self._preview(f"starting a preview call for {agent_id}") as dialer:
            view = await dialer.preview_call(agent_id, contact_id)
        log.info("campaign %s: preview call to contact %d started by %s", view.campaign_id, contact_id, agent_id)
        return view

    async def preview_skip(self, agent_id: str, contact_id: int, reason: str) -> dict[str, Any]:
        async with self._preview(f"skipping a contact for {agent_id}") as dialer:
            await dialer.preview_skip(agent_id, contact_id, reason)
        return {"contact_id": contact_id, "skipped": True, "reason": reason}

    # ------------------------------------------------------------------ internals

    def _csv(self, text: str) -> tuple[list[Contact], list[Refused]]:
        try:
            return contacts_from_csv(text, self.policy)
        except ValueError as exc:
            raise CampaignInvalid(str(exc), error_id="invalid-contacts", details={"problems": [str(exc)]}) from None

    async def _store(self, conn: asyncpg.Connection, campaign: Campaign, *, source: str,
                     csv_text: str | None) -> Imported:
        now = self._wall()
        if campaign.targets.csv:
            contacts, refused = self._csv(csv_text or "")
        else:
            rows = await sc.select_participants(conn, campaign.targets.selection, campaign.targets.params, now=now,
                                                timeout=self._timeout)
            contacts, refused = contacts_from_rows(rows, self.policy)
        async with conn.transaction():
            await sc.upsert_campaign(conn, campaign, source=source, timeout=self._timeout)
            added = await sc.add_contacts(conn, campaign.campaign_id, contacts, now=now, timeout=self._timeout)
        return Imported(added, len(contacts) - added, len(refused), _refused_rows(refused))

    async def sync(self, campaigns_dir: str | Path) -> list[str]:
        """Store the campaigns of ``campaigns_dir`` that the database does not hold yet (paused,
        with their contacts); a file whose id is already stored is left alone (the API and the
        stored state win). Returns the ids added. ``CampaignInvalid`` lists every problem."""
        files = await asyncio.to_thread(_yaml_files, Path(campaigns_dir))
        added: list[str] = []
        for path, text in files:
            campaign = self.parse(text, file=str(path))
            async with _database("storing campaigns"), acquire(self._pool, timeout=self._timeout) as conn:
                if await sc.get_campaign(conn, campaign.campaign_id, timeout=self._timeout) is not None:
                    continue
                csv_text = await asyncio.to_thread((path.parent / campaign.targets.csv).read_text, encoding="utf-8") \
                    if campaign.targets.csv else None
                imported = await self._store(conn, campaign, source=str(path), csv_text=csv_text)
            log.info("campaign %s stored from %s (paused): %d contacts, %d refused", campaign.campaign_id, path,
                     imported.added, imported.refused)
            added.append(campaign.campaign_id)
        return added



def _yaml_files(folder: Path) -> list[tuple[Path, str]]:
    if not folder.is_dir():
        return []
    return [(p, p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.yaml"))]
