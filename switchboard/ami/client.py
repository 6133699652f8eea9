"""The asyncio AMI client: one TCP (optionally TLS) connection to Asterisk, kept alive.

Why one long file: it owns one connection's whole life (connect, login, reader, pending
actions, ping watchdog, reconnect with backoff, resync); the parts share its state and are
only correct together.

What it guarantees
------------------
* ``send(action, *, timeout=)`` writes one action with a fresh ``ActionID``
  (``sb<process mark>.<connection>-<n>``: the mark, :data:`PROCESS_MARK`, tells
  two instances' actions apart in Asterisk's own AMI log) and resolves with its ``Response``. A list action (Asterisk answers
  ``EventList: start``) resolves with a ``ListResponse``: the response plus
  every event carrying the same ActionID up to the ``EventList: Complete``
  event. Every wait has a timeout (``AmiTimeout``).
* An action is written at most once. When the link drops, every pending
  action fails with ``AmiDisconnected``; nothing is re-sent by the client (an
  ``Originate`` must never be duplicated). ``send`` while disconnected fails
  at once with ``AmiDisconnected``.
* Events reach subscribers **in wire order** through one consumer task and a
  bounded queue (``AmiSettings.event_queue_size``).
* **Slow-consumer policy**: the reader never blocks on the queue and never
  drops an event silently. When the queue is full, the client logs an error,
  counts the event in ``events_dropped``, and closes the connection (reason
  ``slow consumer``). It then reconnects and calls the resync callbacks, so
  every subscriber rebuilds its state from Asterisk instead of running on a
  stream with a hole in it.
* A ping watchdog sends ``Ping`` every ``ping_interval``; no answer within
  ``ping_timeout`` declares the link dead (half-open TCP, paused Asterisk), the
  connection is aborted and re-opened.
* Reconnection uses exponential backoff with jitter between ``reconnect_min``
  and ``reconnect_max``.
* After every successful login the client reads Asterisk's start time
  (``CoreStatus`` ``CoreStartupDate``/``CoreStartupTime``; the ``Uptime`` of
  ``FullyBooted`` as fallback) and calls each resync callback with
  ``restarted=True`` when it differs from the previous connection's (Asterisk
  restarted: every channel is gone) or ``restarted=False`` (first connection
  or a network blip: channels may have changed while we were away). The call
  is queued behind the events already received, on the consumer task.
* The secret is registered with the log redactor and never logged.
* **Leadership gate** (active/standby, ``switchboard.ha``): when ``gate`` is set and
  says False for an action (a standby, a leader that lost the lead; an instance taking
  the lead lets only its heartbeat through), every action but the
  read-only ones in ``READ_ONLY_ACTIONS`` fails at once with ``AmiNotLeader``
  (nothing written). This is the one place that keeps a standby silent.
* **Action lane** (``lane=True``; setting ``ami.action_lane``): a second session to the
  same Asterisk, logged in with ``Events: off``, that carries the ``LANE_ACTIONS``
  (``Originate``) while it is up; otherwise they go on the events session. Asterisk's
  manager serves a session's actions and writes its events on one thread, so on the
  events session an agent's ``Originate`` waits behind the events being written to us.
  The gate above is checked once, before either session is chosen. The lane never
  resyncs: the events session does.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import inspect
import itertools
import logging
import random
import secrets
import ssl as ssl_module
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from switchboard.config import AmiSettings
from switchboard.logging_setup import register_secret

from .protocol import (
    DEFAULT_MAX_FRAME_SIZE,
    Action,
    AmiParser,
    Banner,
    Event,
    ListComplete,
    ProtocolError,
    RemoteProtocolError,
    Response,
    serialize_action,
)

__all__ = [
    "AmiAuthError",
    "AmiClient",
    "AmiDisconnected",
    "AmiError",
    "AmiNotLeader",
    "AmiTimeout",
    "EventCallback",
    "ListResponse",
    "ResyncCallback",
    "current_node",
    "node_hint",
]

log = logging.getLogger("switchboard.ami")

#: This process's mark, in every ActionID and AGI CommandID it sends: two owners of one channel
#: (a take-over) never share an id, and Asterisk's AMI log tells their actions apart.
PROCESS_MARK = secrets.token_hex(3)

EventCallback = Callable[[Event], Awaitable[None] | None]
ResyncCallback = Callable[[bool], Awaitable[None] | None]

#: The Asterisk node whose consumer task runs the current event or resync callback
#: ("" for a client without a name: one Asterisk). Tasks started from a callback inherit it.
CURRENT_NODE: contextvars.ContextVar[str] = contextvars.ContextVar("switchboard_ami_node", default="")


def current_node() -> str:
    """The node (``AmiClient.name``) that delivered the event or resync being handled."""
    return CURRENT_NODE.get()


def node_hint(ami: object, ident: str | None) -> dict[str, str]:
    """``node=`` for ``send`` when ``ami`` spans several Asterisk nodes (``AmiNodes``) and
    ``ident`` (a call id, uniqueid or channel) names one; ``{}`` otherwise (one Asterisk)."""
    node_for = getattr(ami, "node_for", None)
    node = node_for(ident) if ident and node_for is not None else None
    return {"node": node} if node else {}


class AmiError(Exception):
    """Base of the client's errors."""


class AmiDisconnected(AmiError):
    """The action could not complete: no connection, or the connection dropped."""


class AmiTimeout(AmiError, TimeoutError):
    """No answer within the timeout. The action may still have been executed."""


class AmiAuthError(AmiError):
    """Asterisk refused the login."""


class AmiNotLeader(AmiDisconnected):
    """Refused before sending: this instance does not lead (a standby, or fenced)."""


#: What a standby may still ask Asterisk: the link's own upkeep and reading state, nothing
#: that changes a channel, a variable or a call.
#: Actions the action lane carries while it is up (``AmiClient(lane=True)``): where a
#: millisecond counts (an agent's leg rings) and no ordering with the events session matters
#: (the Originate creates its channel; its ``OriginateResponse`` comes on the events session).
LANE_ACTIONS = frozenset({"Originate"})

READ_ONLY_ACTIONS = frozenset({
    "Login", "Challenge", "Logoff", "Ping", "CoreStatus", "CoreSettings", "CoreShowChannels",
    "Getvar", "Status", "DeviceStateList", "BridgeList", "BridgeInfo", "PJSIPShowEndpoints",
    "PJSIPShowContacts", "ListCommands", "ExtensionStateList",
})


@dataclass(frozen=True, slots=True)
class ListResponse(Response):
    """The answer to a list action: its response, the list events, and the closing event."""

    events: tuple[Event, ...] = ()
    complete: ListComplete | None = None


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[Response]
    response: Response | None = None
    events: list[Event] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Resync:
    restarted: bool


class AmiClient:
    """One managed AMI connection. Build it, ``subscribe``, then ``await start()``."""

    def __init__(
        self,
        settings: AmiSettings,
        *,
        event_classes: str = "on",
        ssl_context: ssl_module.SSLContext | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        read_size: int = 65536,
        name: str = "",
        lane: bool = False,
    ) -> None:
        #: the Asterisk node this link reaches (``ami.nodes``; "" with one Asterisk)
        self.name = name
        #: the action lane (``lane=True``): a second session to the same Asterisk with events off
        #: that carries the ``LANE_ACTIONS`` while it is up (see ``send_nowait``)
        self.lane: AmiClient | None = None
        self._what = "AMI"
        if lane:
            self.lane = AmiClient(settings, event_classes="off", ssl_context=ssl_context,
                                  max_frame_size=max_frame_size, name=name)
            self.lane._what = "AMI action lane"
        self._settings = settings
        self._event_classes = event_classes
        self._ssl = ssl_context if ssl_context is not None else (
            ssl_module.create_default_context() if settings.tls else None
        )
        self._max_frame_size = max_frame_size
        self._read_size = read_size
        self._subscribers: list[tuple[frozenset[str] | None, EventCallback]] = []
        self._wanted: frozenset[str] | None = frozenset()
        self._resync_callbacks: list[ResyncCallback] = []
        self._pending: dict[str, _Pending] = {}
        self._ids = itertools.count(1)
        self._conn_no = 0
        self._writer: asyncio.StreamWriter | None = None
        self._queue: asyncio.Queue[tuple[float, Event | _Resync]] = asyncio.Queue(settings.event_queue_size)
        self._run_task: asyncio.Task[None] | None = None
        self._consumer_task: asyncio.Task[None] | None = None
        self._connected_event = asyncio.Event()
        self._banner = asyncio.Event()
        self._closing = False
        self._drop_reason: str | None = None
        self._startup_stamp: str | None = None
        self._boot_epoch: float | None = None
        # Counters and state for metrics (read-only for others).
        self.connected = False
        self.connects = 0
        self.reconnects = 0
        self.events_received = 0
        self.events_dropped = 0
        self.events_skipped = 0
        self.subscriber_errors = 0
        self.ping_failures = 0
        self.protocol_errors = 0
        self.restarts_detected = 0
        self.event_lag = 0.0  # seconds the last delivered event waited in the queue
        self.max_event_lag = 0.0
        self.last_disconnect_reason = ""
        self.asterisk_version = ""
        #: () -> may this instance act (active/standby); None: always (one instance)
        self.gate: Callable[[Action], bool] | None = None
        #: awaited by ``send`` before an action that is not read-only: False refuses it (a leader
        #: without its lock reads the heartbeat's epoch first, switchboard.ha); None: no check
        self.confirm: Callable[[Action], Awaitable[bool]] | None = None
        self.actions_sent = 0
        self.actions_refused = 0
        self.last_action_at = 0.0   # time.time() of the last action written that is not read-only

    # ---- wiring -------------------------------------------------------------------------------

    def subscribe(self, callback: EventCallback, *, names: Iterable[str] | None = None) -> Callable[[], None]:
        """Deliver events (all, or only those named) to ``callback``, in order.

        The callback may be a plain function or a coroutine function; it runs on
        the client's single consumer task, so a slow callback delays the next
        event (see the slow-consumer policy). Returns a function that unsubscribes.
        """
        entry = (frozenset(names) if names is not None else None, callback)
        self._subscribers.append(entry)
        self._recompute_wanted()

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(entry)
            self._recompute_wanted()

        return unsubscribe

    def on_resync(self, callback: ResyncCallback) -> None:
        """Call ``callback(restarted)`` after every login (see the module docstring)."""
        self._resync_callbacks.append(callback)

    def _recompute_wanted(self) -> None:
        wanted: set[str] = set()
        for names, _cb in self._subscribers:
            if names is None:
                self._wanted = None
                return
            wanted |= names
        wanted |= {"FullyBooted", "Shutdown"}
        self._wanted = frozenset(wanted)

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    # ---- lifecycle ----------------------------------------------------------------------------

    async def start(self, *, wait: bool = True, timeout: float | None = None) -> None:
        """Start connecting (and keep reconnecting). With ``wait``, return once logged in."""
        if self._run_task is None:
            self._closing = False
            self._consumer_task = asyncio.create_task(self._consume(), name="ami-consumer")
            self._run_task = asyncio.create_task(self._run(), name="ami-connection")
        if self.lane is not None:
            await self.lane.start(wait=False)     # the events session never waits for its lane
        if wait:
            await self.wait_connected(timeout=timeout if timeout is not None else self._settings.connect_timeout * 3)

    async def wait_connected(self, *, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                await self._connected_event.wait()
        except TimeoutError:
            raise AmiTimeout(f"not connected to AMI within {timeout}s ({self.last_disconnect_reason})") from None

    async def close(self, *, timeout: float = 2.0) -> None:
        """Log off if possible, stop reconnecting, fail pending actions, stop the consumer."""
        self._closing = True
        if self.lane is not None:
            await self.lane.close(timeout=timeout)
        if self.connected:
            with contextlib.suppress(AmiError, OSError):
                await self.send(Action("Logoff"), timeout=min(timeout, 1.0))
        self._abort("client closed")
        for task in (self._run_task, self._consumer_task):
            if task is not None:
                task.cancel()
        for task in (self._run_task, self._consumer_task):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    async with asyncio.timeout(timeout):
                        await task
        self._run_task = self._consumer_task = None
        self._fail_pending("client closed")
        if not self._queue.empty():
            log.info("AMI client closed with %d undelivered events", self._queue.qsize())

    # ---- actions ------------------------------------------------------------------------------

    def node_for(self, ident: str) -> str | None:
        """The node a call id, uniqueid or channel belongs to: one link, so no choice (None)."""
        return None

    async def send(self, action: Action | Mapping[str, str | Sequence[str]], *, timeout: float | None = None,
                   node: str | None = None) -> Response:
        """Send one action; resolve with its Response (a ``ListResponse`` for list actions).

        Raises ``HeaderInjectionError`` (nothing sent) for CR/LF in names or values,
        ``AmiDisconnected`` when not connected or when the link drops before the
        answer, ``AmiTimeout`` after ``timeout`` (default ``action_timeout``).
        """
        if self.confirm is not None:
            if not isinstance(action, Action):
                action = Action.from_dict(action)
            if action.name not in READ_ONLY_ACTIONS and not await self.confirm(action):
                self.actions_refused += 1
                raise AmiNotLeader(f"not the leader; {action.name} not sent")
        return await self.send_nowait(action, timeout=timeout)

    def send_nowait(self, action: Action | Mapping[str, str | Sequence[str]], *,
                    timeout: float | None = None, node: str | None = None) -> Awaitable[Response]:
        """Write one action to the link NOW (before returning); await the result for its Response.

        For the latency-critical path (an agent's leg): ``asyncio.create_task(client.send(...))``
        writes only when the task first runs, after every callback already waiting on a busy
        event loop. Errors as :meth:`send`; ``HeaderInjectionError`` and ``AmiDisconnected``
        (not connected) are raised here, at once.
        """
        if not isinstance(action, Action):
            action = Action.from_dict(action)
        if timeout is None:
            timeout = self._settings.action_timeout
        read_only = action.name in READ_ONLY_ACTIONS
        if not read_only and self.gate is not None and not self.gate(action):
            self.actions_refused += 1
            raise AmiNotLeader(f"not the leader; {action.name} not sent")
        lane = self.lane
        if lane is not None and lane.connected and action.name in LANE_ACTIONS:
            # the lane's own gate is None: this instance's leadership was checked just above
            answer = lane.send_nowait(action, timeout=timeout)
            self.actions_sent += 1
            self.last_action_at = time.time()
            return answer
        writer = self._writer
        if writer is None or (not self.connected and action.name not in ("Challenge", "Login")):
            raise AmiDisconnected(f"not connected to AMI; {action.name} not sent")
        action_id = f"sb{PROCESS_MARK}.{self._conn_no}-{next(self._ids)}"
        data = serialize_action(action, action_id)
        pending = _Pending(asyncio.get_running_loop().create_future())
        self._pending[action_id] = pending
        try:
            writer.write(data)
        except (ConnectionError, OSError) as exc:
            self._pending.pop(action_id, None)
            raise AmiDisconnected(f"{action.name}: connection lost while sending ({exc})") from None
        self.actions_sent += 1
        if not read_only:
            self.last_action_at = time.time()
        return self._answer(action.name, action_id, pending, writer, timeout)

    async def _answer(self, name: str, action_id: str, pending: _Pending, writer: asyncio.StreamWriter,
                      timeout: float) -> Response:
        try:
            async with asyncio.timeout(timeout):
                await writer.drain()
                return await pending.future
        except TimeoutError:
            raise AmiTimeout(f"no answer to {name} within {timeout}s") from None
        except (ConnectionError, OSError) as exc:
            raise AmiDisconnected(f"{name}: connection lost while sending ({exc})") from None
        finally:
            self._pending.pop(action_id, None)

    def _fail_pending(self, reason: str) -> None:
        pending, self._pending = self._pending, {}
        for p in pending.values():
            if not p.future.done():
                p.future.set_exception(AmiDisconnected(f"AMI connection lost before the answer: {reason}"))
                p.future.exception()  # mark retrieved: the sender may already have timed out

    # ---- connection loop ----------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        s = self._settings
        while not self._closing:
            try:
                await self._connect_once()
                attempt = 0
            except asyncio.CancelledError:
                raise
            except AmiAuthError as exc:
                self.last_disconnect_reason = f"login refused: {exc}"
                log.error("AMI login refused for user %s: %s", s.username, exc)
            except (OSError, TimeoutError, AmiError, ProtocolError) as exc:
                self.last_disconnect_reason = f"{type(exc).__name__}: {exc}"
                log.warning("AMI connection to %s:%s failed: %s", s.host, s.port, self.last_disconnect_reason)
            finally:
                self._teardown()
            if self._closing:
                break
            delay = min(s.reconnect_max, s.reconnect_min * (2 ** min(attempt, 16)))
            delay *= 0.5 + random.random() / 2  # jitter: spread reconnects of many clients
            attempt += 1
            log.info("AMI reconnect in %.2fs (attempt %d)", delay, attempt)
            await asyncio.sleep(delay)

    def _teardown(self) -> None:
        was = self.connected
        self.connected = False
        self._connected_event.clear()
        reason = self._drop_reason or self.last_disconnect_reason or "connection closed"
        self._fail_pending(reason)
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if was:
            log.warning("AMI disconnected: %s", reason)
        self._drop_reason = None

    def _abort(self, reason: str) -> None:
        """Drop the link now (no FIN handshake wait): the reader sees EOF and the loop reconnects."""
        if self._drop_reason is None:
            self._drop_reason = reason
        if self._writer is not None:
            self._writer.transport.abort()

    async def _connect_once(self) -> None:
        s = self._settings
        secret = s.resolved_secret()
        register_secret(secret)
        async with asyncio.timeout(s.connect_timeout):
            reader, writer = await asyncio.open_connection(
                s.host, s.port, ssl=self._ssl, limit=self._max_frame_size
            )
        self._writer = writer
        self._conn_no += 1
        parser = AmiParser(max_frame_size=self._max_frame_size)
        self._banner = asyncio.Event()
        reader_task = asyncio.create_task(self._read_loop(reader, parser), name="ami-reader")
        ping_task: asyncio.Task[None] | None = None
        try:
            async with asyncio.timeout(s.connect_timeout):
                await asyncio.wait([reader_task, asyncio.ensure_future(self._banner.wait())],
                                   return_when=asyncio.FIRST_COMPLETED)
            if parser.banner is None:
                if reader_task.done():
                    reader_task.result()
                raise AmiDisconnected("connection closed before the AMI banner")
            self.asterisk_version = parser.banner.version
            await self._login(secret)
            self.connects += 1
            if self.connects > 1:
                self.reconnects += 1
            self.connected = True
            self._connected_event.set()
            self.last_disconnect_reason = ""
            log.info("%s connected to %s:%s (AMI %s, connection %d)", self._what, s.host, s.port,
                     self.asterisk_version, self._conn_no)
            # The watchdog starts before anything else is asked: a link that goes half-open
            # right after login must not hang the CoreStatus below for its whole timeout.
            ping_task = asyncio.create_task(self._ping_loop(), name="ami-ping")
            if self._what == "AMI":       # the lane carries actions only: the events session resyncs
                restarted = await self._check_restart()
                self._enqueue(_Resync(restarted))
            await reader_task
        finally:
            if ping_task is not None:
                ping_task.cancel()
            if not reader_task.done():
                reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader_task
            if ping_task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await ping_task

    async def _login(self, secret: str) -> None:
        s = self._settings
        if s.auth == "md5":
            challenge = await self.send(Action("Challenge", {"AuthType": "MD5"}), timeout=s.action_timeout)
            token = challenge.headers.get("Challenge")
            if not challenge.success or not token:
                raise AmiAuthError(f"MD5 challenge refused: {challenge.message or challenge.status}")
            key = hashlib.md5((token + secret).encode("utf-8")).hexdigest()  # MD5 is what AMI challenge login uses
            login = Action("Login", {"Username": s.username, "AuthType": "MD5", "Key": key,
                                     "Events": self._event_classes})
        else:
            login = Action("Login", {"Username": s.username, "Secret": secret, "Events": self._event_classes})
        answer = await self.send(login, timeout=s.action_timeout)
        if not answer.success:
            raise AmiAuthError(answer.message or answer.status)

    async def _check_restart(self) -> bool:
        """Compare Asterisk's start time with the previous connection's: True = it restarted."""
        stamp: str | None = None
        try:
            status = await self.send(Action("CoreStatus"), timeout=self._settings.action_timeout)
            if status.success:
                date, tm = status.headers.get("CoreStartupDate"), status.headers.get("CoreStartupTime")
                if date and tm:
                    stamp = f"{date} {tm}"
        except AmiTimeout:
            log.warning("AMI CoreStatus timed out; restart detection falls back to FullyBooted Uptime")
        previous = self._startup_stamp
        if stamp is not None:
            self._startup_stamp = stamp
            restarted = previous is not None and stamp != previous
        else:
            restarted = False  # decided by FullyBooted's Uptime when it arrives (see _on_fully_booted)
        if restarted:
            self.restarts_detected += 1
            log.warning("Asterisk restarted (started %s, previously %s)", stamp, previous)
        return restarted

    def _on_fully_booted(self, ev: Event) -> None:
        uptime = ev.get("Uptime")
        if uptime is None or not uptime.isdigit():
            return
        boot = time.time() - int(uptime)
        previous, self._boot_epoch = self._boot_epoch, boot
        if self._startup_stamp is None and previous is not None and abs(boot - previous) > 2.0:
            self.restarts_detected += 1
            log.warning("Asterisk restarted (FullyBooted Uptime %ss)", uptime)
            self._enqueue(_Resync(True))

    async def _ping_loop(self) -> None:
        s = self._settings
        while True:
            await asyncio.sleep(s.ping_interval)
            try:
                await self.send(Action("Ping"), timeout=s.ping_timeout)
            except AmiTimeout:
                self.ping_failures += 1
                log.error("AMI Ping unanswered for %.1fs: link declared dead, reconnecting", s.ping_timeout)
                self._abort(f"no answer to Ping within {s.ping_timeout}s")
                return
            except AmiDisconnected:
                return

    async def _read_loop(self, reader: asyncio.StreamReader, parser: AmiParser) -> None:
        size = self._read_size
        try:
            while True:
                data = await reader.read(size)
                if not data:
                    if self._drop_reason is None:
                        self._drop_reason = "connection closed by Asterisk"
                    return
                wanted = self._wanted
                try:
                    msgs = parser.feed(data) if wanted is None else parser.feed_filtered(data, wanted)
                except RemoteProtocolError as exc:
                    self.protocol_errors += 1
                    for msg in exc.messages:
                        self._dispatch(msg)
                    log.error("AMI protocol error, dropping the connection: %s", exc)
                    self._abort(f"protocol error: {exc}")
                    raise
                self.events_skipped = parser.skipped
                for msg in msgs:
                    self._dispatch(msg)
        finally:
            # Nothing more can be answered on this link: fail what waits now (the login or the
            # CoreStatus of a link that died during set-up included) and refuse new sends.
            self._teardown()

    def _dispatch(self, msg: Banner | Response | Event) -> None:
        if isinstance(msg, Event):
            self.events_received += 1
            action_id = msg.get("ActionID")
            if action_id is not None:
                pending = self._pending.get(action_id)
                if pending is not None and pending.response is not None:
                    if isinstance(msg, ListComplete) or (msg.get("EventList") or "").lower() == "complete":
                        r = pending.response
                        done = msg if isinstance(msg, ListComplete) else ListComplete(msg.name, msg.headers)
                        if not pending.future.done():
                            pending.future.set_result(ListResponse(r.status, r.headers, r.follows,
                                                                   tuple(pending.events), done))
                    else:
                        pending.events.append(msg)
                    return
            if msg.name == "FullyBooted":
                self._on_fully_booted(msg)
            elif msg.name == "Shutdown":
                self._drop_reason = f"Asterisk shutdown (restart={msg.get('Restart', '?')})"
            if self._wanted is None or msg.name in self._wanted:
                self._enqueue(msg)
        elif isinstance(msg, Banner):
            self._banner.set()
        elif isinstance(msg, Response):
            action_id = msg.action_id
            pending = self._pending.get(action_id) if action_id is not None else None
            if pending is None:
                log.debug("AMI response without a waiting action (ActionID %s)", action_id)
                return
            if msg.is_list_start and msg.success:
                pending.response = msg
            elif not pending.future.done():
                pending.future.set_result(msg)

    def _enqueue(self, item: Event | _Resync) -> None:
        try:
            self._queue.put_nowait((time.monotonic(), item))
        except asyncio.QueueFull:
            self.events_dropped += 1
            log.error("AMI event queue full (%d): slow consumer; dropping the connection to resync",
                      self._queue.maxsize)
            self._abort("slow consumer")

    async def _consume(self) -> None:
        CURRENT_NODE.set(self.name)   # this task's context: every callback it runs knows its node
        while True:
            t_in, item = await self._queue.get()
            lag = time.monotonic() - t_in
            self.event_lag = lag
            if lag > self.max_event_lag:
                self.max_event_lag = lag
            if isinstance(item, _Resync):
                for rcb in list(self._resync_callbacks):
                    await self._call(rcb, item.restarted)
                continue
            name = item.name
            for names, cb in list(self._subscribers):
                if names is None or name in names:
                    await self._call(cb, item)

    async def _call(self, cb: Callable[..., Awaitable[None] | None], arg: object) -> None:
        try:
            result = cb(arg)
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception:
            self.subscriber_errors += 1
            log.exception("AMI subscriber %r failed; event delivery continues", cb)

