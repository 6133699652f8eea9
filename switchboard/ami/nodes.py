"""Several Asterisk nodes seen as one AMI link: the switchboard stays one brain.

With ``ami.nodes`` (docs/scale.md) Kamailio spreads callers over several Asterisk nodes and
the service keeps one AMI client per node. :class:`AmiNodes` gives the rest of the service
the interface of one :class:`~switchboard.ami.client.AmiClient` (``send``, ``send_nowait``,
``subscribe``, ``on_resync``, ``connected``, ``gate``), so the router, the IVR and the
records see every caller and every agent, and decides which node each action goes to:

* **Events** of every node reach every subscriber, each node's in its own order, on its own
  consumer task: ``current_node()`` tells a callback which node it hears. Each node's
  Asterisk has ``systemname`` = the node's name, so its uniqueids, linkedids (our call ids)
  and the legs we name start with ``<node>-``: ids never collide and say their node.
* **Actions**: a ``node=`` hint wins (the callers that know the call give it: an agent's leg
  is originated on the caller's node, so the bridge is local). Else a header naming a
  channel (``Channel``, ``ChannelId``, ``Uniqueid``...) decides: by its id prefix, or by the
  one node where a channel of that name lives. Channel names do collide across nodes
  (each node counts ``PJSIP/trunk-00000000`` from zero), so a name on two nodes with no hint
  is refused (``AmiError``), never guessed. An ``Originate`` with no channel of ours (a
  callback, a campaign call) goes to the up node with the fewest channels. Reading lists
  (``CoreShowChannels``, ``DeviceStateList``) and globals (``Setvar`` without a channel: the
  heartbeat) go to every node that is up; list answers are merged.
* **Device states**: every node reports each agent's device (its AOR reached through
  Kamailio). The agent is as busy as the busiest node says (in use anywhere is in use) and
  reachable when any node reaches them; subscribers get that merged state.
* **A node lost**: its link down for ``node_lost_after_s`` and its SIP port silent to
  ``OPTIONS`` (when a SIP address is known): ``on_lost`` callbacks run (its calls are closed
  as failed, offers from it end), its channels and device states are forgotten. When the
  link comes back the client's resync re-reads it, as after any Asterisk restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from switchboard.periodic import run_every

from .client import (
    CURRENT_NODE,
    READ_ONLY_ACTIONS,
    AmiClient,
    AmiDisconnected,
    AmiError,
    AmiNotLeader,
    EventCallback,
    ListResponse,
    ResyncCallback,
    current_node,
)
from .protocol import Action, Event, Headers, Response
from .sip_probe import sip_options_ok

__all__ = ["AmiNodes", "merge_device_states", "node_of_id"]

log = logging.getLogger("switchboard.ami.nodes")

#: Actions answered as a list that read the whole node: asked of every node, answers merged.
FAN_OUT_LISTS = frozenset({"CoreShowChannels", "DeviceStateList"})
#: Headers that may name a channel of ours, in the order they decide.
CHANNEL_HEADERS = ("Uniqueid", "ChannelId", "Channel", "Channel1", "Channel2", "ExtraChannel", "SpyeeChannel")

#: Device states from the most to the least telling: the merged state is the first any node says.
_RANK = ("INUSE", "BUSY", "RINGINUSE", "ONHOLD", "RINGING", "NOT_INUSE", "UNAVAILABLE", "INVALID", "UNKNOWN")


def node_of_id(ident: str, nodes: Iterable[str]) -> str | None:
    """The node an id made under ``systemname`` names (``a-1764840000.12`` -> ``a``), else None."""
    head, sep, rest = ident.partition("-")
    if sep and rest[:1].isdigit() and head in nodes:
        return head
    return None


def merge_device_states(states: Iterable[str]) -> str:
    """The state of a device several nodes report: the busiest, then the most reachable."""
    best, best_rank = "UNKNOWN", len(_RANK)
    for state in states:
        rank = _RANK.index(state) if state in _RANK else len(_RANK) - 1
        if rank < best_rank:
            best, best_rank = _RANK[rank], rank
    return best


class AmiNodes:
    """The AMI clients of several nodes behind one client's interface (see the module doc)."""

    def __init__(self, clients: Sequence[AmiClient], *, lost_after_s: float = 6.0,
                 sip: Mapping[str, tuple[str, int]] | None = None,
                 probe: Callable[[str, int], Awaitable[bool]] = sip_options_ok,
                 clock: Callable[[], float] = time.monotonic, watch_interval_s: float = 0.5) -> None:
        if not clients or any(not c.name for c in clients):
            raise ValueError("AmiNodes needs named clients (ami.nodes)")
        self.clients: dict[str, AmiClient] = {c.name: c for c in clients}
        self.lost_after_s = lost_after_s
        self.sip = dict(sip or {})
        self._probe = probe
        self._clock = clock
        self._watch_interval_s = watch_interval_s
        self._names: dict[str, dict[str, str]] = {n: {} for n in self.clients}   # node -> channel -> uniqueid
        self._devices: dict[str, dict[str, str]] = {}    # device -> node -> state
        self._device_subscribers: list[EventCallback] = []
        self._down_since: dict[str, float] = {}
        self.lost: set[str] = set()
        #: (node) -> None, run when a node is declared lost (with ``current_node()`` = that node)
        self.on_lost: list[Callable[[str], Any]] = []
        #: (node) -> None, run when a lost node's link is back (before its resync)
        self.on_back: list[Callable[[str], Any]] = []
        self._watch_task: asyncio.Task[None] | None = None
        self._gate: Callable[[Action], bool] | None = None
        #: as ``AmiClient.confirm``, checked here once (the nodes' own clients have none)
        self.confirm: Callable[[Action], Awaitable[bool]] | None = None
        self.placements: dict[str, int] = {n: 0 for n in self.clients}
        for node, client in self.clients.items():
            client.subscribe(self._learner(node), names=("Newchannel", "Rename", "Hangup", "DeviceStateChange"))

    # ---- what the rest of the service reads --------------------------------------------------

    @property
    def name(self) -> str:
        return ""

    @property
    def connected(self) -> bool:
        """At least one node's link is up (each node's own state: ``node_up``)."""
        return any(c.connected for c in self.clients.values())

    def node_up(self, node: str) -> bool:
        """Its link is up (a lost node whose link is back is up at once; the watch then takes
        it off ``lost`` and runs ``on_back``)."""
        c = self.clients.get(node)
        return c is not None and c.connected

    def up_nodes(self) -> list[str]:
        return [n for n in self.clients if self.node_up(n)]

    @property
    def gate(self) -> Callable[[Action], bool] | None:
        return self._gate

    @gate.setter
    def gate(self, value: Callable[[Action], bool] | None) -> None:
        self._gate = value
        for c in self.clients.values():
            c.gate = value

    @property
    def queue_depth(self) -> int:
        return sum(c.queue_depth for c in self.clients.values())

    def __getattr__(self, attr: str) -> Any:
        # counters read by metrics and doctor (reconnects, event_lag, ...): summed or the worst
        if attr in ("reconnects", "connects", "events_received", "events_dropped", "events_skipped",
                    "subscriber_errors", "ping_failures", "protocol_errors", "restarts_detected",
                    "actions_sent", "actions_refused"):
            return sum(int(getattr(c, attr)) for c in self.clients.values())
        if attr in ("event_lag", "max_event_lag", "last_action_at"):
            return max(float(getattr(c, attr)) for c in self.clients.values())
        if attr == "asterisk_version":
            return next((c.asterisk_version for c in self.clients.values() if c.asterisk_version), "")
        if attr == "last_disconnect_reason":
            return "; ".join(f"{n}: {c.last_disconnect_reason}" for n, c in self.clients.items()
                             if c.last_disconnect_reason)
        raise AttributeError(attr)

    def node_for(self, ident: str) -> str | None:
        """The node of a call id, uniqueid, leg id or channel name; None when it cannot tell."""
        if not ident:
            return None
        node = node_of_id(ident, self.clients)
        if node is not None:
            return node
        owners = [n for n, names in self._names.items() if ident in names]
        return owners[0] if len(owners) == 1 else None

    def channel_count(self, node: str) -> int:
        return len(self._names.get(node, ()))

    # ---- wiring --------------------------------------------------------------------------------

    def subscribe(self, callback: EventCallback, *, names: Iterable[str] | None = None) -> Callable[[], None]:
        wanted = frozenset(names) if names is not None else None
        undo: list[Callable[[], None]] = []
        if wanted is None or "DeviceStateChange" in wanted:
            # device states are merged here and handed on by the learner, once per change
            self._device_subscribers.append(callback)
            rest = None if wanted is None else wanted - {"DeviceStateChange"}
            undo.append(lambda: self._device_subscribers.remove(callback))
        else:
            rest = wanted
        if rest is None or rest:
            deliver = self._skip_device_states(callback) if rest is None else callback
            for client in self.clients.values():
                undo.append(client.subscribe(deliver, names=rest))

        def unsubscribe() -> None:
            for u in undo:
                with contextlib.suppress(ValueError):
                    u()

        return unsubscribe

    @staticmethod
    def _skip_device_states(callback: EventCallback) -> EventCallback:
        def deliver(ev: Event) -> Awaitable[None] | None:
            if ev.name == "DeviceStateChange":
                return None
            return callback(ev)

        return deliver

    def on_resync(self, callback: ResyncCallback) -> None:
        """``callback(restarted)`` after each node's login, on that node's task (``current_node()``)."""
        for client in self.clients.values():
            client.on_resync(callback)

    async def start(self, *, wait: bool = True, timeout: float | None = None) -> None:
        for client in self.clients.values():
            await client.start(wait=False)
        if self._watch_task is None:
            self._watch_task = asyncio.create_task(
                run_every(self._watch_interval_s, self.check_nodes, name="node watch", wait_first=False),
                name="ami-nodes-watch")
        if wait:
            await self.wait_connected(timeout=timeout if timeout is not None else 15.0)

    async def wait_connected(self, *, timeout: float) -> None:
        """Return once every node is connected; ``AmiTimeout`` naming the missing ones otherwise.
        (The service starts with the nodes that are up: ``AmiPart`` logs and goes on.)"""
        results = await asyncio.gather(*(c.wait_connected(timeout=timeout) for c in self.clients.values()),
                                       return_exceptions=True)
        errors = [f"{n}: {r}" for n, r in zip(self.clients, results, strict=True) if isinstance(r, Exception)]
        if errors and not self.connected:
            raise AmiDisconnected("; ".join(errors))
        if errors:
            log.error("Asterisk node(s) not connected yet: %s", "; ".join(errors))

    async def close(self, *, timeout: float = 2.0) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
            self._watch_task = None
        await asyncio.gather(*(c.close(timeout=timeout) for c in self.clients.values()))

    # ---- actions -------------------------------------------------------------------------------

    async def send(self, action: Action | Mapping[str, str | Sequence[str]], *, timeout: float | None = None,
                   node: str | None = None) -> Response:
        if self.confirm is not None:
            if not isinstance(action, Action):
                action = Action.from_dict(action)
            if action.name not in READ_ONLY_ACTIONS and not await self.confirm(action):
                raise AmiNotLeader(f"not the leader; {action.name} not sent")
        return await self.send_nowait(action, timeout=timeout, node=node)

    def send_nowait(self, action: Action | Mapping[str, str | Sequence[str]], *,
                    timeout: float | None = None, node: str | None = None) -> Awaitable[Response]:
        if not isinstance(action, Action):
            action = Action.from_dict(action)
        target = node or self._route(action)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s -> node %s%s", action.name, action.headers.get("Channel") or "", target,
                      " (hint)" if node else "")
        if target == "*":
            return self._fan_out(action, timeout)
        client = self.clients.get(target)
        if client is None:
            raise AmiError(f"{action.name}: no Asterisk node {target!r}")
        if target in self.lost and not client.connected:
            raise AmiDisconnected(f"{action.name}: node {target} is lost")
        if action.name == "Originate":
            self.placements[target] = self.placements.get(target, 0) + 1
        return client.send_nowait(action, timeout=timeout)

    def _route(self, action: Action) -> str:
        headers = action.headers
        channel_named = False
        originate = action.name == "Originate"
        for key in CHANNEL_HEADERS:
            value = headers.get(key)
            if not isinstance(value, str) or not value:
                continue
            if originate:
                # an Originate's Channel is the one it creates: only an id we chose says where
                node = node_of_id(value, self.clients) if key == "ChannelId" else None
                if node is not None:
                    return node
                continue
            channel_named = True
            node = self.node_for(value)
            if node is not None:
                return node
            here = current_node()
            if here in self._names and value in self._names[here]:
                return here    # the event being handled came from that channel's node
        if action.name in FAN_OUT_LISTS or (action.name == "Setvar" and not channel_named):
            return "*"
        if originate:
            return self._place()
        if channel_named:
            named = [str(headers.get(k)) for k in CHANNEL_HEADERS if headers.get(k)]
            raise AmiError(f"{action.name}: which Asterisk node has {', '.join(named)}? (none or several)")
        up = self.up_nodes()
        if not up:
            raise AmiDisconnected(f"no Asterisk node connected; {action.name} not sent")
        return up[0]

    def place(self) -> str:
        """The node for a new outgoing call (a callback, a campaign call): the up node with the
        fewest channels. ``AmiDisconnected`` when none is up."""
        return self._place()

    def _place(self) -> str:
        """The node for a new outgoing call: the up node with the fewest channels."""
        up = self.up_nodes()
        if not up:
            raise AmiDisconnected("no Asterisk node connected; Originate not sent")
        return min(up, key=lambda n: (self.channel_count(n), self.placements.get(n, 0)))

    async def _fan_out(self, action: Action, timeout: float | None) -> Response:
        up = self.up_nodes()
        if not up:
            raise AmiDisconnected(f"no Asterisk node connected; {action.name} not sent")
        answers = await asyncio.gather(*(self.clients[n].send(action, timeout=timeout) for n in up),
                                       return_exceptions=True)
        got: list[tuple[str, Response]] = []
        for n, a in zip(up, answers, strict=True):
            if isinstance(a, BaseException):
                if action.name in FAN_OUT_LISTS:
                    # a list with a hole would read as "those channels are gone": no list at all
                    raise a if isinstance(a, Exception) else AmiError(str(a))
                if action.name not in READ_ONLY_ACTIONS:
                    log.warning("%s on node %s failed: %s", action.name, n, a)
                continue
            got.append((n, a))
        if not got:
            failed = next(a for a in answers if isinstance(a, BaseException))
            raise failed if isinstance(failed, Exception) else AmiError(str(failed))
        ok = next((r for _, r in got if r.success), got[0][1])
        if not any(isinstance(r, ListResponse) for _, r in got):
            return ok
        events: list[Event] = []
        for n, r in got:
            for ev in getattr(r, "events", ()):
                events.append(ev)
                if action.name == "CoreShowChannels":
                    self._names[n][ev.get("Channel") or ""] = ev.get("Uniqueid") or ""
        if action.name == "DeviceStateList":
            events = self._merged_device_list(got)
        listed = next(r for _, r in got if isinstance(r, ListResponse))
        assert isinstance(listed, ListResponse)
        return ListResponse(status=ok.status, headers=ok.headers, events=tuple(events), complete=listed.complete)

    def _merged_device_list(self, got: list[tuple[str, Response]]) -> list[Event]:
        for n, r in got:
            for ev in getattr(r, "events", ()):
                device = ev.get("Device") or ""
                if device:
                    self._devices.setdefault(device, {})[n] = ev.get("State") or ""
        return [Event("DeviceStateChange", Headers({"Device": d, "State": merge_device_states(by.values())}))
                for d, by in self._devices.items()]

    # ---- learning from events ------------------------------------------------------------------

    def _learner(self, node: str) -> Callable[[Event], Awaitable[None] | None]:
        names = self._names[node]

        def learn(ev: Event) -> Awaitable[None] | None:
            name = ev.name
            if name == "Newchannel":
                names[ev.get("Channel") or ""] = ev.get("Uniqueid") or ""
            elif name == "Hangup":
                chan = ev.get("Channel") or ""
                if names.get(chan) == (ev.get("Uniqueid") or ""):
                    names.pop(chan, None)
            elif name == "Rename":
                old, new = ev.get("Channel") or "", ev.get("Newname") or ""
                names[new] = names.pop(old, ev.get("Uniqueid") or "")
            elif name == "DeviceStateChange":
                device = ev.get("Device") or ""
                self._devices.setdefault(device, {})[node] = ev.get("State") or ""
                return self._deliver_device(device, self.device_state(device))
            return None

        return learn

    def device_state(self, device: str) -> str:
        by = self._devices.get(device)
        return merge_device_states(by.values()) if by else ""

    async def _deliver_device(self, device: str, state: str) -> None:
        ev = Event("DeviceStateChange", Headers({"Device": device, "State": state}))
        for cb in list(self._device_subscribers):
            try:
                result = cb(ev)
                if result is not None:
                    await result
            except Exception:
                log.exception("device state subscriber %r failed", cb)

    # ---- nodes lost and back -------------------------------------------------------------------

    async def check_nodes(self) -> None:
        """One look at every node's link: declare lost the ones down too long, take back the others."""
        now = self._clock()
        for node, client in self.clients.items():
            if client.connected:
                self._down_since.pop(node, None)
                if node in self.lost:
                    self.lost.discard(node)
                    log.warning("Asterisk node %s is back", node)
                    await self._run(self.on_back, node)
                continue
            since = self._down_since.setdefault(node, now)
            if node in self.lost or now - since < self.lost_after_s:
                continue
            sip = self.sip.get(node)
            if sip is not None and await self._probe(*sip):
                continue   # AMI is down but the node still answers SIP: its calls go on; not lost
            self.lost.add(node)
            log.error("Asterisk node %s lost: AMI down for %.0fs%s", node, now - since,
                      f", no answer to SIP OPTIONS at {sip[0]}:{sip[1]}" if sip else "")
            self._names[node].clear()
            changed = []
            for device, by in self._devices.items():
                if by.pop(node, None) is not None:
                    changed.append(device)
            await self._run(self.on_lost, node)
            for device in changed:
                await self._deliver_device(device, self.device_state(device) or "UNAVAILABLE")

    async def _run(self, callbacks: list[Callable[[str], Any]], node: str) -> None:
        token = CURRENT_NODE.set(node)
        try:
            for cb in list(callbacks):
                try:
                    result = cb(node)
                    if result is not None and hasattr(result, "__await__"):
                        await result
                except Exception:
                    log.exception("node %s: callback %r failed", node, cb)
        finally:
            CURRENT_NODE.reset(token)
