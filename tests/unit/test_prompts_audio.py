"""Every prompt the shipped flows can play exists for vi and en as 8 kHz mono 16-bit audio."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import pytest

from switchboard.audio.build import build_prompts, check_wav, load_texts
from switchboard.audio.numbers import word_prompts
from switchboard.ivr import model as m
from switchboard.ivr.loader import missing_audio
from switchboard.ivr.registry import FlowRegistry, flow_files

REPO = Path(__file__).resolve().parents[2]
FLOWS = REPO / "ivr_flows"
PROMPTS = REPO / "recordings" / "prompts"


def _shipped() -> list[m.Flow]:
    reg = FlowRegistry(FLOWS, PROMPTS)
    report = reg.reload()
    assert report.ok, "\n".join(map(str, report.errors))
    assert len(reg.flows) == len(flow_files(FLOWS))
    return list(reg.flows.values())


def _referenced(flow: m.Flow) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for node in flow.nodes.values():
        for attr in ("prompts", "invalid_prompt", "timeout_prompt", "thanks"):
            for item in getattr(node, attr, ()):
                langs = [item.lang] if isinstance(item, m.PromptRef) and item.lang else list(flow.languages)
                for lang in langs:
                    if isinstance(item, m.PromptRef):
                        if not item.name.startswith("$"):   # named by a variable: the sessions' below
                            out.add((lang, item.name))
                    else:
                        out |= {(lang, w) for w in word_prompts(lang)}
    return out


def test_shipped_flows_offer_vi_and_en_and_miss_no_audio() -> None:
    for flow in _shipped():
        assert set(flow.languages) == {"vi", "en"}
        assert missing_audio(flow, PROMPTS) == []


def _session_titles() -> set[tuple[str, str]]:
    """The title prompts of the shipped Q&A sessions (sessions/*.yaml), in each of their languages."""
    from switchboard.sessions.model import load_sessions

    return {(lang, s.title_prompt) for s in load_sessions(FLOWS.parent / "sessions") for lang in s.languages
            if s.title_prompt}


def test_every_referenced_prompt_is_8khz_mono_16bit_wav_with_ulaw_twin() -> None:
    titles = _session_titles()
    assert titles
    refs = set().union(*(_referenced(f) for f in _shipped())) | titles
    assert {lang for lang, _ in refs} == {"vi", "en"}
    assert len(refs) > 100
    for lang, name in sorted(refs):
        wav = PROMPTS / lang / f"{name}.wav"
        assert wav.is_file(), f"missing {wav}"
        with wave.open(str(wav), "rb") as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2), wav
            frames = w.getnframes()
        assert frames >= 8000 * 0.15, wav
        ulaw = wav.with_suffix(".ulaw")
        assert ulaw.stat().st_size == frames, ulaw


def test_manifest_matches_texts_so_nothing_needs_rebuilding() -> None:
    manifest = json.loads((PROMPTS / "manifest.json").read_text(encoding="utf-8"))["prompts"]
    texts = load_texts(FLOWS / "prompts")
    assert {f"{t.lang}/{t.name}" for t in texts} == set(manifest)
    for t in texts:
        assert manifest[f"{t.lang}/{t.name}"]["text"] == t.text


def test_total_audio_size_stays_modest() -> None:
    total = sum(p.stat().st_size for p in PROMPTS.rglob("*") if p.is_file())
    assert total < 20 * 1024 * 1024


def test_builder_renders_only_changed_prompts_and_refuses_bad_audio(tmp_path: Path) -> None:
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "en.yaml").write_text("voice: en\nprompts:\n  hello: \"Hello there.\"\n", encoding="utf-8")
    out = tmp_path / "out"
    first = build_prompts(texts, out, languages=["en"])
    assert "en/hello" in first.built and not first.failed
    assert check_wav(out / "en" / "hello.wav") == []
    again = build_prompts(texts, out, languages=["en"])
    assert again.built == [] and "en/hello" in again.unchanged
    (texts / "en.yaml").write_text("voice: en\nprompts:\n  hello: \"Hello again.\"\n", encoding="utf-8")
    changed = build_prompts(texts, out, languages=["en"])
    assert changed.built == ["en/hello"]
    # a silent source recording is refused, and nothing is written for it
    src = texts / "source" / "en"
    src.mkdir(parents=True)
    with wave.open(str(src / "quiet.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 8000)
    (texts / "en.yaml").write_text("voice: en\nprompts:\n  quiet: \"(recorded)\"\n", encoding="utf-8")
    bad = build_prompts(texts, out, languages=["en"])
    assert [k for k, _ in bad.failed] == ["en/quiet"]
    assert not (out / "en" / "quiet.wav").exists()
    assert "en/hello" in bad.stale


@pytest.mark.parametrize("problem", ["stereo", "44k"])
def test_check_wav_names_the_problem(tmp_path: Path, problem: str) -> None:
    p = tmp_path / "x.wav"
    with wave.open(str(p), "wb") as w:
        w.setnchannels(2 if problem == "stereo" else 1)
        w.setsampwidth(2)
        w.setframerate(44100 if problem == "44k" else 8000)
        w.writeframes(b"\1\0" * 44100)
    problems = check_wav(p)
    assert problems and ("channels" in problems[0] if problem == "stereo" else "Hz" in problems[0])
