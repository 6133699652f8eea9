"""Supervisor listen / whisper / barge: the ChanSpy Originate, built from server-side facts only.

Pure: no asyncio, no AMI. The API resolves *who* spies (the supervisor's own
SIP endpoint, bound to their token) and *on what* (the Uniqueid of the
agent's bridged leg, from the ACD); nothing here comes from client text.

ChanSpy options (Asterisk 22, ``apps/app_chanspy.c``):

* ``u``  the first argument is a channel *uniqueid* or a full channel name
  (``ast_channel_get_by_name``), not a name prefix: exactly one channel,
  and the "digits + #" jump to another channel is disabled;
* ``q``  no beep and no spoken channel name on the supervisor's side;
* ``E``  leave ChanSpy (and so hang up the supervisor's leg) when the
  spied-on channel hangs up;
* listen: nothing more (hear both directions, speak to nobody);
* whisper ``w``: the supervisor's voice goes to the spied-on channel (the agent) only;
* barge ``B``: the supervisor's voice goes to the spied-on channel and to the
  channel it is bridged with (the caller).
"""

from __future__ import annotations

import re

__all__ = ["CHANSPY_OPTIONS", "ENDPOINT_RE", "chanspy_originate"]

#: mode -> ChanSpy options
CHANSPY_OPTIONS: dict[str, str] = {"listen": "qEu", "whisper": "qwEu", "barge": "qBEu"}

#: A PJSIP section name (the same rule as an agent's ``sip_endpoint``).
ENDPOINT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: An agent leg's Uniqueid as the ACD sets it (``ChannelId`` of its Originate), or Asterisk's own.
_UNIQUEID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,149}")


def chanspy_originate(*, supervisor_endpoint: str, target_uniqueid: str, mode: str, channel_id: str,
                      agent_id: str, timeout_ms: int = 30_000) -> dict[str, str]:
    """The AMI ``Originate`` that rings the supervisor's phone and runs ChanSpy on the agent's leg.

    ``ValueError`` for an unknown mode or a value that is not a plain endpoint / uniqueid
    (they cannot carry a ``,``, ``&``, ``/`` or ``@`` into the dial string or the options)."""
    if mode not in CHANSPY_OPTIONS:
        raise ValueError(f"unknown spy mode {mode!r}")
    if not ENDPOINT_RE.fullmatch(supervisor_endpoint):
        raise ValueError(f"not a PJSIP endpoint name: {supervisor_endpoint!r}")
    for what, value in (("target", target_uniqueid), ("channel id", channel_id)):
        if not _UNIQUEID_RE.fullmatch(value):
            raise ValueError(f"not a channel uniqueid ({what}): {value!r}")
    label = re.sub(r"[^A-Za-z0-9_.-]", "", agent_id)[:64]
    return {
        "Action": "Originate",
        "Channel": f"PJSIP/{supervisor_endpoint}",
        "ChannelId": channel_id,
        "Application": "ChanSpy",
        "Data": f"{target_uniqueid},{CHANSPY_OPTIONS[mode]}",
        "CallerID": f'"{mode} {label}" <spy>',
        "Async": "true",
        "Timeout": str(timeout_ms),
    }
