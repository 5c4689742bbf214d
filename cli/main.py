"""Entry point of the `consortium` command: builds the parser from the command modules and maps errors
to the contract's exit codes (0 ok, 2 bad usage or input, 1 anything else, one-line reason on stderr).

A command module in ``cli/`` exposes ``register(subparsers)``, adding its sub-commands with
``set_defaults(handler=...)``; a handler takes the parsed ``argparse.Namespace`` and returns an exit
code. Bad input is raised as :class:`UsageError` (exit 2); anything else unexpected is exit 1.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Callable, Sequence
from typing import Any

import cli
from shared.naming import MEMBER_ID, valid_member_id

Handler = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """Bad usage or input: exit code 2, the message on stderr."""


def member_arg(value: str, what: str = "MEMBER") -> str:
    """A member id from the command line, or a UsageError naming the argument and the rule."""
    if not valid_member_id(value):
        raise UsageError(f"{what} {value!r} must match {MEMBER_ID.pattern}")
    return value


class CommandError(Exception):
    """The command could not do its work: exit code 1, the message on stderr."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse's own usage errors: one line, exit 2
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="consortium",
        description="Operate the consortium control plane: members, votes, keys, load and status.",
        epilog="Settings come from the environment, else from local.settings.json in the current "
        "folder (the local stack). Exit codes: 0 ok, 2 bad usage or input, 1 anything else.",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)
    for info in sorted(pkgutil.iter_modules(cli.__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            module = importlib.import_module(f"cli.{info.name}")
            module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return handler(args)
    except UsageError as e:
        print(f"consortium: {e}", file=sys.stderr)
        return 2
    except CommandError as e:
        print(f"consortium: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("consortium: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # the last line of defence: one line, not a traceback
        print(f"consortium: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
