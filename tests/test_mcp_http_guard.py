"""`agentls mcp-server --http` lets in only its owner's clients: the Host/Origin check against DNS
rebinding on every bind address, the bearer token, and the token file's permissions.

Each attack runs against the real server in a subprocess with the scripted model behind it; a
refused request must start no run (the model gets no request, the audit trail stays empty).
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from pathlib import Path
from typing import Any

import httpx2
import pytest
from tests.rig.mcp_http import AGENTLS, HttpServer, http_process, token_client
from tests.rig.scripted_openai import ScriptedOpenAI, Text

from agentls.cli import main
from agentls.core.audit import AuditStore

CALC = "def add(a, b):\n    return a + b\n"
PROTOCOL = "2025-06-18"
DELEGATE = {"agent": "explain", "goal": "what does add do", "file": "calc.py"}


@pytest.fixture
def scripted() -> Any:
    with ScriptedOpenAI() as s:
        s.responder = lambda body: Text("add sums two numbers")
        yield s


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = (tmp_path / "ws").resolve()
    root.mkdir()
    (root / "calc.py").write_text(CALC, encoding="utf-8")
    return root


def env_for(scripted: ScriptedOpenAI) -> dict[str, str]:
    return {
        **os.environ,
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": scripted.url,
        "AGENTLS_MODEL": "scripted-model",
    }


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


# The loopback forms the SDK's own check does not know. Without IPv6 on the machine, another IPv4
# loopback form stands in (a skip would fail the full run).
OTHER_LOOPBACK = "[0:0:0:0:0:0:0:1]" if ipv6_loopback() else "127.1.2.3"


def delegate_raw(url: str, headers: dict[str, str]) -> list[httpx2.Response]:
    """initialize, initialized, then tools/call delegate, each with `headers`, as a web page (or
    another local process) would send them; stops at the first refusal. The responses, in order."""
    accept = {"Accept": "application/json, text/event-stream"}
    message = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL,
            "capabilities": {},
            "clientInfo": {"name": "page", "version": "1"},
        },
    }
    with httpx2.Client(headers={**headers, **accept}, timeout=60) as http:
        opened = http.post(url, json=message)
        session = opened.headers.get("mcp-session-id")
        if opened.status_code >= 400 or session is None:
            return [opened]
        more = {"mcp-session-id": session, "mcp-protocol-version": PROTOCOL}
        ready = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        call = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "delegate", "arguments": DELEGATE},
        }
        return [
            opened,
            http.post(url, json=ready, headers=more),
            http.post(url, json=call, headers=more),
        ]


def no_run_started(workspace: Path, scripted: ScriptedOpenAI) -> bool:
    with AuditStore.for_workspace(workspace) as audit:
        events = audit.query()
    return not scripted.requests and not events


def port_of(server: HttpServer) -> int:
    return int(server.url.rsplit(":", 1)[1].split("/")[0])


# --- DNS rebinding ------------------------------------------------------------------------------


@pytest.mark.parametrize("bind", ["127.0.0.2", OTHER_LOOPBACK])
def test_a_rebinding_page_is_refused_on_every_loopback_address(
    workspace: Path, scripted: ScriptedOpenAI, bind: str
) -> None:
    with http_process(workspace, env_for(scripted), f"{bind}:0") as server:
        port = port_of(server)
        # The page's browser sends its own name; it may even have learned the token.
        evil = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
        responses = delegate_raw(server.url, {**evil, **server.auth})
        without_origin = delegate_raw(server.url, {"Host": "evil.example", **server.auth})
    assert [r.status_code for r in responses] == [421]
    assert "evil.example" in responses[0].text
    assert "not the address this server listens on" in responses[0].text
    assert [r.status_code for r in without_origin] == [421]
    assert no_run_started(workspace, scripted)


def test_a_foreign_origin_is_refused_even_with_the_right_host(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    with http_process(workspace, env_for(scripted), "127.0.0.2:0") as server:
        host = server.url.split("/")[2]
        responses = delegate_raw(
            server.url, {"Host": host, "Origin": "http://evil.example", **server.auth}
        )
    assert [r.status_code for r in responses] == [403]
    assert "http://evil.example" in responses[0].text
    assert no_run_started(workspace, scripted)


def test_every_loopback_name_of_the_address_is_served(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    with http_process(workspace, env_for(scripted), "127.0.0.1:0") as server:
        port = port_of(server)
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
            opened = delegate_raw(server.url, {"Host": host, **server.auth})[0]
            assert opened.status_code == 200, (host, opened.text)
        wrong_port = delegate_raw(server.url, {"Host": f"localhost:{port + 1}", **server.auth})
    assert wrong_port[0].status_code == 421


# --- the bearer token ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not-the-token-at-all-0123456789", "Basic dXNlcjpwYXNz", "Bearer"],
    ids=["missing", "wrong", "basic", "empty"],
)
def test_a_request_without_the_right_token_gets_401_and_starts_no_run(
    workspace: Path, scripted: ScriptedOpenAI, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    with http_process(workspace, env_for(scripted)) as server:
        responses = delegate_raw(server.url, headers)
    assert [r.status_code for r in responses] == [401]
    refused = responses[0]
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert "bearer token" in refused.text
    assert server.token is not None and server.token not in refused.text
    assert no_run_started(workspace, scripted)


async def test_the_right_token_delegates(workspace: Path, scripted: ScriptedOpenAI) -> None:
    with http_process(workspace, env_for(scripted)) as server:
        async with token_client(server.url, server.token) as client:
            result = await client.call_tool("delegate", DELEGATE)
    assert result.is_error is False
    assert result.structured_content is not None
    assert result.structured_content["answer"] == "add sums two numbers"


def test_the_token_is_printed_once_and_kept_in_a_file_only_you_can_read(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    with http_process(workspace, env_for(scripted)) as server:
        token = server.token
        assert token is not None and len(token) >= 32
        path = Path(server.stderr[0].split("saved in ", 1)[1].split(",", 1)[0])
        mode = stat.S_IMODE(path.stat().st_mode)
        saved = path.read_text(encoding="utf-8").strip()
    assert mode == 0o600
    assert saved == token
    assert "".join(server.stderr).count(token) == 1
    assert path.is_relative_to(Path.home() / ".config" / "agentls")
    assert not path.exists()  # a per-start token is worthless once the server stops


def test_a_token_file_others_can_read_is_refused_with_what_to_do(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("a-token-of-my-own-0123456789\n", encoding="utf-8")
    token_file.chmod(0o644)
    args = ["--workspace", str(workspace), "mcp-server", "--http", "127.0.0.1:0"]
    code = main([*args, "--token-file", str(token_file)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"--token-file {token_file}" in err and f"chmod 600 {token_file}" in err
    assert "a-token-of-my-own" not in err


async def test_a_token_file_of_your_own_is_the_token_and_is_not_printed(
    workspace: Path, scripted: ScriptedOpenAI, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    mine = "a-token-of-my-own-0123456789"
    token_file.write_text(mine + "\n", encoding="utf-8")
    token_file.chmod(0o600)
    args = ["--token-file", str(token_file)]
    with http_process(workspace, env_for(scripted), args=args) as server:
        async with token_client(server.url, mine) as client:
            result = await client.call_tool("delegate", DELEGATE)
        (refused,) = delegate_raw(server.url, {"Authorization": "Bearer " + "x" * len(mine)})
    assert result.is_error is False
    assert refused.status_code == 401
    assert mine not in "".join(server.stderr)
    assert str(token_file) in "".join(server.stderr)
    assert token_file.exists()  # the user's file stays


def test_a_token_file_that_does_not_exist_yet_is_made_for_you_only(
    workspace: Path, scripted: ScriptedOpenAI, tmp_path: Path
) -> None:
    token_file = tmp_path / "new" / "token"
    args = ["--token-file", str(token_file)]
    with http_process(workspace, env_for(scripted), args=args) as server:
        assert server.token is not None
        (opened,) = delegate_raw(server.url, server.auth)[:1]
    assert opened.status_code == 200
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token_file.read_text(encoding="utf-8").strip() == server.token
    assert "".join(server.stderr).count(server.token) == 1
    # The next start reads it: the hosts' configuration stays valid.
    with http_process(workspace, env_for(scripted), args=args) as again:
        (reopened,) = delegate_raw(again.url, server.auth)[:1]
    assert again.token is None and reopened.status_code == 200


def test_token_file_without_http_is_refused(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--workspace", str(workspace), "mcp-server", "--token-file", str(tmp_path / "t")])
    assert code == 2
    assert "--token-file: only with --http" in capsys.readouterr().err


def test_help_says_how_hosts_pass_the_token() -> None:
    shown = subprocess.run(
        [*AGENTLS, "mcp-server", "--help"], capture_output=True, text=True, timeout=60
    ).stdout
    assert "Authorization: Bearer" in shown and "--token-file" in shown and "chmod" in shown
