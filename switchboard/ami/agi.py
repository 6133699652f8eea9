"""AsyncAGI over AMI: one session per channel in ``AGI(agi:async)``.

A call entering ``AGI(agi:async)`` raises ``AsyncAGIStart`` (its ``Env`` is the
URL-encoded AGI environment, ``agi_xxx: value`` lines). Commands are sent with
``Action: AGI``, ``Channel``, ``Command`` and a ``CommandID``; Asterisk answers
the action at once and reports the command's result later in ``AsyncAGIExec``
(same ``CommandID``, URL-encoded ``Result`` such as
``200%20result=49%20(timeout)%20endpos=1234%0A``). Commands on one channel run
one at a time, in order: ``execute`` waits for the previous command's result
before sending the next one. ``AsyncAGIEnd`` or ``Hangup`` of the channel
fails every waiting command with ``AgiHangup``.

A session taken over from another instance (active/standby, or a restart) may
see results of commands it did not send (the previous leader's command still
running in Asterisk when it stopped): they are kept in ``orphans`` (the
``CommandID`` and its result), so the new owner can use a ``GET DATA`` the
caller was answering. A command's ``tag`` is appended to its ``CommandID`` for
that purpose. Results for a channel without a session (a standby sees every
command of the leader's; after a leader died, its last commands finish before
the new one adopts the channel) are kept a while (``UNCLAIMED_MAX`` channels,
the last 4 of each) and handed to the session when the channel is adopted.

Keys the caller pressed while no command ran on the channel (``DTMFEnd`` of direction
``Received``, after the last command's ``AsyncAGIExec``) reach no command: Asterisk reads
and drops them. A session keeps them in ``typed`` (cleared by each command's result, since
keys pressed during a command are that command's), and so does the manager for a channel
it does not serve; a new owner takes them as what the caller typed while nobody served the
call (``AgiSession.typed_ahead``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import itertools
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar
from urllib.parse import unquote

from .client import PROCESS_MARK, AmiDisconnected, AmiError, AmiTimeout, current_node
from .protocol import Action, Event, Response

__all__ = ["AgiCommandError", "AgiError", "AgiHangup", "AgiManager", "AgiResult", "AgiSession",
           "agi_quote", "parse_agi_env", "parse_agi_result"]

log = logging.getLogger("switchboard.ami.agi")
T = TypeVar("T")

AGI_EVENTS = frozenset({"AsyncAGIStart", "AsyncAGIExec", "AsyncAGIEnd", "Hangup", "DTMFEnd"})
#: channels whose last command results are kept while no session serves them
UNCLAIMED_MAX = 2000
#: keys kept per channel while no command reads them (a code and its terminator, twice over)
TYPED_MAX = 32
#: a command with this tag keeps the keys typed before it (the barrier a new owner queues first)
KEEP_KEYS_TAG = "barrier"


class AgiError(AmiError):
    """Base of AsyncAGI errors."""


class AgiHangup(AgiError):
    """The channel left AGI (hang-up or ``AsyncAGIEnd``) before the command finished."""


class AgiCommandError(AgiError):
    """Asterisk refused the ``Action: AGI`` itself (e.g. channel not in AsyncAGI)."""


@dataclass(frozen=True, slots=True)
class AgiResult:
    """A parsed AGI reply: ``200 result=49 (timeout) endpos=1234``."""

    code: int
    result: str
    data: str
    endpos: int | None
    raw: str = ""

    @property
    def ok(self) -> bool:
        return self.code == 200 and self.result != "-1"

    @property
    def digit(self) -> str | None:
        """The DTMF digit of STREAM FILE / WAIT FOR DIGIT (``result`` is its ASCII code)."""
        if self.result.isdigit() and int(self.result) > 0:
            return chr(int(self.result))
        return None


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def agi_quote(value: object) -> str:
    """One AGI command argument, quoted for Asterisk's parser (res_agi ``parse_args``).

    The one way to put variable data (a caller id, a file name, a value) into an AGI
    command: the result is always exactly one argument. Inside double quotes spaces
    are literal; ``\\`` and ``"`` are escaped with a backslash. Control characters
    (CR, LF, tab, NUL...) are dropped: CR/LF cannot travel in an AMI header at all,
    and a tab would split the argument.
    """
    text = _CONTROL.sub("", str(value))
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_RESULT_RE = re.compile(r"^(\d{3})(?:[ -](.*))?$", re.S)
_ENDPOS_RE = re.compile(r"\s*endpos=(-?\d+)")


def parse_agi_result(encoded: str) -> AgiResult:
    """Parse an ``AsyncAGIExec`` ``Result`` (URL-encoded) into an AgiResult."""
    text = unquote(encoded).strip()
    m = _RESULT_RE.match(text)
    if m is None:
        return AgiResult(0, "", text, None, text)
    code = int(m.group(1))
    rest = (m.group(2) or "").strip()
    result = ""
    if rest.startswith("result="):
        head, _, rest = rest[7:].partition(" ")
        result = head
        rest = rest.strip()
    endpos: int | None = None
    e = _ENDPOS_RE.search(rest)
    if e is not None:
        endpos = int(e.group(1))
        rest = (rest[: e.start()] + rest[e.end():]).strip()
    if rest.startswith("(") and rest.endswith(")"):
        rest = rest[1:-1]
    return AgiResult(code, result, rest, endpos, text)


def parse_agi_env(encoded: str) -> dict[str, str]:
    """``Env`` of ``AsyncAGIStart`` (URL-encoded ``agi_xxx: value`` lines) -> dict."""
    env: dict[str, str] = {}
    for line in unquote(encoded).splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip():
            env[name.strip()] = value.strip()
    return env


def node_hint_of(node: str) -> dict[str, str]:
    return {"node": node} if node else {}   # one Asterisk: no hint (and fakes need none)


class _AmiSender(Protocol):
    async def send(self, action: Action, *, timeout: float | None = None, node: str | None = None) -> Response: ...

    def subscribe(self, callback: Callable[[Event], Awaitable[None] | None], *,
                  names: frozenset[str] | None = None) -> Callable[[], None]: ...


#: ``observe(verb, ack_s, result_s)``: one AGI command's timings (``result_s`` None when it got no result).
AgiObserver = Callable[[str, float, float | None], None]


def agi_verb(command: str) -> str:
    """The command's name without its arguments, for metrics: ``STREAM FILE``, ``EXEC Playback``."""
    words = command.split(None, 2)
    if not words:
        return ""
    if len(words) == 1:
        return words[0].upper()
    return f"{words[0].upper()} {words[1] if words[0].upper() == 'EXEC' else words[1].upper()}"


class AgiSession:
    """One channel in AsyncAGI: ``await execute("STREAM FILE x \\"#\\"")`` -> AgiResult."""

    _ids = itertools.count(1)

    def __init__(self, client: _AmiSender, start: Event, *, default_timeout: float = 60.0,
                 observe: AgiObserver | None = None) -> None:
        self._client = client
        self._observe = observe
        self.channel: str = start.get("Channel") or ""
        self.uniqueid: str = start.get("Uniqueid") or ""
        #: the Asterisk node the channel is on (``ami.nodes``; "" with one): commands go there.
        #: Its uniqueid says (``systemname``); else the node whose event started the session.
        node_for = getattr(client, "node_for", None)
        self.node: str = (node_for(self.uniqueid) if node_for is not None else None) or current_node()
        self.linkedid: str = start.get("Linkedid") or self.uniqueid
        self.env: dict[str, str] = parse_agi_env(start.get("Env") or "")
        self.closed = False
        self.close_reason = ""
        self._default_timeout = default_timeout
        self._lock = asyncio.Lock()  # the per-channel FIFO: one command in flight
        self._waiting: dict[str, asyncio.Future[AgiResult]] = {}
        #: results of commands this session did not send (CommandID, result), oldest first
        self.orphans: list[tuple[str, AgiResult]] = []
        #: keys pressed since the last command's result (while no command of ours read them)
        self.typed: list[str] = []

    def __repr__(self) -> str:
        return f"AgiSession(channel={self.channel!r}, uniqueid={self.uniqueid!r}, closed={self.closed})"

    async def execute(self, command: str, *, timeout: float | None = None, tag: str = "") -> AgiResult:
        """Run one AGI command after the ones queued before it; its result.

        ``timeout`` covers waiting for earlier commands and this one's result.
        Raises ``AgiHangup`` when the channel leaves AGI, ``AgiCommandError``
        when Asterisk refuses the action, ``AmiTimeout``/``AmiDisconnected``.
        """
        if timeout is None:
            timeout = self._default_timeout
        if self.closed:
            raise AgiHangup(f"{self.channel}: not in AGI any more ({self.close_reason})")
        try:
            async with asyncio.timeout(timeout):
                async with self._lock:
                    return await self._run(command, timeout, tag)
        except TimeoutError:
            raise AmiTimeout(f"{self.channel}: AGI {command.split(' ', 1)[0]} gave no result in {timeout}s") from None

    async def _run(self, command: str, timeout: float, tag: str = "") -> AgiResult:
        if self.closed:
            raise AgiHangup(f"{self.channel}: not in AGI any more ({self.close_reason})")
        # the process's mark keeps two owners of one channel (a take-over) from sharing an id
        command_id = f"agi{PROCESS_MARK}-{self.uniqueid}-{next(self._ids)}" + (f"-{tag}" if tag else "")
        fut: asyncio.Future[AgiResult] = asyncio.get_running_loop().create_future()
        self._waiting[command_id] = fut
        t0 = time.monotonic()
        ack_s: float | None = None
        result_s: float | None = None
        try:
            reply = await self._client.send(
                Action("AGI", {"Channel": self.channel, "Command": command, "CommandID": command_id}),
                timeout=timeout, **node_hint_of(self.node),
            )
            ack_s = time.monotonic() - t0
            if not reply.success:
                if self.closed:
                    raise AgiHangup(f"{self.channel}: not in AGI any more ({self.close_reason})")
                if (reply.message or "").endswith("does not exist."):
                    # the caller hung up while the command was on its way (its AsyncAGIEnd not read yet)
                    raise AgiHangup(f"{self.channel}: gone ({reply.message})")
                raise AgiCommandError(f"{self.channel}: AGI refused: {reply.message or reply.status}")
            result = await fut
            result_s = time.monotonic() - t0
            return result
        finally:
            self._waiting.pop(command_id, None)
            if self._observe is not None and ack_s is not None:
                self._observe(agi_verb(command), ack_s, result_s)

    async def break_(self, *, timeout: float | None = None) -> AgiResult:
        """``ASYNCAGI BREAK``: leave AGI and continue in the dialplan."""
        return await self.execute("ASYNCAGI BREAK", timeout=timeout)

    def typed_ahead(self) -> str:
        """The keys the caller pressed while no command read them (since the last result other
        than a barrier's); taken: the next call returns only keys pressed after this one."""
        keys = "".join(self.typed)
        self.typed.clear()
        return keys

    # ---- driven by AgiManager ----
    def _on_key(self, digit: str) -> None:
        self.typed.append(digit)
        del self.typed[:-TYPED_MAX]

    def _on_exec(self, ev: Event) -> None:
        command_id = ev.get("CommandID") or ev.get("CommandId") or ""
        if not command_id.endswith(f"-{KEEP_KEYS_TAG}"):
            self.typed.clear()   # pressed while that command ran: its own (or lost before it began)
        fut = self._waiting.get(command_id)
        if fut is None:
            self.orphans.append((command_id, parse_agi_result(ev.get("Result") or "")))
            del self.orphans[:-8]
        elif not fut.done():
            fut.set_result(parse_agi_result(ev.get("Result") or ""))

    def _fail_waiting(self, exc: Exception) -> None:
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()

    def _close(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(AgiHangup(f"{self.channel}: {reason}"))
                fut.exception()


StartCallback = Callable[[AgiSession], Awaitable[None] | None]


def _keep_last(kept: collections.OrderedDict[str, list[T]], uniqueid: str, item: T, n: int) -> None:
    """Append ``item`` to the channel's last ``n``, the channel made the most recent of at most
    ``UNCLAIMED_MAX`` (the oldest channel forgotten first)."""
    items = kept.pop(uniqueid, [])
    kept[uniqueid] = [*items[-(n - 1):], item]
    while len(kept) > UNCLAIMED_MAX:
        kept.popitem(last=False)


class AgiManager:
    """Routes AsyncAGI events to sessions; calls ``on_start(session)`` for each new one.

    ``on_start`` runs in its own task per session (it usually runs a whole IVR
    flow), so it never blocks event delivery. Sessions are closed (pending
    commands fail with ``AgiHangup``) on ``AsyncAGIEnd``, ``Hangup`` and when
    the AMI link drops.
    """

    def __init__(self, client: _AmiSender, *, on_start: StartCallback, default_timeout: float = 60.0,
                 observe: AgiObserver | None = None, accept: Callable[[], bool] | None = None) -> None:
        self._client = client
        #: () -> serve new AsyncAGI sessions now? (a standby does not; it adopts them when it leads)
        self.accept = accept
        self._observe = observe
        self._on_start = on_start
        self._default_timeout = default_timeout
        self.sessions: dict[str, AgiSession] = {}  # by Uniqueid
        self._unclaimed: collections.OrderedDict[str, list[Event]] = collections.OrderedDict()
        #: keys pressed after the last command's result on channels no session serves
        self._unclaimed_keys: collections.OrderedDict[str, list[str]] = collections.OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._unsubscribe = client.subscribe(self.handle_event, names=AGI_EVENTS)
        on_resync = getattr(client, "on_resync", None)
        if on_resync is not None:
            on_resync(self.handle_resync)

    def handle_resync(self, restarted: bool) -> None:
        """After a reconnect: results of commands in flight were lost with the link.

        On an Asterisk restart every channel is gone: all sessions close. After a
        network blip the channels may still be in AGI: sessions stay open (the
        IVR can go on) but the commands in flight fail with ``AmiDisconnected``.
        """
        node = current_node()
        if restarted:
            if not node:
                self.close_all("Asterisk restarted")
                return
            self.close_node(node, "Asterisk restarted")
            return
        for session in self.sessions.values():
            if node and session.node != node:
                continue
            session._fail_waiting(AmiDisconnected(f"{session.channel}: AMI link lost during the command"))

    def handle_event(self, ev: Event) -> None:
        name = ev.name
        uniqueid = ev.get("Uniqueid") or ""
        if name == "AsyncAGIStart":
            if self.accept is not None and not self.accept():
                return
            old = self.sessions.get(uniqueid)
            if old is not None:
                old._close("AGI restarted on the channel")
            session = AgiSession(self._client, ev, default_timeout=self._default_timeout, observe=self._observe)
            for earlier in self._unclaimed.pop(uniqueid, ()):
                session._on_exec(earlier)   # what the previous owner's last commands gave
            for key in self._unclaimed_keys.pop(uniqueid, ()):
                session._on_key(key)        # and what the caller typed after them
            self.sessions[uniqueid] = session
            log.info("AGI start %s", session.channel, extra={"call_id": session.linkedid})
            self._spawn(session)
            return
        current = self.sessions.get(uniqueid)
        if name == "DTMFEnd":
            digit = ev.get("Digit") or ""
            if not uniqueid or len(digit) != 1 or ev.get("Direction") != "Received":
                return
            if current is not None:
                current._on_key(digit)
                return
            _keep_last(self._unclaimed_keys, uniqueid, digit, TYPED_MAX)
            return
        if current is None:
            if name == "AsyncAGIExec" and uniqueid:
                _keep_last(self._unclaimed, uniqueid, ev, 4)
                self._unclaimed_keys.pop(uniqueid, None)
            elif name in ("AsyncAGIEnd", "Hangup"):
                self._unclaimed.pop(uniqueid, None)
                self._unclaimed_keys.pop(uniqueid, None)
            return
        if name == "AsyncAGIExec":
            current._on_exec(ev)
        elif name in ("AsyncAGIEnd", "Hangup"):
            current._close("hang-up" if name == "Hangup" else "left AGI")
            del self.sessions[uniqueid]

    def _spawn(self, session: AgiSession) -> None:
        async def run() -> None:
            try:
                result = self._on_start(session)
                if inspect.isawaitable(result):
                    await result
            except (AgiHangup, AmiDisconnected) as exc:
                log.info("AGI session %s ended: %s", session.channel, exc, extra={"call_id": session.linkedid})
            except Exception:
                log.exception("AGI on_start failed for %s", session.channel, extra={"call_id": session.linkedid})

        task = asyncio.create_task(run(), name=f"agi-{session.uniqueid}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close_node(self, node: str, reason: str) -> None:
        """Close the sessions of one Asterisk node (restarted or lost; ``ami.nodes``)."""
        for uniqueid, session in list(self.sessions.items()):
            if session.node == node:
                session._close(reason)
                del self.sessions[uniqueid]

    def close_all(self, reason: str = "AMI link lost") -> None:
        """Fail every session's pending commands (call on disconnect / shutdown)."""
        for session in list(self.sessions.values()):
            session._close(reason)
        self.sessions.clear()

    async def aclose(self, *, timeout: float = 5.0) -> None:
        self._unsubscribe()
        self.close_all("shutting down")
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await asyncio.gather(*self._tasks, return_exceptions=True)
