"""Vietnamese number grammar 0-9999: hand-checked values plus rule checks on every number."""

from __future__ import annotations

import pytest

from switchboard.audio.numbers import EN_WORD_PROMPTS, en_words, say_digits, say_number
from switchboard.audio.vi_numbers import WORD_PROMPTS, vi_prompts, vi_text, vi_words

HAND_CHECKED = {
    0: "không",
    1: "một",
    4: "bốn",
    5: "năm",
    10: "mười",
    11: "mười một",
    14: "mười bốn",
    15: "mười lăm",
    20: "hai mươi",
    21: "hai mươi mốt",
    24: "hai mươi tư",
    25: "hai mươi lăm",
    31: "ba mươi mốt",
    55: "năm mươi lăm",
    99: "chín mươi chín",
    100: "một trăm",
    101: "một trăm lẻ một",
    104: "một trăm lẻ bốn",
    105: "một trăm lẻ năm",
    110: "một trăm mười",
    115: "một trăm mười lăm",
    121: "một trăm hai mươi mốt",
    500: "năm trăm",
    1000: "một nghìn",
    1005: "một nghìn không trăm lẻ năm",
    1010: "một nghìn không trăm mười",
    1050: "một nghìn không trăm năm mươi",
    1100: "một nghìn một trăm",
    2024: "hai nghìn không trăm hai mươi tư",
    2025: "hai nghìn không trăm hai mươi lăm",
    1945: "một nghìn chín trăm bốn mươi lăm",
    9068: "chín nghìn không trăm sáu mươi tám",
    9999: "chín nghìn chín trăm chín mươi chín",
}

DIGIT = ["không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín"]


@pytest.mark.parametrize(("n", "text"), HAND_CHECKED.items())
def test_hand_checked(n: int, text: str) -> None:
    assert vi_text(n) == text


def _two_digit_rule(n: int) -> str:
    """The tens rules, written as string rules (an oracle independent of the implementation)."""
    t, u = divmod(n, 10)
    if t == 0:
        return DIGIT[u]
    head = "mười" if t == 1 else f"{DIGIT[t]} mươi"
    if u == 0:
        return head
    if u == 5:
        return f"{head} lăm"
    if t >= 2 and u == 1:
        return f"{head} mốt"
    if t >= 2 and u == 4:
        return f"{head} tư"
    return f"{head} {DIGIT[u]}"


def _rule(n: int) -> str:
    if n == 0:
        return "không"
    th, rest = divmod(n, 1000)
    h, r = divmod(rest, 100)
    parts = []
    if th:
        parts.append(f"{DIGIT[th]} nghìn")
    if h or (th and r):
        parts.append(f"{DIGIT[h]} trăm")
    if r:
        if parts and r < 10:
            parts.append(f"lẻ {DIGIT[r]}")
        else:
            parts.append(_two_digit_rule(r))
    return " ".join(parts)


def test_every_number_follows_the_rules() -> None:
    bad = [(n, vi_text(n), _rule(n)) for n in range(10000) if vi_text(n) != _rule(n)]
    assert bad == []


def test_grammar_invariants_over_range() -> None:
    for n in range(10000):
        words = vi_words(n)
        text = " ".join(words)
        assert "mươi một" not in text and "mươi bốn" not in text and "mươi năm" not in text, n
        assert "mười năm" not in text, n
        if "mốt" in words:
            assert words[words.index("mốt") - 1] == "mươi"
        if "lẻ" in words:
            assert words[words.index("lẻ") - 1] == "trăm" and len(words) == words.index("lẻ") + 2


def test_prompts_cover_every_word_and_map_one_to_one() -> None:
    used = {w for n in range(10000) for w in vi_words(n)}
    assert used == set(WORD_PROMPTS.values())
    assert vi_prompts(21) == ["num_2", "num_muoi_ngang", "num_mot_sac"]
    assert vi_prompts(15) == ["num_muoi_huyen", "num_lam"]
    assert vi_prompts(105) == ["num_1", "num_tram", "num_le", "num_5"]


def test_out_of_range() -> None:
    with pytest.raises(ValueError):
        vi_words(10000)
    with pytest.raises(ValueError):
        vi_words(-1)
    assert say_number(12345, "vi") == say_digits("12345", "vi")


def test_english() -> None:
    assert en_words(0) == ["num_0"]
    assert en_words(15) == ["num_15"]
    assert en_words(21) == ["num_20", "num_1"]
    assert en_words(105) == ["num_1", "num_hundred", "num_5"]
    assert en_words(2024) == ["num_2", "num_thousand", "num_20", "num_4"]
    used = {w for n in range(10000) for w in en_words(n)}
    assert used == set(EN_WORD_PROMPTS)
    assert say_number(40, "en") == ["num_40"]
