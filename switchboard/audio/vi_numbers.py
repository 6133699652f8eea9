"""Vietnamese number words for 0-9999 and the prompt sequence that says them.

Rules (the common, Northern reading used by the hotline):

* units: không một hai ba bốn năm sáu bảy tám chín;
* 10-19: ``mười`` + unit, with 5 read ``lăm`` (15 = mười lăm);
* 20-99: tens digit + ``mươi``; a unit 1 is ``mốt`` (21 = hai mươi mốt),
  4 is ``tư`` (24 = hai mươi tư), 5 is ``lăm`` (25 = hai mươi lăm);
* hundreds: digit + ``trăm``; a remainder 1-9 is joined with ``lẻ``
  (105 = một trăm lẻ năm, where 5 stays ``năm`` and 4 stays ``bốn``);
* thousands: digit + ``nghìn``; a remainder under 100 keeps ``không trăm``
  (1005 = một nghìn không trăm lẻ năm, 2024 = hai nghìn không trăm hai mươi tư).
"""

from __future__ import annotations

__all__ = ["MAX", "WORD_PROMPTS", "vi_prompts", "vi_text", "vi_words"]

MAX = 9999

UNITS = ("không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín")

#: One recorded prompt per word; name -> text. ``num_<d>`` are the plain digits.
WORD_PROMPTS: dict[str, str] = {f"num_{d}": word for d, word in enumerate(UNITS)}
WORD_PROMPTS.update(
    {
        "num_muoi_huyen": "mười",  # ten (10-19)
        "num_muoi_ngang": "mươi",  # -ty (20-99)
        "num_mot_sac": "mốt",  # 1 after mươi
        "num_tu": "tư",  # 4 after mươi
        "num_lam": "lăm",  # 5 after mười/mươi
        "num_tram": "trăm",
        "num_nghin": "nghìn",
        "num_le": "lẻ",
    }
)
_PROMPT_FOR_WORD = {text: name for name, text in WORD_PROMPTS.items()}


def _tens(n: int) -> list[str]:
    """1-99."""
    if n < 10:
        return [UNITS[n]]
    tens, unit = divmod(n, 10)
    if tens == 1:
        words = ["mười"]
        if unit:
            words.append("lăm" if unit == 5 else UNITS[unit])
        return words
    words = [UNITS[tens], "mươi"]
    if unit == 1:
        words.append("mốt")
    elif unit == 4:
        words.append("tư")
    elif unit == 5:
        words.append("lăm")
    elif unit:
        words.append(UNITS[unit])
    return words


def _under_thousand(n: int, *, full: bool) -> list[str]:
    """0-999; ``full`` says the hundreds even when zero (inside a thousand)."""
    hundreds, rest = divmod(n, 100)
    words: list[str] = []
    if hundreds or full:
        words += [UNITS[hundreds], "trăm"]
    if rest == 0:
        return words
    if words and rest < 10:
        return [*words, "lẻ", UNITS[rest]]
    return words + _tens(rest)


def vi_words(n: int) -> list[str]:
    """The words for ``n`` (0 <= n <= 9999)."""
    if not 0 <= n <= MAX:
        raise ValueError(f"out of range 0..{MAX}: {n}")
    if n == 0:
        return ["không"]
    thousands, rest = divmod(n, 1000)
    if not thousands:
        return _under_thousand(rest, full=False)
    words = [UNITS[thousands], "nghìn"]
    if rest:
        words += _under_thousand(rest, full=True)
    return words


def vi_text(n: int) -> str:
    return " ".join(vi_words(n))


def vi_prompts(n: int) -> list[str]:
    """Prompt names that say ``n`` when played in order."""
    return [_PROMPT_FOR_WORD[w] for w in vi_words(n)]
