"""`keap-relay routes check|migrate`: the routes file's command group (an entry of keap_relay_ops.cli.COMMANDS)."""

from __future__ import annotations

import argparse
import importlib
import sys


def _migrate(args: argparse.Namespace) -> int:
    # Imported when it runs: its round-trip YAML library is needed by nothing else.
    try:
        migrate = importlib.import_module("keap_relay_ops.migrate")
    except ImportError as exc:
        print(f"keap-relay routes migrate: not available: {exc}", file=sys.stderr)
        return 2
    return int(migrate.run(args))


def _migrate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--to", required=True, choices=["rest"], help="the Keap API to rewrite the routes for")
    parser.add_argument(
        "--routes", metavar="FILE", help="the routes file (default: ROUTES_FILE, else config/routes.yaml)"
    )
    parser.add_argument("--out", metavar="FILE", help="where to write the result (default: stdout)")
    parser.set_defaults(handler=_migrate)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`keap-relay routes`'s actions and their options."""
    from keap_relay_ops import routes_check

    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = "check the routes file: schema, what the API can run, placeholders; with --live, every id in Keap"
    routes_check.add_arguments(actions.add_parser("check", help=check, description=check))
    migrate = "rewrite campaigns/remove_campaigns as REST v2 sequences, keeping comments; list what needs a person"
    _migrate_arguments(actions.add_parser("migrate", help=migrate, description=migrate))
