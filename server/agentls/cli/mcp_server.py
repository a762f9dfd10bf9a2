"""`agentls mcp-server [--http HOST:PORT]`: agentls agents as MCP tools for any MCP host.

On stdio by default (what Claude Code, Codex and VS Code start); `--http` serves Streamable HTTP
at http://HOST:PORT/mcp for several clients at once, on a loopback address unless
`--allow-remote` says otherwise (the tools spend tokens and read the workspace), to clients that
send its bearer token (made per start, or read from `--token-file`).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from agentls.cli import CliError, workspace_of
from agentls.cli.common import add_model_options, settings_from

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from mcp.server import MCPServer

    from agentls.core.engine import EngineSettings
    from agentls.core.runtime import AgentRuntime
    from agentls.mcp_server.http_token import BearerToken
    from agentls.mcp_server.server import Lineage

LOOPBACK_NAMES = ("localhost",)

log = logging.getLogger("agentls.mcp_server")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "mcp-server",
        help="serve agentls agents as MCP tools (stdio, or --http)",
        description="Tools: list_agents, delegate, delegate_parallel, create_agent, budget. "
        "Proposed edits come back as unified diffs; nothing is written.",
        epilog="Over --http, MCP hosts send the token in a header, e.g. in Claude Code's "
        '.mcp.json: {"type": "http", "url": "http://127.0.0.1:8765/mcp", "headers": '
        '{"Authorization": "Bearer ${AGENTLS_MCP_TOKEN}"}}. Requests whose Host or Origin is not '
        "this server's address are refused (DNS rebinding). See docs/mcp.md.",
    )
    parser.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="serve Streamable HTTP at http://HOST:PORT/mcp instead of stdio (port 0: any free); "
        "clients must send 'Authorization: Bearer TOKEN': a token is made at each start, printed "
        "once on stderr and saved (mode 0600) in ~/.config/agentls/mcp-server-HOST-PORT.token",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        metavar="PATH",
        help="with --http: the bearer token is the one in PATH (a file only you can read: chmod "
        "600); if PATH does not exist, a token is made and saved there, and kept across starts",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow --http on a non-loopback address (the token then crosses the network "
        "unencrypted: anyone who sees it spends your tokens)",
    )
    parser.add_argument(
        "--max-depth",
        type=int,
        default=None,
        metavar="N",
        help="delegation levels below a top-level run (default 2)",
    )
    # Set by a delegating parent: the run ids above this server's runs, root first.
    parser.add_argument("--lineage", default="", help=argparse.SUPPRESS)
    add_model_options(parser)
    parser.set_defaults(func=run)


def parse_http(spec: str, allow_remote: bool) -> tuple[str, int]:
    host, sep, port_s = spec.rpartition(":")
    host = host.strip("[]")
    try:
        port = int(port_s)
    except ValueError:
        port = -1
    if not sep or not host or not 0 <= port <= 65535:
        raise CliError(f"--http {spec!r}: expected HOST:PORT, e.g. --http 127.0.0.1:8765")
    if not allow_remote and not _is_loopback(host):
        raise CliError(
            f"--http {spec!r}: {host} is not a loopback address; anyone who reaches it could "
            "spend your tokens. Use 127.0.0.1, or add --allow-remote if you mean it"
        )
    return host, port


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    import asyncio

    from pydantic import ValidationError

    from agentls.core.engine import EngineSettings, build_runtime, load_registry
    from agentls.core.tools.delegation import SETTINGS_ENV
    from agentls.mcp_server.server import Lineage

    workspace = workspace_of(args)
    http = parse_http(args.http, args.allow_remote) if args.http else None
    if args.token_file is not None and http is None:
        raise CliError("--token-file: only with --http (stdio needs no token)")
    token = bearer_token(args.token_file) if http is not None else None
    if raw := os.environ.get(SETTINGS_ENV):
        try:
            settings = EngineSettings.model_validate_json(raw)
        except ValidationError as exc:
            raise CliError(f"{SETTINGS_ENV}: not valid agentls settings: {exc}") from None
    else:
        settings = settings_from(args)
    if args.max_depth is not None:
        if not 0 <= args.max_depth <= 8:
            raise CliError(f"--max-depth {args.max_depth}: expected 0 to 8")
        settings = settings.model_copy(update={"max_depth": args.max_depth})
    lineage = Lineage(tuple(i for i in args.lineage.split(",") if i))
    registry = load_registry(workspace, settings)
    for error in registry.errors:
        print(f"agentls: warning: {error}", file=sys.stderr)
    runtime = build_runtime(workspace, settings, registry=registry)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: the runs were cancelled, quietly
        asyncio.run(_serve(runtime, settings, lineage, http, token))
    return 0


def bearer_token(token_file: Path | None) -> str | BearerToken:
    """`--token-file`'s token (read, or made and saved there); else a new one, saved once the
    port is known."""
    from agentls.mcp_server.http_token import TokenFileError, new_token, token_from_file

    if token_file is None:
        return new_token()
    try:
        return token_from_file(token_file)
    except TokenFileError as exc:
        raise CliError(str(exc)) from None


async def _serve(
    runtime: AgentRuntime,
    settings: EngineSettings,
    lineage: Lineage,
    http: tuple[str, int] | None,
    token: str | BearerToken | None,
) -> None:
    import asyncio
    import signal

    from agentls.core.model_choice import prepare_quietly
    from agentls.mcp_server.cancels import HOST_CLOSED, CallCancels, stopped_by
    from agentls.mcp_server.server import build_server

    # The model client the first delegation will use, prepared while the host connects.
    asyncio.get_running_loop().run_in_executor(None, prepare_quietly, settings.model_settings())

    # Stopping the server cancels the runs with the reason, before the SDK cancels their calls.
    cancels = CallCancels(runtime)
    server = build_server(
        runtime, lineage, allow_edit_tools=settings.allow_generated_edit_tools, cancels=cancels
    )
    main = asyncio.current_task()
    loop = asyncio.get_running_loop()
    try:
        if http is None:
            if main is not None:
                # SIGTERM (a parent or a host closing us) cancels the runs, so each records its
                # end, and the process ends: the SDK reads stdin on a thread that no cancel stops
                # while the host keeps stdin open, so waiting for the server to unwind would hang.
                exiting: list[asyncio.Task[None]] = []  # holds the task while it runs

                def terminated() -> None:
                    cancels.stop(stopped_by("SIGTERM"))
                    exiting.append(loop.create_task(_exit_when_closed(runtime)))

                loop.add_signal_handler(signal.SIGTERM, terminated)
            try:
                await server.run_stdio_async()
            except Exception as exc:  # the host closed our output while we wrote (EPIPE)
                log.debug("the stdio connection ended: %r", exc)
            cancels.stop(HOST_CLOSED)  # stdin ended: nobody is left to answer
        else:
            assert token is not None
            await _serve_http(server, *http, token=token, cancel_runs=cancels.stop)
    except asyncio.CancelledError:
        pass
    finally:
        if http is None:
            await _exit_when_closed(runtime)  # ends the process: it does not return
        await runtime.aclose()


async def _exit_when_closed(runtime: AgentRuntime) -> NoReturn:
    """Close the runtime (the cancelled runs record their ends, the stores close), then end the
    process at once: a delegating parent unwinding a cancel waits on our exit, and the
    interpreter's teardown would first wait for work on worker threads (a warm-up, a tokenizer)
    and take most of a second after a cancelled run, however the connection ended. Exit handlers
    do not run: the last spans are sent here (within a bound)."""
    from agentls.core import telemetry

    await runtime.aclose()
    telemetry.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # the host may have closed it
            stream.flush()
    os._exit(0)


# After SIGTERM or Ctrl-C the runs are cancelled (each records its end and answers its call), and
# requests still under way get this long before uvicorn cancels them. Without a bound it would wait
# for every connection to close, and a client's event stream never does.
SHUTDOWN_GRACE_SECONDS = 2


async def _serve_http(
    server: MCPServer,
    host: str,
    port: int,
    *,
    token: str | BearerToken,
    cancel_runs: Callable[[str], object],
) -> None:
    import asyncio
    import signal

    import uvicorn

    from agentls.mcp_server.cancels import stopped_by
    from agentls.mcp_server.http_app import http_app
    from agentls.mcp_server.http_token import forget

    class Web(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # agentls handles the signals on the event loop (below); uvicorn would re-raise them
            # after its shutdown, which would cancel the runtime's own closing.
            yield

    app = http_app(server, host, token if isinstance(token, str) else token.value)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )
    web = Web(config)

    def stop(reason: str = "agentls mcp-server stopped") -> None:
        if web.should_exit:  # a second Ctrl-C: no more waiting
            web.force_exit = True
        web.should_exit = True
        cancel_runs(reason)

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, stopped_by(sig.name))
    task = asyncio.create_task(web.serve())
    saved: BearerToken | None = None
    try:
        while not web.started and not task.done():
            await asyncio.sleep(0.02)
        if task.done():
            await task
            raise CliError(f"--http {host}:{port}: could not listen there")
        bound = web.servers[0].sockets[0].getsockname()
        saved = await asyncio.to_thread(announce, bound[0], bound[1], token)
        await task
    finally:
        stop()
        if not task.done():  # cancelled from outside: let uvicorn shut down all the same
            await asyncio.shield(task)
        if saved is not None:
            forget(saved)


def announce(host: str, port: int, token: str | BearerToken) -> BearerToken:
    """Save a per-start token for this address, then print the token (only when agentls made it,
    and only here) and the URL on stderr; the URL line comes last: it says the server is up."""
    from agentls.mcp_server.http_token import TokenFileError, save_for_address

    if isinstance(token, str):
        try:
            token = save_for_address(token, host, port)
        except TokenFileError as exc:
            raise CliError(f"{exc}; name a file of your own with --token-file PATH") from None
    shown = f"[{host}]" if ":" in host else host
    if token.generated:
        kept = "until the server stops" if token.temporary else "for later starts"
        print(
            f"agentls mcp-server: bearer token {token.value} (saved in {token.path}, readable "
            f"by you only, {kept}); MCP hosts send it as 'Authorization: Bearer <token>'",
            file=sys.stderr,
        )
    else:
        print(
            f"agentls mcp-server: bearer token: the one in {token.path}; MCP hosts send it as "
            "'Authorization: Bearer <token>'",
            file=sys.stderr,
        )
    print(f"agentls mcp-server: listening on http://{shown}:{port}/mcp", file=sys.stderr)
    sys.stderr.flush()
    return token
