"""``switchboard prompts build [--force] [--lang L]`` and ``prompts check``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from switchboard.config import Settings


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("prompts", help="IVR prompt audio: build, check")
    psub = p.add_subparsers(dest="prompts_command", metavar="ACTION", required=True)
    b = psub.add_parser("build", help="render missing or changed prompts (espeak-ng + pydub)")
    b.add_argument("--force", action="store_true", help="rebuild every prompt")
    b.add_argument("--lang", action="append", help="only this language (repeatable)")
    b.add_argument("--prune", action="store_true", help="delete audio whose prompt text is gone")
    b.set_defaults(func=_build)
    c = psub.add_parser("check", help="check that every prompt file is 8 kHz mono 16-bit")
    c.set_defaults(func=_check)


def _texts_dir(settings: Settings) -> Path:
    return Path(settings.paths.flows_dir) / "prompts"


def _build(args: argparse.Namespace, settings: Settings) -> int:
    from switchboard.audio.build import build_prompts

    out = Path(settings.paths.prompts_dir)
    report = build_prompts(_texts_dir(settings), out, languages=args.lang, force=args.force)
    for key, why in report.failed:
        print(f"refused {key}: {why}", file=sys.stderr)
    for key in report.stale:
        if args.prune:
            lang, name = key.split("/", 1)
            for ext in (".wav", ".ulaw"):
                (out / lang / f"{name}{ext}").unlink(missing_ok=True)
        print(f"{'pruned' if args.prune else 'stale (no text)'}: {key}")
    print(f"built {len(report.built)}, unchanged {len(report.unchanged)}, refused {len(report.failed)}")
    return 1 if report.failed else 0


def _check(args: argparse.Namespace, settings: Settings) -> int:
    from switchboard.audio.build import check_wav

    bad = 0
    files = sorted(Path(settings.paths.prompts_dir).glob("*/*.wav"))
    for wav in files:
        problems = check_wav(wav)
        if problems:
            bad += 1
            print(f"{wav}: {'; '.join(problems)}")
    print(f"{len(files)} files, {bad} bad")
    return 1 if bad else 0
