"""The stdio transport: JSON-RPC over stdin/stdout through the event loop's own pipe transports.

pygls reads stdin on its thread pool: every header line and every body is a hop to a worker thread
and back (four loop wake-ups per message, each waiting for the interpreter lock and for a busy
loop iteration), so while runs stream a code action waits several iterations before it is even
read. Here the loop reads stdin itself: a request is parsed in the iteration its bytes arrive.
Writes go through a pipe transport that buffers what the client has not read yet instead of
blocking the loop in `write()`; what is still buffered at exit is flushed (bounded).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import TYPE_CHECKING, BinaryIO

from pygls.io_ import run_async

from agentls.core.streams import is_pipe_like
from agentls.lsp.pygls_compat import stop_event

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

log = logging.getLogger("agentls.lsp")

# A message larger than this (a huge didOpen) is still read: only header lines are bounded.
_HEADER_LIMIT = 64 * 1024
# How long exit waits for the client to take what is still buffered.
_FLUSH_SECONDS = 2.0


class _AnsweredParseErrors(logging.Filter):
    """pygls logs a traceback for a body that is not JSON; the protocol answers that body
    (-32700, `AgentProtocol.answer_parse_error`) and logs it in one line, so the traceback goes."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, json.JSONDecodeError | UnicodeDecodeError)


# The reader's logger (pygls's own, when it reads a regular file).
_reader_log = logging.getLogger("agentls.lsp.reader")
for _logger in (_reader_log, logging.getLogger("pygls.server")):
    _logger.addFilter(_AnsweredParseErrors())


class _Reader:
    """pygls's reader interface over an asyncio stream; end of input reads as b''."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self._stream = stream

    async def readline(self) -> bytes:
        try:
            return await self._stream.readline()
        except ValueError:
            # Longer than the limit (the stream dropped it): an unknown header, as pygls treats
            # any line it cannot parse; what follows it is read as usual.
            return b"X-Overlong-Line: dropped\r\n"

    async def readexactly(self, n: int) -> bytes:
        try:
            return await self._stream.readexactly(n)
        except asyncio.IncompleteReadError:
            return b""


class _Writer:
    """pygls's writer interface over a pipe transport: never blocks the loop."""

    def __init__(self, transport: asyncio.WriteTransport) -> None:
        self.transport = transport

    def write(self, data: bytes) -> None:
        if self.transport.is_closing():
            raise BrokenPipeError("the client closed its end of the connection")
        self.transport.write(data)

    def close(self) -> None:
        self.transport.close()

    async def flush(self, timeout: float) -> None:
        """Wait (bounded) until the client has taken everything written."""
        deadline = asyncio.get_running_loop().time() + timeout
        while (
            self.transport.get_write_buffer_size()
            and not self.transport.is_closing()
            and asyncio.get_running_loop().time() < deadline
        ):
            await asyncio.sleep(0.01)


class _WriteProtocol(asyncio.Protocol):
    """A write pipe's protocol: nothing to receive; a lost connection is noted in the log."""

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            log.debug("stdout closed: %s", exc)


async def _serve(server: LanguageServer, stdin: BinaryIO, stdout: BinaryIO) -> None:
    loop = asyncio.get_running_loop()
    stream = asyncio.StreamReader(limit=_HEADER_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stream), stdin)
    transport, _ = await loop.connect_write_pipe(_WriteProtocol, stdout)
    writer = _Writer(transport)
    server.protocol.set_writer(writer)
    try:
        await run_async(
            stop_event=stop_event(server),
            reader=_Reader(stream),
            protocol=server.protocol,
            logger=_reader_log,
            error_handler=server.report_server_error,
        )
    finally:
        # Also on exit (`sys.exit` in pygls's exit handler cancels this task): the last answers
        # must reach the client.
        await writer.flush(_FLUSH_SECONDS)


def start_io(server: LanguageServer) -> None:
    """Serve `server` on this process's stdin/stdout until the client exits or disconnects."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    if not (is_pipe_like(stdin) and is_pipe_like(stdout)):
        server.start_io(stdin, stdout)  # pygls's threaded reader handles regular files
        return
    stop_event(server)
    try:
        asyncio.run(_serve(server, stdin, stdout))
    except BrokenPipeError:
        log.error("Connection to the client is lost! Shutting down the server.")
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.shutdown()
