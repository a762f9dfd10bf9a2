"""A TCP relay on 127.0.0.1 in front of a real server that can turn into a black hole: a host whose
connects neither fail nor answer (packets dropped by a firewall, a machine gone), which costs a
client its whole connect timeout, unlike a refused connection.

    with Blackhole(upstream_port) as hole:     # relays to 127.0.0.1:upstream_port
        url = f"postgresql://...@127.0.0.1:{hole.port}/db"
        hole.swallow()        # open connections are cut; new ones are accepted, never answered
        hole.accepted         # connections accepted so far (each one a connect attempt)
        hole.relay()          # the network is back

It stands for the network, not for anything of agentls.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType
from typing import Self


class Blackhole:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self._swallowing = False
        self._open: list[socket.socket] = []
        self.accepted = 0
        self._thread = threading.Thread(target=self._accept, name="blackhole", daemon=True)
        self._thread.start()

    def swallow(self) -> None:
        """From now on accept and never answer; cut what is open (the network went away)."""
        with self._lock:
            self._swallowing = True
            self._cut()

    def relay(self) -> None:
        """Relay new connections again; the swallowed ones are closed."""
        with self._lock:
            self._swallowing = False
            self._cut()

    def _cut(self) -> None:
        for s in self._open:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        self._open.clear()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return  # closed
            with self._lock:
                self.accepted += 1
                self._open.append(client)
                if self._swallowing:
                    continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.append(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    def close(self) -> None:
        self._server.close()
        with self._lock:
            self._cut()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
