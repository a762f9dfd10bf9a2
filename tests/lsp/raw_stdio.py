"""A bare JSON-RPC client over `agentls serve`'s stdio: Content-Length framing and nothing else, so
tests can send what no well-behaved client library would (missing fields, wrong types)."""

from __future__ import annotations

import json
import queue
import subprocess
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from tests.lsp.harness import SERVER_COMMAND, SERVER_ENV, WAIT, uri_of


class RawServer:
    """`agentls serve` in a subprocess; `send` writes one message, `answer(id)` waits for its reply."""

    def __init__(self, workspace: Path, settings: dict[str, Any] | None = None) -> None:
        self.workspace = workspace
        self.settings = settings or {}
        self._messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self._seen: list[dict[str, Any]] = []
        self.proc: subprocess.Popen[bytes] | None = None
        # The server's log, kept for assertions (a file: a full pipe would block the server).
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115  (closed in __exit__)

    def __enter__(self) -> Self:
        self.proc = subprocess.Popen(
            SERVER_COMMAND,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=SERVER_ENV,
            cwd=self.workspace,
        )
        assert self.proc.stdout is not None
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()
        uri = uri_of(self.workspace)
        self.send(
            {
                "jsonrpc": "2.0",
                "id": "init",
                "method": "initialize",
                "params": {
                    "processId": None,
                    "rootUri": uri,
                    "capabilities": {},
                    "initializationOptions": {"settings": self.settings},
                },
            }
        )
        self.answer("init")
        self.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self.proc is not None
        try:
            self.send({"jsonrpc": "2.0", "id": "bye", "method": "shutdown"})
            self.answer("bye")
            self.send({"jsonrpc": "2.0", "method": "exit"})
            self.proc.wait(WAIT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._stderr.close()

    def stderr(self) -> str:
        """What the server has written to its log so far."""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def send(self, message: Any) -> None:
        self.send_bytes(json.dumps(message).encode())

    def send_bytes(self, body: bytes) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def answer(self, msg_id: Any, timeout: float = WAIT) -> dict[str, Any]:
        """The server's response to request `msg_id` (requests the server sends are answered null)."""
        for seen in self._seen:
            if "method" not in seen and seen.get("id") == msg_id:
                return seen
        while True:
            message = self._messages.get(timeout=timeout)
            self._seen.append(message)
            if "method" in message and "id" in message:  # a request from the server
                result: Any = None
                if message["method"] == "workspace/configuration":
                    result = [None for _ in message["params"]["items"]]
                self.send({"jsonrpc": "2.0", "id": message["id"], "result": result})
                continue
            if "method" not in message and message.get("id") == msg_id:
                return message

    def request(self, msg_id: Any, method: str, params: Any) -> dict[str, Any]:
        self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        return self.answer(msg_id)

    def _read(self, stream: IO[bytes]) -> None:
        while True:
            length = None
            while True:
                line = stream.readline()
                if not line:
                    return
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
                elif line in (b"\r\n", b"\n"):
                    break
            if length is None:
                continue
            self._messages.put(json.loads(stream.read(length)))
