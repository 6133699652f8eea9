"""The SIPp scenario generator writes well-formed XML with the steps asked for."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from switchboard.demo.sipp import (
    AwaitHangup,
    Dtmf,
    HangUp,
    Pause,
    PlayAudio,
    agent_scenario,
    caller_scenario,
    feature_code_scenario,
    register_scenario,
    write_examples,
)


def _elements(xml: str) -> list[ET.Element]:
    return list(ET.fromstring(xml.split("\n", 2)[2]))  # skip the XML declaration and DOCTYPE


def test_caller_sends_one_info_per_digit_and_hangs_up() -> None:
    xml = caller_scenario([Pause(1), Dtmf("42"), HangUp()], caller="0243")
    sends = [e.text or "" for e in _elements(xml) if e.tag == "send"]
    infos = [s for s in sends if s.lstrip().startswith("INFO")]
    assert len(infos) == 2
    assert "Signal=4" in infos[0] and "Signal=2" in infos[1]
    assert "application/dtmf-relay" in infos[0]
    assert sends[-1].lstrip().startswith("BYE")
    assert 'value="0243"' in xml


def test_caller_waiting_for_hangup_answers_the_bye() -> None:
    els = _elements(caller_scenario([AwaitHangup(30)], caller="1"))
    assert els[-2].tag == "recv" and els[-2].get("request") == "BYE" and els[-2].get("timeout") == "30000"
    assert (els[-1].text or "").lstrip().startswith("SIP/2.0 200 OK")


def test_agent_modes() -> None:
    ring = agent_scenario(mode="ringout")
    assert 'request="CANCEL"' in ring and "487 Request Terminated" in ring
    reject = agent_scenario(mode="reject")
    assert "486 Busy Here" in reject and "200 OK" in reject  # the 200 is for OPTIONS only
    talk = agent_scenario(answer_after=2, talk=5)
    assert 'milliseconds="2000"' in talk and 'milliseconds="5000"' in talk and "BYE [$peer_uri]" in talk
    for xml in (ring, reject, talk, agent_scenario()):
        assert 'request="OPTIONS"' in xml            # qualify pings are answered
        _elements(xml)                                # well-formed


def test_a_rejecting_far_end_given_a_talk_time_sets_no_variable_it_never_reads() -> None:
    """SIPp refuses to start a scenario with a variable set and never read ("Variable $c is
    referenced 1 times!"): a far end answering 486 never answered anything (issue 16's busy number)."""
    for xml in (agent_scenario(mode="reject", talk=3.0, expect_number="02839000001"),
                agent_scenario(mode="ringout", talk=3.0, keys="*7")):
        assigned = {v for e in _elements(xml) for r in e.iter("ereg") for v in (r.get("assign_to") or "").split(",")}
        assert assigned <= {"ruri", "invcseq"}, assigned
        assert all(f"[${v}]" in xml for v in assigned if v)      # every variable set is read


def test_register_and_feature_code_authenticate() -> None:
    reg = register_scenario(user="agent1001", password="pw", stay=10)
    assert reg.count("[authentication username=agent1001 password=pw]") == 2   # register + unregister
    fc = feature_code_scenario(user="agent1001", password="pw", code="*20")
    assert "INVITE sip:*20@" in fc and 'response="401" auth="true"' in fc


def test_examples_are_rendered(tmp_path: Path) -> None:
    files = write_examples(tmp_path)
    assert len(files) >= 8
    for f in files:
        _elements(f.read_text())


def test_committed_examples_are_what_the_generator_renders_today(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[3] / "deploy" / "local" / "sipp"
    for f in write_examples(tmp_path):
        assert (repo / f.name).read_text() == f.read_text(), (
            f"deploy/local/sipp/{f.name} is stale: python -m switchboard.demo.sipp deploy/local/sipp")


def test_agent_hang_up_is_a_new_transaction_of_its_own_call() -> None:
    """Out-of-call scenarios share one [call_number]: the BYE's branch and Call-ID come from the
    INVITE, or Asterisk answers a second agent's BYE from the first one's transaction."""
    uas = agent_scenario(answer_after=1, talk=5)
    bye = uas[uas.index("BYE [$peer_uri]"):]
    bye = bye[:bye.index("]]>")]
    assert "branch=z9hG4bK-[pid]-bye-[$inv_cid]" in bye and "Call-ID: [$inv_cid]" in bye
    assert "[branch]" not in bye and "[call_id]" not in bye


def test_many_users_register_from_an_injection_file() -> None:
    reg = register_scenario(user="[field0]", password="", auth="[field1]", stay=10)
    assert reg.count("\n[field1]\n") == 2 and "[authentication" not in reg


def test_a_far_end_checks_the_number_it_was_called_at() -> None:
    xml = agent_scenario(answer_after=1, talk=3, expect_number="+84912345677")
    (invite,) = [e for e in _elements(xml) if e.tag == "recv" and e.get("request") == "INVITE"]
    regs = [r.get("regexp") for r in invite.iter("ereg")]
    assert "^INVITE sip:[+]84912345677@" in regs and len(regs) == 5     # the BYE's four, and the number
    plain = agent_scenario(answer_after=1, expect_number="0912345677")   # no talk: the check alone
    (invite,) = [e for e in _elements(plain) if e.tag == "recv" and e.get("request") == "INVITE"]
    assert [r.get("regexp") for r in invite.iter("ereg")] == ["^INVITE sip:0912345677@"]
    assert agent_scenario(answer_after=1) == agent_scenario(answer_after=1, expect_number="")
    with pytest.raises(ValueError):
        agent_scenario(expect_number="0912;x")


def test_a_caller_can_offer_pcma_and_talk_from_a_pcap() -> None:
    xml = caller_scenario([PlayAudio("/usr/share/sip-tester/g711a.pcap", 7), Dtmf("1"), HangUp()], caller="1",
                          codec="PCMA")
    assert "m=audio [media_port] RTP/AVP 8 101" in xml and "a=rtpmap:8 PCMA/8000" in xml and "PCMU" not in xml
    els = _elements(xml)
    (play,) = [e for e in els if e.tag == "nop" and e.find("action/exec") is not None]
    assert play.find("action/exec").get("play_pcap_audio") == "/usr/share/sip-tester/g711a.pcap"  # type: ignore[union-attr]
    assert els[els.index(play) + 1].get("milliseconds") == "7000"
    assert caller_scenario([HangUp()], caller="1") == caller_scenario([HangUp()], caller="1", codec="PCMU")
    with pytest.raises(ValueError):
        caller_scenario([HangUp()], caller="1", codec="opus")
