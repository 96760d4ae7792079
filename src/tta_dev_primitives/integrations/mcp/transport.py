"""Serving over streamable HTTP: bearer tokens, DNS-rebinding protection, uvicorn."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["BearerAuth", "is_loopback", "is_wildcard", "run_http", "transport_security"]

_LOOPBACK_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
_LOOPBACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]


class BearerAuth:
    """ASGI middleware: a request without ``Authorization: Bearer <token>`` gets 401.

    The check runs before the request reaches the MCP app, so a refused request reads
    nothing and writes nothing. Tokens are compared in constant time.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        if not token:
            raise ValueError("token must not be empty")
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scheme, _, given = Headers(scope=scope).get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), self._token
        ):
            response = JSONResponse(
                {"error": "invalid_token", "error_description": "a valid bearer token is required"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="tta-memory"'},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine's loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    """Whether ``host`` is an address that binds every interface (0.0.0.0, ::)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def transport_security(
    host: str, allowed_hosts: Iterable[str] = (), allowed_origins: Iterable[str] = ()
) -> TransportSecuritySettings:
    """The SDK's DNS-rebinding protection for a server bound to ``host``.

    ``Host`` must be a loopback name, ``host`` itself (any port), or one of
    ``allowed_hosts`` (``name:port`` or ``name:*``); an ``Origin``, when a browser sends one,
    must be ``http(s)://`` one of those, or one of ``allowed_origins``.
    """
    hosts = list(_LOOPBACK_HOSTS)
    origins = list(_LOOPBACK_ORIGINS)
    if not is_loopback(host) and not is_wildcard(host):
        name = f"[{host}]" if ":" in host and not host.startswith("[") else host
        hosts.append(f"{name}:*")
        origins += [f"http://{name}:*", f"https://{name}:*"]
    for extra in allowed_hosts:
        hosts.append(extra)
        origins += [f"http://{extra}", f"https://{extra}"]
    origins += list(allowed_origins)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


async def run_http(
    server: MCPServer,
    host: str,
    port: int,
    *,
    token: str | None,
    security: TransportSecuritySettings,
) -> None:
    """Serve ``server`` over streamable HTTP at ``http://host:port/mcp`` until stopped."""
    import uvicorn

    app: ASGIApp = server.streamable_http_app(
        streamable_http_path="/mcp", transport_security=security, host=host
    )
    if token:
        app = BearerAuth(app, token)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    await uvicorn.Server(config).serve()
