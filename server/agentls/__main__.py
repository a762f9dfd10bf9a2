"""`python -m agentls` is the `agentls` command."""

import sys

from agentls.cli import main

sys.exit(main())
