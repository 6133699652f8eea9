"""Supervisor spy: the ChanSpy Originate (pure) and the API service over a real AcdService.

The AMI is the one part faked here (a recorder of the actions sent, answering like
Asterisk's "Originate successfully queued"); tests/e2e/test_supervisor_spy.py runs the
same service against the real Asterisk with SIPp phones.
"""

from __future__ import annotations

import pytest

from switchboard.acd.agents import AgentRecord
from switchboard.acd.service import AcdService
from switchboard.acd.spy import CHANSPY_OPTIONS, chanspy_originate
from switchboard.ami.protocol import Headers, Response
from switchboard.api.acd_services import AmiSupervisorService
from switchboard.api.services import ConflictError, NotFoundError, SpyMode
from switchboard.config import RoutingSettings


def test_chanspy_originate_rings_the_supervisor_and_targets_one_uniqueid() -> None:
    action = chanspy_originate(supervisor_endpoint="sup1", target_uniqueid="sb-0123abcd", mode="whisper",
                               channel_id="spy-1", agent_id="agent1001")
    assert action["Channel"] == "PJSIP/sup1" and action["Application"] == "ChanSpy"
    assert action["Data"] == "sb-0123abcd,qwEu" and action["ChannelId"] == "spy-1"
    assert CHANSPY_OPTIONS == {"listen": "qEu", "whisper": "qwEu", "barge": "qBEu"}
    for opts in CHANSPY_OPTIONS.values():      # one exact channel, quiet, gone with the call
        assert {"q", "E", "u"} <= set(opts)


@pytest.mark.parametrize("bad", [
    {"supervisor_endpoint": "sup1@trunk"}, {"supervisor_endpoint": "Local/1@x"}, {"supervisor_endpoint": ""},
    {"supervisor_endpoint": "sup1&PJSIP/x"}, {"target_uniqueid": "PJSIP/"}, {"target_uniqueid": "x,qB"},
    {"mode": "record"}, {"channel_id": "a b"},
])
def test_chanspy_originate_refuses_anything_but_plain_names(bad: dict[str, str]) -> None:
    args = {"supervisor_endpoint": "sup1", "target_uniqueid": "sb-1", "mode": "listen", "channel_id": "spy-1",
            "agent_id": "agent1001", **bad}
    with pytest.raises(ValueError):
        chanspy_originate(**args)


class RecordingAmi:
    """Records the actions; answers each like Asterisk answers an accepted async Originate."""

    def __init__(self) -> None:
        self.sent: list[dict[str, str]] = []

    async def send(self, action: dict[str, str], *, timeout: float | None = None) -> Response:
        self.sent.append(dict(action))
        return Response("Success", Headers({"Message": "Originate successfully queued"}))


def _world() -> tuple[AcdService, RecordingAmi, AmiSupervisorService]:
    acd = AcdService(ami=object(), routing=RoutingSettings(), region_of={}, emit=lambda *a: None,
                     agents=[AgentRecord(id="agent1001", name="A", sip_endpoint="agent1001", home_province="ha-noi",
                                         skills={"general": 3})],
                     clock=lambda: 100.0, wall=lambda: 1_800_000_000.0)
    ami = RecordingAmi()
    return acd, ami, AmiSupervisorService(acd, ami)


async def test_spy_targets_the_agents_bridged_leg_from_the_acd() -> None:
    acd, ami, sup = _world()
    with pytest.raises(ConflictError) as no_call:
        await sup.spy(agent_id="agent1001", mode=SpyMode.LISTEN, supervisor_endpoint="sup1")
    assert no_call.value.error_id == "agent-not-on-call" and not ami.sent
    acd.adopt_talking("sb-feedbeef01", call_id="call-1", agent_id="agent1001", talked_s=5)
    for mode, opts in (("listen", "qEu"), ("whisper", "qwEu"), ("barge", "qBEu")):
        result = await sup.spy(agent_id="agent1001", mode=SpyMode(mode), supervisor_endpoint="sup1")
        assert (result.spied_channel_id, result.supervisor_endpoint) == ("sb-feedbeef01", "sup1")
        sent = ami.sent[-1]
        assert (sent["Channel"], sent["Data"], sent["ChannelId"]) == ("PJSIP/sup1", f"sb-feedbeef01,{opts}",
                                                                       result.channel_id)


async def test_spy_refuses_without_an_endpoint_and_for_unknown_agents() -> None:
    acd, ami, sup = _world()
    acd.adopt_talking("sb-feedbeef01", call_id="call-1", agent_id="agent1001", talked_s=5)
    with pytest.raises(ConflictError) as no_phone:
        await sup.spy(agent_id="agent1001", mode=SpyMode.BARGE, supervisor_endpoint=None)
    assert no_phone.value.error_id == "supervisor-no-endpoint"
    with pytest.raises(NotFoundError):
        await sup.spy(agent_id="ghost", mode=SpyMode.LISTEN, supervisor_endpoint="sup1")
    with pytest.raises(ValueError):
        await sup.spy(agent_id="agent1001", mode="record", supervisor_endpoint="sup1")  # type: ignore[arg-type]
    assert ami.sent == []
