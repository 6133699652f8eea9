"""Loader: every broken flow in the corpus gives exactly its expected errors at file:line:column."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from switchboard.ivr.loader import FlowLoadError, load_entries, load_flow, load_flow_text
from switchboard.ivr.model import Collect, Menu
from switchboard.ivr.registry import FlowRegistry, validate_tree

REPO = Path(__file__).resolve().parents[3]
BROKEN = REPO / "tests" / "fixtures" / "flows_broken"
GOOD = Path(__file__).parent / "flows" / "every_kind.yaml"
CORPUS = sorted(BROKEN.glob("*.yaml"))


def _expectations(path: Path) -> tuple[list[tuple[int, int, str]], list[str]]:
    expects, audio = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if match := re.match(r"# expect: (\d+):(\d+): (.+)$", line):
            expects.append((int(match[1]), int(match[2]), match[3]))
        elif line.startswith("# audio:"):
            audio = [a.strip() for a in line.split(":", 1)[1].split(",")]
    return expects, audio


def test_corpus_is_not_empty() -> None:
    assert len(CORPUS) >= 12


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_broken_flow_reports_every_error_at_its_place(path: Path, tmp_path: Path) -> None:
    expects, audio = _expectations(path)
    assert expects, f"{path.name} has no '# expect:' lines"
    prompts_dir = None
    if audio:
        prompts_dir = tmp_path
        for item in audio:
            (tmp_path / item).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / f"{item}.wav").write_bytes(b"RIFF")
    with pytest.raises(FlowLoadError) as info:
        load_flow(path, prompts_dir=prompts_dir)
    errors = info.value.errors
    assert all(e.file == str(path) for e in errors)
    got = [(e.line, e.column, e.message) for e in errors]
    for line, col, text in expects:
        assert any(g[0] == line and g[1] == col and text in g[2] for g in got), (
            f"{path.name}: expected {line}:{col}: {text!r}; got:\n" + "\n".join(map(str, errors))
        )
    assert len(errors) == len(expects), "unexpected extra errors:\n" + "\n".join(map(str, errors))


def test_error_renders_as_file_line_column() -> None:
    with pytest.raises(FlowLoadError) as info:
        load_flow_text("flow: x\nstart: a\nnodes:\n  a: {type: hangup, oops: 1}\n", "mem.yaml")
    assert str(info.value.errors[0]).startswith("mem.yaml:4:")
    assert "unknown key 'oops'" in str(info.value)


def test_good_flow_loads_with_defaults_applied() -> None:
    flow = load_flow(GOOD)
    main = flow.nodes["main"]
    ask = flow.nodes["ask_province"]
    assert isinstance(main, Menu) and isinstance(ask, Collect)
    assert flow.languages == ("vi", "en") and flow.default_language == "vi"
    assert main.timeout == 4.0 and main.retries == 2
    assert main.on_invalid == "bye"
    assert ask.choices == {"01": "ha-noi", "02": "ho-chi-minh", "0": ""}
    assert flow.nodes["lang"].where.line == 30


def test_unquoted_leading_zero_digits_stay_as_written() -> None:
    text = "flow: z\nstart: a\nnodes:\n  a:\n    type: collect\n    prompts: p\n    var: v\n" \
           "    choices: {01: ha-noi, 0: x}\n    next: b\n    on_fail: b\n  b: {type: hangup}\n"
    flow = load_flow_text(text, "z.yaml")
    node = flow.nodes["a"]
    assert isinstance(node, Collect) and node.choices == {"01": "ha-noi", "0": "x"}


def _tree(tmp_path: Path) -> Path:
    d = tmp_path / "flows"
    d.mkdir()
    shutil.copy(GOOD, d / "every_kind.yaml")
    (d / "entries.yaml").write_text(
        "default: every_kind\nentries:\n  - {dialed: '19009068', flow: every_kind}\n"
        "  - {dialed: '1900906801', flow: every_kind, province: ha-noi}\n"
        "  - {dialed: '02363888999', flow: every_kind, province: da-nang}\n", encoding="utf-8")
    return d


def test_registry_routes_and_keeps_last_good_version_on_bad_reload(tmp_path: Path) -> None:
    d = _tree(tmp_path)
    reg = FlowRegistry(d, None)
    report = reg.reload()
    assert report.ok and report.loaded == ["every_kind"]
    good = reg.flow("every_kind")
    route = reg.route("1900906801")
    assert route.flow is good and route.province == "ha-noi"
    assert reg.route("+842363888999").province == "da-nang"
    assert reg.route("0000").province == ""
    # break the file: the old version keeps running
    text = (d / "every_kind.yaml").read_text(encoding="utf-8")
    (d / "every_kind.yaml").write_text(text.replace("next: find", "next: lost"), encoding="utf-8")
    report = reg.reload()
    assert not report.ok and report.kept == ["every_kind"]
    assert any("'lost' does not exist" in e.message for e in report.errors)
    assert reg.flow("every_kind") is good
    # fix it: the new version replaces the old
    (d / "every_kind.yaml").write_text(text.replace("retries: 0", "retries: 1"), encoding="utf-8")
    report = reg.reload()
    assert report.ok and reg.flow("every_kind").version != good.version


def test_registry_rejects_bad_entries_and_keeps_old_map(tmp_path: Path) -> None:
    d = _tree(tmp_path)
    reg = FlowRegistry(d, None)
    reg.reload()
    (d / "entries.yaml").write_text("entries:\n  - {dialed: '123', flow: nope}\n", encoding="utf-8")
    report = reg.reload()
    assert [e.line for e in report.errors] == [2]
    assert "unknown flow 'nope'" in report.errors[0].message
    assert reg.route("1900906801").province == "ha-noi"


def test_entries_errors_have_places(tmp_path: Path) -> None:
    p = tmp_path / "entries.yaml"
    p.write_text("entries:\n  - {dialed: '12a', flow: x}\n  - {flow: y}\n", encoding="utf-8")
    with pytest.raises(FlowLoadError) as info:
        load_entries(p)
    assert [(e.line, e.column) for e in info.value.errors] == [(2, 14), (3, 5)]


def test_validate_tree_lists_all_errors_of_all_files(tmp_path: Path) -> None:
    d = _tree(tmp_path)
    shutil.copy(BROKEN / "dangling.yaml", d / "dangling.yaml")
    shutil.copy(BROKEN / "unreachable.yaml", d / "unreachable.yaml")
    errors = validate_tree(d, None)
    files = {Path(e.file).name for e in errors}
    assert files == {"dangling.yaml", "unreachable.yaml"}
    assert len(errors) == 3
    assert validate_tree(d / "every_kind.yaml", None) == []
