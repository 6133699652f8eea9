"""The live side of Q&A sessions: which session runs, callers in and out of its conference,
the raised hands, the moderator's actions, attendance into PostgreSQL.

Owns:

* the sessions (stored in ``qa_sessions``; ``sessions/*.yaml`` stored at start when new, or
  created by the API) and, every ``tick_s``, starting and ending them by their times on the
  service's clock: at the start the moderator's phone rings into the conference
  (``call_moderator``); at the end (or ``end`` from the API) everyone is kicked out of the
  conference and callers go on to the post-call survey (the dialplan);
* the flow's two questions: ``live_session`` (the hotline's lookup: is a session running for
  this caller's language, with the title prompt) and ``join`` (the flow's ``conference`` node:
  a seat, else "full"; with a seat the caller leaves AGI for ``[session-join]``);
* ConfBridge's own events over AMI (``ConfbridgeJoin/Leave/Mute/Unmute``) and the ``*1``
  hand raise (the conference menu runs ``[session-hand]``, which sets ``SB_HAND``: a ``VarSet``
  event), kept in a pure :class:`~switchboard.sessions.room.Room` per session;
* the moderator's actions: ``ConfbridgeUnmute`` / ``ConfbridgeMute`` / ``ConfbridgeKick``
  (AMI class ``call``), ``ConfbridgeList`` (``reporting``) to read ConfBridge's own list;
* the registered participants called in at the start: the session's invitation campaign
  (``invites``, :mod:`switchboard.sessions.invites`), begun at the start, stopped at the end;
* the raised hands across a restart: ``SB_HAND`` stays on the caller's channel (when raised)
  until the caller is given the floor (the service clears it); a restarted service reads it
  back (``Getvar``) and rebuilds the queue in the order raised.

No SQL here (``store/sessions.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from switchboard.ami.agi import AgiHangup, agi_quote
from switchboard.ami.client import AmiError, current_node, node_hint
from switchboard.api.services import ConflictError, InvalidError, NotFoundError, UnavailableError
from switchboard.ivr.yaml_marks import FlowLoadError
from switchboard.periodic import run_every
from switchboard.sessions.model import (
    Session,
    conference_name,
    load_session_text,
    load_sessions,
    with_registered,
)
from switchboard.sessions.room import Arrival, Participant, Room
from switchboard.store import sessions as ss
from switchboard.store.errors import TRANSIENT_DB_ERRORS
from switchboard.store.pool import Db, acquire

__all__ = ["SessionInvalid", "SessionService"]

log = logging.getLogger("switchboard.sessions")

#: The ConfBridge profiles of deploy/asterisk/confbridge.conf.
BRIDGE_PROFILE = "sb_session"
CALLER_PROFILE = "sb_caller"
MODERATOR_PROFILE = "sb_moderator"
CALLER_MENU = "sb_caller_menu"
#: Asterisk or the database away while the conference is read back at start: logged, not fatal.
_READ_BACK_ERRORS: tuple[type[BaseException], ...] = (AmiError, TimeoutError, *TRANSIENT_DB_ERRORS)
#: The database away while an invitation campaign is begun or stopped: tried again.
_INVITE_ERRORS: tuple[type[BaseException], ...] = (UnavailableError, *TRANSIENT_DB_ERRORS)


class SessionInvalid(InvalidError):
    """The definition cannot be used (HTTP 422, ``details.problems``)."""


@dataclass
class _Live:
    session: Session
    room: Room
    ended_at: datetime | None = None
    ended_by: str | None = None
    started: bool = False          # the service saw it start (moderator called)
    relearned: bool = False        # who is in its conference read back from ConfBridge (at start)
    ending: bool = False           # participants are being kicked (session over)
    finished: bool = False         # over: ended early or past its end
    recording: str | None = None
    invited: bool = False          # the invitation campaign is begun (or there is none)
    invite_tried: float = 0.0      # when it was last tried (monotonic), the database away
    invites_stopped: bool = False  # the invitation campaign is stopped (the session is over)
    node: str = ""                 # the Asterisk node its conference is on ("" none yet; ConfBridge is per node)
    stop_tried: float = 0.0


#: Seconds between two tries to begin a session's invitation campaign (the database away).
INVITE_RETRY_S = 10.0


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _read_folder(folder: str) -> list[Session]:
    """The sessions of ``sessions/*.yaml`` (none when the folder is absent)."""
    return load_sessions(folder) if Path(folder).is_dir() else []


def _newest_recording(folder: Path, sid: str) -> str | None:
    files = sorted((p for p in folder.glob(f"{sid}-*.wav") if p.stem[len(sid) + 1:].isdigit()),
                   key=lambda p: p.stat().st_mtime)
    return files[-1].name if files else None


def _make_folder(path: Path) -> None:
    """Where ConfBridge writes the sessions' recordings (the recordings folder, shared with Asterisk)."""
    with contextlib.suppress(OSError):
        path.mkdir(parents=True, exist_ok=True)


class SessionService:
    """Sessions for the flow, the API, the metrics; a part (``start``/``stop``)."""

    name = "qa-sessions"

    def __init__(self, *, pool: Db, ami: Any, settings: Any, clock: Callable[[], datetime] = _utc_now,
                 recordings_dir: str = "/var/spool/switchboard/recordings", host_recordings_dir: str = "",
                 endpoint_of: Callable[[str], str | None] = lambda agent_id: agent_id, timeout: float = 10.0) -> None:
        self._pool = pool
        self.ami = ami
        self.settings = settings
        self._clock = clock
        self.recordings_dir = recordings_dir.rstrip("/")
        self.host_recordings_dir = host_recordings_dir
        self._endpoint_of = endpoint_of
        self._timeout = timeout
        self.sessions: dict[str, _Live] = {}
        self._by_conf: dict[str, str] = {}           # conference name -> session id
        self._writes: asyncio.Queue[Callable[[], Coroutine[Any, Any, None]]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._side: set[asyncio.Task[None]] = set()   # short AMI actions (a hand cleared)
        self._unsubscribe: list[Callable[[], None]] = []
        self.hands_raised_total: dict[str, int] = {}
        self._kicked: set[str] = set()                # uniqueids removed by a moderator
        #: the invitation campaigns (``SessionInvites``); None: registered participants are not called
        self.invites: Any = None

    # ------------------------------------------------------------ part

    async def start(self) -> None:
        self._unsubscribe.append(self.ami.subscribe(
            self.on_event, names=("ConfbridgeJoin", "ConfbridgeLeave", "ConfbridgeMute", "ConfbridgeUnmute",
                                  "VarSet", "Hangup")))
        try:
            await self.sync(self.settings.sessions_dir)
        except Exception as exc:   # a bad file or the database away must not stop the hotline
            log.error("sessions not loaded at start: %s", getattr(exc, "details", exc))
        if self.host_recordings_dir:
            _make_folder(Path(self.host_recordings_dir, "sessions"))
        self._tasks.append(asyncio.create_task(self._writer(), name="qa-sessions-writer"))
        self._tasks.append(asyncio.create_task(
            run_every(self.settings.tick_s, self.tick, name="sessions tick", wait_first=False), name="qa-sessions-tick"))

    async def stop(self) -> None:
        for u in self._unsubscribe:
            u()
        self._unsubscribe.clear()
        for t in self._tasks[1:]:
            t.cancel()
        # let the writer finish what it holds (bounded by the part's stop timeout)
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._writes.join(), 5)
            self._tasks[0].cancel()
        for t in self._side:
            t.cancel()
        await asyncio.gather(*self._tasks, *self._side, return_exceptions=True)
        self._tasks.clear()

    async def _writer(self) -> None:
        while True:
            job = await self._writes.get()
            try:
                for attempt in range(3):
                    try:
                        await job()
                        break
                    except TRANSIENT_DB_ERRORS as exc:
                        log.warning("attendance not written yet (%s); again", exc)
                        await asyncio.sleep(0.5 * (attempt + 1))
            except Exception:
                log.exception("attendance write failed")
            finally:
                self._writes.task_done()

    def _write(self, job: Callable[[Any], Coroutine[Any, Any, None]]) -> None:
        async def run() -> None:
            async with acquire(self._pool, timeout=self._timeout) as conn:
                await job(conn)
        self._writes.put_nowait(run)

    async def drained(self) -> None:
        """Every attendance change so far is in the database (tests, the end of a session)."""
        await self._writes.join()

    # ------------------------------------------------------------ definitions

    def _adopt(self, row: ss.SessionRow) -> _Live:
        s = row.session
        live = self.sessions.get(s.session_id)
        if live is None:
            live = self.sessions[s.session_id] = _Live(s, Room(s.session_id, s.capacity))
        else:
            live.session = s
            live.room.capacity = s.capacity
        live.ended_at, live.ended_by, live.recording = row.ended_at, row.ended_by, row.recording
        live.finished = live.finished or row.ended_at is not None
        self._by_conf[conference_name(s.session_id)] = s.session_id
        return live

    async def sync(self, folder: str) -> list[str]:
        """Store the sessions of ``folder`` the database does not hold yet; load every session."""
        added: list[str] = []
        defined = _read_folder(folder)
        async with acquire(self._pool, timeout=self._timeout) as conn:
            for s in defined:
                if await ss.insert_session(conn, s, source=f"{folder}/{s.session_id}.yaml"):
                    added.append(s.session_id)
            for row in await ss.session_rows(conn):
                self._adopt(row)
        if added:
            log.info("sessions stored from %s: %s", folder, ", ".join(added))
        return added

    async def create(self, source: str, *, by: str) -> dict[str, Any]:
        try:
            s = load_session_text(source, "<api>")
        except FlowLoadError as exc:
            raise SessionInvalid("the session definition has errors", error_id="invalid-session",
                                 details={"problems": [str(e) for e in exc.errors]}) from None
        if not self._endpoint_of(s.moderator):
            raise SessionInvalid("the moderator is not a known agent", error_id="invalid-session",
                                 details={"problems": [f"<api>: moderator {s.moderator!r} is not a known agent"]})
        try:
            async with acquire(self._pool, timeout=self._timeout) as conn:
                if not await ss.insert_session(conn, s, source="api"):
                    raise ConflictError(f"session {s.session_id} exists", error_id="session-exists",
                                        details={"session": s.session_id})
                row = await ss.get_session(conn, s.session_id)
        except TRANSIENT_DB_ERRORS as exc:
            raise UnavailableError("the database is not reachable") from exc
        assert row is not None
        log.info("session %s created by %s", s.session_id, by)
        return self.view(self._adopt(row).session.session_id)

    async def register(self, session_id: str, *, participants: list[str], numbers: list[str],
                       by: str) -> dict[str, Any]:
        """More registered participants (insurance codes) or numbers for a session not over yet:
        stored with its definition; a running session calls them at once (its invitation
        campaign takes the new ones only: nobody already called is called again)."""
        live = self._get(session_id)
        if live.finished or self._clock() >= live.session.ends:
            raise ConflictError(f"session {session_id} is over", error_id="session-state",
                                details={"session": session_id})
        invite, problems = with_registered(live.session.invite, participants, numbers)
        if problems:
            raise SessionInvalid("the registered participants have errors", error_id="invalid-session",
                                 details={"problems": problems})
        changed = replace(live.session, invite=invite)
        try:
            async with acquire(self._pool, timeout=self._timeout) as conn:
                stored = await ss.update_session(conn, changed)
        except TRANSIENT_DB_ERRORS as exc:
            raise UnavailableError("the database is not reachable") from exc
        if not stored:
            raise ConflictError(f"session {session_id} is over", error_id="session-state",
                                details={"session": session_id})
        live.session = changed
        live.invited, live.invite_tried = False, 0.0     # the next tick begins (or adds to) its campaign
        log.info("session %s: %d registered participant(s) now (by %s)", session_id,
                 len(invite.participants) + len(invite.numbers), by)
        return {"session": session_id, "invite": invite.to_json()}

    # ------------------------------------------------------------ reads

    def _get(self, session_id: str) -> _Live:
        live = self.sessions.get(session_id)
        if live is None:
            raise NotFoundError(f"no session {session_id}", details={"session": session_id})
        return live

    def running(self, live: _Live, now: datetime | None = None) -> bool:
        return live.session.running(now or self._clock(), live.ended_at) and not live.finished

    def live_now(self, language: str = "") -> _Live | None:
        """The running session (the earliest started) offered to a caller of ``language``."""
        now = self._clock()
        runs = [v for v in self.sessions.values() if self.running(v, now)
                and (not language or language in v.session.languages)]
        return min(runs, key=lambda v: v.session.starts) if runs else None

    def moderates(self, agent_id: str, session_id: str) -> bool:
        live = self.sessions.get(session_id)
        return live is not None and live.session.moderator == agent_id

    def view(self, session_id: str) -> dict[str, Any]:
        live = self._get(session_id)
        return {**live.session.to_json(), "running": self.running(live), "ended_at":
                live.ended_at.isoformat() if live.ended_at else None, "ended_by": live.ended_by,
                "recording": live.recording, "conference": conference_name(session_id), **live.room.view()}

    def list_all(self, *, moderator: str | None = None) -> list[dict[str, Any]]:
        return [self.view(sid) for sid, v in sorted(self.sessions.items(), key=lambda kv: kv[1].session.starts)
                if moderator is None or v.session.moderator == moderator]

    async def attendance(self, session_id: str) -> list[dict[str, Any]]:
        self._get(session_id)
        await self.drained()
        async with acquire(self._pool, timeout=self._timeout) as conn:
            return await ss.attendance(conn, session_id)

    def figures(self) -> dict[str, tuple[int, int]]:
        """Per running or populated session: (participants now, hands raised now)."""
        return {sid: (len(v.room.callers()), len(v.room.hands)) for sid, v in self.sessions.items()
                if v.room.participants or self.running(v)}

    # ------------------------------------------------------------ the flow's questions

    def offer(self, language: str) -> Mapping[str, str] | None:
        """The hotline's ``lookup by: live_session`` (value: the caller's language): the running
        session offered on key 5, or None."""
        live = self.live_now(language if language in ("vi", "en") else "")
        if live is None:
            return None
        s = live.session
        return {"session_id": s.session_id, "title": s.title, "prompt": s.title_prompt, "topic": s.topic}

    async def join(self, session: Any, session_id: str) -> str:
        """The flow's ``conference`` node: ``joined`` (the caller left AGI for the conference),
        ``full``, ``over``, or ``elsewhere``: the conference is on another Asterisk node than the
        caller's (several nodes: ConfBridge is per node, a join there would open a second, empty
        conference; the flow says so and goes on)."""
        live = self.sessions.get(session_id) or self.live_now()
        if live is None or not self.running(live):
            return "over"
        here = str(getattr(session, "node", "") or "")
        if live.node and here and here != live.node:
            log.warning("call %s on node %s: session %s's conference is on node %s: not joined", session.linkedid,
                        here, live.session.session_id, live.node)
            return "elsewhere"
        now = self._clock()
        live.room.expire(now - timedelta(seconds=self.settings.seat_hold_s))
        arrival = None
        if self.invites is not None:
            try:
                leg = await self.invites.arrival(session)
            except _READ_BACK_ERRORS as exc:
                log.warning("call %s: invitation not looked up (%s): counted as from the menu", session.linkedid, exc)
                leg = None
            if leg is not None:
                arrival = Arrival("invited", leg.number, leg.participant_id)
        if not live.room.reserve(session.linkedid, now, arrival):
            log.info("call %s: session %s is full (%d)", session.linkedid, live.session.session_id,
                     live.room.capacity)
            return "full"
        sid = live.session.session_id
        live.node = live.node or here      # the first one in decides where the conference is
        rec = f"{self.recordings_dir}/sessions/{sid}"
        try:
            for name, value in (("SB_SESSION", sid), ("SB_CONF", conference_name(sid)), ("SB_SESSION_REC", rec),
                                ("SB_NEXT", "session")):
                await session.execute(f"SET VARIABLE {name} {agi_quote(value)}", timeout=10)
            await session.execute("ASYNCAGI BREAK", timeout=10)
        except AgiHangup:
            live.room.release(session.linkedid)
            raise
        log.info("call %s: into session %s (%d/%d seats)", session.linkedid, sid, live.room.seats_taken(),
                 live.room.capacity)
        return "joined"

    # ------------------------------------------------------------ schedule

    async def tick(self) -> None:
        now = self._clock()
        for sid, live in list(self.sessions.items()):
            if not live.finished and not live.relearned and now >= live.session.starts:
                live.relearned = True
                await self._relearn(live)
            if self.running(live, now) and not live.started:
                live.started = True
                log.info("session %s (%s) starts; moderator %s", sid, live.session.title, live.session.moderator)
                moderated = any(p.role == "moderator" for p in live.room.participants.values())
                if live.session.call_moderator and not moderated:
                    await self.call_moderator(sid)
            elif not live.finished and now >= live.session.ends:
                await self._finish(live, by="schedule")
            if self.running(live, now) and not live.invited:
                await self._begin_invites(live)
            elif live.finished and live.session.invite and not live.invites_stopped:
                await self._end_invites(live)

    async def _begin_invites(self, live: _Live) -> None:
        """The registered participants called in (the session's invitation campaign), once it runs."""
        s = live.session
        if not s.invite:
            live.invited = True
            return
        if self.invites is None:
            live.invited = True
            log.warning("session %s has registered participants but campaigns are disabled: nobody is called",
                        s.session_id)
            return
        loop_now = asyncio.get_running_loop().time()
        if live.invite_tried and loop_now - live.invite_tried < INVITE_RETRY_S:
            return
        live.invite_tried = loop_now
        try:
            await self.invites.begin(s, in_room=[p.caller for p in live.room.callers() if p.via == "menu"])
        except _INVITE_ERRORS as exc:
            log.warning("session %s: invitations not begun yet (%s); again in %.0f s", s.session_id, exc,
                        INVITE_RETRY_S)
            return
        except Exception as exc:
            log.error("session %s: invitations refused: %s", s.session_id, getattr(exc, "details", exc))
        live.invited = True

    async def _end_invites(self, live: _Live) -> None:
        """The session is over: its invitation campaign stops (tried again each
        ``INVITE_RETRY_S`` while the database is away; meanwhile a call answered finds the
        session over and hears goodbye)."""
        if self.invites is None or not live.session.invite:
            live.invites_stopped = True
            return
        loop_now = asyncio.get_running_loop().time()
        if live.stop_tried and loop_now - live.stop_tried < INVITE_RETRY_S:
            return
        live.stop_tried = loop_now
        try:
            await self.invites.end(live.session.session_id)
        except _INVITE_ERRORS as exc:
            log.warning("session %s: invitation campaign not stopped yet: %s", live.session.session_id, exc)
            return
        live.invites_stopped = True

    async def invitations(self, session_id: str) -> dict[str, Any] | None:
        """The invitation campaign's state and counts (None: nobody registered, or not begun)."""
        live = self._get(session_id)
        if not live.session.invite or self.invites is None:
            return None
        try:
            return await self.invites.status(session_id)  # type: ignore[no-any-return]
        except TRANSIENT_DB_ERRORS as exc:
            raise UnavailableError("the database is not reachable") from exc

    async def call_moderator(self, session_id: str) -> str:
        """Ring the moderator's phone into the conference (moderator profile)."""
        live = self._get(session_id)
        endpoint = self._endpoint_of(live.session.moderator)
        if not endpoint:
            raise ConflictError(f"moderator {live.session.moderator} has no phone", error_id="session-no-moderator")
        leg = f"qa-{session_id}-{int(self._clock().timestamp())}"[:60]
        action = {"Action": "Originate", "Channel": f"PJSIP/{endpoint}", "ChannelId": leg,
                  "Context": self.settings.moderator_context, "Exten": "join", "Priority": "1",
                  "Timeout": str(int(self.settings.moderator_ring_s * 1000)),
                  "CallerID": f'"Q&A {session_id}" <session>',
                  "Variable": [f"SB_SESSION={session_id}", f"SB_CONF={conference_name(session_id)}",
                               f"SB_SESSION_REC={self.recordings_dir}/sessions/{session_id}"],
                  "Async": "true"}
        try:
            await self.ami.send(action, timeout=self._timeout, **({"node": live.node} if live.node else {}))
        except (AmiError, TimeoutError) as exc:
            log.warning("session %s: moderator's phone not rung: %s", session_id, exc)
            raise UnavailableError("Asterisk did not take the call to the moderator") from exc
        log.info("session %s: ringing the moderator %s (%s)", session_id, live.session.moderator, endpoint)
        return leg

    async def end(self, session_id: str, *, by: str) -> dict[str, Any]:
        live = self._get(session_id)
        if live.finished:
            raise ConflictError(f"session {session_id} has ended", error_id="session-state",
                                details={"session": session_id})
        await self._finish(live, by=by)
        return self.view(session_id)

    async def _finish(self, live: _Live, *, by: str) -> None:
        sid = live.session.session_id
        if live.finished:
            return
        live.finished = True
        live.ending = bool(live.room.participants)
        now = self._clock()
        live.ended_at = live.ended_at or now
        live.ended_by = live.ended_by or by
        self._write(lambda conn: ss.end_session(conn, sid, at=now, by=by))
        log.info("session %s ends (%s): %d participant(s) leave", sid, by, len(live.room.participants))
        await self._end_invites(live)
        if live.room.participants:
            try:
                await self.ami.send({"Action": "ConfbridgeKick", "Conference": conference_name(sid),
                                     "Channel": "all"}, timeout=self._timeout)
            except (AmiError, TimeoutError) as exc:
                log.warning("session %s: kick all failed: %s", sid, exc)

    async def _relearn(self, live: _Live) -> None:
        """Who is in the conference already (this process started while the session ran): read
        back from ConfBridge's own list; their attendance rows are the open ones a previous
        process wrote (closed now for those who left meanwhile), with the hands counted so far;
        the raised hands from each caller's ``SB_HAND`` (set when raised, cleared when given the
        floor), in the order raised."""
        sid = live.session.session_id
        try:
            resp = await self.ami.send({"Action": "ConfbridgeList", "Conference": conference_name(sid)},
                                       timeout=self._timeout)
            async with acquire(self._pool, timeout=self._timeout) as conn:
                stays = await ss.open_stays(conn, sid)
        except _READ_BACK_ERRORS as exc:
            log.warning("session %s: who is in its conference not read back: %s", sid, exc)
            return
        now = self._clock()
        listed = [ev for ev in getattr(resp, "events", ()) if ev.name == "ConfbridgeList"]
        for ev in listed:
            admin = (ev.get("Admin") or "").lower() == "yes"
            call_id = ev.get("Linkedid") or ev.get("Uniqueid") or ""
            live.node = live.node or node_hint(self.ami, ev.get("Uniqueid") or "").get("node", "")
            stay = stays.pop(call_id, None)
            arrival = None
            if not admin and stay is not None and stay.via:
                arrival = Arrival(stay.via, "", stay.participant_id)
            elif not admin and self.invites is not None:
                with contextlib.suppress(*_READ_BACK_ERRORS):
                    leg = await self.invites.leg(call_id)
                    if leg is not None:
                        arrival = Arrival("invited", leg.number, leg.participant_id)
            if arrival is not None:
                live.room.arriving[call_id] = arrival
            p = live.room.joined(uniqueid=ev.get("Uniqueid") or "", channel=ev.get("Channel") or "", call_id=call_id,
                                 caller=live.session.moderator if admin else ev.get("CallerIDNum") or "",
                                 moderator=admin, muted=(ev.get("Muted") or "yes").lower() == "yes" and not admin,
                                 at=stay.joined_at if stay is not None else now)
            if stay is None:
                self._write_join(sid, p)
            else:
                p.hands, p.hand_raised_at = stay.hands, stay.hand_raised_at
                p.unmuted_at, p.unmuted_s = stay.unmuted_at, stay.unmuted_s
                if not p.muted and p.role == "caller":
                    p.floor_since = now
        for call_id, stay in stays.items():   # left while no service listened: closed now
            gone = Participant("", "", call_id, "", "caller", stay.joined_at, hands=stay.hands,
                               hand_raised_at=stay.hand_raised_at, unmuted_at=stay.unmuted_at, unmuted_s=stay.unmuted_s)
            self._write_leave(sid, gone, now, "service_away")
        raised = await self._hands_raised(live)
        if raised:
            live.room.restore_hands(raised)
        if listed or stays:
            log.info("session %s: %d in the conference read back (%d hands up), %d stays closed (left while away)",
                     sid, len(listed), len(live.room.hands), len(stays))

    async def _hands_raised(self, live: _Live) -> list[tuple[float, str]]:
        """``(when raised, uniqueid)`` of the muted callers whose channel has ``SB_HAND`` set."""
        out: list[tuple[float, str]] = []
        for p in live.room.callers():
            if not p.muted:
                continue
            try:
                resp = await self.ami.send({"Action": "Getvar", "Channel": p.channel, "Variable": "SB_HAND"},
                                           timeout=self._timeout, **node_hint(self.ami, p.uniqueid))
            except (AmiError, TimeoutError) as exc:
                log.warning("session %s: %s's hand not read back: %s", live.session.session_id, p.channel, exc)
                continue
            value = (resp.headers.get("Value") or "").strip() if resp.success else ""
            try:
                out.append((float(value), p.uniqueid))
            except ValueError:
                continue   # no hand up (empty), or not ours
        return out

    # ------------------------------------------------------------ moderator's actions

    def _participant(self, live: _Live, who: str) -> Participant:
        p = live.room.find(who)
        if p is None:
            raise NotFoundError(f"nobody {who} in session {live.session.session_id}", error_id="not-in-session",
                                details={"participant": who})
        return p

    async def _confbridge(self, action: str, live: _Live, channel: str) -> None:
        if not self.running(live):
            raise ConflictError(f"session {live.session.session_id} is not running", error_id="session-state")
        try:
            resp = await self.ami.send({"Action": action, "Conference": conference_name(live.session.session_id),
                                        "Channel": channel}, timeout=self._timeout)
        except (AmiError, TimeoutError) as exc:
            raise UnavailableError(f"{action} not done: {exc}") from exc
        if not resp.success:
            raise ConflictError(f"{action}: {resp.message}", error_id="confbridge-refused", details={"channel": channel})

    async def unmute(self, session_id: str, who: str) -> dict[str, Any]:
        """Give one caller the floor (``ConfbridgeUnmute``)."""
        live = self._get(session_id)
        p = self._participant(live, who)
        await self._confbridge("ConfbridgeUnmute", live, p.channel)
        live.room.unmuted(p.uniqueid, self._clock())
        log.info("session %s: %s (%s) has the floor", session_id, p.call_id, p.channel)
        return self.view(session_id)

    async def mute(self, session_id: str, who: str) -> dict[str, Any]:
        live = self._get(session_id)
        p = self._participant(live, who)
        await self._confbridge("ConfbridgeMute", live, p.channel)
        live.room.muted(p.uniqueid, self._clock())
        return self.view(session_id)

    async def mute_all(self, session_id: str) -> dict[str, Any]:
        live = self._get(session_id)
        for p in [p for p in live.room.callers() if not p.muted]:
            await self._confbridge("ConfbridgeMute", live, p.channel)
            live.room.muted(p.uniqueid, self._clock())
        return self.view(session_id)

    async def kick(self, session_id: str, who: str) -> dict[str, Any]:
        live = self._get(session_id)
        p = self._participant(live, who)
        await self._confbridge("ConfbridgeKick", live, p.channel)
        self._kicked.add(p.uniqueid)   # the leave event closes the stay; remembered why
        log.info("session %s: %s removed", session_id, p.call_id)
        return self.view(session_id)

    async def confbridge_list(self, session_id: str) -> list[dict[str, str]]:
        """ConfBridge's own list of the conference (``ConfbridgeList``): channel, muted, admin."""
        self._get(session_id)
        try:
            resp = await self.ami.send({"Action": "ConfbridgeList", "Conference": conference_name(session_id)},
                                       timeout=self._timeout)
        except (AmiError, TimeoutError) as exc:
            raise UnavailableError(f"ConfbridgeList not done: {exc}") from exc
        return [{"channel": ev.get("Channel") or "", "muted": ev.get("Muted") or "", "admin": ev.get("Admin") or "",
                 "caller": ev.get("CallerIDNum") or "", "uniqueid": ev.get("Uniqueid") or ""}
                for ev in getattr(resp, "events", ()) if ev.name == "ConfbridgeList"]

    # ------------------------------------------------------------ Asterisk's events

    def on_event(self, ev: Any) -> None:
        name = ev.name
        if name == "VarSet":
            if (ev.get("Variable") or "") == "SB_HAND":
                self._hand(ev)
            return
        if name == "Hangup":
            call_id = ev.get("Linkedid") or ""
            for live in self.sessions.values():
                if call_id in live.room.reserved and (ev.get("Uniqueid") or "") == call_id:
                    live.room.release(call_id)
            return
        sid = self._by_conf.get(ev.get("Conference") or "")
        if sid is None:
            return
        live = self.sessions[sid]
        now = self._clock()
        uniqueid = ev.get("Uniqueid") or ""
        if name == "ConfbridgeJoin":
            live.node = live.node or current_node()
            admin = (ev.get("Admin") or "").lower() == "yes"
            p = live.room.joined(uniqueid=uniqueid, channel=ev.get("Channel") or "",
                                 call_id=ev.get("Linkedid") or uniqueid,
                                 caller=live.session.moderator if admin else ev.get("CallerIDNum") or "",
                                 moderator=admin, muted=(ev.get("Muted") or "yes").lower() == "yes" and not admin,
                                 at=now)
            log.info("session %s: %s %s joined (%d callers)", sid, p.role, p.call_id, len(live.room.callers()))
            self._write_join(sid, p)
        elif name == "ConfbridgeLeave":
            left = live.room.left(uniqueid, now)
            if left is None:
                return
            reason = "session_ended" if live.finished else ("kicked" if uniqueid in self._kicked else "hangup")
            self._kicked.discard(uniqueid)
            log.info("session %s: %s left (%s)", sid, left.call_id, reason)
            self._write_leave(sid, left, now, reason)
            if not live.room.participants and not live.room.reserved:
                live.node = ""               # the conference is gone: the next one in opens it anywhere
            if live.ending and not live.room.participants:
                live.ending = False
                self._tasks.append(asyncio.create_task(self._note_recording(sid), name=f"qa-recording-{sid}"))
        elif name == "ConfbridgeUnmute":
            given = live.room.unmuted(uniqueid, now)
            if given is not None and given.role == "caller":
                self._lower_hand(given)
                self._write_figures(sid, given)
        elif name == "ConfbridgeMute":
            taken = live.room.muted(uniqueid, now)
            if taken is not None and taken.role == "caller":
                self._write_figures(sid, taken)

    async def _note_recording(self, sid: str) -> None:
        """The conference's recording (ConfBridge names it ``<record_file>-<unix time>.wav``): the
        newest of the session's files, as a path under the recordings folder, once it is closed."""
        if not self.host_recordings_dir:
            return
        await asyncio.sleep(1.0)   # ConfBridge closes the file when the conference goes away
        found = await asyncio.to_thread(_newest_recording, Path(self.host_recordings_dir, "sessions"), sid)
        if found is None:
            log.warning("session %s: no recording found in %s/sessions", sid, self.host_recordings_dir)
            return
        live = self.sessions[sid]
        live.recording = f"sessions/{found}"
        log.info("session %s: recorded in %s", sid, live.recording)
        self._write(lambda conn: ss.set_recording(conn, sid, f"sessions/{found}"))

    def _write_join(self, sid: str, p: Participant) -> None:
        async def job(conn: Any) -> None:
            await ss.join(conn, session_id=sid, call_id=p.call_id, caller=p.caller, role=p.role, channel=p.channel,
                          joined_at=p.joined_at, via=p.via, participant_id=p.participant_id)
        self._write(job)

    def _write_leave(self, sid: str, p: Participant, at: datetime, reason: str) -> None:
        async def job(conn: Any) -> None:
            await ss.leave(conn, session_id=sid, call_id=p.call_id, joined_at=p.joined_at, left_at=at, reason=reason,
                           hand_raised_at=p.hand_raised_at, hands=p.hands, unmuted_at=p.unmuted_at,
                           unmuted_s=p.unmuted_s)
        self._write(job)

    def _write_figures(self, sid: str, p: Participant) -> None:
        """The stay's hands and floor so far (a restarted service takes them over)."""
        hands, first, floor, floor_s = p.hands, p.hand_raised_at, p.unmuted_at, p.unmuted_s

        async def job(conn: Any) -> None:
            await ss.figures(conn, session_id=sid, call_id=p.call_id, joined_at=p.joined_at, hands=hands,
                             hand_raised_at=first, unmuted_at=floor, unmuted_s=floor_s)
        self._write(job)

    def _lower_hand(self, p: Participant) -> None:
        """Given the floor: ``SB_HAND`` cleared on the channel (a restart must not raise it again)."""
        async def clear() -> None:
            try:
                await self.ami.send({"Action": "Setvar", "Channel": p.channel, "Variable": "SB_HAND", "Value": ""},
                                    timeout=self._timeout, **node_hint(self.ami, p.uniqueid))
            except (AmiError, TimeoutError) as exc:
                log.warning("%s: raised hand not cleared on the channel: %s", p.channel, exc)
        task = asyncio.create_task(clear(), name=f"qa-hand-{p.uniqueid}")
        self._side.add(task)
        task.add_done_callback(self._side.discard)

    def _hand(self, ev: Any) -> None:
        if not (ev.get("Value") or "").strip():
            return   # cleared by the service (the caller was given the floor)
        uniqueid = ev.get("Uniqueid") or ""
        for sid, live in self.sessions.items():
            if uniqueid in live.room.participants:
                if live.room.raise_hand(uniqueid, self._clock()):
                    self.hands_raised_total[sid] = self.hands_raised_total.get(sid, 0) + 1
                    self._write_figures(sid, live.room.participants[uniqueid])
                    log.info("session %s: %s raised a hand (%d in the queue)", sid,
                             live.room.participants[uniqueid].call_id, len(live.room.hands))
                return
