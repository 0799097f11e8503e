"""What every `python -m cloudbuild` command shares: dispatch, `--config`, errors, JSON.

A command is a function `main(argv) -> int` that parses its own arguments, registered by
one line in `cloudbuild/__main__.py` as "module:function". The module is imported only
when its command runs, so a build step that asks for names never imports the cloud SDKs
another command needs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple, TypeVar

from cloudbuild.config import DEFAULT_PATH, ConfigError

PROG = "python -m cloudbuild"

T = TypeVar("T")


class Command(NamedTuple):
    entry: str  # "package.module:function"; the function takes argv and returns the exit code
    help: str


class CommandError(Exception):
    """A problem the person running the command can fix; printed as one line, exit 2."""


def checked(check: Callable[[str], T]) -> Callable[[str], T]:
    """Turn a check that raises ValueError into an argparse type.

    argparse then refuses the value as a usage error (exit 2, `error: ...`, no traceback)
    with the check's own message, instead of its generic "invalid value".
    """

    def convert(text: str) -> T:
        try:
            return check(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return convert


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=str(DEFAULT_PATH),
        metavar="PATH",
        help="the project's project.yaml (default: %(default)s)",
    )


def print_json(data: object) -> None:
    print(json.dumps(data, sort_keys=True, indent=2))


def _listing(commands: Mapping[str, Command]) -> str:
    width = max(map(len, commands))
    lines = [f"  {name:<{width}}  {command.help}" for name, command in commands.items()]
    return "commands:\n" + "\n".join(lines)


def main(commands: Mapping[str, Command], argv: Sequence[str] | None = None) -> int:
    top = argparse.ArgumentParser(
        prog=PROG,
        description="The project's build tool: what build steps and people call.",
        epilog=_listing(commands),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("command", choices=commands, metavar="COMMAND")
    top.add_argument(
        "arguments", nargs=argparse.REMAINDER, metavar="...", help="see COMMAND --help"
    )
    chosen = top.parse_args(argv)

    module, _, function = commands[chosen.command].entry.partition(":")
    command_main = getattr(importlib.import_module(module), function)
    try:
        return command_main(chosen.arguments)
    except (CommandError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
