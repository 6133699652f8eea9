"""Record the raw bytes Asterisk sends on one AMI connection (for replay fixtures).

The recorder logs in on its own connection (MD5 challenge) with ``Events: on``
and keeps every byte it reads, banner included, until ``stop()`` or until
Asterisk closes the link (a restart). ``frames_of_calls`` narrows a recording
to the frames of some calls (by ``Linkedid``) without changing a byte of them,
so a fixture recorded on a shared Asterisk holds no other session's calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Container

from .protocol import AmiParser, Response

__all__ = ["AmiRecorder", "frames_of_calls"]


class AmiRecorder:
    """One raw AMI connection that records everything it receives."""

    def __init__(self, host: str, port: int, username: str, secret: str) -> None:
        self._host, self._port, self._username, self._secret = host, port, username, secret
        self.data = bytearray()
        self.closed_by_peer = False
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._got = asyncio.Event()

    async def start(self, *, timeout: float = 5.0) -> None:
        """Connect, log in, start recording; returns once the login was accepted."""
        async with asyncio.timeout(timeout):
            reader, self._writer = await asyncio.open_connection(self._host, self._port)
            self._task = asyncio.create_task(self._read(reader), name="ami-recorder")
            self._writer.write(b"Action: Challenge\r\nActionID: rec-c\r\nAuthType: MD5\r\n\r\n")
            challenge = (await self._response("rec-c")).headers["Challenge"]
            key = hashlib.md5((challenge + self._secret).encode()).hexdigest()  # AMI challenge login is MD5
            self._writer.write(f"Action: Login\r\nActionID: rec-l\r\nUsername: {self._username}\r\nAuthType: MD5\r\n"
                               f"Key: {key}\r\nEvents: on\r\n\r\n".encode())
            login = await self._response("rec-l")
            if not login.success:
                raise ConnectionError(f"AMI recorder login refused: {login.message}")

    def send(self, raw: bytes) -> None:
        """Write a raw action (its bytes are the caller's business)."""
        assert self._writer is not None
        self._writer.write(raw)

    async def wait_closed(self, *, timeout: float) -> None:
        """Wait until Asterisk closes the link (e.g. ``core restart now``)."""
        assert self._task is not None
        async with asyncio.timeout(timeout):
            await asyncio.shield(self._task)

    async def stop(self) -> bytes:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._writer is not None:
            self._writer.close()
        return bytes(self.data)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while data := await reader.read(65536):
            self.data.extend(data)
            self._got.set()
        self.closed_by_peer = True
        self._got.set()

    async def _response(self, action_id: str) -> Response:
        while True:
            for msg in AmiParser().feed(bytes(self.data)):
                if isinstance(msg, Response) and msg.action_id == action_id:
                    return msg
            if self.closed_by_peer:
                raise ConnectionError("AMI closed the connection during the recorder's login")
            self._got.clear()
            await self._got.wait()


def frames_of_calls(data: bytes, linkedids: Container[str]) -> bytes:
    """The banner and every frame except channel events of calls not in ``linkedids``.

    A frame is a channel event when it has a ``Linkedid`` header; frames
    without one (responses, FullyBooted, DeviceStateChange...) are kept.
    Kept frames are byte-for-byte the recorded ones.
    """
    nl = data.find(b"\r\n")
    out = [data[:nl + 2]]
    body = data[nl + 2:]
    end = body.rfind(b"\r\n\r\n")
    for frame in body[:end].split(b"\r\n\r\n") if end >= 0 else []:
        i = frame.find(b"\r\nLinkedid: ")
        if i >= 0:
            j = frame.find(b"\r\n", i + 12)
            linkedid = frame[i + 12:j if j >= 0 else len(frame)].decode("utf-8", "replace")
            if linkedid not in linkedids:
                continue
        out.append(frame + b"\r\n\r\n")
    return b"".join(out)
