"""Where agentls starts its child processes: outside the workspace, so a repository cannot shadow them.

A program started in a folder may run code from it without being asked: `python -m x` and
`python -c` put the working directory first on `sys.path` (an `agentls/` package or
`sitecustomize.py` in a cloned repository would run instead of ours), `npx pkg` prefers the
`node_modules` it finds there, and relative `PATH` entries resolve against it. So the delegation
child and the user's own MCP servers start in the user's home folder (or, when the home folder
is the workspace or inside it, the root of the file system), and learn the workspace from their
arguments. Python children also get `-P` (Python 3.11's safe path: nothing is prepended to
`sys.path`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

# Python 3.11+: do not prepend the script's folder or the working directory to sys.path.
SAFE_PATH_FLAG = "-P"


def outside_workspace(workspace: Path) -> Path:
    """A folder that is neither the workspace nor inside it, to start a child process in.

    Touches the file system (resolves symbolic links): call it off the event loop."""
    root = workspace.resolve()
    candidates = []
    with contextlib.suppress(RuntimeError, OSError):  # no home folder known
        candidates.append(Path.home().resolve())
    candidates.append(Path(root.anchor))
    for candidate in candidates:
        if candidate != root and root not in candidate.parents and candidate.is_dir():
            return candidate
    # The workspace is the root of the file system: nothing is outside it.
    return candidates[0]
