"""A fake AsyncAGI session with the interface of ``switchboard.ami.agi.AgiSession``.

It answers like Asterisk 22 does (raw AGI reply lines, URL-encoded and parsed
by the real ``parse_agi_result``) and plays a scripted caller:

* ``keys``: one item per GET DATA / WAIT FOR DIGIT: a digit string, ``None``
  (silence until the timeout), ``"-1"`` (hang-up reported as result=-1) or
  ``"HANGUP"`` (the channel leaves AGI: ``AgiHangup``);
* ``barge``: prompt name -> the key pressed while it plays (STREAM FILE).

Commands are split into arguments by ``agi_args``, a restatement of Asterisk 22's
``parse_args`` (res/res_agi.c): what Asterisk would see, quotes and escapes included.
"""

from __future__ import annotations

from urllib.parse import quote

from switchboard.ami.agi import AgiHangup, AgiResult, parse_agi_result


def agi_args(command: str) -> list[str]:
    """Asterisk's res_agi ``parse_args``, restated: a command line -> its arguments.

    Outside quotes, spaces and tabs end an argument; ``"`` toggles quoting (and starts an
    argument, even an empty one); a backslash makes the next character literal.
    """
    args: list[str] = []
    cur: list[str] | None = None
    quoted = escaped = False
    for ch in command:
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and cur is None:
                cur = []
            continue
        if ch in " \t" and not quoted and not escaped:
            if cur is not None:
                args.append("".join(cur))
                cur = None
            continue
        if ch == "\\" and not escaped:
            escaped = True
            continue
        if cur is None:
            cur = []
        cur.append(ch)
        escaped = False
    if cur is not None:
        args.append("".join(cur))
    return args


class FakeAgi:
    def __init__(self, *, caller: str = "0912345678", dialed: str = "19009068",
                 keys: list[str | None] | None = None, barge: dict[str, str] | None = None,
                 hangup_on: str | None = None) -> None:
        self.channel = "PJSIP/trunk-00000007"
        self.uniqueid = "1767225600.42"
        self.linkedid = "1767225600.42"
        self.env = {
            "agi_request": "async", "agi_channel": self.channel, "agi_language": "en",
            "agi_uniqueid": self.uniqueid, "agi_callerid": caller, "agi_calleridname": "unknown",
            "agi_dnid": dialed, "agi_extension": dialed, "agi_context": "hotline", "agi_priority": "2",
        }
        self.keys = list(keys or [])
        self.barge = dict(barge or {})
        self.hangup_on = hangup_on  # a command prefix: the caller hangs up when it is sent
        self.commands: list[str] = []
        self.timeouts: list[float | None] = []
        self.closed = False

    async def execute(self, command: str, *, timeout: float | None = None, tag: str = "") -> AgiResult:
        if self.closed:
            raise AgiHangup(f"{self.channel}: not in AGI any more (hangup)")
        self.commands.append(command)
        self.timeouts.append(timeout)
        if self.hangup_on and command.startswith(self.hangup_on):
            self.closed = True
            raise AgiHangup(f"{self.channel}: Hangup")
        return parse_agi_result(quote(self._reply(command) + "\n"))

    async def break_(self, *, timeout: float | None = None) -> AgiResult:
        return await self.execute("ASYNCAGI BREAK", timeout=timeout)

    def _key(self) -> str | None:
        if not self.keys:
            raise AssertionError(f"the caller script ran out of keys at {self.commands[-1]!r}")
        item = self.keys.pop(0)
        if item == "HANGUP":
            self.closed = True
            raise AgiHangup(f"{self.channel}: Hangup")
        return item

    def _reply(self, command: str) -> str:
        verb = agi_args(command)
        head = " ".join(verb[:2])
        if head == "STREAM FILE":
            name = verb[2].rsplit("/", 1)[-1]
            if name in self.barge:
                return f"200 result={ord(self.barge.pop(name))} endpos=4000"
            return "200 result=0 endpos=16000"
        if head == "GET DATA":
            key = self._key()
            if key is None:
                return "200 result= (timeout)"
            if key == "-1":
                self.closed = True
                return "200 result=-1"
            return f"200 result={key}"
        if head == "WAIT FOR":
            key = self._key()
            return "200 result=0" if key is None else f"200 result={ord(key)}"
        if command == "ANSWER":
            return "200 result=0"
        if head == "RECORD FILE":
            return "200 result=35 (dtmf) endpos=48000"
        if command == "HANGUP":
            self.closed = True
            return "200 result=1"
        if head.startswith("EXEC"):
            return "200 result=0"
        return "510 Invalid or unknown command"
