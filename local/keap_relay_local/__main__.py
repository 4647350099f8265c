"""`python -m keap_relay_local run|demo|invoke|...`: the `keap-relay` command, whose one entry point is in ops/."""

import sys

from keap_relay_ops.cli import main

sys.exit(main())
