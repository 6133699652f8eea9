"""Where a caller is in the flow, as one channel variable (``SB_IVR``): pure encode/decode.

The runner writes the memo each time the flow waits at a new node (a menu, a
collect, a lookup...): the flow's name, the node and the flow's variables,
URL-encoded. Whoever takes the call over (a standby that takes the lead, or
the service restarted) reads it back from the channel and resumes the flow at
that node with those variables, instead of starting again from the welcome
prompt (docs/ha.md).

What the service recomputes (the call id, caller, dialed number, the caller's
province) is left out. An AMI header line must fit in Asterisk's 1 KiB input
buffer, so the memo is kept under ``MAX_CHARS``: the longest variables are
dropped first (they are lookup results; the flow can look them up again).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

__all__ = ["MAX_CHARS", "VARIABLE", "Memo", "decode", "encode"]

#: the channel variable holding the memo
VARIABLE = "SB_IVR"
MAX_CHARS = 700
_SKIP = frozenset({"call_id", "caller", "dialed", "caller_province"})
_FLOW, _NODE, _END = "_flow", "_node", "_end"


@dataclass(frozen=True, slots=True)
class Memo:
    flow: str
    node: str
    variables: Mapping[str, str] = field(default_factory=dict)
    #: what the caller answered at ``node`` before the take-over (a GET DATA that was still
    #: running), None when nothing is known: the node asks again
    digits: str | None = None
    #: ``digits`` is only the first key (pressed into the node's prompt): it answers a node
    #: that takes one key (a menu); for a longer input (a code) it is the input's first key,
    #: the rest typed meanwhile (``typed``) or still to come
    partial: bool = False
    #: keys the caller pressed while no command read them (after the previous owner's last
    #: command, before the new owner's first): typed ahead into the node's input, and the
    #: next nodes' while they ask without an uninterruptible message between
    typed: str = ""
    #: the flow had ended at ``node`` (its goodbye and hang-up under way) for this reason:
    #: nothing to resume, the record gets that end
    end: str = ""


def encode(flow: str, node: str, variables: Mapping[str, str], *, end: str = "") -> str:
    kept = {k: str(v) for k, v in variables.items() if k not in _SKIP and not k.startswith("_")}
    head = [(_FLOW, flow), (_NODE, node), *([(_END, end)] if end else [])]
    while True:
        text = urlencode([*head, *sorted(kept.items())])
        if len(text) <= MAX_CHARS or not kept:
            return text
        del kept[max(kept, key=lambda k: len(kept[k]) + len(k))]


def decode(text: str) -> Memo | None:
    """The memo in a channel variable's value; None when empty or not a memo."""
    if not text:
        return None
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        return None
    values = dict(pairs)
    flow, node, end = values.pop(_FLOW, ""), values.pop(_NODE, ""), values.pop(_END, "")
    if not flow or not node:
        return None
    return Memo(flow, node, values, end=end)
