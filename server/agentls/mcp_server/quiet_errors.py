"""One line, not a traceback, for a client asking this server for something it does not have.

The MCP SDK answers a request for an unknown prompt or resource with an error (right) and also logs
it with a full traceback on stderr (130 lines each in a terminal, more than a pipe holds after a
few). A `ValueError` there is the SDK saying "unknown name": logged as one warning line. Any other
exception keeps its traceback: that is a bug worth reading.
"""

from __future__ import annotations

import contextlib
import logging

# Where the SDK logs a handler's exception: the JSON-RPC dispatcher (stdio, HTTP sessions), the
# runner (stateless HTTP requests) and the in-process dispatcher (a Client given the server).
DISPATCHER_LOGGERS = (
    "mcp.shared.jsonrpc_dispatcher",
    "mcp.server.runner",
    "mcp.shared.direct_dispatcher",
)


class OneLineUnknownNames(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # A filter that raises would raise out of the SDK's logging call (and end the session).
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, ValueError):
            with contextlib.suppress(Exception):
                message = f"{record.getMessage()}: {error}"
                record.msg, record.args = message, ()
                record.exc_info = None
                record.exc_text = None
                record.levelno = logging.WARNING
                record.levelname = logging.getLevelName(logging.WARNING)
        return True


def install() -> None:
    """Add the filter to the SDK's dispatcher loggers (once)."""
    for name in DISPATCHER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, OneLineUnknownNames) for f in logger.filters):
            logger.addFilter(OneLineUnknownNames())
