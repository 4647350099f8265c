"""`python -m keap_relay_local run|demo|invoke`: the same commands as the `keap-relay` console script."""

import sys

from .cli import main

sys.exit(main())
