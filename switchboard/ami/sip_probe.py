"""Is an Asterisk node's SIP stack alive? One SIP ``OPTIONS`` over UDP, any answer is yes.

The node watch (``switchboard.ami.nodes``) asks this before it declares a node lost: a node
whose AMI link is down but whose SIP stack answers still carries its calls (an AMI blip, a
restarted manager), and they must not be recorded as failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets

__all__ = ["options_request", "sip_options_ok"]


def options_request(host: str, port: int, local_port: int, tag: str) -> bytes:
    call_id = f"{tag}@switchboard"
    return (
        f"OPTIONS sip:ping@{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch=z9hG4bK{tag};rport\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: <sip:switchboard@127.0.0.1>;tag={tag}\r\n"
        f"To: <sip:ping@{host}:{port}>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: 1 OPTIONS\r\n"
        f"Accept: application/sdp\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


class _Answer(asyncio.DatagramProtocol):
    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.got: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if data.startswith(b"SIP/2.0 ") and self.tag.encode() in data and not self.got.done():
            self.got.set_result(True)


async def sip_options_ok(host: str, port: int, *, timeout: float = 1.0, tries: int = 2) -> bool:
    """True when ``host:port`` answers a SIP OPTIONS (any status: 200, 401, 404...) in time."""
    tag = secrets.token_hex(6)
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(lambda: _Answer(tag), local_addr=("0.0.0.0", 0),
                                                           remote_addr=(host, port))
    try:
        local_port = transport.get_extra_info("sockname")[1]
        for _ in range(tries):
            transport.sendto(options_request(host, port, local_port, tag))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout / tries):
                    return await asyncio.shield(proto.got)
        return False
    finally:
        transport.close()
