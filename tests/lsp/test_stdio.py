"""The stdio transport: a client that stops reading the server's output cannot freeze it, and
framing it cannot parse is skipped like pygls skips it."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from tests.lsp.harness import SERVER_COMMAND, SERVER_ENV, WAIT, uri_of


def frame(message: dict[str, object]) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def read_message(stdout: IO[bytes]) -> dict[str, object]:
    length = 0
    while (line := stdout.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return json.loads(stdout.read(length))  # type: ignore[no-any-return]


@contextlib.contextmanager
def raw_server(folder: Path) -> Iterator[tuple[IO[bytes], IO[bytes], subprocess.Popen[bytes]]]:
    """The language server over pipes this test writes and reads byte by byte; killed after."""
    proc = subprocess.Popen(
        SERVER_COMMAND,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=SERVER_ENV,
        cwd=folder,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        yield proc.stdin, proc.stdout, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def initialize(folder: Path) -> bytes:
    init = {"processId": None, "rootUri": uri_of(folder), "capabilities": {}}
    return frame({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": init})


def test_the_server_handles_messages_while_the_client_does_not_read_its_answers(
    tmp_path: Path,
) -> None:
    with raw_server(tmp_path) as (stdin, stdout, proc):
        stdin.write(initialize(tmp_path))
        stdin.flush()
        while read_message(stdout).get("id") != 0:
            pass
        # Far more answers than a pipe holds (64 KiB), none of them read; then shutdown and exit.
        flood = b"".join(
            frame({"jsonrpc": "2.0", "id": i, "method": "agentls/noSuchMethod", "params": {}})
            for i in range(1, 3001)
        )
        flood += frame({"jsonrpc": "2.0", "id": "bye", "method": "shutdown"})
        flood += frame({"jsonrpc": "2.0", "method": "exit"})

        def send() -> None:
            try:
                stdin.write(flood)
                stdin.flush()
            except (BrokenPipeError, ValueError):
                pass

        threading.Thread(target=send, daemon=True).start()
        # A server blocked writing to the full pipe would never read `exit`.
        assert proc.wait(WAIT) is not None


def test_a_header_line_longer_than_any_real_one_is_skipped(tmp_path: Path) -> None:
    with raw_server(tmp_path) as (stdin, stdout, _):
        stdin.write(b"X-Junk: " + b"j" * 300_000 + b"\r\n")
        stdin.write(initialize(tmp_path))
        stdin.flush()
        answer = read_message(stdout)
        assert answer.get("id") == 0 and "result" in answer


@pytest.mark.parametrize("command", ["serve", "acp"])
def test_a_server_whose_input_is_dev_null_ends_at_once_without_a_traceback(
    tmp_path: Path, command: str
) -> None:
    # `agentls serve < /dev/null` (a misconfigured editor, a script): nothing will ever arrive,
    # so the server ends instead of hanging, and says nothing alarming.
    with open(os.devnull, "rb") as devnull:
        done = subprocess.run(
            [*SERVER_COMMAND[:-1], command],
            stdin=devnull,
            capture_output=True,
            env=SERVER_ENV,
            cwd=tmp_path,
            timeout=WAIT,
        )
    assert "Traceback" not in done.stderr.decode(), done.stderr.decode()
    assert "PermissionError" not in done.stderr.decode()
    assert done.stdout == b""
