"""AMI parser benchmark: our core vs panoramisk 1.4 vs asterisk-ami 0.1.7.

Input: a synthetic Asterisk 22 AMI stream (``switchboard.ami.samples``: the
frame layout of Asterisk 22 as captured in tests/fixtures/ami/, checked by a
unit test; AsyncAGIStart with its URL-encoded Env, AsyncAGIExec, VarSet,
Newexten, Newchannel/Newstate/Hangup, DialBegin/End, BridgeEnter/Leave,
DeviceStateChange, action responses), generated at start (nothing large is
kept in git), fed in 64 KiB chunks.

* full parse: every frame becomes a message with all its headers in a dict:
  - ours: ``AmiParser.feed`` (header dicts built eagerly) with the C splitter
    (``switchboard/ami/_speedups.c``), as the service runs it;
  - ours_pure: the same with the pure-Python path (``SWITCHBOARD_NO_EXTENSIONS=1``),
  - panoramisk: ``AMIProtocol.data_received`` (its own framing + Message.from_line),
  - asterisk-ami: its pack reader loop (1024-byte reads, regex split) +
    ``Response.read`` / ``Event.read``, as ``AMIClient._next_pack``/``fire_recv_pack`` do.
  All three also run on the Vietnamese stream (``*_vi``): the same stream with
  every ``CallerIDName`` set to a Vietnamese name (non-ASCII text in ~85 % of
  the frames, as the hotline's callers and agents carry); ``ratio_*_vi`` compare
  the parsers on those bytes.
* filtered ("as the service runs"): ``AmiParser.feed_filtered`` with the
  service's subscription set (``SUBSCRIPTION`` below); events outside it are
  skipped after reading their name. ``filtered_eps`` hands kept events out as
  the client does (header values read on demand); ``filtered_full_eps`` also
  builds every kept event's header dict.

Rates are frames per CPU second of this process (``time.process_time``),
best of interleaved rounds: the machine is shared, and wall time swings with
other sessions' load. Ratios are the median over the rounds of each round's
ratio (the two parsers ran seconds apart in the same round), which a quiet or a
busy moment for one parser alone moves less than a ratio of two bests.

Usage: python bench/ami_parse.py [--quick] [--events N]
The LAST line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from switchboard.ami import protocol
from switchboard.ami.agi import AGI_EVENTS
from switchboard.ami.protocol import AmiParser, Event
from switchboard.ami.samples import generate_stream
from switchboard.ami.tracker import TRACKED_EVENTS

CHUNK = 64 * 1024
# The service's real subscription set: the call tracker, AsyncAGI, the ACD (agent device and
# contact states, originated agent legs, bridges, dials, hang-ups, channel states) and the
# client's own FullyBooted/Shutdown. Events outside it (Newexten here) are skipped by name.
ACD_EVENTS = frozenset({"DeviceStateChange", "ContactStatus", "OriginateResponse", "BridgeEnter", "BridgeLeave",
                        "DialBegin", "DialEnd", "Hangup", "Newchannel", "Newstate", "FullyBooted"})
SUBSCRIPTION = TRACKED_EVENTS | AGI_EVENTS | ACD_EVENTS | {"Shutdown"}


def chunks(data: bytes) -> Iterator[bytes]:
    for i in range(0, len(data), CHUNK):
        yield data[i:i + CHUNK]


def run_ours(data: bytes) -> int:
    p = AmiParser()
    n = 0
    for chunk in chunks(data):
        for m in p.feed(chunk):
            if isinstance(m, Event):
                m.headers  # noqa: B018  (already built by feed; kept for symmetry)
            n += 1
    return n - 1  # banner


def run_ours_pure(data: bytes) -> int:
    saved = protocol._c
    protocol._c = None
    try:
        return run_ours(data)
    finally:
        protocol._c = saved


def run_filtered(data: bytes) -> int:
    p = AmiParser()
    for chunk in chunks(data):
        p.feed_filtered(chunk, SUBSCRIPTION)
    return p.frames


def run_filtered_full(data: bytes) -> int:
    p = AmiParser()
    for chunk in chunks(data):
        for m in p.feed_filtered(chunk, SUBSCRIPTION):
            if isinstance(m, Event):
                m.headers  # noqa: B018
    return p.frames


def run_panoramisk(data: bytes) -> int:
    from panoramisk.ami_protocol import AMIProtocol

    class Factory:
        def __init__(self) -> None:
            self.n = 0

        def dispatch(self, message: object) -> None:
            self.n += 1

    proto = AMIProtocol()
    proto.connection_made(None)
    proto.encoding = "utf-8"  # the Manager sets this from its options (default utf-8)
    factory = Factory()
    proto.factory = factory
    for chunk in chunks(data):
        proto.data_received(chunk)
    # responses to actions it did not send go nowhere: count them from its framing instead
    return factory.n + data.count(b"\r\nResponse: ")


def run_asterisk_ami(data: bytes) -> int:
    from asterisk.ami.event import Event as AEvent
    from asterisk.ami.response import Response as AResponse

    line_re = re.compile(b"\r\n", re.IGNORECASE | re.MULTILINE)
    pack_re = re.compile(b"\r\n\r\n", re.IGNORECASE | re.MULTILINE)

    def packs() -> Iterator[str]:  # AMIClient._next_pack with socket.recv(1024) replaced by slicing
        buf = b""
        pos = 0
        size = 1024
        while pos < len(data):
            buf += data[pos:pos + size]
            pos += size
            if line_re.search(buf):
                pack, buf = line_re.split(buf, 1)
                yield pack.decode("utf-8", errors="replace")
                break
        while True:
            while pack_re.search(buf):
                pack, buf = pack_re.split(buf, 1)
                yield pack.decode("utf-8", errors="replace")
            if pos >= len(data):
                return
            buf += data[pos:pos + size]
            pos += size

    n = 0
    gen = packs()
    next(gen)  # banner
    for pack in gen:  # AMIClient.fire_recv_pack
        if AResponse.match(pack):
            AResponse.read(pack)
            n += 1
        elif AEvent.match(pack):
            AEvent.read(pack)
            n += 1
    return n


def rate(fn: Callable[[bytes], int], data: bytes) -> tuple[float, int]:
    """Frames per CPU second of this process (other sessions share the cores: wall time is noisy)."""
    gc.collect()
    t0 = time.process_time()
    count = fn(data)
    dt = time.process_time() - t0
    return count / dt, count


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--quick", action="store_true", help="two rounds (finishes in well under a minute)")
    ap.add_argument("--events", type=int, default=100_000)
    args = ap.parse_args(argv)
    rounds = 2 if args.quick else 5
    if not protocol.SPEEDUPS:
        raise SystemExit("switchboard.ami._speedups is not built (or SWITCHBOARD_NO_EXTENSIONS is set): "
                         "`pip install -e .` builds it")
    data, frames = generate_stream(args.events)
    print(f"stream: {frames} frames, {len(data) / 1e6:.1f} MB, 64 KiB chunks, best of {rounds} interleaved "
          "rounds, frames per CPU second", flush=True)
    vi_data = re.sub(rb"CallerIDName: [^\r]*", "CallerIDName: Nguyễn Thị Hồng".encode(), data)
    vi_share = sum(1 for f in vi_data.split(b"\r\n\r\n") if not f.isascii()) / max(1, frames)
    print(f"vi stream: {len(vi_data) / 1e6:.1f} MB, {vi_share:.0%} of the frames hold non-ASCII text", flush=True)
    runners = [("ours", run_ours, data), ("ours_pure", run_ours_pure, data), ("ours_vi", run_ours, vi_data),
               ("panoramisk", run_panoramisk, data), ("panoramisk_vi", run_panoramisk, vi_data),
               ("asterisk_ami", run_asterisk_ami, data), ("asterisk_ami_vi", run_asterisk_ami, vi_data),
               ("ours_pure_vi", run_ours_pure, vi_data),
               ("filtered", run_filtered, data), ("filtered_full", run_filtered_full, data)]
    results: dict[str, float] = dict.fromkeys([name for name, *_ in runners], 0.0)
    per_round: list[dict[str, float]] = []
    for _ in range(rounds):  # interleaved, so a burst of load elsewhere hits every parser alike
        this: dict[str, float] = {}
        for name, fn, stream in runners:
            r, count = rate(fn, stream)
            if count != frames:
                raise SystemExit(f"{name}: counted {count} messages, expected {frames}")
            results[name] = max(results[name], r)
            this[name] = r
        per_round.append(this)

    def ratio(ours: str, other: str) -> float:
        return round(statistics.median(r[ours] / r[other] for r in per_round), 2)

    for name, *_ in runners:
        print(f"  {name:14s} {results[name]:12,.0f} frames/s", flush=True)
    out = {
        "events": frames,
        "ours_eps": round(results["ours"]),
        "panoramisk_eps": round(results["panoramisk"]),
        "asterisk_ami_eps": round(results["asterisk_ami"]),
        "ratio_panoramisk": ratio("ours", "panoramisk"),
        "ratio_asterisk_ami": ratio("ours", "asterisk_ami"),
        "ours_vi_eps": round(results["ours_vi"]),
        "panoramisk_vi_eps": round(results["panoramisk_vi"]),
        "asterisk_ami_vi_eps": round(results["asterisk_ami_vi"]),
        "ratio_panoramisk_vi": ratio("ours_vi", "panoramisk_vi"),
        "ratio_asterisk_ami_vi": ratio("ours_vi", "asterisk_ami_vi"),
        "ratio_rounds_asterisk_ami_vi": [round(r["ours_vi"] / r["asterisk_ami_vi"], 2) for r in per_round],
        "vi_frames_share": round(vi_share, 3),
        "ours_pure_eps": round(results["ours_pure"]),
        "ours_pure_vi_eps": round(results["ours_pure_vi"]),
        "ratio_pure_panoramisk": ratio("ours_pure", "panoramisk"),
        "ratio_pure_asterisk_ami": ratio("ours_pure", "asterisk_ami"),
        "filtered_eps": round(results["filtered"]),
        "filtered_full_eps": round(results["filtered_full"]),
        "subscription": sorted(SUBSCRIPTION),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
