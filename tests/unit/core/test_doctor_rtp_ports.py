"""`switchboard doctor`'s RTP check and the sizing rule behind it: Asterisk must never run out of
RTP ports (SIP 488 before any dialplan) before the overload gate refuses callers cleanly."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from switchboard.commands.doctor import asterisk_rtp_conf, check_rtp_ports, rtp_range
from switchboard.config import OverloadSettings, Settings
from switchboard.telephony.overload import rtp_ports_needed

REPO = Path(__file__).resolve().parents[3]


def test_rtp_range_reads_the_general_section_only() -> None:
    text = "; comment rtpstart = 1\n[general]\nrtpstart = 10000 ; even\nrtpend => 19999\n[other]\nrtpend = 5\n"
    assert rtp_range(text) == (10000, 19999)
    assert rtp_range("[general]\n") == (5000, 31000)        # Asterisk's own defaults


def test_ports_needed_counts_callers_agents_and_refused_callers_in_the_busy_message() -> None:
    # 400 callers + 60 agent legs + 400 callers hearing "all lines are busy", 2 ports each, +25 %
    assert rtp_ports_needed(max_calls=400, agents=60) == 2150
    assert rtp_ports_needed(max_calls=400, agents=60, refusing=0) == 1150
    with pytest.raises(ValueError):
        rtp_ports_needed(max_calls=0, agents=10)


def test_the_old_local_range_would_have_let_asterisk_refuse_before_the_gate() -> None:
    # issue 12's level 600: 20000-20999 held 500 channels and callers past it got 488
    assert 1000 < rtp_ports_needed(max_calls=OverloadSettings().max_calls, agents=60)


def test_the_local_stack_range_holds_what_the_default_gate_lets_in() -> None:
    script = (REPO / "deploy/local/stack-up.sh").read_text()
    start = int(re.search(r'RTP_START="\$\{STACK_RTP_START:-(\d+)\}"', script).group(1))  # type: ignore[union-attr]
    end = int(re.search(r'RTP_END="\$\{STACK_RTP_END:-(\d+)\}"', script).group(1))        # type: ignore[union-attr]
    # the bench's 60 agents with the shipped default max_calls
    assert end - start + 1 >= rtp_ports_needed(max_calls=OverloadSettings().max_calls, agents=60)


def test_the_production_range_in_the_docs_holds_the_default_gate_with_many_agents() -> None:
    doc = (REPO / "docs/operations.md").read_text()
    start, end = (int(x) for x in re.search(r"`rtpstart = (\d+)`, `rtpend = (\d+)`", doc).groups())  # type: ignore[union-attr]
    assert end - start + 1 >= rtp_ports_needed(max_calls=OverloadSettings().max_calls, agents=1000)


def _settings(max_calls: int = 400, enabled: bool = True) -> Settings:
    return dataclasses.replace(Settings(), overload=OverloadSettings(max_calls=max_calls, enabled=enabled))


def test_check_warns_when_the_range_is_smaller_than_the_gate_needs(tmp_path: Path) -> None:
    conf = tmp_path / "rtp.conf"
    conf.write_text("[general]\nrtpstart = 20000\nrtpend = 20999\n")
    check = check_rtp_ports(_settings(), agents=60, path=conf)
    assert not check.ok and check.optional and "488" in check.detail and "needs 2150" in check.detail
    conf.write_text("[general]\nrtpstart = 20000\nrtpend = 29999\n")
    check = check_rtp_ports(_settings(), agents=60, path=conf)
    assert check.ok and "5000 channels" in check.detail


def test_check_warns_without_a_call_limit_and_says_so_for_a_remote_asterisk(tmp_path: Path) -> None:
    conf = tmp_path / "rtp.conf"
    conf.write_text("[general]\nrtpstart = 10000\nrtpend = 19999\n")
    assert not check_rtp_ports(_settings(max_calls=0), agents=5, path=conf).ok
    assert not check_rtp_ports(_settings(enabled=False), agents=5, path=conf).ok
    remote = check_rtp_ports(_settings(), agents=5, path=None)
    assert remote.ok and "by hand" in remote.detail
    assert not check_rtp_ports(_settings(), agents=5, path=tmp_path / "missing.conf").ok


def test_rtp_conf_is_the_local_stack_roots_when_one_is_named() -> None:
    env = {"STACK_ASTERISK_ROOT": "/var/cache/x", "STACK_ASTERISK_ETC": "/etc/asterisk-switchboard"}
    assert asterisk_rtp_conf(Settings(), env) == Path("/var/cache/x/etc/asterisk-switchboard/rtp.conf")
    assert asterisk_rtp_conf(Settings(), {}) == Path("/etc/asterisk/rtp.conf")     # AMI on 127.0.0.1
