"""What a Lambda Python runtime gives a handler: how it is loaded, the context object, the error shape."""

from __future__ import annotations

import importlib.util
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from .template import ACCOUNT_ID

Handler = Callable[[Any, Any], Any]


def local_function_name(function: str) -> str:
    """AWS_LAMBDA_FUNCTION_NAME of a local function (by its folder: forms, purchases, unsubscribes). Powertools
    puts it in every idempotency record's id, so the operator CLI names it as the function host does."""
    return f"keap-relay-local-{function}"


class LambdaContext:
    """The attributes Powertools and handlers read from Lambda's context object."""

    def __init__(self, function_name: str, memory_mb: int, timeout_s: float, region: str) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{function_name}"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def load_handler(root: Path, code_dir: str, handler: str, unique: str) -> Handler:
    """Import `<code_dir>/<module>.py` by path under a unique module name and return its handler.

    Every function has an `app.py`; importing them by plain name would hand the second caller the
    first one's module, so each is registered as `keap_relay_fn_<unique>`.
    """
    module_name, _, attr = handler.rpartition(".")
    code_path = (root / code_dir).resolve()
    for entry in (str(root / "shared"), str(code_path)):
        # Lambda puts the function's code before its layers; inserting in reverse keeps that order.
        if entry not in sys.path:
            sys.path.insert(0, entry)
    file = code_path / (module_name.replace(".", "/") + ".py")
    unique_name = f"keap_relay_fn_{unique}_{module_name.replace('.', '_')}"
    module = sys.modules.get(unique_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(unique_name, file)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load handler module {file}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[unique_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[unique_name]
            raise
    return _handler_attr(module, attr, file)


def _handler_attr(module: ModuleType, attr: str, file: Path) -> Handler:
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ImportError(f"{file} has no callable {attr!r}")
    return fn


def error_result(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    """Lambda's body for an unhandled exception."""
    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }
