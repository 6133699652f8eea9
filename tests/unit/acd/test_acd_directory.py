"""The transfer directory: numbers pass the number policy at load; a bad file names file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchboard.acd.directory import DirectoryError, load_directory, parse_directory
from switchboard.telephony.numbers import default_callback_numbers

POLICY = default_callback_numbers().policy
REPO = Path(__file__).resolve().parents[3]


def test_the_shipped_directory_loads() -> None:
    d = load_directory(REPO / "deploy" / "directory.yaml", POLICY)
    assert len(d.entries) >= 3
    for e in d.entries:
        assert POLICY.check(e.number).ok and e.dial.isdigit()
    assert d.find("ha-noi") is not None and d.by_position(1) == d.entries[0] and d.by_position(0) is None


def test_numbers_are_normalised() -> None:
    d = parse_directory('directory:\n  - {code: hn, name: "Office", number: "+84 24 3900 0001"}\n', POLICY)
    assert (d.entries[0].number, d.entries[0].dial) == ("02439000001", "02439000001")


@pytest.mark.parametrize(("text", "where", "words"), [
    ('directory:\n  - {code: a, name: x, number: "1900 1234"}\n', ":2:", "denied_prefix"),
    ('directory:\n  - {code: a, name: x, number: "0912345678"}\n  - {code: b, name: y, number: "+1 212 555"}\n',
     ":3:", "international"),
    ('directory:\n  - {code: a, name: x, number: "0912&345"}\n', ":2:", "malformed"),
    ('directory:\n  - {code: a, name: x}\n', ":2:", "no number"),
    ('directory:\n  - {code: a, name: x, number: "0912345678"}\n  - {code: a, name: y, number: "0912345679"}\n',
     ":3:", "twice"),
    ('directory:\n  - {code: "A B", name: x, number: "0912345678"}\n', ":2:", "code"),
    ('directory:\n  - {code: a, name: x, number: "0912345678", dial: "PJSIP/x"}\n', ":2:", "unknown field"),
    ('entries: []\n', ":1:", "unknown key"),
    ('directory: [\n', ":", "not valid YAML"),
])
def test_a_bad_file_names_file_and_line(text: str, where: str, words: str) -> None:
    with pytest.raises(DirectoryError) as err:
        parse_directory(text, POLICY, name="dir.yaml")
    assert str(err.value).startswith("dir.yaml" + where) and words in str(err.value), str(err.value)


def test_a_missing_file_is_an_empty_directory(tmp_path: Path) -> None:
    assert load_directory(tmp_path / "none.yaml", POLICY).entries == ()


def test_the_service_refuses_to_start_on_a_bad_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from switchboard.cli import main

    bad = tmp_path / "directory.yaml"
    bad.write_text('directory:\n  - {code: premium, name: x, number: "1900 9068"}\n', encoding="utf-8")
    cfg = tmp_path / "sb.toml"
    cfg.write_text(f'[paths]\ndirectory_file = "{bad}"\nflows_dir = "{REPO / "ivr_flows"}"\n'
                   f'prompts_dir = "{REPO / "recordings" / "prompts"}"\nrun_dir = "{tmp_path}"\n', encoding="utf-8")
    assert main(["--config", str(cfg), "run"]) == 2
    err = capsys.readouterr().err
    assert f"transfer directory error: {bad}:2:" in err and "denied_prefix" in err, err
