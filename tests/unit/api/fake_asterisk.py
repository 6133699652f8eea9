"""The one faked part of the API tests' ACD: the AMI link to Asterisk.

``FakeAsterisk`` stands in for ``AmiClient`` (same ``send``/``subscribe``/``on_resync``/
``connected``) and answers the actions the ACD sends the way Asterisk 22 does (see the
captures in tests/fixtures/ami and tests/e2e, which run the same service on the real one):

* ``DeviceStateList``: a list response, one ``DeviceStateChange`` per registered endpoint;
* ``AGI`` on a channel in AsyncAGI: ``Added AGI command to queue``, then ``AsyncAGIExec``
  with the URL-encoded result (``SET VARIABLE`` -> ``200 result=1``); on any other
  channel ``Response: Error`` (``Failed to add AGI command to queue``);
* ``Originate`` (``Async: true``): ``Originate successfully queued``, the endpoint rings
  (``DeviceStateChange RINGING``); the test then answers or hangs up the leg;
* ``Redirect`` of a live channel: ``Redirect successful`` (a transfer; the test plays what follows);
* ``Hangup`` of a live channel: ``Channel Hungup`` and its ``Hangup`` event; of an unknown
  one ``Response: Error`` / ``No such channel``;
* any action it does not know: ``Response: Error`` / ``Invalid/unknown command``.

Events are delivered on the event loop after the action's response, like the real
client's consumer task delivers them. Everything above the link (AgiManager, AcdService,
the API services) is the product's own code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from switchboard.ami.client import ListResponse
from switchboard.ami.protocol import Action, Event, Headers, ListComplete, Response

Listener = Callable[[Event], Any]


@dataclass
class Channel:
    uniqueid: str
    name: str
    endpoint: str = ""       # an agent leg: the endpoint it rings
    in_agi: bool = False
    answered: bool = False


@dataclass
class FakeAsterisk:
    endpoints: dict[str, str] = field(default_factory=dict)   # endpoint -> device state
    channels: dict[str, Channel] = field(default_factory=dict)
    actions: list[dict[str, Any]] = field(default_factory=list)
    connected: bool = True
    _listeners: list[tuple[Listener, frozenset[str] | None]] = field(default_factory=list)
    _seq: int = 0

    # ------------------------------------------------------------- AmiClient's surface

    def subscribe(self, callback: Listener, *, names: Iterable[str] | None = None) -> Callable[[], None]:
        entry = (callback, frozenset(names) if names is not None else None)
        self._listeners.append(entry)
        return lambda: self._listeners.remove(entry) if entry in self._listeners else None

    def on_resync(self, callback: Callable[[bool], Any]) -> None:
        pass   # the link never drops here (tests/unit/ami/test_client_faults.py covers that)

    async def send(self, action: Action | Mapping[str, Any], *, timeout: float | None = None) -> Response:
        return self._handle(action)

    def _handle(self, action: Action | Mapping[str, Any]) -> Response:
        if isinstance(action, Action):
            name, headers = action.name, dict(action.headers)
        else:
            headers = dict(action)
            name = str(headers.pop("Action"))
        self.actions.append({"Action": name, **headers})
        handler = getattr(self, f"_on_{name.lower()}", None)
        if handler is None:
            return _error("Invalid/unknown command")
        response: Response = handler(headers)
        return response

    def send_nowait(self, action: Action | Mapping[str, Any], *, timeout: float | None = None) -> Any:
        """Like ``AmiClient.send_nowait``: the action takes effect now; await the result for the answer."""
        response = self._handle(action)

        async def answer() -> Response:
            return response
        return answer()

    # ------------------------------------------------------------- what Asterisk does

    def _on_devicestatelist(self, headers: dict[str, Any]) -> Response:
        events = tuple(Event("DeviceStateChange", {"Device": f"PJSIP/{e}", "State": s})
                       for e, s in sorted(self.endpoints.items()))
        return ListResponse("Success", Headers({"EventList": "start", "Message": "Device State Changes will follow"}),
                            events=events, complete=ListComplete("DeviceStateListComplete", {
                                "EventList": "Complete", "ListItems": str(len(events))}))

    def _on_agi(self, headers: dict[str, Any]) -> Response:
        chan = next((c for c in self.channels.values() if c.name == headers.get("Channel") and c.in_agi), None)
        if chan is None:
            return _error("Failed to add AGI command to queue")
        command = str(headers.get("Command", ""))
        result = "200 result=1\n" if command.startswith("SET VARIABLE") else "200 result=0\n"
        self._later("AsyncAGIExec", Channel=chan.name, Uniqueid=chan.uniqueid, SubEvent="Exec",
                    CommandId=str(headers.get("CommandID", "")), Result=quote(result, safe=""))
        return Response("Success", Headers({"Message": "Added AGI command to queue"}))

    def _on_originate(self, headers: dict[str, Any]) -> Response:
        target = str(headers.get("Channel", ""))
        endpoint = target.removeprefix("PJSIP/")
        leg = str(headers.get("ChannelId") or self._uniqueid())
        if headers.get("Application") != "ChanSpy":          # an agent leg rings the agent's phone
            self.channels[leg] = Channel(uniqueid=leg, name=f"{target}-{len(self.channels):08x}", endpoint=endpoint)
            self._device(endpoint, "RINGING")
        return Response("Success", Headers({"Message": "Originate successfully queued"}))

    def _on_hangup(self, headers: dict[str, Any]) -> Response:
        which = str(headers.get("Channel", ""))
        chan = self.channels.get(which) or next((c for c in self.channels.values() if c.name == which), None)
        if chan is None:
            return _error("No such channel")
        self._gone(chan, cause=str(headers.get("Cause", "16")))
        return Response("Success", Headers({"Message": "Channel Hungup"}))

    def _on_setvar(self, headers: dict[str, Any]) -> Response:
        return Response("Success", Headers({}))

    def _on_redirect(self, headers: dict[str, Any]) -> Response:
        """A live channel (by name or uniqueid) goes to the dialplan place asked for."""
        target = str(headers.get("Channel", ""))
        if not any(target in (c.name, c.uniqueid) for c in self.channels.values()):
            return _error("Channel does not exist")
        return Response("Success", Headers({"Message": "Redirect successful"}))

    # ------------------------------------------------------------- what the test's phones do

    def caller_enters_agi(self, *, caller: str, dialed: str = "19009068") -> Channel:
        """A caller reaches ``AGI(agi:async)``: ``AsyncAGIStart`` with the AGI environment."""
        uid = self._uniqueid()
        chan = Channel(uniqueid=uid, name=f"PJSIP/trunk-{len(self.channels):08x}", in_agi=True)
        self.channels[uid] = chan
        env = f"agi_request: async\nagi_channel: {chan.name}\nagi_uniqueid: {uid}\nagi_callerid: {caller}\n" \
              f"agi_extension: {dialed}\n\n"
        self._later("AsyncAGIStart", Channel=chan.name, Uniqueid=uid, Linkedid=uid, Env=quote(env, safe=""))
        return chan

    def agent_answers(self, leg: str) -> None:
        """The agent's phone answers: the agent-leg dialplan bridges it to the caller."""
        chan = self.channels[leg]
        chan.answered = True
        self._device(chan.endpoint, "INUSE")
        self._later("OriginateResponse", Response="Success", Channel=chan.name, Uniqueid=leg, Reason="4")
        self._later("BridgeEnter", Channel=chan.name, Uniqueid=leg, BridgeUniqueid=f"bridge-{leg}")

    def agent_hangs_up(self, leg: str) -> None:
        self._gone(self.channels[leg], cause="16")

    def caller_hangs_up(self, uniqueid: str) -> None:
        self._gone(self.channels[uniqueid], cause="16")

    def ringing_leg(self, endpoint: str) -> str | None:
        return next((c.uniqueid for c in self.channels.values() if c.endpoint == endpoint and not c.answered), None)

    # ------------------------------------------------------------- plumbing

    def _gone(self, chan: Channel, *, cause: str) -> None:
        self.channels.pop(chan.uniqueid, None)
        if chan.in_agi:
            self._later("AsyncAGIEnd", Channel=chan.name, Uniqueid=chan.uniqueid)
        self._later("Hangup", Channel=chan.name, Uniqueid=chan.uniqueid, Cause=cause,
                    **{"Cause-txt": "Normal Clearing"})
        if chan.endpoint:
            self._device(chan.endpoint, "NOT_INUSE")

    def _device(self, endpoint: str, state: str) -> None:
        if endpoint in self.endpoints:
            self.endpoints[endpoint] = state
            self._later("DeviceStateChange", Device=f"PJSIP/{endpoint}", State=state)

    def _uniqueid(self) -> str:
        self._seq += 1
        return f"1772420400.{self._seq}"

    def _later(self, name: str, **headers: str) -> None:
        event = Event(name, headers)
        asyncio.get_running_loop().call_soon(self._deliver, event)

    def _deliver(self, event: Event) -> None:
        for callback, names in list(self._listeners):
            if names is None or event.name in names:
                callback(event)


def _error(message: str) -> Response:
    return Response("Error", Headers({"Message": message}))


def registered(endpoints: Sequence[str]) -> dict[str, str]:
    """Endpoints registered and idle, as Asterisk lists them."""
    return {e: "NOT_INUSE" for e in endpoints}
