"""SIPp scenarios for callers and agents, and a runner for them.

Why one long file: each scenario generator is a block of SIP message templates; they share
the helpers for in-dialog requests and answers, and tests check them as one set against
the committed examples.

Callers (UAC): INVITE the hotline number from a caller id, then a script of
steps: wait, send DTMF digits as SIP INFO (``application/dtmf-relay``), hang
up, or wait for the far end to hang up. Agents (UAS): answer after N seconds,
ring out, or reject; then talk for a while and hang up, or wait for BYE.

The scenarios are generated from a list of steps so tests can say exactly
what a caller does; ``deploy/local/sipp/*.xml`` holds rendered examples.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

_HEAD = '<?xml version="1.0" encoding="ISO-8859-1" ?>\n<!DOCTYPE scenario SYSTEM "sipp.dtd">\n'

_SDP = """v=0
o=sipp 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=sendrecv"""


@dataclass(frozen=True, slots=True)
class Pause:
    seconds: float


@dataclass(frozen=True, slots=True)
class Dtmf:
    digits: str
    gap: float = 0.25   # seconds between digits


@dataclass(frozen=True, slots=True)
class HangUp:
    """The caller hangs up (sends BYE)."""


@dataclass(frozen=True, slots=True)
class AwaitHangup:
    """Wait for the far end (Asterisk) to hang up (expects BYE)."""

    timeout: float = 120.0


@dataclass(frozen=True, slots=True)
class PlayAudio:
    """Send RTP from a pcap file (SIPp's ``play_pcap_audio``), for ``seconds``: a caller who talks."""

    pcap: str
    seconds: float


Step = Pause | Dtmf | HangUp | AwaitHangup | PlayAudio

#: Audio codecs a caller can offer: SDP payload type and rtpmap.
CODECS = {"PCMU": ("0", "PCMU/8000"), "PCMA": ("8", "PCMA/8000")}


def _sdp(codec: str) -> str:
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {sorted(CODECS)}: {codec!r}")
    pt, rtpmap = CODECS[codec]
    return _SDP.replace("RTP/AVP 0 101", f"RTP/AVP {pt} 101").replace("a=rtpmap:0 PCMU/8000",
                                                                     f"a=rtpmap:{pt} {rtpmap}")


def _cdata(text: str) -> str:
    return "<![CDATA[\n" + text + "\n]]>"


def _in_dialog(method: str, cseq: int, body: str = "", content_type: str = "") -> str:
    headers = [
        f"{method} sip:[service]@[remote_ip]:[remote_port] SIP/2.0",
        "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]",
        "From: <sip:[$caller]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]",
        "To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]",
        "Call-ID: [call_id]",
        f"CSeq: {cseq} {method}",
        "Contact: <sip:[$caller]@[local_ip]:[local_port]>",
        "Max-Forwards: 70",
    ]
    if content_type:
        headers.append(f"Content-Type: {content_type}")
    headers.append("Content-Length: [len]")
    return "\n".join(headers) + "\n\n" + body


def caller_scenario(steps: Sequence[Step], *, caller: str, answer_timeout: float = 30.0,
                    codec: str = "PCMU") -> str:
    """A UAC scenario: INVITE [service] from ``caller`` offering ``codec`` (and DTMF
    events), then the steps."""
    sdp = _sdp(codec)
    out = [_HEAD, '<scenario name="switchboard caller">']
    out.append(f'<nop><action><assignstr assign_to="caller" value="{escape(caller)}"/></action></nop>')
    invite = "\n".join([
        "INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0",
        "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]",
        'From: "[$caller]" <sip:[$caller]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]',
        "To: <sip:[service]@[remote_ip]:[remote_port]>",
        "Call-ID: [call_id]",
        "CSeq: 1 INVITE",
        "Contact: <sip:[$caller]@[local_ip]:[local_port]>",
        "Max-Forwards: 70",
        "Content-Type: application/sdp",
        "Content-Length: [len]",
        "",
        sdp,
    ])
    out.append(f'<send retrans="500">{_cdata(invite)}</send>')
    out.append('<recv response="100" optional="true"/>')
    out.append('<recv response="180" optional="true"/>')
    out.append('<recv response="183" optional="true"/>')
    out.append(f'<recv response="200" rtd="true" timeout="{int(answer_timeout * 1000)}"/>')
    ack = "\n".join([
        "ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0",
        "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]",
        "From: <sip:[$caller]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]",
        "To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]",
        "Call-ID: [call_id]",
        "CSeq: 1 ACK",
        "Contact: <sip:[$caller]@[local_ip]:[local_port]>",
        "Max-Forwards: 70",
        "Content-Length: 0",
        "",
    ])
    out.append(f"<send>{_cdata(ack)}</send>")
    cseq = 2
    ended = False
    for step in steps:
        if isinstance(step, Pause):
            out.append(f'<pause milliseconds="{int(step.seconds * 1000)}"/>')
        elif isinstance(step, PlayAudio):
            out.append(f'<nop><action><exec play_pcap_audio="{escape(step.pcap, {chr(34): "&quot;"})}"/>'
                       '</action></nop>')
            out.append(f'<pause milliseconds="{int(step.seconds * 1000)}"/>')
        elif isinstance(step, Dtmf):
            for i, d in enumerate(step.digits):
                if i:
                    out.append(f'<pause milliseconds="{int(step.gap * 1000)}"/>')
                body = f"Signal={d}\nDuration=160"
                out.append(f"<send>{_cdata(_in_dialog('INFO', cseq, body, 'application/dtmf-relay'))}</send>")
                out.append('<recv response="200"/>')
                cseq += 1
        elif isinstance(step, HangUp):
            out.append(f"<send>{_cdata(_in_dialog('BYE', cseq))}</send>")
            out.append('<recv response="200" crlf="true"/>')
            ended = True
            break
        elif isinstance(step, AwaitHangup):
            out.append(f'<recv request="BYE" timeout="{int(step.timeout * 1000)}"/>')
            out.append(f"<send>{_cdata(_ok_to_last())}</send>")
            ended = True
            break
    if not ended:
        out.append(f"<send>{_cdata(_in_dialog('BYE', cseq))}</send>")
        out.append('<recv response="200" crlf="true"/>')
    out.append("</scenario>")
    return "\n".join(out) + "\n"


def _ok_to_last(extra: str = "", body: str = "") -> str:
    lines = [
        "SIP/2.0 200 OK",
        "[last_Via:]",
        "[last_From:]",
        "[last_To:];tag=[pid]SIPpTag01[call_number]" if extra == "totag" else "[last_To:]",
        "[last_Call-ID:]",
        "[last_CSeq:]",
        "Contact: <sip:[local_ip]:[local_port];transport=[transport]>",
    ]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append("Content-Length: [len]")
    return "\n".join(lines) + "\n\n" + body


_OPTIONS_TAIL = (
    '<nop next="end"/>\n<label id="options"/>\n<send>' + _cdata("\n".join([
        "SIP/2.0 200 OK", "[last_Via:]", "[last_From:]", "[last_To:];tag=[pid]SIPpTag02[call_number]",
        "[last_Call-ID:]", "[last_CSeq:]", "Contact: <sip:[local_ip]:[local_port];transport=[transport]>",
        "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO", "Content-Length: 0", "",
    ])) + '</send>\n<label id="end"/>'
)


def register_scenario(*, user: str, password: str, expires: int = 3600, stay: float = 86400.0,
                      auth: str | None = None) -> str:
    """A UAC scenario that registers ``user`` (digest auth) and stays registered.

    ``auth`` replaces the ``[authentication ...]`` keyword built from ``user`` and ``password``:
    SIPp does not expand ``[fieldN]`` inside that keyword, so a scenario that registers many
    users from an injection file puts the whole keyword in a field and passes ``auth="[field1]"``.

    Run it with the agent's UAS scenario as the out-of-call scenario
    (``-oocsf``) so the same SIPp process answers the calls Asterisk sends to
    the registered contact. It unregisters when the pause ends.
    """
    def register(cseq: int, with_auth: bool, exp: int) -> str:
        lines = [
            "REGISTER sip:[remote_ip]:[remote_port] SIP/2.0",
            "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]",
            f"From: <sip:{user}@[remote_ip]>;tag=[pid]SIPpTag09[call_number]",
            f"To: <sip:{user}@[remote_ip]>",
            "Call-ID: [call_id]",
            f"CSeq: {cseq} REGISTER",
            f"Contact: <sip:{user}@[local_ip]:[local_port];transport=[transport]>",
            f"Expires: {exp}",
            "Max-Forwards: 70",
        ]
        if with_auth:
            lines.append(auth or f"[authentication username={user} password={password}]")
        lines.append("Content-Length: 0")
        return "\n".join(lines) + "\n"

    out = [_HEAD, f'<scenario name="register {escape(user)}">']
    out.append(f'<send retrans="500">{_cdata(register(1, False, expires))}</send>')
    out.append('<recv response="401" auth="true"/>')
    out.append(f'<send retrans="500">{_cdata(register(2, True, expires))}</send>')
    out.append('<recv response="200"/>')
    out.append(f'<pause milliseconds="{int(stay * 1000)}"/>')
    out.append(f'<send retrans="500">{_cdata(register(3, False, 0))}</send>')
    out.append('<recv response="401" auth="true"/>')
    out.append(f'<send retrans="500">{_cdata(register(4, True, 0))}</send>')
    out.append('<recv response="200"/>')
    out.append("</scenario>")
    return "\n".join(out) + "\n"


def agent_scenario(*, answer_after: float = 1.0, mode: str = "answer", talk: float | None = None, proxied: bool = False,
                   ring_timeout: float = 120.0, expect_number: str = "", keys: str = "",
                   keys_after: float = 3.0) -> str:
    """A UAS scenario for one offered call.

    mode: ``answer`` (200 OK after ``answer_after`` s, then wait for BYE or
    hang up after ``talk`` s), ``ringout`` (ring until the caller cancels),
    ``reject`` (486 Busy Here after ``answer_after`` s).
    ``keys``: once answered, after ``keys_after`` s, the agent presses these keys in the call
    (SIP INFO ``application/dtmf-relay``, one per 0.4 s; ``,`` waits 2 s): an in-call feature
    code (``*4,3#``).
    ``expect_number`` (digits, an optional leading ``+``): SIPp fails the call unless
    the INVITE's Request-URI is ``sip:<expect_number>@...`` (the far end of a trunk
    checking what was dialled) and logs the number it got.
    """
    if expect_number and not expect_number.lstrip("+").isdigit():
        raise ValueError(f"expect_number must be digits: {expect_number!r}")
    out = [_HEAD, f'<scenario name="switchboard agent {mode}">']
    # Asterisk qualifies registered contacts with OPTIONS: answer them.
    out.append('<recv request="OPTIONS" optional="true" next="options"/>')
    actions: list[str] = []
    if mode == "ringout":  # keep the INVITE's CSeq for the 487 that answers it
        actions.append('<ereg regexp=".*" search_in="hdr" header="CSeq:" check_it="true" assign_to="invcseq"/>')
    elif mode == "answer" and (talk is not None or keys):
        # the agent sends requests in the dialog (BYE, INFO): keep what they need. Only then: SIPp
        # refuses to start a scenario that sets a variable it never reads ("Variable $c is
        # referenced 1 times!"), so a rejecting phone given a talk time never answered anything
        actions += ['<ereg regexp=".*" search_in="hdr" header="From:" check_it="true" assign_to="inv_from"/>',
                    '<ereg regexp="[^ ]+" search_in="hdr" header="Call-ID:" check_it="true" assign_to="inv_cid"/>',
                    '<ereg regexp=".*" search_in="hdr" header="To:" check_it="true" assign_to="inv_to"/>',
                    '<ereg regexp="&lt;([^&gt;]*)&gt;" search_in="hdr" header="Contact:" check_it="true" '
                    'assign_to="c,peer_uri"/>']
    if expect_number:
        actions += [f'<ereg regexp="^INVITE sip:{expect_number.replace("+", "[+]")}@" search_in="msg" '
                    'check_it="true" assign_to="ruri"/>', '<log message="INVITE for [$ruri]"/>']
    invite = f'<recv request="INVITE" crlf="true" timeout="{int(ring_timeout * 1000)}"'
    if proxied and actions and mode == "answer":
        # behind a proxy (Kamailio, NODES=2) the agent's own requests in the dialog follow the
        # INVITE's Record-Route ([routes] in _uas_request); without one, no Route line is sent
        invite += ' rrs="true"'
    out.append(f'{invite}><action>{"".join(actions)}</action></recv>' if actions else f"{invite}/>")
    ringing = "\n".join([
        "SIP/2.0 180 Ringing", "[last_Via:]", "[last_From:]", "[last_To:];tag=[pid]SIPpTag01[call_number]",
        "[last_Call-ID:]", "[last_CSeq:]", "Contact: <sip:[local_ip]:[local_port];transport=[transport]>",
        "Content-Length: 0", "",
    ])
    out.append(f"<send>{_cdata(ringing)}</send>")
    if mode == "ringout":
        out.append(f'<recv request="CANCEL" timeout="{int(ring_timeout * 1000)}"/>')
        out.append(f"<send>{_cdata(_ok_to_last('totag'))}</send>")
        terminated = "\n".join([
            "SIP/2.0 487 Request Terminated", "[last_Via:]", "[last_From:]",
            "[last_To:];tag=[pid]SIPpTag01[call_number]", "[last_Call-ID:]", "CSeq:[$invcseq]",
            "Content-Length: 0", "",
        ])
        out.append(f"<send>{_cdata(terminated)}</send>")
        out.append('<recv request="ACK" timeout="5000"/>')   # Asterisk ACKs the 487
        out.append(_OPTIONS_TAIL)
        out.append("</scenario>")
        return "\n".join(out) + "\n"
    out.append(f'<pause milliseconds="{int(answer_after * 1000)}"/>')
    if mode == "reject":
        busy = "\n".join([
            "SIP/2.0 486 Busy Here", "[last_Via:]", "[last_From:]", "[last_To:];tag=[pid]SIPpTag01[call_number]",
            "[last_Call-ID:]", "[last_CSeq:]", "Content-Length: 0", "",
        ])
        out.append(f"<send>{_cdata(busy)}</send>")
        out.append('<recv request="ACK" timeout="10000"/>')
        out.append(_OPTIONS_TAIL)
        out.append("</scenario>")
        return "\n".join(out) + "\n"
    out.append(f'<send retrans="500">{_cdata(_ok_to_last("totag", _SDP))}</send>')
    out.append('<recv request="ACK" timeout="10000"/>')
    sent = 0
    for i, key in enumerate(keys):
        if key == ",":                # a pause (for the beep that asks for the rest of a code)
            out.append('<pause milliseconds="2000"/>')
            continue
        out.append(f'<pause milliseconds="{int((keys_after if i == 0 else 0.4) * 1000)}"/>')
        sent += 1
        body = f"Signal={key}\nDuration=160\n"
        out.append(f"<send>{_cdata(_uas_request('INFO', sent, body, 'application/dtmf-relay', proxied=proxied))}</send>")
        out.append('<recv response="200" timeout="10000"/>')
    if talk is not None:
        out.append(f'<pause milliseconds="{int(talk * 1000)}"/>')
        out.append(f"<send>{_cdata(_uas_request('BYE', sent + 1, proxied=proxied))}</send>")
        out.append('<recv response="200" timeout="10000"/>')
    else:
        out.append('<recv request="BYE" timeout="3600000"/>')
        out.append(f"<send>{_cdata(_ok_to_last())}</send>")
    out.append(_OPTIONS_TAIL)
    out.append("</scenario>")
    return "\n".join(out) + "\n"


def _uas_request(method: str, cseq: int, body: str = "", content_type: str = "", *, proxied: bool = False) -> str:
    """A request the answering side (an agent) sends in the dialog of the INVITE it received."""
    tag = "bye" if method == "BYE" else f"{method.lower()}{cseq}"
    lines = [
        f"{method} [$peer_uri] SIP/2.0",
        # Out-of-call scenarios share one [call_number], so [branch] would repeat from one call
        # to the next and Asterisk would answer a new request from the previous one's transaction:
        # the branch and the Call-ID come from this call's INVITE.
        f"Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-[pid]-{tag}-[$inv_cid]",
        "From:[$inv_to];tag=[pid]SIPpTag01[call_number]",
        "To:[$inv_from]",
        "Call-ID: [$inv_cid]",
        f"CSeq: {cseq} {method}",
        "X-Agent-Peer-Contact: [$c]",
        *(["[routes]"] if proxied else []),   # behind Kamailio: the INVITE's Record-Route
        "Max-Forwards: 70",
    ]
    if not body:
        return "\n".join([*lines, "Content-Length: 0", ""])
    return "\n".join([*lines, f"Content-Type: {content_type}", "Content-Length: [len]", "", body])


def sipp_binary() -> str:
    path = shutil.which("sipp")
    if not path:
        raise RuntimeError("sipp not found: install Debian's sip-tester (make deps does)")
    return path


@dataclass
class SippResult:
    returncode: int
    stdout: str
    stderr: str
    errors: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


async def run_sipp(scenario_xml: str, *, remote: str, service: str = "", local_port: int = 0,
                   calls: int = 1, rate: float = 1.0, timeout: float = 120.0,
                   workdir: str | os.PathLike[str] | None = None, extra: Sequence[str] = ()) -> SippResult:
    """Run SIPp with a scenario to completion (bounded by ``timeout``)."""
    tmp = Path(tempfile.mkdtemp(prefix="sipp-", dir=workdir))
    scen = tmp / "scenario.xml"
    scen.write_text(scenario_xml, encoding="ascii", errors="xmlcharrefreplace")
    args = [sipp_binary(), remote, "-sf", str(scen), "-m", str(calls), "-r", str(rate),
            "-i", "127.0.0.1", "-p", str(local_port), "-nostdin", "-trace_err",
            "-timeout", f"{int(timeout)}s", "-timeout_error", "-max_recv_loops", "1000"]
    if service:
        args += ["-s", service]
    args += list(extra)
    proc = await asyncio.create_subprocess_exec(*args, cwd=tmp, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout + 10)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
    errors = "".join(p.read_text(errors="replace") for p in tmp.glob("*_errors.log"))  # noqa: ASYNC240
    return SippResult(proc.returncode if proc.returncode is not None else -1,
                      out.decode(errors="replace"), err.decode(errors="replace"), errors)


class SippAgent:
    """A softphone played by SIPp: registers as ``endpoint`` and answers (or
    rings out, or rejects) every call Asterisk offers it.

    One SIPp process: the REGISTER scenario is the main call, the UAS scenario
    is the out-of-call scenario that handles each INVITE (and OPTIONS).
    """

    def __init__(self, *, endpoint: str, password: str, remote: str, port: int, mode: str = "answer",
                 answer_after: float = 1.0, talk: float | None = None, workdir: str | os.PathLike[str] | None = None,
                 stay: float = 3600.0, keys: str = "", keys_after: float = 3.0) -> None:
        self.endpoint = endpoint
        self.password = password
        self.remote = remote
        self.port = port
        self.mode = mode
        self.answer_after = answer_after
        self.talk = talk
        self.stay = stay
        self.keys, self.keys_after = keys, keys_after
        self._dir = Path(tempfile.mkdtemp(prefix=f"sipp-{endpoint}-", dir=workdir))
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def errors(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self._dir.glob("*_errors.log"))

    def calls_answered(self) -> int:
        return self.errors.count("Received out-of-call INVITE")

    async def start(self, *, registered_check: object = None) -> None:
        reg = self._dir / "register.xml"
        uas = self._dir / "uas.xml"
        reg.write_text(register_scenario(user=self.endpoint, password=self.password, stay=self.stay))
        uas.write_text(agent_scenario(answer_after=self.answer_after, mode=self.mode, talk=self.talk,
                                      keys=self.keys, keys_after=self.keys_after))
        args = [sipp_binary(), self.remote, "-sf", str(reg), "-oocsf", str(uas), "-m", "1",
                "-i", "127.0.0.1", "-p", str(self.port), "-nostdin", "-trace_err",
                "-max_recv_loops", "1000"]
        self.proc = await asyncio.create_subprocess_exec(
            *args, cwd=self._dir, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, start_new_session=True)

    async def stop(self, *, timeout: float = 5.0) -> None:
        await stop_sipp(self.proc, timeout=timeout)


async def stop_sipp(proc: asyncio.subprocess.Process | None, *, timeout: float = 5.0) -> None:
    """Terminate a SIPp process that is still running; kill it if it does not go in ``timeout``."""
    if proc is None or proc.returncode is not None:
        return
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()


def feature_code_scenario(*, user: str, password: str, code: str) -> str:
    """An agent's softphone dials a feature code (``*20`` ready...): INVITE, digest
    challenge, authenticated INVITE, answered by the switchboard, which beeps and hangs up."""
    def invite(cseq: int, auth: bool) -> str:
        lines = [
            f"INVITE sip:{code}@[remote_ip]:[remote_port] SIP/2.0",
            "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]",
            f"From: <sip:{user}@[remote_ip]>;tag=[pid]SIPpTag07[call_number]",
            f"To: <sip:{code}@[remote_ip]:[remote_port]>",
            "Call-ID: [call_id]",
            f"CSeq: {cseq} INVITE",
            f"Contact: <sip:{user}@[local_ip]:[local_port]>",
            "Max-Forwards: 70",
            "Content-Type: application/sdp",
        ]
        if auth:
            lines.append(f"[authentication username={user} password={password}]")
        lines += ["Content-Length: [len]", "", _SDP]
        return "\n".join(lines)

    def ack(cseq: int, to_tag: bool) -> str:
        return "\n".join([
            f"ACK sip:{code}@[remote_ip]:[remote_port] SIP/2.0",
            "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]",
            f"From: <sip:{user}@[remote_ip]>;tag=[pid]SIPpTag07[call_number]",
            f"To: <sip:{code}@[remote_ip]:[remote_port]>" + ("[peer_tag_param]" if to_tag else ""),
            "Call-ID: [call_id]",
            f"CSeq: {cseq} ACK",
            "Max-Forwards: 70",
            "Content-Length: 0",
            "",
        ])

    out = [_HEAD, f'<scenario name="feature code {escape(code)}">']
    out.append(f'<send retrans="500">{_cdata(invite(1, False))}</send>')
    out.append('<recv response="100" optional="true"/>')
    out.append('<recv response="401" auth="true"/>')
    out.append(f"<send>{_cdata(ack(1, True))}</send>")
    out.append(f'<send retrans="500">{_cdata(invite(2, True))}</send>')
    out.append('<recv response="100" optional="true"/>')
    out.append('<recv response="180" optional="true"/>')
    out.append('<recv response="183" optional="true"/>')
    out.append('<recv response="200" timeout="15000"/>')
    out.append(f"<send>{_cdata(ack(2, True))}</send>")
    out.append('<recv request="BYE" timeout="20000"/>')
    out.append(f"<send>{_cdata(_ok_to_last())}</send>")
    out.append("</scenario>")
    return "\n".join(out) + "\n"


def write_examples(folder: str | os.PathLike[str]) -> list[Path]:
    """Render example scenarios (what tests and the demo generate) into ``folder``."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    examples = {
        "caller_pension_then_wait.xml": caller_scenario(
            [Pause(2.5), Dtmf("1"), Pause(2.5), Dtmf("1"), Pause(2.5), Dtmf("1"), AwaitHangup(240)],
            caller="02838123456"),
        "caller_hangs_up_in_menu.xml": caller_scenario([Pause(2.5), Dtmf("1"), Pause(3), HangUp()],
                                                       caller="02437650001"),
        "agent_register.xml": register_scenario(user="agent1001", password="PASSWORD"),
        "agent_answer_after_2s_talk_10s.xml": agent_scenario(answer_after=2, talk=10),
        "agent_answer_wait_for_bye.xml": agent_scenario(answer_after=2),
        "agent_ringout.xml": agent_scenario(mode="ringout"),
        "agent_reject.xml": agent_scenario(mode="reject", answer_after=1),
        "agent_feature_code_ready.xml": feature_code_scenario(user="agent1001", password="PASSWORD", code="*20"),
    }
    written = []
    for name, xml in examples.items():
        path = out / name
        path.write_text(xml)
        written.append(path)
    return written


if __name__ == "__main__":  # python -m switchboard.demo.sipp deploy/local/sipp
    import sys

    for p in write_examples(sys.argv[1] if len(sys.argv) > 1 else "deploy/local/sipp"):
        print(p)
