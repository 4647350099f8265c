"""`python -m keap_emulator`: run the emulator or inspect a running one."""

import sys

from keap_emulator.cli import main

sys.exit(main())
