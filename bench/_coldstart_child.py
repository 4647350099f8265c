"""Child of bench_coldstart.py: one Lambda-style cold start (import the handler, first invoke) in a fresh process.

Usage: python bench/_coldstart_child.py CODE_DIR EVENT_FILE [LAYER_DIR] — prints one JSON line with import_ms,
first_ms, second_ms and peak RSS. The environment is the function's, set by the parent. LAYER_DIR (default: this
tree's shared/) is what Lambda mounts as the layer; another tree's, to compare two versions in one run.
"""

import time

STARTED = time.perf_counter()  # first thing: the interpreter itself is already up (the parent times that)

import importlib.util  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


class Context:
    function_name = "keap-relay-bench"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:keap-relay-bench"
    memory_limit_in_mb = 128
    aws_request_id = "bench"
    log_group_name = "/aws/lambda/keap-relay-bench"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def peak_rss_kb() -> int:
    """This process's peak resident set. ru_maxrss is not enough here: Linux keeps it in the signal struct,
    which fork copies from the parent and exec does not reset, so a small child reports its parent's peak.
    VmHWM belongs to the process's own address space."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> None:
    code_dir, event_file = Path(sys.argv[1]), Path(sys.argv[2])
    events = json.loads(event_file.read_text())
    # As Lambda lays it out: the function's code first, then the layer (shared/) on the path.
    layer = Path(sys.argv[3]) if len(sys.argv) > 3 else Path(__file__).resolve().parents[1] / "shared"
    sys.path[:0] = [str(code_dir), str(layer)]
    t0 = time.perf_counter()
    spec = importlib.util.spec_from_file_location("app", code_dir / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    t1 = time.perf_counter()
    first = module.handler(events[0], Context())
    t2 = time.perf_counter()
    module.handler(events[1], Context())
    t3 = time.perf_counter()
    rss_kb = peak_rss_kb()
    status = first.get("statusCode") if isinstance(first, dict) else None
    failures = len(first.get("batchItemFailures") or []) if isinstance(first, dict) else None
    print(
        "COLDSTART "
        + json.dumps(
            {
                "before_import_ms": (t0 - STARTED) * 1e3,
                "import_ms": (t1 - t0) * 1e3,
                "first_ms": (t2 - t1) * 1e3,
                "second_ms": (t3 - t2) * 1e3,
                "rss_mb": rss_kb / 1024,
                "status": status,
                "failures": failures,
                "cpu_s": time.process_time(),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
