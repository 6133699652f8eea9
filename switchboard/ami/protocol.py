"""AMI wire protocol without I/O: bytes in, typed messages out; actions to bytes.

Why one long file: it is the one definition of what a frame means (framing, headers,
events, responses, list responses, action encoding); the C splitter is checked against it,
and splitting it would put two halves of that definition in two places.

The shape follows h11: a parser object that owns a bounded receive buffer,
immutable message objects, and two error families: ``LocalProtocolError``
(the caller misused the API, e.g. a header value carrying CR/LF) and
``RemoteProtocolError`` (the peer sent something we cannot accept, e.g. a
frame larger than the configured limit).

Wire facts (Asterisk 22, AMI 9.x):

* On connect Asterisk sends one banner line ``Asterisk Call Manager/9.0.0\\r\\n``.
* Every message after that is a block of ``Name: value\\r\\n`` lines ended by
  an empty line (``\\r\\n\\r\\n``). The first line says what the block is:
  ``Response: ...`` or ``Event: ...``.
* A header name may repeat (``ChanVariable``, ``Variable``, ``Output``).
* ``Action: Command`` answers ``Response: Success`` with one ``Output:``
  header per line; old servers answered ``Response: Follows`` followed by raw
  text lines and ``--END COMMAND--``. Both are exposed as ``Response.output``.
* List actions answer ``EventList: start`` and then send events carrying the
  same ``ActionID``, closed by an event with ``EventList: Complete``.

Framing happens on bytes; decoding (UTF-8, invalid bytes replaced) happens
only on complete frames. As CR and LF never occur inside a UTF-8 multi-byte
sequence, decoding a run of complete frames in one call gives exactly the
same text as decoding each frame separately, so a character split across
two reads is never lost or mangled.

Splitting a frame into headers is the hot loop (every event of a busy
switchboard). ``_speedups.c`` does it in C for plain frames (every line
``Name: value``, no repeated name) and declines anything else, which then
takes the general Python path here; both give the same messages (unit
tests compare them, and run this module's tests on both paths).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from types import ModuleType
from typing import TYPE_CHECKING, TypeVar, overload

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "SPEEDUPS",
    "Action",
    "AmiParser",
    "Banner",
    "Event",
    "HeaderInjectionError",
    "Headers",
    "ListComplete",
    "LocalProtocolError",
    "Message",
    "ProtocolError",
    "RemoteProtocolError",
    "Response",
    "serialize_action",
]

DEFAULT_MAX_FRAME_SIZE = 1 << 20  # 1 MiB: a CoreShowChannels event is ~1 KiB
_SEP = b"\r\n\r\n"
_SSEP = "\r\n\r\n"
_END_COMMAND = "--END COMMAND--"
_T = TypeVar("_T")

# The C fast path (switchboard/ami/_speedups.c, built by setup.py): splits plain frames into
# (first name, first value, dict of the other headers) and declines the rest, which go through
# the general path below, the one definition of a frame's meaning. ``_c`` is the module or None;
# SWITCHBOARD_NO_EXTENSIONS=1 selects the pure-Python path (the unit tests run both).
_FrameHeaders = Callable[[str], "tuple[str, str, dict[str, str]] | None"]
_c: ModuleType | None = None
if not os.environ.get("SWITCHBOARD_NO_EXTENSIONS"):
    try:
        from switchboard.ami import _speedups as _c
    except ImportError:  # a source tree nobody built: correct, only slower (doctor reports it)
        _c = None
SPEEDUPS = _c is not None


class ProtocolError(Exception):
    """Base of every AMI protocol error."""


class LocalProtocolError(ProtocolError):
    """We were asked to do something the protocol forbids (our bug or bad input)."""


class HeaderInjectionError(LocalProtocolError, ValueError):
    """A header name or value would break the framing (CR, LF, or a bad name)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something unacceptable; the stream cannot be trusted any more.

    ``messages`` holds the messages completed before the fault in the same
    ``feed`` call, so nothing already parsed is lost.
    """

    def __init__(self, message: str, *, messages: Sequence[Message] = ()) -> None:
        super().__init__(message)
        self.messages: tuple[Message, ...] = tuple(messages)


class Headers(Mapping[str, str]):
    """Read-only multi-dict of AMI headers.

    ``h[name]`` / ``h.get(name)`` give the first value, ``h.get_all(name)``
    every value in order. Lookups are exact first, then case-insensitive
    (Asterisk is consistent, but modules differ in ``Uniqueid``/``UniqueID``).
    """

    __slots__ = ("_first", "_multi")

    def __init__(self, first: dict[str, str], multi: dict[str, list[str]] | None = None) -> None:
        self._first = first
        self._multi = multi

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> Headers:
        first: dict[str, str] = {}
        multi: dict[str, list[str]] | None = None
        for name, value in pairs:
            if name in first:
                if multi is None:
                    multi = {}
                lst = multi.get(name)
                if lst is None:
                    multi[name] = [first[name], value]
                else:
                    lst.append(value)
            else:
                first[name] = value
        return cls(first, multi)

    def _key(self, name: str) -> str | None:
        if name in self._first:
            return name
        low = name.lower()
        for key in self._first:
            if key.lower() == low:
                return key
        return None

    def __getitem__(self, name: str) -> str:
        try:
            return self._first[name]
        except KeyError:
            key = self._key(name)
            if key is None:
                raise
            return self._first[key]

    @overload
    def get(self, name: str, /) -> str | None: ...

    @overload
    def get(self, name: str, default: str, /) -> str: ...

    @overload
    def get(self, name: str, default: _T, /) -> str | _T: ...

    def get(self, name: str, default: object = None, /) -> object:
        value = self._first.get(name)
        if value is not None:
            return value
        key = self._key(name)
        return default if key is None else self._first[key]

    def get_all(self, name: str) -> list[str]:
        key = self._key(name)
        if key is None:
            return []
        if self._multi is not None and key in self._multi:
            return list(self._multi[key])
        return [self._first[key]]

    def items_all(self) -> Iterator[tuple[str, str]]:
        """Every (name, value) pair, repeated names included (grouped per name)."""
        for key, value in self._first.items():
            if self._multi is not None and key in self._multi:
                for v in self._multi[key]:
                    yield key, v
            else:
                yield key, value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._key(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return list(self.items_all()) == list(other.items_all())
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self.items_all()))

    def __repr__(self) -> str:
        return f"Headers({list(self.items_all())!r})"


@dataclass(frozen=True, slots=True)
class Banner:
    """The first line Asterisk sends: ``Asterisk Call Manager/<version>``."""

    version: str
    raw: str


@dataclass(frozen=True, slots=True)
class Response:
    """An answer to one action. ``follows`` holds raw body lines of ``Response: Follows``."""

    status: str
    headers: Headers
    follows: tuple[str, ...] = ()

    @property
    def action_id(self) -> str | None:
        return self.headers.get("ActionID")

    @property
    def success(self) -> bool:
        return self.status in ("Success", "Follows", "Goodbye")

    @property
    def message(self) -> str:
        return self.headers.get("Message", "")

    @property
    def is_list_start(self) -> bool:
        value = self.headers.get("EventList")
        return value is not None and value.lower() == "start"

    @property
    def output(self) -> tuple[str, ...]:
        """Command output lines: ``Output:`` headers (Asterisk 14+) or the Follows body."""
        if self.follows:
            return self.follows
        return tuple(self.headers.get_all("Output"))


class Event:
    """An AMI event: ``name`` is the ``Event:`` header, ``headers`` all the others.

    Events are immutable (``name``, ``raw`` and ``headers`` are read-only). An
    event read by ``AmiParser.feed`` carries its complete header multi-dict;
    one kept by ``feed_filtered`` keeps its frame text (``raw``) and builds the
    multi-dict on first use of ``headers``; ``get(name)`` on such an event
    finds the first value straight in the frame text, which is what most
    consumers need (a few headers of each event) at a fraction of the cost.
    """

    __slots__ = ("_headers", "_name", "_raw")

    _name: str
    _raw: str | bytes  # bytes: the UTF-8 frame as the C path left it (decoded on first use of raw)
    _headers: Headers | None

    if TYPE_CHECKING:
        @property
        def name(self) -> str: ...
    else:
        name = property(attrgetter("_name"), doc="The event name (``Event:`` header).")

    @property
    def raw(self) -> str:
        """The frame text, ``\\r\\n``-separated lines."""
        raw = self._raw
        if isinstance(raw, bytes):
            raw = self._raw = raw.decode("utf-8", "replace")
        return raw

    def __init__(self, name: str, headers: Headers | Mapping[str, str] | None = None, *, raw: str = "") -> None:
        if headers is None and not raw:
            headers = Headers({})
        if headers is not None and not isinstance(headers, Headers):
            headers = Headers(dict(headers))
        self._name = name
        self._raw = raw
        self._headers = headers

    @property
    def headers(self) -> Headers:
        h = self._headers
        if h is None:
            h = self._headers = _headers_of(self.raw)
        return h

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    def get(self, name: str, default: str | None = None) -> str | None:
        h = self._headers
        if h is not None:
            return h.get(name, default)
        raw = self.raw
        key = "\r\n" + name + ": "
        i = raw.find(key)
        if i < 0:
            if key.lower() in raw.lower():  # a differently-cased name: let the dict decide
                return self.headers.get(name, default)
            return default
        i += len(key)
        j = raw.find("\r\n", i)
        return raw[i:] if j < 0 else raw[i:j]

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return type(self) is type(other) and self._name == other._name and self.headers == other.headers

    def __hash__(self) -> int:
        return hash((type(self), self._name, self.headers))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self._name!r}, headers={self.headers!r})"


class ListComplete(Event):
    """The event closing a list action (``EventList: Complete``)."""

    __slots__ = ()


Message = Banner | Response | Event


class _State(enum.Enum):
    BANNER = "banner"
    FRAMES = "frames"
    ERROR = "error"


def _parse_lines(lines: list[str]) -> tuple[Headers, tuple[str, ...]]:
    """Slow, general path: repeated names, lines without ``: ``, Follows bodies."""
    first: dict[str, str] = {}
    multi: dict[str, list[str]] | None = None
    body: list[str] = []
    in_body = False
    for line in lines:
        if not line:
            continue
        if not in_body:
            name, sep, value = line.partition(":")
            if sep and name and " " not in name:
                if value.startswith(" "):
                    value = value[1:]
                if name in first:
                    if multi is None:
                        multi = {}
                    lst = multi.get(name)
                    if lst is None:
                        multi[name] = [first[name], value]
                    else:
                        lst.append(value)
                else:
                    first[name] = value
                continue
            in_body = True
        if line != _END_COMMAND:
            body.append(line)
    return Headers(first, multi), tuple(body)


def _py_frame_headers(frame: str) -> tuple[str, str, dict[str, str]] | None:
    """The pure-Python splitter: (first name, first value, dict of the other headers) or None.

    One C-level replace and split per frame give names and values alternately;
    the frame is accepted only with exactly two tokens per line, no bare LF and
    as many distinct names as lines; anything else (a value holding ``": "``,
    a repeated ``ChanVariable``, ``Response: Follows`` bodies, stray empty
    lines) is None and takes the general path. Known limit: a corrupted frame
    with a line lacking ``": "`` *and* a value holding ``": "`` may pair
    differently than the general path would (the C splitter reads line by
    line and has no such limit); Asterisk writes every line as
    ``"%s: %s\\r\\n"``, and such a frame still gives an immutable message,
    never a crash.
    """
    pairs_text = frame.replace("\r\n", ": ")
    parts = pairs_text.split(": ")
    n = len(parts)
    # count("\n") is twice as fast as count("\r\n"); it counts the lines exactly
    # when no bare LF is left after the replace (one memchr)
    if n != (frame.count("\n") << 1) + 2 or "\n" in pairs_text:
        return None
    it = iter(parts)
    pairs = dict(zip(it, it, strict=False))
    if len(pairs) << 1 != n:
        return None
    kind = parts[0]
    del pairs[kind]
    return kind, parts[1], pairs


def _splitter() -> _FrameHeaders:
    return _py_frame_headers if _c is None else _c.frame_headers


def _headers_of(raw: str) -> Headers:
    """Headers of a frame text, its first line (``Event: X``) excluded."""
    split = _splitter()(raw)
    if split is not None:
        return Headers(split[2])
    headers, _body = _parse_lines(raw.split("\r\n")[1:])
    return headers


def _build(frame: str) -> Message | None:
    """One frame to a message: the splitter's answer, or the general path when it declines."""
    split = _splitter()(frame)
    return _build_general(frame) if split is None else _message(frame, *split)


def _text(frame: str | bytes) -> str:
    """A frame's text: the C path hands accepted non-ASCII frames over as their UTF-8 bytes."""
    return frame if isinstance(frame, str) else frame.decode("utf-8", "replace")


def _message(frame: str | bytes, kind: str, value: str, pairs: dict[str, str]) -> Message | None:
    """The message of a frame the splitter accepted (``pairs`` is used as is; ``frame`` may be
    the frame's UTF-8 bytes, decoded only when its text is needed)."""
    if kind == "Event":
        h = _new(Headers)
        h._first = pairs
        h._multi = None
        ev = _new(ListComplete if pairs.get("EventList") == "Complete" else Event)
        ev._name = value
        ev._headers = h
        ev._raw = frame
        return ev
    if kind == "Response" and value != "Follows":
        return Response(value, Headers(pairs))
    return _build_general(_text(frame))


def _build_general(frame: str) -> Message | None:
    """The general path: stray CR LF, ``Follows`` bodies, repeated names, odd casing."""
    if frame.startswith("\r\n") or frame.endswith("\r\n"):
        # stray empty lines around a frame (a frame boundary that fell between
        # two separators, or a module writing an extra CRLF): drop them
        frame = frame.strip("\r\n")
        if not frame:
            return None
    lines = frame.split("\r\n")
    head = lines[0]
    if head.startswith("Event: "):
        headers, _body = _parse_lines(lines[1:])
        name = head[7:]
        if headers._first.get("EventList") == "Complete":
            return ListComplete(name, headers, raw=frame)
        return Event(name, headers, raw=frame)
    if head.startswith("Response: "):
        headers, body = _parse_lines(lines[1:])
        return Response(head[10:], headers, body)
    # Tolerate "Event:" / "Response:" without the space and odd casing; anything
    # else is an unknown frame kind: dropped (counted by the parser).
    name, sep, value = head.partition(":")
    kind = name.strip().lower()
    if sep and kind == "event":
        headers, _body = _parse_lines(lines[1:])
        ev_name = value.strip()
        if headers.get("EventList", "").lower() == "complete":
            return ListComplete(ev_name, headers)
        return Event(ev_name, headers)
    if sep and kind == "response":
        headers, body = _parse_lines(lines[1:])
        return Response(value.strip(), headers, body)
    return None


class AmiParser:
    """Incremental AMI parser: ``feed(bytes)`` returns the messages completed so far.

    ``max_frame_size`` bounds the receive buffer: a frame (or an unterminated
    tail) longer than that raises ``RemoteProtocolError`` and the parser is
    left unusable (the connection must be closed), with its buffer released.

    ``feed_filtered(data, wanted)`` is the service's fast path: an event whose
    name is not in ``wanted`` is skipped after reading its name, without
    building its headers. Responses and list events are always kept, because
    they answer our own actions. Events kept by ``feed_filtered`` build their
    header dict on first use of ``.headers`` (``.get`` reads the frame text
    directly); ``feed`` builds every header dict eagerly.
    """

    __slots__ = ("_buf", "_state", "banner", "frames", "max_frame_size", "skipped", "unknown")

    def __init__(self, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE, expect_banner: bool = True) -> None:
        if max_frame_size < 64:
            raise ValueError("max_frame_size must be at least 64 bytes")
        self.max_frame_size = max_frame_size
        self._buf = b""
        self._state = _State.BANNER if expect_banner else _State.FRAMES
        self.banner: Banner | None = None
        self.frames = 0  # frames seen (parsed or skipped)
        self.skipped = 0  # events skipped by feed_filtered
        self.unknown = 0  # frames that were neither Response nor Event

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the end of a frame."""
        return len(self._buf)

    @property
    def broken(self) -> bool:
        return self._state is _State.ERROR

    def feed(self, data: bytes) -> list[Message]:
        return self._feed(data, None)

    def feed_filtered(self, data: bytes, wanted: Container[str]) -> list[Message]:
        return self._feed(data, wanted)

    def _fail(self, reason: str, out: list[Message]) -> RemoteProtocolError:
        self._state = _State.ERROR
        self._buf = b""
        return RemoteProtocolError(reason, messages=out)

    def _feed(self, data: bytes, wanted: Container[str] | None) -> list[Message]:
        if self._state is _State.ERROR:
            raise RemoteProtocolError("parser is unusable after an earlier protocol error")
        buf = self._buf + data if self._buf else bytes(data)
        out: list[Message] = []
        limit = self.max_frame_size
        if self._state is _State.BANNER:
            nl = buf.find(b"\r\n")
            if nl < 0:
                if len(buf) > limit:
                    raise self._fail("no banner line within max_frame_size", out)
                self._buf = buf
                return out
            raw = buf[:nl].decode("utf-8", "replace")
            _, _, version = raw.partition("/")
            self.banner = Banner(version.strip(), raw)
            out.append(self.banner)
            self._state = _State.FRAMES
            buf = buf[nl + 2:]
        end = buf.rfind(_SEP)
        if end < 0:
            if len(buf) > limit:
                raise self._fail(f"frame exceeds max_frame_size ({limit} bytes)", out)
            self._buf = buf
            return out
        rest = buf[end + 4:]
        if len(rest) > limit:
            raise self._fail(f"frame exceeds max_frame_size ({limit} bytes)", out)
        self._buf = rest
        if wanted is None and _c is not None and end <= limit:
            # the C path frames and splits the run in one pass on its UTF-8 bytes, decoding each
            # string on its own: the same text as decoding the run first (module docstring), and
            # non-ASCII frames keep the memchr path (no frame can be oversized)
            count, unknown = _messages(_c.parse_bytes(buf, end), out)
            self.frames += count + unknown
            self.unknown += unknown
            return out
        # One decode for the whole run of complete frames (see the module docstring).
        run = buf[:end].decode("utf-8", "replace")
        frames = run.split(_SSEP)
        if end > limit:  # only a run longer than the limit can hold an oversized frame
            for i, frame in enumerate(frames):
                if len(frame) > limit:
                    self._parse(frames[:i], wanted, out)
                    raise self._fail(f"frame exceeds max_frame_size ({limit} bytes)", out)
        self._parse(frames, wanted, out)
        return out

    def _parse(self, frames: list[str], wanted: Container[str] | None, out: list[Message]) -> None:
        if wanted is None:
            count, unknown = _parse_full(frames, out)
            self.frames += count + unknown
            self.unknown += unknown
        else:
            self._parse_filtered(frames, wanted, out)

    def _parse_filtered(self, frames: list[str], wanted: Container[str], out: list[Message]) -> None:
        append = out.append
        new = _new
        nframes = skipped = 0
        for frame in frames:
            if frame[:7] == "Event: ":
                nl = frame.find("\r\n")
                name = frame[7:nl] if nl >= 0 else frame[7:]
                if name in wanted:
                    if nl >= 0 and frame[-2:] != "\r\n" and (
                            name[-8:] != "Complete" or "\r\nEventList: Complete" not in frame):
                        ev = new(Event)
                        ev._name = name
                        ev._headers = None
                        ev._raw = frame
                        nframes += 1
                        append(ev)
                        continue
                elif "\r\nActionID: " not in frame:
                    nframes += 1
                    skipped += 1
                    continue
            msg = _build(frame)
            if msg is None:
                if frame.strip("\r\n"):
                    nframes += 1
                    self.unknown += 1
                continue
            nframes += 1
            append(msg)
        self.frames += nframes
        self.skipped += skipped


_new = object.__new__


def _parse_full(frames: list[str], out: list[Message]) -> tuple[int, int]:
    """Turn every frame into a message with all its headers: (messages, unknown frames).

    The splitter handles the plain frames, nearly all of them; what it declines
    takes the general path.
    """
    split = _splitter()
    items: Iterable[tuple[str, str, str, dict[str, str]] | str] = (
        frame if (parts := split(frame)) is None else (frame, *parts) for frame in frames)
    return _messages(items, out)


def _messages(items: Iterable[tuple[str | bytes, str, str, dict[str, str]] | str],
              out: list[Message]) -> tuple[int, int]:
    """Messages of split frames (a tuple) and declined ones (the frame str): (messages, unknown)."""
    append = out.append
    count = unknown = 0
    for item in items:
        if isinstance(item, tuple):
            frame = item[0]
            msg = _message(*item)
        else:
            frame = item
            msg = _build_general(frame)
        if msg is None:
            if _text(frame).strip("\r\n"):  # stray CRLFs alone are no frame at all
                unknown += 1
            continue
        count += 1
        append(msg)
    return count, unknown


@dataclass(frozen=True, slots=True)
class Action:
    """An action to send. ``headers`` values may be a list for repeated names (``Variable``)."""

    name: str
    headers: Mapping[str, str | Sequence[str]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, str | Sequence[str]]) -> Action:
        """``{"Action": "Ping", ...}`` -> Action (the ``Action`` key is case-insensitive)."""
        name: str | None = None
        rest: dict[str, str | Sequence[str]] = {}
        for key, value in data.items():
            if key.lower() == "action":
                if not isinstance(value, str):
                    raise LocalProtocolError("Action must be a single string")
                name = value
            else:
                rest[key] = value
        if not name:
            raise LocalProtocolError("an action needs an 'Action' header")
        return cls(name, rest)

    @property
    def is_command(self) -> bool:
        return self.name.lower() == "command"


_BAD_NAME_CHARS = frozenset("\r\n: \t\0")


def _check_name(name: str) -> None:
    if not name or any(c in _BAD_NAME_CHARS for c in name):
        raise HeaderInjectionError(f"invalid AMI header name {name!r}")


def _check_value(name: str, value: str) -> None:
    if "\r" in value or "\n" in value or "\0" in value:
        raise HeaderInjectionError(f"AMI header {name!r} value contains CR, LF or NUL")


def serialize_action(action: Action, action_id: str) -> bytes:
    """The wire bytes of ``action`` with ``ActionID: action_id``.

    Raises ``HeaderInjectionError`` when any name or value could break the
    framing; nothing is produced in that case.
    """
    _check_name(action.name)
    _check_value("Action", action.name)
    _check_value("ActionID", action_id)
    parts = [f"Action: {action.name}\r\nActionID: {action_id}\r\n"]
    for name, value in action.headers.items():
        _check_name(name)
        low = name.lower()
        if low in ("action", "actionid"):
            raise LocalProtocolError(f"{name!r} is set by the serializer, not by the caller")
        values: Sequence[str] = (value,) if isinstance(value, str) else value
        for v in values:
            if not isinstance(v, str):
                raise LocalProtocolError(f"AMI header {name!r} value must be str, got {type(v).__name__}")
            _check_value(name, v)
            parts.append(f"{name}: {v}\r\n")
    parts.append("\r\n")
    return "".join(parts).encode("utf-8")
