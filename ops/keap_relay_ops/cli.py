"""`keap-relay`: the one entry point of the operator's commands and of the local stack's (run, demo, invoke)."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

log = logging.getLogger("keap_relay_ops")

PROG = "keap-relay"


@dataclass(frozen=True)
class Command:
    """One `keap-relay` command: its line in `--help`, and the function that adds its arguments.

    `arguments` is "module:function"; the function takes the command's parser, adds its arguments and sets
    `handler` (args -> exit status) as a default. The module is imported only when its command runs, so
    `--help` needs nothing and `dlq --stack` needs neither moto nor the local stack.
    """

    summary: str
    arguments: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        module, _, function = self.arguments.partition(":")
        getattr(importlib.import_module(module), function)(parser)


# Adding a command is adding one entry. Keep each summary to one short line: `--help` lists them one a line.
COMMANDS: dict[str, Command] = {
    "run": Command("start the local stack; keep it running until Ctrl-C", "keap_relay_local.cli:add_run"),
    "demo": Command("send every sample through a stack, show what Keap holds", "keap_relay_local.cli:add_demo"),
    "invoke": Command("run one event through one function, in this process", "keap_relay_local.cli:add_invoke"),
    "dlq": Command("list, show, redrive or purge a kind's dead letters", "keap_relay_ops.dlq:add_arguments"),
    "routes": Command("check a routes file (--live: in Keap) or migrate it", "keap_relay_ops.routes_cli:add_arguments"),
    "explain": Command("dry-run an event file: the rules and the Keap calls", "keap_relay_ops.explain:add_arguments"),
    "call": Command("make one ContactService call (a change needs --yes)", "keap_relay_ops.call:add_arguments"),
    "status": Command("a stack at a glance; exit 1 if it needs a person", "keap_relay_ops.status:add_arguments"),
    "archive": Command(
        "list a kind's archived events, or erase one person's", "keap_relay_ops.archive_cli:add_arguments"
    ),
    "replay": Command("re-apply a kind's archived events of a window", "keap_relay_ops.replay:add_arguments"),
}

EPILOG = (
    f"`{PROG} COMMAND --help` shows a command's options. run, demo and invoke are the local stack's (dev only, "
    "on 127.0.0.1); the operator's commands act on the local stack by default and on a deployed one with --stack. "
    "Exit status: 0 fine, 1 not fine (what was checked failed, or a question was answered no), 2 could not run."
)


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line on stderr and exits 2, as gh and the AWS CLI do."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def _chosen(argv: Sequence[str]) -> str | None:
    # The top level has no options but --help, so the command is the first word that is not an option.
    return next((word for word in argv if not word.startswith("-")), None)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command; given `argv`, only the command it names has its arguments (imports) loaded."""
    parser = Parser(prog=PROG, description="keap-relay's operator and local-stack commands.", epilog=EPILOG)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")
    chosen = None if argv is None else _chosen(argv)
    for name, command in COMMANDS.items():
        sub = commands.add_parser(name, help=command.summary, description=command.summary)
        if argv is None or name == chosen:
            command.add_arguments(sub)
    return parser


def _fail(where: str, message: object) -> int:
    print(f"{where}: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: parse, run the command, turn any error into one line on stderr (exit 2)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(argv)
    except ImportError as exc:  # a command's dependencies are not installed
        return _fail(f"{PROG} {_chosen(argv)}", f"{exc} (install the project with `pip install -e '.[dev,ops]'`)")
    args = parser.parse_args(argv)
    where = " ".join([PROG, args.command, *([args.action] if getattr(args, "action", None) else [])])
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return 130
    except ModuleNotFoundError as exc:  # e.g. the local stack's parts (moto, cfn-lint) without the dev extra
        log.debug("%s failed", where, exc_info=True)
        return _fail(where, f"{exc} (the local stack's parts come with the dev extra: `pip install -e '.[dev,ops]'`)")
    except Exception as exc:
        log.debug("%s failed", where, exc_info=True)  # the traceback, with a command's --verbose
        return _fail(where, str(exc) or type(exc).__name__)
