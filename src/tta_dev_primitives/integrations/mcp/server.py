"""The MCP server of the memory: its tools, resources and prompt (:func:`create_server`)."""

from __future__ import annotations

import json
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from pydantic import Field

from ..._version import __version__
from ...core.telemetry import TelemetryHandles
from ...memory.errors import MemoryBackendError
from ...memory.primitive import MemoryPrimitive
from ...memory.records import NO_EXPIRY, MemoryRecord, SearchHit

__all__ = ["create_server", "redactor"]

_T = TypeVar("_T")

_INSTRUCTIONS = """\
A long-term memory. Use `search` before answering to recall what you were told earlier, and \
`remember` to store facts, preferences and decisions worth keeping (one fact a memory, in a \
sentence that makes sense alone). `get`, `update` and `forget` work on one memory by its key; \
`list` pages through memories by write time; `namespaces` shows how memories are grouped. \
A `namespace` argument (e.g. ["users", "ada"]) keeps groups of memories apart; omit it to use \
the default one."""

# -- argument types the tools share (their JSON schemas and descriptions) -----------------------

_NamespaceArg = Annotated[
    list[str] | None,
    Field(
        description="Where the memory lives: a list of name parts below this server's memory, "
        'e.g. ["users", "ada"]. Omit for the default namespace.'
    ),
]
_FilterArg = Annotated[
    dict[str, Any] | None,
    Field(
        description='Only memories whose metadata match, e.g. {"topic": "work"}; operators '
        '$eq $ne $gt $gte $lt $lte $in $nin $exists in a field ({"priority": {"$gte": 2}}), '
        "$and/$or (lists of filters) and $not at the top."
    ),
]
_MetadataArg = Annotated[
    dict[str, Any] | None,
    Field(description='JSON object stored with the memory, for filters, e.g. {"topic": "work"}.'),
]


def _record(record: MemoryRecord, namespace: Sequence[str]) -> dict[str, Any]:
    return {
        "key": record.key,
        "namespace": [*namespace, *record.namespace],
        "value": record.value,
        "metadata": record.metadata or {},
        "created_at": record.created_at or None,
        "updated_at": record.updated_at or None,
        "expires_at": record.expires_at,
        "index_text": record.index_text,
    }


def _hit(hit: SearchHit, namespace: Sequence[str]) -> dict[str, Any]:
    return {
        "key": hit.key,
        "namespace": [*namespace, *hit.namespace],
        "value": hit.value,
        "score": hit.score,
        "metadata": hit.metadata or {},
    }


def redactor(url: str | None) -> Callable[[str], str]:
    """A function that masks the password of ``url`` (also percent-decoded) in a text."""
    secrets: set[str] = set()
    if url:
        try:
            parts = urllib.parse.urlsplit(url)
            userinfo = parts.netloc.rpartition("@")[0]
            for secret in (parts.password, userinfo):
                if secret:
                    secrets.update({secret, urllib.parse.unquote(secret)})
            for name, values in urllib.parse.parse_qs(parts.query).items():
                if name.lower() == "password":
                    secrets.update(v for v in values if v)
        except ValueError:
            secrets.add(url)
    ordered = sorted(secrets, key=len, reverse=True)

    def redact(text: str) -> str:
        for secret in ordered:
            text = text.replace(secret, "***")
        return text

    return redact


class _Tools:
    """What every tool shares: the memory under the root, its span, its error mapping."""

    def __init__(
        self,
        memory: MemoryPrimitive,
        redact: Callable[[str], str],
        tracer_provider: trace.TracerProvider | None,
    ) -> None:
        self.memory = memory
        self.redact = redact
        self.telemetry = TelemetryHandles(tracer_provider)

    def scope(self, namespace: Sequence[str] | None) -> MemoryPrimitive:
        if not namespace:
            return self.memory
        return self.memory.scoped(*namespace)

    async def call(
        self,
        tool: str,
        namespace: Sequence[str] | None,
        run: Callable[[MemoryPrimitive], Awaitable[_T]],
    ) -> _T:
        tracer = self.telemetry.tracer()
        if tracer is None:
            return await self._guarded(namespace, run)
        if tool.startswith("memory://"):  # a resource read
            name = f"resources/read {tool}"
            attributes = {"mcp.method.name": "resources/read", "mcp.resource.uri": tool}
        else:
            name = f"execute_tool {tool}"
            attributes = {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": tool,
                "mcp.method.name": "tools/call",
            }
        with tracer.start_as_current_span(name, kind=SpanKind.INTERNAL, attributes=attributes):
            return await self._guarded(namespace, run)

    async def _guarded(
        self, namespace: Sequence[str] | None, run: Callable[[MemoryPrimitive], Awaitable[_T]]
    ) -> _T:
        try:
            return await run(self.scope(namespace))
        except (TypeError, ValueError) as exc:
            raise self._error(exc, str(exc)) from exc
        except KeyError as exc:  # update: the library's KeyError(key)
            key = exc.args[0] if exc.args else ""
            raise self._error(exc, f"no memory under key {key!r} (nothing written)") from exc
        except MemoryBackendError as exc:
            raise self._error(exc, f"memory backend failed: {exc}") from exc

    def _error(self, exc: Exception, message: str) -> ToolError:
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute("error.type", type(exc).__qualname__)
        return ToolError(self.redact(" ".join(message.split())))


def _explicit(ctx: Context | None, name: str) -> bool:
    """Whether the client sent argument ``name`` (an omitted argument and null differ)."""
    if ctx is None:
        return False
    try:
        params = ctx.request_context.params or {}
    except ValueError:
        return False
    arguments = params.get("arguments")
    return isinstance(arguments, dict) and name in arguments


def create_server(
    memory: MemoryPrimitive,
    *,
    read_only: bool = False,
    name: str = "tta-memory",
    redact: Callable[[str], str] | None = None,
    tracer_provider: trace.TracerProvider | None = None,
) -> MCPServer:
    """An MCP server whose tools read and write ``memory`` (its namespace is the root).

    Args:
        memory: The memory served; clients reach its namespace and those below it only.
        read_only: Leave out the write tools (``remember``, ``update``, ``forget``).
        name: The server's name, as clients show it.
        redact: Applied to every error message (e.g. :func:`redactor` of the Redis URL).
        tracer_provider: Tracer provider of the ``execute_tool`` spans (default: global).

    Returns:
        An ``mcp.server.mcpserver.MCPServer``; run it with ``run_stdio_async()`` or
        :func:`run_http`.
    """
    tools = _Tools(memory, redact or (lambda text: text), tracer_provider)
    server: MCPServer = MCPServer(
        name,
        instructions=_INSTRUCTIONS + (" This server is read-only." if read_only else ""),
        version=__version__,
    )
    reading = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    async def remember(
        value: Annotated[
            Any,
            Field(description="What to remember: text, or any JSON value (object, list, ...)."),
        ],
        key: Annotated[
            str | None,
            Field(
                description="Key to store it under (replaces what is there); omit for a new one."
            ),
        ] = None,
        metadata: _MetadataArg = None,
        ttl: Annotated[
            float | None,
            Field(description="Seconds (> 0) until the memory is forgotten; omit to keep it."),
        ] = None,
        namespace: _NamespaceArg = None,
        index_text: Annotated[
            str | None,
            Field(
                description="Extra text to find the memory by (context such as the previous "
                "turn, a date or a title), not part of its value."
            ),
        ] = None,
    ) -> dict[str, Any]:
        """Store a memory and return its key. Search finds it by its words (and meaning)."""
        chosen = f"mem:{uuid.uuid4().hex[:16]}" if key is None else key

        async def run(m: MemoryPrimitive) -> dict[str, Any]:
            await m.add(chosen, value, ttl=ttl, metadata=metadata, index_text=index_text)
            return {"key": chosen, "namespace": list(namespace or [])}

        return await tools.call("remember", namespace, run)

    async def search(
        query: Annotated[str, Field(description="What to look for, in words.")],
        limit: Annotated[int, Field(description="Most memories returned (>= 1).")] = 5,
        mode: Annotated[
            Literal["keyword", "semantic", "hybrid"] | None,
            Field(
                description="keyword (exact words), semantic (meaning; needs the server's "
                "embedder) or hybrid (both); omit for the server's default."
            ),
        ] = None,
        filter: _FilterArg = None,
        semantic_weight: Annotated[
            float | None,
            Field(description="In hybrid mode, the weight of meaning against words, in [0, 1]."),
        ] = None,
        fusion: Annotated[
            Literal["convex", "rrf", "minmax"] | None,
            Field(
                description="How hybrid mode merges rankings: convex (calibrated scores, the "
                "default), rrf (ranks) or minmax (per-query min-max scores)."
            ),
        ] = None,
        recency_half_life: Annotated[
            float | None,
            Field(
                description="Seconds (> 0): favour recent memories; one this old scores half.",
            ),
        ] = None,
        min_score: Annotated[
            float | None,
            Field(
                description="Only memories scoring at least this (scores are in (0, 1) and mean "
                "the same for every query; 0.35 is the calibrated line of 'relevant', so an "
                "unrelated query finds nothing)."
            ),
        ] = None,
        subtree: Annotated[
            bool,
            Field(description="Also search every namespace below namespace, ranked together."),
        ] = False,
        namespace: _NamespaceArg = None,
    ) -> dict[str, Any]:
        """Find memories relevant to a query, best first, with key, namespace, value, score
        and metadata."""

        async def run(m: MemoryPrimitive) -> dict[str, Any]:
            hits = await m.search(
                query,
                limit=limit,
                mode=mode,
                filter=filter,
                semantic_weight=semantic_weight,
                fusion=fusion,
                recency_half_life=recency_half_life,
                min_score=min_score,
                subtree=subtree,
            )
            return {"hits": [_hit(h, namespace or []) for h in hits]}

        return await tools.call("search", namespace, run)

    async def get(
        key: Annotated[str, Field(description="The memory's key.")],
        namespace: _NamespaceArg = None,
    ) -> dict[str, Any]:
        """Read one memory by key: value, metadata and times (found is false when absent)."""

        async def run(m: MemoryPrimitive) -> dict[str, Any]:
            record = await m.get_record(key)
            if record is None:
                return {"found": False, "key": key}
            return {"found": True, **_record(record, namespace or [])}

        return await tools.call("get", namespace, run)

    async def update(
        key: Annotated[str, Field(description="The memory's key (it must exist).")],
        ctx: Context,
        value: Annotated[
            Any, Field(description="The new value; omit to keep the stored one.")
        ] = None,
        metadata: Annotated[
            dict[str, Any] | None,
            Field(description="Metadata merged into the stored metadata; omit to keep it."),
        ] = None,
        merge_metadata: Annotated[
            bool, Field(description="false: replace the stored metadata instead of merging.")
        ] = True,
        ttl: Annotated[
            float | Literal["never"] | None,
            Field(
                description='New lifetime in seconds from now, or "never"; omit to keep it.',
            ),
        ] = None,
        namespace: _NamespaceArg = None,
    ) -> dict[str, Any]:
        """Change parts of a stored memory (value, metadata, lifetime); keep the rest."""
        changes: dict[str, Any] = {"merge_metadata": merge_metadata}
        if value is not None or _explicit(ctx, "value"):
            changes["value"] = value
        if metadata is not None:
            changes["metadata"] = metadata
        if ttl is not None:
            changes["ttl"] = NO_EXPIRY if ttl == "never" else ttl

        async def run(m: MemoryPrimitive) -> dict[str, Any]:
            return _record(await m.update(key, **changes), namespace or [])

        return await tools.call("update", namespace, run)

    async def forget(
        key: Annotated[str | None, Field(description="The memory's key.")] = None,
        filter: Annotated[
            dict[str, Any] | None,
            Field(description="Instead of a key: forget every memory whose metadata match."),
        ] = None,
        namespace: _NamespaceArg = None,
    ) -> dict[str, Any]:
        """Delete a memory by key, or every memory matching a metadata filter; how many."""
        if (key is None) == (filter is None):
            raise ToolError("forget takes a key or a filter (one of them)")

        async def run(m: MemoryPrimitive) -> dict[str, Any]:
            if key is not None:
                return {"deleted": int(await m.delete(key))}
            assert filter is not None
            return {"deleted": await m.delete_where(filter)}

        return await tools.call("forget", namespace, run)

    async def list_(
        filter: _FilterArg = None,
        limit: Annotated[int, Field(description="Most memories on the page (>= 1).")] = 20,
        cursor: Annotated[
            str | None, Field(description="next_cursor of the previous page; omit for the first.")
        ] = None,
        order: Annotated[
            Literal["newest", "oldest"], Field(description="By write time.")
        ] = "newest",
        subtree: Annotated[
            bool, Field(description="Also walk every namespace below namespace.")
        ] = False,
        namespace: _NamespaceArg = None,
    ) -> dict[str, Any]:
        """Page through memories by write time; pass next_cursor back for the next page."""

        async def run(m: MemoryPrimitive) -> dict[str, Any]:
            page = await m.list(
                filter=filter, limit=limit, cursor=cursor, order=order, subtree=subtree
            )
            return {
                "records": [_record(r, namespace or []) for r in page.records],
                "next_cursor": page.next_cursor,
            }

        return await tools.call("list", namespace, run)

    async def namespaces(
        prefix: Annotated[
            list[str] | None,
            Field(
                description="Only namespaces starting with these parts (below namespace); "
                "'*' matches any one part."
            ),
        ] = None,
        suffix: Annotated[
            list[str] | None,
            Field(description="Only namespaces ending with these parts; '*' matches any one."),
        ] = None,
        max_depth: Annotated[
            int | None,
            Field(description="Cut each namespace to its first max_depth parts (>= 1)."),
        ] = None,
        namespace: _NamespaceArg = None,
    ) -> dict[str, Any]:
        """The namespaces that hold memories, as lists of parts (the default one is [])."""

        async def run(m: MemoryPrimitive) -> dict[str, Any]:
            base = list(namespace or [])
            below = await m.namespaces(
                tuple(prefix or ()), None if suffix is None else tuple(suffix), max_depth
            )
            found = [base + list(ns) for ns in below]
            if not prefix and not suffix and await m.size():
                found.insert(0, base)
            return {"namespaces": found}

        return await tools.call("namespaces", namespace, run)

    writing = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
    if not read_only:
        server.add_tool(remember, annotations=writing, structured_output=True)
    server.add_tool(search, annotations=reading, structured_output=True)
    server.add_tool(get, annotations=reading, structured_output=True)
    if not read_only:
        server.add_tool(update, annotations=writing, structured_output=True)
        server.add_tool(
            forget,
            annotations=ToolAnnotations(
                read_only_hint=False, destructive_hint=True, open_world_hint=False
            ),
            structured_output=True,
        )
    server.add_tool(list_, name="list", annotations=reading, structured_output=True)
    server.add_tool(namespaces, annotations=reading, structured_output=True)

    async def records(parts: Sequence[str]) -> str:
        async def run(m: MemoryPrimitive) -> dict[str, Any]:
            page = await m.list(limit=100)
            return {
                "records": [_record(r, parts) for r in page.records],
                "next_cursor": page.next_cursor,
            }

        found = await tools.call("memory://records", parts, run)
        return json.dumps(found, ensure_ascii=False)

    @server.resource(
        "memory://records",
        name="records",
        description="The newest 100 memories of the default namespace, as JSON.",
        mime_type="application/json",
    )
    async def root_records() -> str:
        return await records(())

    @server.resource(
        "memory://records/{+namespace}",
        name="namespace records",
        description="The newest 100 memories of a namespace (parts separated by /), as JSON.",
        mime_type="application/json",
    )
    async def namespace_records(namespace: str) -> str:
        return await records([urllib.parse.unquote(p) for p in namespace.split("/") if p])

    @server.prompt(
        name="recall",
        description="Answer with the help of the memory: search first, remember what is new.",
    )
    def recall(topic: str) -> str:
        return (
            f"Before you answer about {topic!r}, call the `search` tool with a short query "
            "about it and use what it finds. When the user tells you something worth keeping "
            "(a fact, a preference, a decision), store it with `remember`, one fact a memory."
            + ("" if not read_only else " This memory is read-only: do not try to store.")
        )

    return server
