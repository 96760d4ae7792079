"""The memory as a Model Context Protocol server: ``tta-memory mcp``.

Needs the ``mcp`` extra (``pip install 'tta-dev-primitives[mcp]'``, the official ``mcp``
Python SDK). Start it from the command line::

    tta-memory mcp                                  # stdio, in process
    tta-memory mcp --url redis://localhost:6379/0   # persisted in Redis (or TTA_MEMORY_URL)
    TTA_MEMORY_TOKEN=... tta-memory mcp --http 127.0.0.1:8000   # streamable HTTP at /mcp

or build it in Python, on any :class:`~tta_dev_primitives.MemoryPrimitive`::

    server = create_server(MemoryPrimitive(namespace="agent"))
    await server.run_stdio_async()

Tools: ``remember``, ``search``, ``get``, ``update``, ``forget``, ``list`` and ``namespaces``
(the write tools are left out with ``read_only=True``); a resource per namespace's records
(``memory://records`` and ``memory://records/{+namespace}``) and a ``recall`` prompt. A tool's
``namespace`` argument is a list of parts below the server's namespace, which no argument can
leave. Each tool call is an ``execute_tool <name>`` span, the parent of the memory operations
it runs. Tool errors come back as MCP tool errors (``isError``) with the library's message.
See docs/integrations/mcp.md.
"""

from __future__ import annotations

MCP_EXTRA = "pip install 'tta-dev-primitives[mcp]'"

try:  # the SDK, and the ASGI toolkit of its HTTP transport
    import mcp.server.mcpserver  # noqa: F401
    import starlette  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised without the extra only
    raise ImportError(f"the MCP server needs the mcp extra: {MCP_EXTRA}") from exc

# After the check, so that a missing SDK is named by its extra.
from .command import ENV_TOKEN, choose_embedder, main, serve  # noqa: E402
from .server import create_server, redactor  # noqa: E402
from .transport import BearerAuth, is_loopback, run_http, transport_security  # noqa: E402

# The modules: server.py (tools, resources, prompt), transport.py (HTTP: token, rebinding
# protection), command.py (tta-memory mcp).

__all__ = [
    "ENV_TOKEN",
    "MCP_EXTRA",
    "BearerAuth",
    "choose_embedder",
    "create_server",
    "is_loopback",
    "main",
    "redactor",
    "run_http",
    "serve",
    "transport_security",
]
