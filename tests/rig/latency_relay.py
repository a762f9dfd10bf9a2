"""A TCP relay on 127.0.0.1 that delays every byte by a fixed time each way: a database server
across a network (a team's PostgreSQL is rarely on the laptop), on this machine.

    with LatencyRelay(upstream_port, one_way_s=0.0005) as relay:   # a 1 ms round trip
        url = f"postgresql://...@127.0.0.1:{relay.port}/db"

It runs in a process of its own, so its CPU is never counted as the client's. It stands for the
network, not for anything of agentls.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from types import TracebackType
from typing import Self


class LatencyRelay:
    def __init__(self, upstream_port: int, *, one_way_s: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, str(upstream_port), str(one_way_s)],
            stdin=subprocess.PIPE,  # its end tells the relay to stop, should this process die
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "listening":
            self.proc.kill()
            raise RuntimeError(f"the latency relay did not start: {line}")
        self.port = int(line[1])

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copy `reader` to `writer`, each chunk `delay` seconds after it arrived, in order."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def send() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                writer.close()
                return
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            writer.write(data)

    sender = asyncio.create_task(send())
    while True:
        data = await reader.read(65536)
        await queue.put((loop.time() + delay, data))
        if not data:
            break
    await sender


async def _serve(upstream_port: int, delay: float) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        await asyncio.gather(
            _pipe(reader, up_writer, delay), _pipe(up_reader, writer, delay), return_exceptions=True
        )

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print("listening", server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def _exit_with_parent() -> None:
    """Stop when the process that started the relay is gone (its end of stdin closes)."""
    sys.stdin.read()
    os._exit(0)


if __name__ == "__main__":
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    asyncio.run(_serve(int(sys.argv[1]), float(sys.argv[2])))
