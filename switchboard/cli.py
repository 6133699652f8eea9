"""The ``switchboard`` command line: ``switchboard [--config F] [--log-format json] COMMAND ...``."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from switchboard import __version__, commands
from switchboard.acd.directory import DirectoryError
from switchboard.config import ConfigError, load_settings
from switchboard.logging_setup import setup_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="switchboard",
        description="Care-center hotline switchboard on Asterisk 22 (AMI).",
    )
    parser.add_argument("--version", action="version", version=f"switchboard {__version__}")
    parser.add_argument("--config", "-c", help="TOML config file (default: switchboard.toml if present)")
    parser.add_argument("--log-format", choices=("text", "json"), help="log line format (default text)")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    overrides: dict[str, dict[str, object]] = {}
    if args.log_format:
        overrides.setdefault("log", {})["format"] = args.log_format
    if args.log_level:
        overrides.setdefault("log", {})["level"] = args.log_level.upper()
    try:
        settings = load_settings(args.config, overrides=overrides)
    except ConfigError as exc:
        print(f"switchboard: configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log.level, settings.log.format)
    try:
        result: int = args.func(args, settings)
    except DirectoryError as exc:      # deploy/directory.yaml: the message names file:line
        print(f"switchboard: transfer directory error: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
