"""The checks in front of `agentls mcp-server --http`: the Host and Origin headers, then the token.

DNS rebinding: a web page on evil.example whose name the attacker points at 127.0.0.1 makes the
browser send requests to the local server with `Host: evil.example`. The MCP SDK checks Host and
Origin only when the server was built for the literal hosts 127.0.0.1, localhost or ::1; agentls
accepts every loopback form (127.0.0.2, [0:0:0:0:0:0:0:1]) and, with --allow-remote, any address.
So the check is made here, for every bind address: the Host header must name the address the
server listens on (for a loopback address, any loopback name of it) with its port, and an Origin,
when a browser sends one, must be such a host too.

Then the bearer token, compared in constant time: without it any local user or process could
delegate with the owner's API key and budget.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger("agentls.mcp.http")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
LOOPBACK_IPS = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))
# Shown (repr, shortened) in answers and logs: a header is the client's text, not ours.
SHOWN_CHARS = 80


@dataclass(frozen=True)
class AllowedHosts:
    """The host names a request may give for a server bound to one address."""

    names: frozenset[str] = frozenset()
    ips: frozenset[IPAddress] = frozenset()
    # A server bound to 0.0.0.0 or :: answers on every address of the machine: any IP literal is
    # its own (a rebinding attack needs a name), but no name other than localhost is.
    any_ip: bool = False
    shown: str = ""

    def allows(self, host: str) -> bool:
        ip = ip_of(host)
        if ip is None:
            return host.lower() in self.names
        return self.any_ip or ip in self.ips


def ip_of(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def allowed_hosts(bind_host: str) -> AllowedHosts:
    """What `Host` may say for a server listening on `bind_host` (an IP address or a name)."""
    ip = ip_of(bind_host)
    if ip is None:
        name = bind_host.lower()
        if name == "localhost":
            return AllowedHosts(frozenset({name}), frozenset(LOOPBACK_IPS), shown=name)
        return AllowedHosts(frozenset({name}), shown=name)
    shown = f"[{ip.compressed}]" if ip.version == 6 else ip.compressed
    if ip.is_unspecified:
        return AllowedHosts(frozenset({"localhost"}), any_ip=True, shown=shown)
    if ip.is_loopback:
        return AllowedHosts(frozenset({"localhost"}), frozenset({ip, *LOOPBACK_IPS}), shown=shown)
    return AllowedHosts(ips=frozenset({ip}), shown=shown)


def split_host(value: str) -> tuple[str, int | None] | None:
    """`host[:port]` of a Host header (IPv6 in brackets); None when it is not of that form."""
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        host, rest = value[1:end], value[end + 1 :]
        if ip_of(host) is None:
            return None
        if not rest:
            return host, None
        if not rest.startswith(":"):
            return None
        port_s = rest[1:]
    else:
        host, sep, port_s = value.partition(":")
        if not sep:
            return (host, None) if host else None
        if not host or ":" in port_s:
            return None
    if not port_s.isascii() or not port_s.isdigit() or not 0 < int(port_s) <= 65535:
        return None
    return host, int(port_s)


def shown(value: str) -> str:
    return repr(value if len(value) <= SHOWN_CHARS else value[:SHOWN_CHARS] + "...")


@dataclass
class RequestGuard:
    """ASGI middleware: refuses a request whose Host, Origin or bearer token is not right."""

    app: ASGIApp
    hosts: AllowedHosts
    token: str
    _token_bytes: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._token_bytes = self.token.encode("utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # the server has no WebSocket endpoint
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # lifespan
            return
        headers = guarded_headers(scope)
        server = scope.get("server")
        port = server[1] if server else None
        refusal = (
            self.duplicate_refusal(headers)
            or self.host_refusal(headers.get("host"), port)
            or self.origin_refusal(headers.get("origin"))
            or self.token_refusal(headers.get("authorization"))
        )
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, reason = refusal
        client = scope.get("client")
        source = f" from {client[0]}:{client[1]}" if client else ""
        logger.warning("agentls mcp-server: refused a request%s: %s", source, reason)
        await respond(send, status, reason, bearer=status == 401)

    def duplicate_refusal(self, headers: dict[str, str | None]) -> tuple[int, str] | None:
        # Two Host or Authorization headers: which one a proxy or the SDK reads is anyone's guess.
        twice = sorted(name for name, value in headers.items() if value is None)
        if twice:
            return 400, f"the {', '.join(twice)} header is given more than once"
        return None

    def host_refusal(self, value: str | None, port: int | None) -> tuple[int, str] | None:
        where = f"{self.hosts.shown}:{port}"
        if not value:
            return 421, f"no Host header; this server answers at http://{where}/mcp"
        parts = split_host(value.strip())
        if parts is None or not self.hosts.allows(parts[0]) or (parts[1] or 80) != port:
            return 421, (
                f"Host {shown(value)} is not the address this server listens on; "
                f"connect to http://{where}/mcp"
            )
        return None

    def origin_refusal(self, value: str | None) -> tuple[int, str] | None:
        if value is None:
            return None  # not a browser, or a same-origin request
        try:
            origin = urlsplit(value.strip())
            host = origin.hostname
            origin.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            host = None
        if origin_ok := host is not None and origin.scheme in ("http", "https"):
            origin_ok = not origin.path and self.hosts.allows(host)
        if not origin_ok:
            return 403, (
                f"requests from the web page at {shown(value)} are refused; "
                "only clients on this server's own address may call it"
            )
        return None

    def token_refusal(self, value: str | None) -> tuple[int, str] | None:
        scheme, _, given = (value or "").strip().partition(" ")
        if not value or scheme.lower() != "bearer" or not given.strip():
            return 401, (
                "no bearer token; send the header 'Authorization: Bearer <token>' with the "
                "token agentls mcp-server printed when it started (also in its token file)"
            )
        if not hmac.compare_digest(given.strip().encode("utf-8"), self._token_bytes):
            return 401, (
                "wrong bearer token; use the one agentls mcp-server printed when it started "
                "(also in its token file): a new one is made at each start without --token-file"
            )
        return None


GUARDED = ("host", "origin", "authorization")


def guarded_headers(scope: Scope) -> dict[str, str | None]:
    """The headers the guard reads, by lower-case name; None for one that came more than once."""
    found: dict[str, str | None] = {}
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        if name in GUARDED:
            found[name] = None if name in found else raw_value.decode("latin-1")
    return found


async def respond(send: Send, status: int, reason: str, *, bearer: bool) -> None:
    """A plain-text answer of one line; a 401 says the scheme the server expects."""
    body = f"agentls mcp-server: {reason}\n".encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    ]
    if bearer:
        headers.append((b"www-authenticate", b'Bearer realm="agentls mcp-server"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
