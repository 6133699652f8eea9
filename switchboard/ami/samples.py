"""Synthetic Asterisk 22 AMI traffic, byte-for-byte in the shape Asterisk 22 writes it.

Used by the parser benchmark and by tests that need volume. Tests that need
truth replay captures of the real Asterisk 22 (``tests/fixtures/ami/``); this
module only reproduces their layout (header order, channel snapshot blocks,
URL-encoded ``Env`` of ``AsyncAGIStart`` and ``Result`` of ``AsyncAGIExec``).
"""

from __future__ import annotations

import random
from urllib.parse import quote

__all__ = ["BANNER", "call_frames", "generate_stream"]

BANNER = b"Asterisk Call Manager/11.0.0\r\n"  # the AMI version of Asterisk 22

_PROVINCE_CALLERS = ["02438251234", "02838221234", "02363821234", "02213851234", "02923761234", "02973861234"]


def _snapshot(prefix: str, channel: str, state: int, cid: str, exten: str, uniqueid: str, linkedid: str,
              *, context: str = "hotline", priority: int = 1, language: str = "vi") -> str:
    desc = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}[state]
    return (
        f"{prefix}Channel: {channel}\r\n"
        f"{prefix}ChannelState: {state}\r\n"
        f"{prefix}ChannelStateDesc: {desc}\r\n"
        f"{prefix}CallerIDNum: {cid}\r\n"
        f"{prefix}CallerIDName: <unknown>\r\n"
        f"{prefix}ConnectedLineNum: <unknown>\r\n"
        f"{prefix}ConnectedLineName: <unknown>\r\n"
        f"{prefix}Language: {language}\r\n"
        f"{prefix}AccountCode: \r\n"
        f"{prefix}Context: {context}\r\n"
        f"{prefix}Exten: {exten}\r\n"
        f"{prefix}Priority: {priority}\r\n"
        f"{prefix}Uniqueid: {uniqueid}\r\n"
        f"{prefix}Linkedid: {linkedid}\r\n"
    )


def _event(name: str, privilege: str, body: str) -> str:
    return f"Event: {name}\r\nPrivilege: {privilege}\r\n{body}"


def _stamped(frames: list[str], t: float) -> list[str]:
    """manager.conf has ``timestampevents = yes``: a Timestamp line right after Privilege."""
    out = []
    for i, frame in enumerate(frames):
        head, sep, rest = frame.partition(",all\r\n")
        out.append(f"{head}{sep}Timestamp: {t + i * 0.000731:.6f}\r\n{rest}")
    return out


def _agi_env(channel: str, uniqueid: str, cid: str, exten: str) -> str:
    lines = [
        "agi_request: async",
        f"agi_channel: {channel}",
        "agi_language: vi",
        "agi_type: PJSIP",
        f"agi_uniqueid: {uniqueid}",
        "agi_version: 22.10.1+dfsg+~cs6.17.60671434-1",
        f"agi_callerid: {cid}",
        "agi_calleridname: Nguyễn Văn An",
        "agi_callingpres: 0",
        "agi_callingani2: 0",
        "agi_callington: 0",
        "agi_callingtns: 0",
        f"agi_dnid: {exten}",
        "agi_rdnis: unknown",
        "agi_context: hotline",
        f"agi_extension: {exten}",
        "agi_priority: 2",
        "agi_enhanced: 0.0",
        "agi_accountcode: ",
        "agi_threadid: 140245067949760",
    ]
    return quote("\n".join(lines) + "\n\n", safe="")


def call_frames(n: int, rng: random.Random, *, t0: int = 1_750_000_000) -> list[str]:
    """Frames of one hotline call: IVR in AsyncAGI, then bridged to an agent."""
    uid = f"{t0 + n}.{2 * n}"
    auid = f"{t0 + n}.{2 * n + 1}"
    cid = rng.choice(_PROVINCE_CALLERS)
    exten = "19009068"
    chan = f"PJSIP/trunk-{2 * n:08x}"
    achan = f"PJSIP/agent{n % 300:03d}-{2 * n + 1:08x}"
    snap = _snapshot("", chan, 4, cid, exten, uid, uid)
    up = _snapshot("", chan, 6, cid, exten, uid, uid, priority=2)
    frames: list[str] = [
        _event("Newchannel", "call,all", snap),
        _event("VarSet", "dialplan,all", up + "Variable: __SB_CALL_ID\r\nValue: " + uid + "\r\n"),
        _event("Newexten", "dialplan,all", up + "Extension: 19009068\r\nApplication: Answer\r\nAppData: \r\n"),
        _event("Newstate", "call,all", up),
        _event("Newexten", "dialplan,all", up + "Extension: 19009068\r\nApplication: AGI\r\nAppData: agi:async\r\n"),
        _event("AsyncAGIStart", "agi,all", up + f"Env: {_agi_env(chan, uid, cid, exten)}\r\n"),
    ]
    for k in range(rng.randint(3, 6)):
        cmd_id = f"sb-{n}-{k}"
        digit = rng.choice(["49", "50", "51", "0"])
        result = quote(f"200 result={digit} endpos={rng.randint(1000, 90000)}\n", safe="")
        frames.append(_event("VarSet", "dialplan,all", up + f"Variable: SB_STEP\r\nValue: menu{k}\r\n"))
        frames.append(_event("AsyncAGIExec", "agi,all", up + f"Result: {result}\r\nCommandId: {cmd_id}\r\n"))
        frames.append(_event("DeviceStateChange", "call,all", f"Device: PJSIP/agent{rng.randint(0, 299):03d}\r\n"
                             f"State: {rng.choice(['NOT_INUSE', 'INUSE', 'RINGING'])}\r\n"))
    asnap = _snapshot("", achan, 0, "19009068", "s", auid, uid, context="agents")
    frames += [
        _event("Newchannel", "call,all", asnap),
        _event("DialBegin", "call,all", _snapshot("", chan, 6, cid, exten, uid, uid)
               + _snapshot("Dest", achan, 0, "19009068", "s", auid, uid, context="agents")
               + f"DialString: agent{n % 300:03d}\r\n"),
        _event("Newstate", "call,all", _snapshot("", achan, 5, "19009068", "s", auid, uid, context="agents")),
        _event("DialEnd", "call,all", _snapshot("", chan, 6, cid, exten, uid, uid)
               + _snapshot("Dest", achan, 6, "19009068", "s", auid, uid, context="agents")
               + "DialStatus: ANSWER\r\n"),
        _event("AsyncAGIEnd", "agi,all", up),
    ]
    bridge = f"{rng.getrandbits(32):08x}-1c2d-4e5f-8a9b-{n:012x}"
    bhead = (f"BridgeUniqueid: {bridge}\r\nBridgeType: basic\r\nBridgeTechnology: simple_bridge\r\n"
             "BridgeCreator: <unknown>\r\nBridgeName: <unknown>\r\nBridgeNumChannels: 1\r\n"
             "BridgeVideoSourceMode: none\r\n")
    frames += [
        _event("BridgeEnter", "call,all", bhead + up),
        _event("BridgeEnter", "call,all", bhead.replace("NumChannels: 1", "NumChannels: 2")
               + _snapshot("", achan, 6, "19009068", "s", auid, uid, context="agents")),
        _event("VarSet", "dialplan,all", _snapshot("", achan, 6, "19009068", "s", auid, uid, context="agents")
               + "Variable: BRIDGEPEER\r\nValue: " + chan + "\r\n"),
        _event("BridgeLeave", "call,all", bhead + up),
        _event("Hangup", "call,all", up + "Cause: 16\r\nCause-txt: Normal Clearing\r\n"),
        _event("BridgeLeave", "call,all", bhead + _snapshot("", achan, 6, "19009068", "s", auid, uid,
                                                            context="agents")),
        _event("Hangup", "call,all", _snapshot("", achan, 6, "19009068", "s", auid, uid, context="agents")
               + "Cause: 16\r\nCause-txt: Normal Clearing\r\n"),
    ]
    return _stamped(frames, float(t0 + n))


def generate_stream(min_events: int, *, seed: int = 22) -> tuple[bytes, int]:
    """A banner and at least ``min_events`` frames (events + action responses).

    Returns (bytes, number of frames after the banner).
    """
    rng = random.Random(seed)
    parts: list[str] = []
    count = 0
    n = 0
    while count < min_events:
        frames = call_frames(n, rng)
        if n % 10 == 0:
            frames.append(f"Response: Success\r\nActionID: sb-{n}\r\nMessage: Originate successfully queued\r\n")
            frames.append(f"Response: Success\r\nActionID: ping-{n}\r\nPing: Pong\r\nTimestamp: {1_750_000_000 + n}.000000\r\n")
        parts.extend(f + "\r\n" for f in frames)
        count += len(frames)
        n += 1
    return BANNER + "".join(parts).encode("utf-8"), count
