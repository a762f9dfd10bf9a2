"""The SDK's stdio transport with two changes: a message from the server has a size limit, and
a line that is not JSON-RPC is left out in one sentence.

`mcp.client.stdio.stdio_client` buffers a line of the server's stdout until its newline, without
bound, so one hostile or broken server could exhaust memory. Here a line over `max_line_chars`
ends the connection instead (pending calls fail, the pool restarts the server on its next use) and
`on_oversize` says why. A usage line or an empty line on stdout got a pydantic traceback from the
SDK; here `on_noise` hears of it. Process start and shutdown are the SDK's own (its helpers, same
version).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from typing import TextIO

import anyio
import anyio.lowlevel
from anyio.streams.text import TextReceiveStream
from mcp.client._transport import TransportStreams
from mcp.client.stdio import (
    _WRITER_FLUSH_TIMEOUT,
    StdioServerParameters,
    _aclose_all,
    _create_platform_compatible_process,
    _drain_stdout,
    _get_executable_command,
    _stop_server_process,
    get_default_environment,
)
from mcp.shared.message import SessionMessage
from mcp_types import jsonrpc_message_adapter
from pydantic import ValidationError

DEFAULT_MAX_LINE_CHARS = 16 * 1024 * 1024


@asynccontextmanager
async def bounded_stdio_client(
    server: StdioServerParameters,
    errlog: TextIO,
    *,
    max_line_chars: int = DEFAULT_MAX_LINE_CHARS,
    on_oversize: Callable[[int], None] = lambda size: None,
    on_noise: Callable[[str], None] = lambda line: None,
) -> AsyncGenerator[TransportStreams, None]:
    command = await _get_executable_command(server.command)
    process = await _create_platform_compatible_process(
        command=command,
        args=server.args,
        env=get_default_environment() | (server.env or {}),
        errlog=errlog,
        cwd=server.cwd,
    )
    read_stream_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](
        0
    )
    write_stream, write_stream_reader = anyio.create_memory_object_stream[SessionMessage](0)
    writer_done = anyio.Event()

    async def stdout_reader() -> None:
        assert process.stdout
        stdout = TextReceiveStream(
            process.stdout, encoding=server.encoding, errors=server.encoding_error_handler
        )
        try:
            async with read_stream_writer:
                try:
                    buffer = ""
                    async for chunk in stdout:
                        lines = (buffer + chunk).split("\n")
                        buffer = lines.pop()
                        if len(buffer) > max_line_chars or any(
                            len(line) > max_line_chars for line in lines
                        ):
                            on_oversize(max([len(buffer), *(len(line) for line in lines)]))
                            # Ends the session's calls now; the drain below keeps the pipe empty.
                            await read_stream_writer.aclose()
                            return
                        for line in lines:
                            message = _message_of(line, on_noise)
                            if message is None:
                                continue
                            try:
                                await read_stream_writer.send(message)
                            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                                return
                finally:
                    await _drain_stdout(process)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, ConnectionError):
            pass  # shutdown, or a server that went away: the session sees the stream end

    async def stdin_writer() -> None:
        assert process.stdin
        try:
            async with write_stream_reader:
                async for session_message in write_stream_reader:
                    json = session_message.message.model_dump_json(
                        by_alias=True, exclude_unset=True
                    )
                    await process.stdin.send(
                        (json + "\n").encode(
                            encoding=server.encoding, errors=server.encoding_error_handler
                        )
                    )
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            await read_stream_writer.aclose()
        finally:
            writer_done.set()

    async def shutdown() -> None:
        read_stream.close()
        write_stream.close()
        with anyio.move_on_after(_WRITER_FLUSH_TIMEOUT):
            await writer_done.wait()
        await _stop_server_process(process)
        await _aclose_all(read_stream, write_stream, read_stream_writer, write_stream_reader)
        await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(stdout_reader)
        tg.start_soon(stdin_writer)
        try:
            yield read_stream, write_stream
        finally:
            # Shutdown must finish under cancellation too, or the server process would leak.
            with anyio.CancelScope(shield=True):
                await shutdown()
            tg.cancel_scope.cancel()
    await anyio.lowlevel.cancel_shielded_checkpoint()


def _message_of(line: str, on_noise: Callable[[str], None]) -> SessionMessage | None:
    """One JSON-RPC message of the server, or None for a line that is not one (a usage line, an
    empty line), which is left out: the SDK would log a pydantic traceback for each and hand the
    session an error; `on_noise` hears of it instead, in one line."""
    if not line.strip():
        return None
    try:
        return SessionMessage(jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValidationError:
        on_noise(line)
        return None
