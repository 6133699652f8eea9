"""CLI subcommands: one module each, discovered by ``switchboard.cli``.

A module here defines ``register(subparsers)`` which adds its parser and sets
``func`` to a handler ``(args, settings) -> int`` (the exit status). Handlers
that need no Settings (e.g. ``flows validate`` on a path) still receive them.
"""
