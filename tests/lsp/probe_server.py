"""`agentls serve`, writing the names of every imported module to $AGENTLS_PROBE_MODULES at exit.

test_startup.py starts the server this way to see which heavy dependencies a session loaded.
"""

import atexit
import json
import os
import sys
from pathlib import Path


def _record_modules() -> None:
    Path(os.environ["AGENTLS_PROBE_MODULES"]).write_text(json.dumps(sorted(sys.modules)))


atexit.register(_record_modules)

from agentls.cli import main  # noqa: E402 (the hook must be in place first)

sys.exit(main(["serve"]))
