"""The campaign's contacts as the PSTN behind the trunk: one SIPp UAS on STACK_TRUNK_OUT_PORT
that plays each contact by the number dialled (the INVITE's Request-URI): busy (486), no
answer (rings until Asterisk cancels), answer and press a key (SIP INFO dtmf-relay) a few
seconds later, or answer and listen until Asterisk hangs up. Every INVITE's number is logged
(``INVITE for <number>``) so the test counts who was called how often."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from xml.sax.saxutils import escape

from switchboard.demo.sipp import _HEAD, _OPTIONS_TAIL, _SDP, _cdata, _ok_to_last

__all__ = ["contact_scenario", "invited_numbers"]


def _alt(numbers: Iterable[str]) -> str:
    nums = sorted(set(numbers))
    return "|".join(nums) if nums else "NONE"


def contact_scenario(*, busy: Iterable[str] = (), no_answer: Iterable[str] = (),
                     keys: Mapping[str, str] | None = None, key_after: float = 14.0) -> str:
    """A UAS scenario for any number of campaign calls (run it with ``-m N``)."""
    keys = dict(keys or {})
    by_key: dict[str, list[str]] = {}
    for number, key in keys.items():
        by_key.setdefault(key, []).append(number)
    out = [_HEAD, '<scenario name="campaign contacts">', '<recv request="OPTIONS" optional="true" next="options"/>']
    actions = [
        '<ereg regexp=".*" search_in="hdr" header="From:" check_it="true" assign_to="inv_from"/>',
        '<ereg regexp="[^ ]+" search_in="hdr" header="Call-ID:" check_it="true" assign_to="inv_cid"/>',
        '<ereg regexp=".*" search_in="hdr" header="To:" check_it="true" assign_to="inv_to"/>',
        '<ereg regexp=".*" search_in="hdr" header="CSeq:" check_it="true" assign_to="invcseq"/>',
        '<ereg regexp="&lt;([^&gt;]*)&gt;" search_in="hdr" header="Contact:" check_it="true" assign_to="c,peer_uri"/>',
        '<ereg regexp="^INVITE sip:([0-9+]+)@" search_in="msg" check_it="true" assign_to="r,num"/>',
        '<log message="INVITE for [$num] ([$r])"/>',
        f'<ereg regexp="^INVITE sip:({_alt(busy)})@" search_in="msg" check_it="false" assign_to="isbusy"/>',
        f'<ereg regexp="^INVITE sip:({_alt(no_answer)})@" search_in="msg" check_it="false" assign_to="isnoans"/>',
    ]
    for key, numbers in sorted(by_key.items()):
        actions.append(f'<ereg regexp="^INVITE sip:({_alt(numbers)})@" search_in="msg" check_it="false" '
                       f'assign_to="key{key}"/>')
    out.append(f'<recv request="INVITE" crlf="true" timeout="600000"><action>{"".join(actions)}</action></recv>')
    ringing = "\n".join(["SIP/2.0 180 Ringing", "[last_Via:]", "[last_From:]",
                         "[last_To:];tag=[pid]SIPpTag01[call_number]", "[last_Call-ID:]", "[last_CSeq:]",
                         "Contact: <sip:[local_ip]:[local_port];transport=[transport]>", "Content-Length: 0", ""])
    out.append(f"<send>{_cdata(ringing)}</send>")
    out.append('<nop next="busy" test="isbusy"/>')
    out.append('<nop next="noans" test="isnoans"/>')
    out.append('<pause milliseconds="800"/>')
    out.append(f'<send retrans="500">{_cdata(_ok_to_last("totag", _SDP))}</send>')
    out.append('<recv request="ACK" timeout="10000"/>')
    out.append('<nop><action><log message="answered [$num] [$inv_cid] [$inv_from] [$inv_to] [$c] [$peer_uri]"/></action></nop>')
    for key in sorted(by_key):
        out.append(f'<nop next="press{key}" test="key{key}"/>')
    # listen until Asterisk hangs up
    out.append('<recv request="BYE" timeout="300000"/>')
    out.append(f"<send>{_cdata(_ok_to_last())}</send>")
    out.append('<nop next="end"/>')
    for key in sorted(by_key):
        info = "\n".join([
            "INFO [$peer_uri] SIP/2.0",
            "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-[pid]-info-[$inv_cid]",
            "From:[$inv_to];tag=[pid]SIPpTag01[call_number]", "To:[$inv_from]", "Call-ID: [$inv_cid]",
            "CSeq: 1 INFO", "Max-Forwards: 70", "X-Contact: [$c]", "Content-Type: application/dtmf-relay",
            "Content-Length: [len]", "",
            f"Signal={escape(key)}", "Duration=160"])
        out.append(f'<label id="press{key}"/>')
        out.append(f'<pause milliseconds="{int(key_after * 1000)}"/>')
        out.append(f"<send>{_cdata(info)}</send>")
        out.append('<recv response="200" timeout="10000"/>')
        out.append('<recv request="BYE" timeout="300000"/>')
        out.append(f"<send>{_cdata(_ok_to_last())}</send>")
        out.append('<nop next="end"/>')
    busy_resp = "\n".join(["SIP/2.0 486 Busy Here", "[last_Via:]", "[last_From:]",
                           "[last_To:];tag=[pid]SIPpTag01[call_number]", "[last_Call-ID:]", "[last_CSeq:]",
                           "Content-Length: 0", ""])
    out.append('<label id="busy"/>')
    out.append('<pause milliseconds="500"/>')
    out.append(f"<send>{_cdata(busy_resp)}</send>")
    out.append('<recv request="ACK" timeout="10000"/>')
    out.append('<nop next="end"/>')
    terminated = "\n".join(["SIP/2.0 487 Request Terminated", "[last_Via:]", "[last_From:]",
                            "[last_To:];tag=[pid]SIPpTag01[call_number]", "[last_Call-ID:]", "CSeq:[$invcseq]",
                            "Content-Length: 0", ""])
    out.append('<label id="noans"/>')
    out.append('<recv request="CANCEL" timeout="300000"/>')
    out.append(f"<send>{_cdata(_ok_to_last('totag'))}</send>")
    out.append(f"<send>{_cdata(terminated)}</send>")
    out.append('<recv request="ACK" timeout="10000"/>')
    out.append(_OPTIONS_TAIL)
    out.append("</scenario>")
    return "\n".join(out) + "\n"


def invited_numbers(sipp_stdout_and_logs: str) -> list[str]:
    return re.findall(r"INVITE for ([0-9+]+)", sipp_stdout_and_logs)


async def run_contacts(scenario_xml: str, *, remote: str, port: int, calls: int, timeout: float) -> tuple[int, str]:
    """Run the contacts' UAS for ``calls`` calls (killed with the task); (return code, every
    ``INVITE for`` log line and error). SIPp's -trace_logs file holds the logged numbers."""
    import asyncio
    import tempfile
    from pathlib import Path

    from switchboard.demo.sipp import sipp_binary

    tmp = Path(tempfile.mkdtemp(prefix="sipp-contacts-"))
    scen = tmp / "scenario.xml"
    scen.write_text(scenario_xml, encoding="ascii", errors="xmlcharrefreplace")
    args = [sipp_binary(), remote, "-sf", str(scen), "-m", str(calls), "-i", "127.0.0.1", "-p", str(port),
            "-nostdin", "-trace_err", "-trace_logs", "-timeout", f"{int(timeout)}s", "-max_recv_loops", "1000"]
    proc = await asyncio.create_subprocess_exec(*args, cwd=tmp, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        await asyncio.wait_for(proc.communicate(), timeout + 10)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    finally:
        text = "".join(p.read_text(errors="replace") for p in sorted(tmp.glob("*_logs.log")))  # noqa: ASYNC240
        text += "".join(p.read_text(errors="replace") for p in sorted(tmp.glob("*_errors.log")))  # noqa: ASYNC240
        (tmp / "collected.txt").write_text(text)
    return (proc.returncode if proc.returncode is not None else -1), text
