"""The routing book: what the router reads, kept up to date instead of rebuilt at every event.

Owns: a view (``router.AgentView``) of every logged-in agent, the offerable ones under each
topic they have a skill in, the line of calls waiting for an agent (no offer ringing) in
call order, and the times at which a waiting call's eligibility widens by itself (a tier
opens, its reservation for a sticky agent ends, a callback may be dialled again). From
these, :meth:`RoutingBook.step` asks the pure ``router.route_changes`` for the assignments
of what changed since the last step, which equal what ``router.route`` would assign over
everything; :meth:`RoutingBook.full` is ``route`` over everything (the timer's pass).

How it learns what changed: the desk names every agent whose state or record changed
(:meth:`agent_changed`), the line a call that joined or left (:meth:`call_changed`);
any other change (an offer ended, a callback came back, ...) is reported without a name
(:meth:`unknown_change`) and the next step compares the book with the desk's states and
the line's waiters by identity (a state is a new frozen object at every transition).

Must not touch: agents' states, callers or offers (it only reads the desk's and the line's
dicts it is given), clocks, timers, asyncio or I/O: the service says when to step and what
time it is.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections.abc import Callable, Mapping

from switchboard.acd import agent_state as st
from switchboard.acd.agents import AgentRecord
from switchboard.acd.model import Waiter
from switchboard.acd.router import (
    AgentView,
    Assignment,
    RoutingPolicy,
    WaitingCall,
    call_order_key,
    route,
    route_changes,
    widening_times,
)

__all__ = ["RoutingBook"]

_OrderKey = tuple[int, float, str]


def agent_view(agent_id: str, s: st.AgentState, rec: AgentRecord, region_of: Mapping[str, str]) -> AgentView:
    """What the router sees of one logged-in agent."""
    province = rec.home_province or ""
    return AgentView(agent_id=agent_id, skills=rec.skills, province=province, region=region_of.get(province, ""),
                     idle_since=s.since, languages=frozenset(rec.languages), offerable=st.offerable(s))


def _waiting_for_agent(w: Waiter, now: float) -> bool:
    """No offer ringing, and a caller on the line or a callback due."""
    return w.offer is None and (w.session is not None or (w.callback is not None and w.callback.not_before <= now))


class RoutingBook:
    """Views of the agents and the line, kept up to date from the desk's and the line's changes."""

    def __init__(self, *, policy: RoutingPolicy, region_of: Mapping[str, str], states: Mapping[str, st.AgentState],
                 records: Mapping[str, AgentRecord], waiting: Mapping[str, Waiter],
                 held: Callable[[Waiter, float], bool] | None = None) -> None:
        self.policy = policy
        self.region_of = region_of
        self._states = states            # the desk's, read only
        self._records = records          # the desk's, read only
        self._waiting = waiting          # the line's, read only
        # Another part's reason not to place a waiting call now (the calling window, a
        # transfer's named agent); a change of it is seen by the next unnamed-change compare.
        self._held = held or (lambda w, now: False)
        self.present: dict[str, AgentView] = {}                 # every logged-in agent
        self._free: dict[str, dict[str, AgentView]] = {}        # topic -> offerable agents with that skill
        self._seen: dict[str, tuple[st.AgentState, AgentRecord]] = {}   # what each view was built from
        self._keys: list[_OrderKey] = []                        # the line, in call order ...
        self.line: list[WaitingCall] = []                       # ... and its calls
        self._in_line: dict[str, WaitingCall] = {}
        self._known: dict[str, WaitingCall] = {}                # every waiting call whose times are armed
        self._timers: list[tuple[float, str]] = []              # (when eligibility widens, call id)
        self._dirty_agents: set[str] = set()
        self._dirty_calls: set[str] = set()
        self._unknown = False

    # ------------------------------------------------------------------ what changed

    def _routable(self, w: Waiter, now: float) -> bool:
        """Waiting for an agent and placeable now."""
        return _waiting_for_agent(w, now) and not self._held(w, now)

    def agents(self) -> list[AgentView]:
        """Every logged-in agent's view as of now, built aside (a consult asks the router; the
        book's own views and what the next step will see as changed are left as they are)."""
        return [agent_view(agent_id, s, self._records[agent_id], self.region_of)
                for agent_id, s in self._states.items()
                if s.status is not st.AgentStatus.LOGGED_OUT and agent_id in self._records]

    def agent_changed(self, agent_id: str) -> None:
        self._dirty_agents.add(agent_id)

    def call_changed(self, call_id: str) -> None:
        self._dirty_calls.add(call_id)

    def unknown_change(self) -> None:
        """Something changed that was not named: the next step compares everything."""
        self._unknown = True

    def due(self, now: float) -> list[str]:
        """The waiting calls whose eligibility widened by ``now`` (marked for the next step)."""
        fired: list[str] = []
        timers = self._timers
        while timers and timers[0][0] <= now:
            at, call_id = heapq.heappop(timers)
            call = self._known.get(call_id)
            if call is None or call_id not in self._waiting:
                continue
            self._dirty_calls.add(call_id)
            fired.append(call_id)
            self._arm(call, at)
        return fired

    # ------------------------------------------------------------------ routing

    def step(self, now: float) -> list[Assignment]:
        """The assignments of what changed since the last step (what ``route`` would give now).

        The caller applies them (offers) before the next step; they are read back then."""
        fresh, new_calls = self._refresh(now)
        while True:
            if not new_calls and not fresh:
                return []
            out = route_changes(self.line, self._free, self.present, now, self.policy,
                                new_agents=fresh, new_calls=new_calls)
            # A part may change a call or an agent without saying so (a caller leaving the line
            # by a path that does not ask for routing): an assignment must rest on fresh views.
            stale_calls = [a.call_id for a in out if not self._current_call(a.call_id, now)]
            stale_agents = [a.agent_id for a in out if not self._current_agent(a.agent_id)]
            if not stale_calls and not stale_agents:
                break
            for agent_id in stale_agents:
                view = self._refresh_agent(agent_id)
                fresh = [v for v in fresh if v.agent_id != agent_id] + ([view] if view is not None else [])
            for call_id in stale_calls:
                call = self._refresh_call(call_id, now)
                new_calls = [c for c in new_calls if c.call_id != call_id] + ([call] if call is not None else [])
        for a in out:                     # read back once the offers are made
            self._dirty_agents.add(a.agent_id)
            self._dirty_calls.add(a.call_id)
        return out

    def full(self, now: float) -> list[Assignment]:
        """``route`` over every call of the line and every logged-in agent (the timer's pass)."""
        self._refresh(now)
        line = self.line
        # The same answer two ways: with few calls to place among many free agents, each call
        # looks at the free agents of its topic (route_changes with every call new); otherwise
        # route() sorts the free agents once.
        scan = sum(len(self._free.get(c.topic, ())) for c in line)
        if scan <= 3 * sum(len(agents) for agents in self._free.values()) + len(self.present):
            out = route_changes(line, self._free, self.present, now, self.policy, new_calls=line)
        else:
            out = route(line, list(self.present.values()), now, self.policy)
        for a in out:
            self._dirty_agents.add(a.agent_id)
            self._dirty_calls.add(a.call_id)
        return out

    # ------------------------------------------------------------------ keeping the views

    def _refresh(self, now: float) -> tuple[list[AgentView], list[WaitingCall]]:
        if self._unknown:
            self._unknown = False
            self._compare(now)
        fresh: list[AgentView] = []
        if self._dirty_agents:
            dirty, self._dirty_agents = self._dirty_agents, set()
            for agent_id in dirty:
                view = self._refresh_agent(agent_id)
                if view is not None:
                    fresh.append(view)
        new_calls: list[WaitingCall] = []
        if self._dirty_calls:
            dirty_calls, self._dirty_calls = self._dirty_calls, set()
            for call_id in dirty_calls:
                call = self._refresh_call(call_id, now)
                if call is not None:
                    new_calls.append(call)
        return fresh, new_calls

    def _compare(self, now: float) -> None:
        """Mark every agent and call whose state differs from what the book holds."""
        seen = self._seen
        for agent_id, s in self._states.items():
            was = seen.get(agent_id)
            if was is None:
                if s.status is not st.AgentStatus.LOGGED_OUT:
                    self._dirty_agents.add(agent_id)
            elif was[0] is not s or was[1] is not self._records.get(agent_id):
                self._dirty_agents.add(agent_id)
        for agent_id in self.present:
            if agent_id not in self._states:
                self._dirty_agents.add(agent_id)
        in_line, known = self._in_line, self._known
        for call_id, w in self._waiting.items():
            if known.get(call_id) is not w.call or (in_line.get(call_id) is w.call) != self._routable(w, now):
                self._dirty_calls.add(call_id)
        for call_id in known:
            if call_id not in self._waiting:
                self._dirty_calls.add(call_id)

    def _current_call(self, call_id: str, now: float) -> bool:
        w = self._waiting.get(call_id)
        return w is not None and w.call is self._in_line.get(call_id) and self._routable(w, now)

    def _current_agent(self, agent_id: str) -> bool:
        was = self._seen.get(agent_id)
        return was is not None and was[0] is self._states.get(agent_id) and was[1] is self._records.get(agent_id)

    def _refresh_agent(self, agent_id: str) -> AgentView | None:
        """Bring one agent's view up to date; the view when it is offerable and new or changed."""
        s = self._states.get(agent_id)
        rec = self._records.get(agent_id)
        was = self._seen.get(agent_id)
        if was is not None and was[0] is s and was[1] is rec:
            return None
        old = self.present.get(agent_id)
        if old is not None and old.offerable:
            self._unfree(old)
        if s is None or rec is None or s.status is st.AgentStatus.LOGGED_OUT:
            self._seen.pop(agent_id, None)
            if self.present.pop(agent_id, None) is not None:
                self._sticky_agent_changed(agent_id)
            return None
        view = agent_view(agent_id, s, rec, self.region_of)
        self._seen[agent_id] = (s, rec)
        self.present[agent_id] = view
        if old is None or old.skills != view.skills or old.languages != view.languages:
            self._sticky_agent_changed(agent_id)
        if not view.offerable:
            return None
        for topic, prof in view.skills.items():
            if prof >= 1:
                self._free.setdefault(topic, {})[agent_id] = view
        return view if old != view else None

    def _unfree(self, view: AgentView) -> None:
        for topic in view.skills:
            agents = self._free.get(topic)
            if agents is not None:
                agents.pop(view.agent_id, None)
                if not agents:
                    del self._free[topic]

    def _sticky_agent_changed(self, agent_id: str) -> None:
        """An agent came, left, or changed skills or languages: the calls it may be reserved for change."""
        for call in self.line:
            if call.last_agent_id == agent_id:
                self._dirty_calls.add(call.call_id)

    def _refresh_call(self, call_id: str, now: float) -> WaitingCall | None:
        """Bring one call's place in the line up to date; the call when it waits for an agent."""
        w = self._waiting.get(call_id)
        old = self._in_line.get(call_id)
        if w is None:
            if old is not None:
                self._remove(old)
            self._known.pop(call_id, None)
            return None
        call = w.call
        if self._known.get(call_id) is not call:
            self._known[call_id] = call
            self._arm(call, now)
        if not self._routable(w, now):
            if old is not None:
                self._remove(old)
            if w.offer is None and w.callback is not None and w.callback.not_before > now:
                heapq.heappush(self._timers, (w.callback.not_before, call_id))
            return None
        if old is not call:
            if old is not None:
                self._remove(old)
            key = call_order_key(call)
            i = bisect_left(self._keys, key)
            self._keys.insert(i, key)
            self.line.insert(i, call)
            self._in_line[call_id] = call
        return call

    def _remove(self, call: WaitingCall) -> None:
        i = bisect_left(self._keys, call_order_key(call))
        if i < len(self.line) and self.line[i] is call:
            del self._keys[i]
            del self.line[i]
        self._in_line.pop(call.call_id, None)

    def _arm(self, call: WaitingCall, after: float) -> None:
        """Push the next time after ``after`` at which ``call``'s eligibility widens."""
        later = [t for t in widening_times(call, self.policy) if t > after]
        if later:
            heapq.heappush(self._timers, (min(later), call.call_id))
