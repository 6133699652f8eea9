"""Build prompt audio: texts (``ivr_flows/prompts/<lang>.yaml``) -> 8 kHz mono 16-bit wav + ulaw.

Each prompt comes from a human recording when one exists
(``ivr_flows/prompts/source/<lang>/<name>.wav|mp3|ogg``), else from espeak-ng
with the language's voice. pydub then makes it what Asterisk plays: mono,
8 kHz, 16-bit, leading/trailing silence trimmed, loudness normalised, plus a
raw ``.ulaw`` twin. A file that would not play (wrong format, too short,
silent, too long) is refused and nothing is written for it.

``manifest.json`` keeps a hash of each prompt's input (text + voice +
pipeline version, or the source file's bytes), so only new or changed
prompts are rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from switchboard.audio.numbers import word_prompts

__all__ = [
    "PIPELINE_VERSION",
    "BuildReport",
    "PromptBuildError",
    "PromptText",
    "build_prompts",
    "check_wav",
    "load_texts",
]

log = logging.getLogger("switchboard.audio")

PIPELINE_VERSION = "1"  # bump to rebuild everything after changing the processing below
RATE = 8000
TARGET_DBFS = -20.0  # average loudness
PEAK_CEILING_DBFS = -1.0
SILENCE_THRESHOLD_DBFS = -45.0
PAD_MS = 60
MIN_MS = 150
MAX_MS = 5 * 60 * 1000
SOURCE_EXTENSIONS = (".wav", ".mp3", ".ogg")
ESPEAK_SPEED = {"vi": 145, "en": 150}


class PromptBuildError(Exception):
    """A prompt could not be turned into audio Asterisk would play."""


@dataclass(frozen=True, slots=True)
class PromptText:
    lang: str
    voice: str
    name: str
    text: str


@dataclass
class BuildReport:
    built: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # audio with no text any more


def load_texts(texts_dir: Path, languages: Iterable[str] | None = None) -> list[PromptText]:
    """All prompts of ``<texts_dir>/<lang>.yaml`` plus the language's number words."""
    out: list[PromptText] = []
    for path in sorted(texts_dir.glob("*.yaml")):
        lang = path.stem
        if languages is not None and lang not in languages:
            continue
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        voice = str(data.get("voice", lang))
        prompts = data.get("prompts") or {}
        if not isinstance(prompts, dict):
            raise PromptBuildError(f"{path}: 'prompts' must be a mapping of name -> text")
        merged = {**word_prompts(lang), **{str(k): str(v) for k, v in prompts.items()}}
        out += [PromptText(lang, voice, name, text) for name, text in sorted(merged.items())]
    return out


def _hash(item: PromptText, source: Path | None) -> str:
    h = hashlib.sha256(PIPELINE_VERSION.encode())
    if source is not None:
        h.update(b"file\0" + source.read_bytes())
    else:
        h.update(f"tts\0{item.voice}\0{ESPEAK_SPEED.get(item.lang, 150)}\0{item.text}".encode())
    return h.hexdigest()[:16]


def _source_for(source_dir: Path, item: PromptText) -> Path | None:
    for ext in SOURCE_EXTENSIONS:
        p = source_dir / item.lang / f"{item.name}{ext}"
        if p.is_file():
            return p
    return None


def _speak(item: PromptText, out: Path) -> None:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise PromptBuildError("espeak-ng is not installed (apt-get install espeak-ng)")
    speed = str(ESPEAK_SPEED.get(item.lang, 150))
    proc = subprocess.run([espeak, "-v", item.voice, "-s", speed, "-w", str(out), item.text],
                          capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0 or not out.is_file():
        raise PromptBuildError(f"espeak-ng failed for {item.lang}/{item.name}: {proc.stderr.strip()}")


def _process(raw: Path, wav_out: Path, ulaw_out: Path) -> int:
    """Convert, trim, normalise; returns the duration in ms. Writes both files or neither."""
    from pydub import AudioSegment
    from pydub.silence import detect_leading_silence

    seg = AudioSegment.from_file(str(raw))
    seg = seg.set_channels(1).set_frame_rate(RATE).set_sample_width(2)
    start = max(0, detect_leading_silence(seg, silence_threshold=SILENCE_THRESHOLD_DBFS) - PAD_MS)
    end = len(seg) - max(0, detect_leading_silence(seg.reverse(), silence_threshold=SILENCE_THRESHOLD_DBFS) - PAD_MS)
    seg = seg[start:end]
    if len(seg) < MIN_MS:
        raise PromptBuildError(f"{raw.name}: only {len(seg)} ms of sound after trimming silence")
    if seg.dBFS == float("-inf") or seg.dBFS < -60:
        raise PromptBuildError(f"{raw.name}: silent")
    seg = seg.apply_gain(TARGET_DBFS - seg.dBFS)
    if seg.max_dBFS > PEAK_CEILING_DBFS:
        seg = seg.apply_gain(PEAK_CEILING_DBFS - seg.max_dBFS)
    if len(seg) > MAX_MS:
        raise PromptBuildError(f"{raw.name}: {len(seg) / 1000:.0f} s is too long for a prompt")
    tmp_wav = wav_out.with_suffix(".wav.tmp")
    tmp_ulaw = ulaw_out.with_suffix(".ulaw.tmp")
    try:
        seg.export(str(tmp_wav), format="wav")
        seg.export(str(tmp_ulaw), format="mulaw", codec="pcm_mulaw", parameters=["-ar", str(RATE), "-ac", "1"])
        problems = check_wav(tmp_wav)
        frames = _frames(tmp_wav)
        if tmp_ulaw.stat().st_size != frames:
            problems.append(f"ulaw has {tmp_ulaw.stat().st_size} samples, wav {frames}")
        if problems:
            raise PromptBuildError(f"{wav_out.name}: would not play: {'; '.join(problems)}")
        tmp_wav.replace(wav_out)
        tmp_ulaw.replace(ulaw_out)
    finally:
        tmp_wav.unlink(missing_ok=True)
        tmp_ulaw.unlink(missing_ok=True)
    return len(seg)


def _frames(path: Path) -> int:
    with wave.open(str(path), "rb") as w:
        return w.getnframes()


def check_wav(path: Path) -> list[str]:
    """What keeps a wav from playing as an Asterisk prompt (empty list: fine)."""
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, rate, frames = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            comp = w.getcomptype()
    except (wave.Error, EOFError, OSError) as exc:
        return [f"not a readable wav: {exc}"]
    problems = []
    if comp != "NONE":
        problems.append(f"compressed ({comp})")
    if channels != 1:
        problems.append(f"{channels} channels (need mono)")
    if width != 2:
        problems.append(f"{8 * width}-bit (need 16-bit)")
    if rate != RATE:
        problems.append(f"{rate} Hz (need {RATE})")
    if frames < RATE * MIN_MS // 1000:
        problems.append(f"too short ({frames} samples)")
    return problems


def build_prompts(texts_dir: Path, out_dir: Path, *, source_dir: Path | None = None,
                  languages: Iterable[str] | None = None, force: bool = False) -> BuildReport:
    """Render missing or changed prompts into ``out_dir/<lang>/``; update ``out_dir/manifest.json``."""
    source_dir = source_dir or texts_dir / "source"
    manifest_path = out_dir / "manifest.json"
    manifest: dict[str, dict[str, object]] = {}
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8")).get("prompts", {})
    report = BuildReport()
    items = load_texts(texts_dir, languages)
    wanted = {f"{i.lang}/{i.name}" for i in items}
    with tempfile.TemporaryDirectory(prefix="sb-prompts-") as tmp:
        for item in items:
            key = f"{item.lang}/{item.name}"
            source = _source_for(source_dir, item)
            digest = _hash(item, source)
            wav = out_dir / item.lang / f"{item.name}.wav"
            ulaw = wav.with_suffix(".ulaw")
            entry = manifest.get(key, {})
            if not force and entry.get("hash") == digest and wav.is_file() and ulaw.is_file():
                report.unchanged.append(key)
                continue
            wav.parent.mkdir(parents=True, exist_ok=True)
            try:
                raw = source
                if raw is None:
                    raw = Path(tmp) / f"{item.lang}_{item.name}.wav"
                    _speak(item, raw)
                ms = _process(raw, wav, ulaw)
            except PromptBuildError as exc:
                report.failed.append((key, str(exc)))
                log.error("prompt %s refused: %s", key, exc)
                continue
            manifest[key] = {"hash": digest, "source": "file" if source else "tts", "ms": ms,
                             "text": item.text}
            report.built.append(key)
    langs = {i.lang for i in items}
    for lang in sorted(langs):
        for wav in sorted((out_dir / lang).glob("*.wav")):
            if f"{lang}/{wav.stem}" not in wanted:
                report.stale.append(f"{lang}/{wav.stem}")
    manifest = {k: v for k, v in manifest.items() if k in wanted or k.split("/")[0] not in langs}
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps({"pipeline": PIPELINE_VERSION, "prompts": dict(sorted(manifest.items()))},
                                        ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return report
