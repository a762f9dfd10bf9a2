"""Whether a standard stream can be an event-loop transport (a pipe, a socket, a terminal).

Regular files and other character devices cannot: epoll refuses them (`/dev/null` as stdin gives a
PermissionError), so the front ends read those on a thread instead.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO


def is_pipe_like(stream: BinaryIO) -> bool:
    try:
        fd = stream.fileno()
        mode = os.fstat(fd).st_mode
    except (OSError, ValueError, AttributeError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or (stat.S_ISCHR(mode) and os.isatty(fd))
