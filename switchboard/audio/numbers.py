"""Say numbers and digit strings as sequences of word prompts, per language."""

from __future__ import annotations

from switchboard.audio.vi_numbers import WORD_PROMPTS as VI_WORD_PROMPTS
from switchboard.audio.vi_numbers import vi_prompts

__all__ = ["EN_WORD_PROMPTS", "VI_WORD_PROMPTS", "en_words", "say_digits", "say_number", "word_prompts"]

_EN_SMALL = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_EN_TENS = {20: "twenty", 30: "thirty", 40: "forty", 50: "fifty", 60: "sixty", 70: "seventy",
            80: "eighty", 90: "ninety"}

EN_WORD_PROMPTS: dict[str, str] = {f"num_{i}": w for i, w in enumerate(_EN_SMALL)}
EN_WORD_PROMPTS.update({f"num_{k}": w for k, w in _EN_TENS.items()})
EN_WORD_PROMPTS.update({"num_hundred": "hundred", "num_thousand": "thousand"})


def en_words(n: int) -> list[str]:
    """Prompt names for 0..9999 in English ("two thousand twenty four": no "and")."""
    if not 0 <= n <= 9999:
        raise ValueError(f"out of range 0..9999: {n}")
    if n < 20:
        return [f"num_{n}"]
    out: list[str] = []
    thousands, rest = divmod(n, 1000)
    if thousands:
        out += [f"num_{thousands}", "num_thousand"]
    hundreds, rest = divmod(rest, 100)
    if hundreds:
        out += [f"num_{hundreds}", "num_hundred"]
    if rest >= 20:
        tens, unit = divmod(rest, 10)
        out.append(f"num_{tens * 10}")
        if unit:
            out.append(f"num_{unit}")
    elif rest:
        out.append(f"num_{rest}")
    return out


def word_prompts(lang: str) -> dict[str, str]:
    """All number word prompts of a language: name -> text."""
    if lang == "vi":
        return dict(VI_WORD_PROMPTS)
    return dict(EN_WORD_PROMPTS)


def say_number(n: int, lang: str) -> list[str]:
    """Prompt names saying ``n``; beyond 0..9999 the digits are read one by one."""
    if n < 0 or n > 9999:
        return say_digits(str(abs(n)), lang)
    return vi_prompts(n) if lang == "vi" else en_words(n)


def say_digits(digits: str, lang: str) -> list[str]:
    """``"0912"`` -> num_0 num_9 num_1 num_2 (non-digits are skipped)."""
    return [f"num_{c}" for c in digits if c.isdigit()]
