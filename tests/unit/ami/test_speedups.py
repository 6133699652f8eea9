"""The C splitter (switchboard/ami/_speedups.c) against the general path it stands in for.

Its contract: ``frame_headers(frame)`` is None, or exactly what the general path
(``_parse_lines``) makes of the frame; and it is None only for frames that are not
plain ``Name: value`` lines (so the fast path really carries real traffic).
``parse_bytes(data, end)`` (what the parser runs) is ``parse_run`` of the decoded
bytes, invalid UTF-8 included.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from switchboard.ami import protocol
from switchboard.ami._speedups import frame_headers, parse_bytes, parse_run
from switchboard.ami.samples import generate_stream

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ami"


def _plain(frame: str) -> bool:
    """The frames the splitter must accept (its module comment, in Python)."""
    lines = frame.split("\r\n")
    names = []
    for line in lines:
        name, sep, value = line.partition(":")
        if not (sep and name and " " not in name and value.startswith(" ")):
            return False
        names.append(name)
    return len(set(names[1:])) == len(names) - 1


def _general(frame: str) -> tuple[str, str, dict[str, str]]:
    lines = frame.split("\r\n")
    name, _, value = lines[0].partition(":")
    headers, body = protocol._parse_lines(lines[1:])
    assert body == () and headers._multi is None
    return name, value[1:], headers._first


def _check(frame: str) -> None:
    got = frame_headers(frame)
    if _plain(frame):
        assert got == _general(frame), frame
        assert [type(x) for x in got[2]] == [str] * len(got[2])
    else:
        assert got is None, frame


def test_real_traffic_takes_the_fast_path() -> None:
    captured = [f for p in sorted(FIXTURES.glob("*.ami"))
                for f in p.read_bytes().decode("utf-8", "replace").split("\r\n\r\n")[1:] if f.strip()]
    text = generate_stream(2000)[0].decode()
    synthetic = text[text.index("\r\n") + 2:].split("\r\n\r\n")[:-1]  # after the banner line
    assert len(captured) > 100 and len(synthetic) > 200
    for f in captured + synthetic:
        _check(f)
    # the capture's only non-plain frames: TestEvent (State twice) and one with a stray CR LF
    declined = [f for f in captured if frame_headers(f) is None]
    assert {f.strip().split("\r\n", 1)[0] for f in declined} <= {"Event: TestEvent", "Event: DTMFEnd"}
    assert len(declined) < len(captured) // 3
    assert all(frame_headers(f) is not None for f in synthetic)


def test_non_ascii_frames_of_every_string_kind() -> None:
    for value in ("Nguyễn Thị Hồng – Huế", "café", "𝄞 music", "Hà Nội: 024"):
        frame = f"Event: VarSet\r\nVariable: CALLER\r\nValue: {value}\r\nUniqueid: 1.1"
        assert frame_headers(frame) == ("Event", "VarSet", {"Variable": "CALLER", "Value": value, "Uniqueid": "1.1"})
        _check(frame)
    assert frame_headers("Event: X\r\nNăm: 2026") == ("Event", "X", {"Năm": "2026"})


def test_declines_what_the_general_path_must_decide() -> None:
    declined = [
        "",
        "Event: X\r\n",  # trailing CR LF: an empty last line
        "\r\nEvent: X",
        "Event: X\r\n\r\nA: b",
        "Event: X\r\nChanVariable: A=1\r\nChanVariable: B=2",  # repeated name
        "Response: Follows\r\nPrivilege: Command\r\nraw output line\r\n--END COMMAND--",
        "Event: X\r\nName:value",  # no space after the colon
        "Event: X\r\nName:",
        "Event: X\r\nBad Name: v",
        "Event: X\r\n: v",
        "Event:X",
    ]
    for frame in declined:
        assert frame_headers(frame) is None, frame
        _check(frame)
    # accepted odd-but-plain shapes
    assert frame_headers("Event: X\r\nAppData: Playback: x\r\nEmpty: ") == (
        "Event", "X", {"AppData": "Playback: x", "Empty": ""})
    assert frame_headers("Event: X\r\nA: b\nc\rd") == ("Event", "X", {"A": "b\nc\rd"})
    assert frame_headers("Event: X\r\nEvent: Y") == ("Event", "X", {"Event": "Y"})


_ALPHABET = st.sampled_from(["a", "B", ":", " ", "\r", "\n", "\r\n", ": ", "é", "ệ", "𝄞", "Event", "x", "1"])


@settings(max_examples=3000, deadline=None)
@given(st.lists(_ALPHABET, max_size=40).map("".join))
def test_random_text_matches_the_general_path(frame: str) -> None:
    _check(frame)


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.tuples(st.text(st.sampled_from("aZ:_- é"), min_size=0, max_size=6),
                          st.text(st.sampled_from("x: \r\né𝄞"), max_size=8)), min_size=1, max_size=8))
def test_random_header_lists_match_the_general_path(pairs: list[tuple[str, str]]) -> None:
    _check("\r\n".join(f"{n}: {v}" for n, v in pairs))


def _run_reference(run: str) -> list[object]:
    return [f if (h := frame_headers(f)) is None else (f, *h) for f in run.split("\r\n\r\n")]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(["\r\n\r\n", "\r\n", "\r", "\n", "Event: X", "A: b", ": ", "é", "ệ", "𝄞", "Z"]),
                max_size=40).map("".join))
def test_parse_run_frames_like_split_and_splits_like_frame_headers(run: str) -> None:
    assert parse_run(run) == _run_reference(run)


def test_parse_run_on_real_runs() -> None:
    text = generate_stream(500)[0].decode()
    run = text[text.index("\r\n") + 2:text.rindex("\r\n\r\n")]
    got = parse_run(run)
    assert got == _run_reference(run) and len(got) > 500
    assert all(isinstance(item, tuple) for item in got)
    for p in sorted(FIXTURES.glob("*.ami")):
        run = p.read_bytes().decode("utf-8", "replace")
        assert parse_run(run) == _run_reference(run), p.name
    mixed = run + "\r\n\r\nEvent: VarSet\r\nValue: Nguyễn Thị Hồng\r\n\r\nEvent: X\r\nNote: 𝄞"
    assert parse_run(mixed) == _run_reference(mixed)


def _bytes_reference(data: bytes, end: int) -> list[object]:
    return parse_run(data[:end].decode("utf-8", "replace"))


def _decoded(items: list[object]) -> list[object]:
    """parse_bytes' answer with the frames it left as bytes decoded: only accepted non-ASCII ones may be."""
    out: list[object] = []
    for item in items:
        if isinstance(item, tuple) and isinstance(item[0], bytes):
            assert not item[0].isascii()
            item = (item[0].decode("utf-8", "replace"), *item[1:])
        out.append(item)
    return out


_BYTES = st.sampled_from([b"\r\n\r\n", b"\r\n", b"\r", b"\n", b"Event: X", b"A: b", b": ", b" ", b":",
                          "é".encode(), "ệ".encode(), "𝄞".encode(), b"\xe1\xbb", b"\xff", b"\x80", b"\xc3", b"Z",
                          "Nguyễn Thị Hồng".encode()])


@settings(max_examples=3000, deadline=None)
@given(st.lists(_BYTES, max_size=40).map(b"".join), st.integers(min_value=0, max_value=400))
def test_parse_bytes_is_parse_run_of_the_decoded_bytes(data: bytes, cut: int) -> None:
    """Every piece decoded on its own gives the slices of the decoded run, broken UTF-8 too."""
    end = min(cut, len(data))
    assert _decoded(parse_bytes(data, end)) == _bytes_reference(data, end)
    assert _decoded(parse_bytes(data, len(data))) == _bytes_reference(data, len(data))


def test_parse_bytes_on_real_and_vietnamese_runs() -> None:
    data = generate_stream(500)[0]
    vi = data.replace(b"CallerIDName: ", "CallerIDName: Nguyễn Thị Hồng ".encode())
    runs = {}
    for name, stream in (("ascii", data), ("vi", vi), *((p.name, p.read_bytes()) for p in sorted(FIXTURES.glob("*.ami")))):
        body = stream[stream.index(b"\r\n") + 2:]  # after the banner line
        end = body.rindex(b"\r\n\r\n")
        runs[name] = _decoded(parse_bytes(body, end))
        assert runs[name] == _bytes_reference(body, end), name
    # the synthetic streams are all plain frames, Vietnamese names included: all take the C path
    for name in ("ascii", "vi"):
        assert len(runs[name]) > 500 and all(isinstance(item, tuple) for item in runs[name])
    names = {item[3].get("CallerIDName") for item in runs["vi"] if isinstance(item, tuple)}
    assert any(n and n.startswith("Nguyễn Thị Hồng ") for n in names)


def test_parse_bytes_rejects_bad_arguments() -> None:
    for args in (("Event: X", 3), (b"Event: X", 99), (b"Event: X", -1), (b"Event: X",)):
        try:
            parse_bytes(*args)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            pass
        else:
            raise AssertionError(f"parse_bytes accepted {args!r}")


def test_not_a_string_is_a_type_error() -> None:
    for fn in (frame_headers, parse_run):
        try:
            fn(b"Event: X")  # type: ignore[arg-type]
        except TypeError as exc:
            assert "wants str" in str(exc)
        else:
            raise AssertionError(f"{fn.__name__} accepted bytes")


def test_whole_stream_same_messages_with_and_without_c() -> None:
    data, frames = generate_stream(3000)
    data += "Event: VarSet\r\nVariable: X\r\nValue: Hồng\r\n\r\n".encode()
    assert protocol._c is not None
    with_c = protocol.AmiParser().feed(data)
    saved = protocol._c
    protocol._c = None
    try:
        without = protocol.AmiParser().feed(data)
    finally:
        protocol._c = saved
    assert len(with_c) == frames + 2 and with_c == without
    assert [type(m) for m in with_c] == [type(m) for m in without]
    # the C path hands the non-ASCII frames over as bytes: raw still reads as the same text
    raws = [(a.raw, b.raw) for a, b in zip(with_c, without, strict=True) if isinstance(a, protocol.Event)]
    assert all(isinstance(a, str) and a == b for a, b in raws)
    assert any("Hồng" in a for a, _ in raws)


def test_the_extension_is_used_unless_switched_off() -> None:
    env = {k: v for k, v in os.environ.items() if k != "SWITCHBOARD_NO_EXTENSIONS"}
    code = "from switchboard.ami import protocol; print(protocol.SPEEDUPS)"
    on = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    off = subprocess.run([sys.executable, "-c", code], env={**env, "SWITCHBOARD_NO_EXTENSIONS": "1"},
                         capture_output=True, text=True, check=True)
    assert (on.stdout.strip(), off.stdout.strip()) == ("True", "False")
