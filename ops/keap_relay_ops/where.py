"""The options every operator command shares to say where it acts: the local stack, or a deployed stack."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

TITLE = "where (default: the local stack started by `keap-relay run`)"
REGION_HELP = "AWS region (default: AWS_REGION / AWS_DEFAULT_REGION; locally us-east-1)"


def add_where(parser: argparse.ArgumentParser, stack_help: str, endpoint_help: str) -> argparse._ArgumentGroup:
    """--stack, --endpoint-url and --region in one group (returned, for a command's own), and the hidden --root."""
    where = parser.add_argument_group(TITLE)
    where.add_argument("--stack", metavar="NAME", help=stack_help)
    where.add_argument("--endpoint-url", metavar="URL", help=endpoint_help)
    where.add_argument("--region", help=REGION_HELP)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    return where


def stack_outputs(cloudformation: Any, stack: str) -> dict[str, str]:
    """A deployed stack's outputs, key -> value. A stack that is not there raises botocore's ClientError."""
    return _stack_items(cloudformation, stack, "Output")


def stack_parameters(cloudformation: Any, stack: str) -> dict[str, str]:
    """A deployed stack's parameters as deployed (defaults included), key -> value."""
    return _stack_items(cloudformation, stack, "Parameter")


def _stack_items(cloudformation: Any, stack: str, what: str) -> dict[str, str]:
    found = cloudformation.describe_stacks(StackName=stack)["Stacks"][0].get(f"{what}s") or []
    return {str(o[f"{what}Key"]): str(o[f"{what}Value"]) for o in found}
