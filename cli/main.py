"""Entry point of the `consortium` command: builds the parser from the command modules and maps errors
to the contract's exit codes (0 ok, 2 bad usage or input, 1 anything else, one-line reason on stderr).

Every command acts as one member's operator through that member's own deployment: the global
``--member M`` (or ``CONSORTIUM_MEMBER``) names it, and ``cli.context`` finds its settings. Each
command also takes ``--member`` after its name, for whoever types it there.

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
from cli.context import MEMBER_ENV, NoSettings, settings
from shared.bootstrap import Platform
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


def platform_for(args: argparse.Namespace) -> Platform:
    """The platform of the member's own deployment that ``args`` names (``--member`` or the environment)."""
    try:
        return Platform(settings(getattr(args, "member", None)))
    except NoSettings as e:
        raise UsageError(str(e)) from None


MEMBER_HELP = f"the member whose operator you are (default: ${MEMBER_ENV})"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse's own usage errors: one line, exit 2
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="consortium",
        description="Operate one member's deployment of the consortium control plane: join, decide on "
        "proposals, leave or remove, and see the membership chain, keys, load and status.",
        epilog=f"Every command acts through the deployment of the member named by --member (or ${MEMBER_ENV}). "
        "Its settings come from the environment when it holds that member's (CONSORTIUM_MEMBER_ID), else from "
        ".local/members/MEMBER/local.settings.json in the current folder or a parent (the local stack). "
        "Exit codes: 0 ok, 2 bad usage or input, 1 anything else.",
    )
    parser.add_argument("--member", metavar="MEMBER", help=MEMBER_HELP)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)
    for info in sorted(pkgutil.iter_modules(cli.__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            module = importlib.import_module(f"cli.{info.name}")
            module.register(sub)
    for command in sub.choices.values():  # `consortium status --member M` reads as well as `--member M status`
        command.add_argument("--member", metavar="MEMBER", default=argparse.SUPPRESS, help=MEMBER_HELP)
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
    except (UsageError, NoSettings) as e:
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
