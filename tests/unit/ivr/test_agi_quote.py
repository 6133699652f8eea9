"""``agi_quote``: whatever the text, Asterisk's AGI parser sees exactly one argument, and
that argument is the text (control characters dropped). Checked against ``agi_args``, a
restatement of res_agi's ``parse_args``."""

from __future__ import annotations

import string

from fake_agi import agi_args
from hypothesis import given
from hypothesis import strategies as st

from switchboard.ami.agi import agi_quote


def test_quotes_backslashes_spaces_and_newlines() -> None:
    assert agi_quote('say "hi"') == '"say \\"hi\\""'
    assert agi_quote("a\\b") == '"a\\\\b"'
    assert agi_quote("two words") == '"two words"'
    assert agi_quote("line1\r\nline2\t!") == '"line1line2!"'
    assert agi_quote("") == '""'


def test_a_hostile_caller_id_stays_one_value() -> None:
    hostile = '0912" SB_NEXT "transfer'
    cmd = f"SET VARIABLE SB_CALLER {agi_quote(hostile)}"
    assert agi_args(cmd) == ["SET", "VARIABLE", "SB_CALLER", hostile]
    # the unescaped form of today's code: the caller sets a second argument
    assert agi_args(f'SET VARIABLE SB_CALLER "{hostile}"') != ["SET", "VARIABLE", "SB_CALLER", hostile]
    # a backslash at the end must not swallow the closing quote
    assert agi_args(f"SET VARIABLE X {agi_quote('0912' + chr(92))} tail") == ["SET", "VARIABLE", "X", "0912\\", "tail"]


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60))
def test_any_text_is_exactly_one_argument(text: str) -> None:
    kept = "".join(c for c in text if not (ord(c) < 0x20 or ord(c) == 0x7F))
    quoted = agi_quote(text)
    assert "\r" not in quoted and "\n" not in quoted
    assert agi_args(f"SET VARIABLE NAME {quoted}") == ["SET", "VARIABLE", "NAME", kept]


@given(st.lists(st.text(alphabet=string.printable, max_size=12), min_size=1, max_size=4))
def test_several_quoted_arguments_keep_their_boundaries(values: list[str]) -> None:
    kept = ["".join(c for c in v if ord(c) >= 0x20) for v in values]
    assert agi_args("EXEC App " + " ".join(agi_quote(v) for v in values)) == ["EXEC", "App", *kept]
