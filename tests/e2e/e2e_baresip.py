"""baresip (Debian's package) as an agent's softphone, driven over its ``ctrl_tcp`` module.

The phone registers to the local Asterisk with the agent's generated credentials, sends a
440 Hz tone (``ausine``) as its microphone, plays what it receives into nothing (``aubridge``)
and dumps both directions to WAV files (``sndfile``) in its folder. Commands and events are
netstring-framed JSON (``{"command": "dial", "params": "*20", "token": "..."}``; events carry
``"event": true`` and a ``type`` such as ``REGISTER_OK``, ``CALL_INCOMING``, ``CALL_ESTABLISHED``,
``CALL_CLOSED``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from e2e_service import free_port_on, until

BARESIP = "/usr/bin/baresip"

CONFIG = """poll_method epoll
sip_listen 127.0.0.1:{sip_port}
audio_player aubridge,nowhere
audio_source ausine,440
ausrc_srate 48000
ausrc_channels 2
auplay_srate 48000
audio_alert aubridge,nowhere
module_path /usr/lib/baresip/modules
module g711.so
module ausine.so
module aubridge.so
module sndfile.so
module_app account.so
module_app menu.so
module_app ctrl_tcp.so
ctrl_tcp_listen 127.0.0.1:{ctrl_port}
rtp_stats yes
"""


class Baresip:
    def __init__(self, folder: Path, ctrl_port: int) -> None:
        self.folder, self.ctrl_port = folder, ctrl_port
        self.proc: asyncio.subprocess.Process | None = None
        self.events: list[dict[str, Any]] = []
        self.responses: dict[str, dict[str, Any]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._tokens = itertools.count(1)

    async def _connect(self) -> bool:
        try:
            reader, self._writer = await asyncio.open_connection("127.0.0.1", self.ctrl_port)
        except OSError:
            return False
        self._reader_task = asyncio.create_task(self._read(reader))
        return True

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while True:
            size = int((await reader.readuntil(b":"))[:-1])
            body = json.loads((await reader.readexactly(size + 1))[:-1])
            if body.get("event"):
                self.events.append(body)
            elif body.get("response"):
                self.responses[str(body.get("token"))] = body

    async def command(self, command: str, params: str = "", *, timeout: float = 10.0) -> dict[str, Any]:
        assert self._writer is not None
        token = f"t{next(self._tokens)}"
        data = json.dumps({"command": command, "params": params, "token": token}).encode()
        self._writer.write(b"%d:%s," % (len(data), data))
        await self._writer.drain()
        await until(lambda: token in self.responses, timeout=timeout, what=f"baresip answer to {command}")
        return self.responses[token]

    def seen(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind]

    async def wait_event(self, kind: str, *, after: int = 0, timeout: float = 30.0) -> dict[str, Any]:
        await until(lambda: len(self.seen(kind)) > after, timeout=timeout, what=f"baresip event {kind}")
        return self.seen(kind)[after]

    def wavs(self) -> list[Path]:
        return sorted(self.folder.glob("*.wav"))

    async def stop(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
        if self._writer is not None:
            self._writer.close()
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@contextlib.asynccontextmanager
async def baresip_agent(env: dict[str, str], *, endpoint: str, password: str) -> AsyncIterator[Baresip]:
    """A baresip phone registered as ``endpoint`` to the local stack (its folder is removed after)."""
    folder = Path(tempfile.mkdtemp(prefix="baresip-"))
    ctrl_port = free_port_on("127.0.0.1", socket.SOCK_STREAM)
    (folder / "config").write_text(CONFIG.format(sip_port=free_port_on("127.0.0.1", socket.SOCK_DGRAM),
                                                 ctrl_port=ctrl_port))
    remote = f"127.0.0.1:{env['STACK_SIP_PORT']}"
    (folder / "accounts").write_text(
        f"<sip:{endpoint}@{remote};transport=udp>;auth_pass={password};audio_codecs=PCMU,PCMA;regint=300\n")
    (folder / "contacts").write_text("")
    phone = Baresip(folder, ctrl_port)
    log = (folder / "baresip.log").open("wb")
    phone.proc = await asyncio.create_subprocess_exec(BARESIP, "-f", str(folder), "-4", "-n", "127.0.0.1", cwd=folder,
                                                      stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        await until(phone._connect, timeout=15, what="baresip's ctrl_tcp port")
        yield phone
    finally:
        await phone.stop()
        log.close()
        print("baresip events:", [e.get("type") for e in phone.events])          # shown when a test fails
        print((folder / "baresip.log").read_text(errors="replace")[-3000:])
        shutil.rmtree(folder, ignore_errors=True)
