"""A session's room (pure): seats and capacity, the raised-hands queue, the floor, attendance figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from switchboard.sessions.room import Room

T0 = datetime(2026, 3, 3, 3, 0, tzinfo=UTC)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def room_with(n: int, capacity: int = 10) -> Room:
    r = Room("s1", capacity)
    r.joined(uniqueid="m", channel="PJSIP/agent1001-1", call_id="m", caller="", moderator=True, muted=False, at=at(0))
    for i in range(n):
        assert r.reserve(f"c{i}", at(1))
        r.joined(uniqueid=f"u{i}", channel=f"PJSIP/trunk-{i}", call_id=f"c{i}", caller=f"09{i}", moderator=False,
                 muted=True, at=at(2))
    return r


def test_capacity_counts_callers_and_seats_on_the_way_not_the_moderator() -> None:
    r = room_with(9)
    assert r.seats_taken() == 9
    assert r.reserve("late1", at(3))
    assert not r.reserve("late2", at(3))            # full: 9 in + 1 on the way
    assert r.reserve("late1", at(3))                # the same caller again keeps its seat
    assert r.expire(at(30)) == ["late1"]           # never arrived: the seat is free again
    assert r.reserve("late2", at(31))
    r.left("u0", at(40))
    assert r.reserve("late3", at(41))


def test_hands_in_order_once_each_and_out_of_the_queue_with_the_floor() -> None:
    r = room_with(3)
    assert r.raise_hand("u2", at(5)) and r.raise_hand("u0", at(6)) and r.raise_hand("u2", at(7))
    assert not r.raise_hand("m", at(7))             # the moderator has no hand to raise
    assert [p.uniqueid for p in r.hand_queue()] == ["u2", "u0"]
    assert r.participants["u2"].hands == 2 and r.participants["u2"].hand_raised_at == at(5)
    r.unmuted("u2", at(10))
    assert [p.uniqueid for p in r.hand_queue()] == ["u0"]
    r.muted("u2", at(25))
    p = r.participants["u2"]
    assert (p.unmuted_at, p.unmuted_s, p.muted) == (at(10), 15.0, True)
    r.raise_hand("u2", at(26))                      # may ask again: back at the end of the queue
    assert [q.uniqueid for q in r.hand_queue()] == ["u0", "u2"]


def test_leaving_closes_the_floor_and_the_hand() -> None:
    r = room_with(2)
    r.raise_hand("u1", at(3))
    r.unmuted("u0", at(4))
    gone = r.left("u0", at(9))
    assert gone is not None and gone.unmuted_s == 5.0
    gone = r.left("u1", at(9))
    assert gone is not None and not gone.hand_up and r.hands == []
    assert r.left("u1", at(10)) is None
    assert r.find("PJSIP/agent1001-1") is r.participants["m"] and r.find("c9") is None


def test_an_invited_arrival_says_who_was_called_and_how() -> None:
    from switchboard.sessions.room import Arrival

    r = room_with(1)
    assert r.reserve("cmp-1", at(3), Arrival("invited", "0912700101", "9900000101"))
    # the invited leg's own caller id is the hotline's number: the number called is kept instead
    p = r.joined(uniqueid="cmp-1", channel="PJSIP/trunk-9", call_id="cmp-1", caller="19009068", moderator=False,
                 muted=True, at=at(4))
    assert (p.via, p.caller, p.participant_id) == ("invited", "0912700101", "9900000101")
    assert r.participants["u0"].via == "menu" and r.participants["m"].via == "moderator"
    assert not r.arriving
    assert r.reserve("cmp-2", at(5), Arrival("invited", "0912700102")) and r.expire(at(60)) == ["cmp-2"]
    assert not r.arriving                            # a seat that expired forgets its arrival too


def test_raised_hands_restored_in_the_order_raised() -> None:
    r = room_with(4)
    r.unmuted("u3", at(3))                           # has the floor: its hand cannot be up
    queue = r.restore_hands([(1700000012.5, "u2"), (1700000010.25, "u0"), (1700000012.5, "u1"),
                             (1700000011.0, "u3"), (1700000013.0, "gone"), (1700000014.0, "m")])
    assert queue == ["u0", "u1", "u2"]               # first raised first; a tie in join order
    assert [p.hand_up for p in r.hand_queue()] == [True, True, True]
    assert r.restore_hands([(1.0, "u0")]) == ["u0", "u1", "u2"]   # once each
