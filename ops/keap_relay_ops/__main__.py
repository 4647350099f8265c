"""`python -m keap_relay_ops`: the `keap-relay` command, for an environment without the console script."""

import sys

from .cli import main

sys.exit(main())
