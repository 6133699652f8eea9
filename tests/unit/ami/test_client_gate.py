"""The AMI client's leadership gate: the one place that keeps a standby silent."""

from __future__ import annotations

import pytest

from switchboard.ami.client import READ_ONLY_ACTIONS, AmiClient, AmiDisconnected, AmiNotLeader
from switchboard.config import AmiSettings
from switchboard.telephony import heartbeat


async def test_a_closed_gate_refuses_every_action_that_changes_something_before_writing_it() -> None:
    client = AmiClient(AmiSettings())
    client.gate = lambda action: False
    for action in ({"Action": "Originate", "Channel": "PJSIP/agent1001"}, {"Action": "AGI", "Channel": "x"},
                   {"Action": "Setvar", "Variable": "SWITCHBOARD_HEARTBEAT", "Value": "1"},
                   {"Action": "Hangup", "Channel": "x"}, {"Action": "Redirect", "Channel": "x"}):
        with pytest.raises(AmiNotLeader):
            await client.send(action, timeout=1)
    assert client.actions_refused == 5 and client.actions_sent == 0
    # read-only actions pass the gate (here they fail only because nothing is connected)
    with pytest.raises(AmiDisconnected) as info:
        await client.send({"Action": "Getvar", "Variable": "SWITCHBOARD_HEARTBEAT"}, timeout=1)
    assert not isinstance(info.value, AmiNotLeader)
    assert client.actions_refused == 5


def test_read_only_actions_hold_nothing_that_acts() -> None:
    assert not READ_ONLY_ACTIONS & {"Originate", "AGI", "Setvar", "Hangup", "Redirect", "Bridge", "Command",
                                    "DBPut", "QueueAdd", "MixMonitor", "PlayDTMF", "Atxfer", "BlindTransfer"}


def test_heartbeat_carries_the_leader_epoch_after_the_time() -> None:
    assert heartbeat.put_action(1767225600, 7)["Value"] == "1767225600:7"
    assert heartbeat.put_action(1767225600)["Value"] == "1767225600"
    assert heartbeat.put_action(0, 7)["Value"] == ""
    assert heartbeat.parse_beat("1767225600:7") == (1767225600, 7)
    assert heartbeat.parse_beat("1767225600") == (1767225600, 0)
    assert heartbeat.parse_beat("") == (0, 0)
    assert heartbeat.parse_beat("junk:x") == (0, 0)
