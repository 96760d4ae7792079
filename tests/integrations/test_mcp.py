"""``tta-memory mcp``: the real console script as an MCP server, driven by the official SDK's
client over stdio and over streamable HTTP (real HTTP requests), with Redis persistence on a
private server, and its tool spans in the trace of the memory operations under them."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO, Any

import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextContent

from tta_dev_primitives import HashingEmbedder, MemoryPrimitive
from tta_dev_primitives.integrations.mcp import (
    choose_embedder,
    create_server,
    is_loopback,
    redactor,
    transport_security,
)
from tta_dev_primitives.testing import CapturedTelemetry

from tests.support.paths import ROOT
from tests.support.redis_servers import free_port, running_server
from tests.support.subproc import clean_env, run_code

SCRIPT = Path(sys.executable).with_name("tta-memory")
TOOLS = {"remember", "search", "get", "update", "forget", "list", "namespaces"}
WRITE_TOOLS = {"remember", "update", "forget"}
TOKEN = "test-token-4f1c"


# -- helpers ------------------------------------------------------------------------------------


def server_env(**env: str) -> dict[str, str]:
    """This environment without a memory URL or token of its own, plus ``env``."""
    environ = clean_env()
    environ.pop("TTA_MEMORY_URL", None)
    environ.pop("TTA_MEMORY_TOKEN", None)
    environ.update(env)
    return environ


@contextlib.asynccontextmanager
async def stdio(*args: str, errlog: IO[str] | None = None, **env: str) -> AsyncIterator[Client]:
    """The SDK client on ``tta-memory mcp ARGS`` started as a subprocess."""
    params = StdioServerParameters(
        command=str(SCRIPT), args=["mcp", "--embedder", "hashing", *args], env=server_env(**env)
    )
    with contextlib.ExitStack() as stack:
        log = errlog or stack.enter_context(tempfile.TemporaryFile("w+"))
        async with Client(stdio_client(params, errlog=log)) as client:
            yield client


def data(result: CallToolResult) -> Any:
    """A successful tool result's structured content."""
    assert not result.is_error, text(result)
    return result.structured_content


def text(result: CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))


def error(result: CallToolResult) -> str:
    assert result.is_error, result
    return text(result)


# -- stdio --------------------------------------------------------------------------------------


async def test_stdio_tools_remember_search_and_the_rest() -> None:
    """Over stdio: the seven tools with schemas; remember then search finds it; get, update,
    list, namespaces, forget, a resource and the prompt; a namespace stays below the root."""
    async with stdio("--namespace", "agent") as client:
        listed = (await client.list_tools()).tools
        assert {t.name for t in listed} == TOOLS
        for tool in listed:
            assert tool.description
            assert "namespace" in tool.input_schema["properties"], tool.name
        search_schema = next(t for t in listed if t.name == "search").input_schema
        for option in (
            "mode",
            "filter",
            "semantic_weight",
            "fusion",
            "recency_half_life",
            "min_score",
            "subtree",
        ):
            assert option in search_schema["properties"]

        made = data(await client.call_tool("remember", {"value": "Ada edits code in Helix"}))
        key = made["key"]
        hits = data(await client.call_tool("search", {"query": "helix"}))["hits"]
        assert [h["key"] for h in hits] == [key]
        assert hits[0]["value"] == "Ada edits code in Helix"
        assert hits[0]["score"] > 0

        ada = ["users", "ada"]
        await client.call_tool(
            "remember",
            {"value": {"fav": "tea"}, "key": "drink", "metadata": {"t": 1}, "namespace": ada},
        )
        assert data(await client.call_tool("get", {"key": "drink"}))["found"] is False
        got = data(await client.call_tool("get", {"key": "drink", "namespace": ada}))
        assert (got["value"], got["metadata"], got["namespace"]) == ({"fav": "tea"}, {"t": 1}, ada)
        assert got["expires_at"] is None
        assert got["index_text"] is None

        said = {"value": "Yes, it was amazing!", "key": "turn", "index_text": "Lisbon concert"}
        await client.call_tool("remember", said)
        by_context = data(await client.call_tool("search", {"query": "lisbon"}))["hits"]
        assert [(h["key"], h["value"]) for h in by_context] == [("turn", "Yes, it was amazing!")]
        turn = data(await client.call_tool("get", {"key": "turn"}))
        assert (turn["value"], turn["index_text"]) == ("Yes, it was amazing!", "Lisbon concert")
        await client.call_tool("forget", {"key": "turn"})

        updated = data(
            await client.call_tool(
                "update", {"key": "drink", "metadata": {"u": 2}, "ttl": 60, "namespace": ada}
            )
        )
        assert (updated["value"], updated["metadata"]) == ({"fav": "tea"}, {"t": 1, "u": 2})
        assert updated["expires_at"] is not None
        nulled = data(
            await client.call_tool(
                "update", {"key": "drink", "value": None, "ttl": "never", "namespace": ada}
            )
        )
        assert (nulled["value"], nulled["expires_at"]) == (None, None)

        # ".." is a name like any other: it cannot leave the root.
        await client.call_tool("remember", {"value": "dots", "key": "d", "namespace": [".."]})
        spaces = data(await client.call_tool("namespaces", {}))["namespaces"]
        assert spaces == [[], [".."], ["users", "ada"]]
        below = data(await client.call_tool("namespaces", {"prefix": ["users"]}))["namespaces"]
        assert below == [["users", "ada"]]
        by_suffix = data(await client.call_tool("namespaces", {"suffix": ["ada"]}))
        assert by_suffix["namespaces"] == [["users", "ada"]]
        wild = data(await client.call_tool("namespaces", {"prefix": ["*", "ada"]}))
        assert wild["namespaces"] == [["users", "ada"]]
        top = data(await client.call_tool("namespaces", {"max_depth": 1}))["namespaces"]
        assert top == [[], [".."], ["users"]]
        dots = {"query": "dots", "mode": "keyword"}
        tree = data(await client.call_tool("search", {**dots, "subtree": True}))["hits"]
        assert [(h["key"], h["namespace"]) for h in tree] == [("d", [".."])]
        assert data(await client.call_tool("search", dots))["hits"] == []
        unrelated = {"query": "quantum chromodynamics lecture", "min_score": 0.35}
        assert data(await client.call_tool("search", {**unrelated, "subtree": True}))["hits"] == []
        walked = data(await client.call_tool("list", {"subtree": True}))["records"]
        assert {(r["key"], tuple(r["namespace"])) for r in walked} >= {("drink", tuple(ada))}

        page = data(await client.call_tool("list", {"limit": 1, "namespace": ada}))
        assert [r["key"] for r in page["records"]] == ["drink"]
        assert page["next_cursor"] is None

        resource = await client.read_resource("memory://records/users/ada")
        records = json.loads(resource.contents[0].text)["records"]  # type: ignore[union-attr]
        assert [r["key"] for r in records] == ["drink"]
        prompt = await client.get_prompt("recall", {"topic": "editors"})
        assert "search" in str(prompt.messages[0].content)

        gone = data(await client.call_tool("forget", {"key": "drink", "namespace": ada}))
        assert gone == {"deleted": 1}
        await client.call_tool("remember", {"value": "a", "metadata": {"tag": "x"}})
        await client.call_tool("remember", {"value": "b", "metadata": {"tag": "x"}})
        assert data(await client.call_tool("forget", {"filter": {"tag": "x"}})) == {"deleted": 2}


async def test_stdio_errors_are_tool_errors_and_write_nothing() -> None:
    """Bad arguments come back as MCP tool errors with the library's message, and nothing is
    stored; the server goes on serving."""
    async with stdio() as client:
        too_long = "k" * 1025
        message = error(await client.call_tool("remember", {"value": "v", "key": too_long}))
        assert "1024" in message
        assert "key" in message
        message = error(await client.call_tool("search", {"query": "v", "filter": {"$bogus": 1}}))
        assert "$bogus" in message
        message = error(await client.call_tool("update", {"key": "nope", "value": 1}))
        assert "no memory under key 'nope'" in message
        message = error(await client.call_tool("forget", {}))
        assert "key or a filter" in message
        message = error(await client.call_tool("remember", {"value": "v", "namespace": [""]}))
        assert "namespace" in message
        message = error(await client.call_tool("remember", {"value": "v", "ttl": 0}))
        assert "ttl must be a number of seconds > 0" in message
        listed = data(await client.call_tool("list", {}))
        assert listed["records"] == []
        assert data(await client.call_tool("namespaces", {}))["namespaces"] == []


@pytest.mark.redis
async def test_stdio_persists_in_redis_and_never_shows_the_password() -> None:
    """What one server process remembered in a password-protected Redis, a new process finds;
    the password appears in no output, not even when it is wrong."""
    password = "pw-Zq81-secret"
    with running_server("redis", ["--requirepass", password]) as redis_server:
        url = redis_server.url_with(password=password)
        outputs: list[str] = []
        with tempfile.TemporaryFile("w+") as log:
            async with stdio("--url", url, "--namespace", "app", errlog=log) as first:
                made = await first.call_tool(
                    "remember", {"value": "The deploy window is Friday", "key": "deploy"}
                )
                outputs.append(text(made))
            async with stdio("--namespace", "app", errlog=log, TTA_MEMORY_URL=url) as second:
                found = await second.call_tool("search", {"query": "deploy window"})
                outputs.append(text(found))
                assert [h["key"] for h in data(found)["hits"]] == ["deploy"]
                got = await second.call_tool("get", {"key": "deploy"})
                assert data(got)["value"] == "The deploy window is Friday"
            wrong_password = "pw-Wr0ng-secret"
            wrong = redis_server.url_with(password=wrong_password)
            async with stdio("--url", wrong, errlog=log) as third:
                result = await third.call_tool("remember", {"value": "x"})
                outputs.append(text(result))
                result = await third.call_tool("search", {"query": "x"})
                outputs.append(text(result))
            log.seek(0)
            stderr = log.read()
        assert "storage: redis 127.0.0.1" in stderr
        for output in (*outputs, stderr):
            assert password not in output
            assert wrong_password not in output


# -- HTTP ---------------------------------------------------------------------------------------


def _wait_for_port(port: int, process: subprocess.Popen[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {process.communicate()[1]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise AssertionError("server did not listen in time")


@contextlib.contextmanager
def http_server(*args: str, **env: str) -> Iterator[int]:
    """``tta-memory mcp --http 127.0.0.1:PORT ARGS`` as a subprocess; yields the port."""
    port = free_port()
    process = subprocess.Popen(
        [str(SCRIPT), "mcp", "--embedder", "none", "--http", f"127.0.0.1:{port}", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=server_env(**env),
    )
    try:
        _wait_for_port(port, process)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


@pytest.fixture(scope="module")
def token_server() -> Iterator[int]:
    """One HTTP server with a bearer token for the module."""
    with http_server("--token", TOKEN) as port:
        yield port


@contextlib.asynccontextmanager
async def http_client(port: int, token: str | None = TOKEN) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http)) as c,
    ):
        yield c


def post(port: int, body: dict[str, Any], **headers: str) -> http.client.HTTPResponse:
    """One raw JSON-RPC POST to /mcp (headers: Authorization, Host, Origin, ...)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    sent = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-06-18",
        **{k.replace("_", "-"): v for k, v in headers.items()},
    }
    conn.request("POST", "/mcp", body=json.dumps(body), headers=sent)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"},
    },
}


def remember_call(key: str) -> dict[str, Any]:
    arguments = {"value": f"raw write {key}", "key": key}
    return {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "remember", "arguments": arguments},
    }


async def test_http_tools_with_the_sdk_client(token_server: int) -> None:
    """Over streamable HTTP at /mcp with the token: the tools, remember then search finds it."""
    async with http_client(token_server) as client:
        assert {t.name for t in (await client.list_tools()).tools} == TOOLS
        await client.call_tool("remember", {"value": "HTTP memories persist", "key": "http"})
        hits = data(await client.call_tool("search", {"query": "persist"}))["hits"]
        assert [h["key"] for h in hits] == ["http"]


async def test_http_wrong_or_missing_token_gets_401_and_touches_nothing(token_server: int) -> None:
    """No token or a wrong one: 401 before anything is read or written; the same write with
    the right token on the same session lands."""
    auth = f"Bearer {TOKEN}"
    assert post(token_server, INITIALIZE).status == 401
    refused = post(token_server, INITIALIZE, Authorization="Bearer wrong")
    assert refused.status == 401
    assert refused.getheader("WWW-Authenticate", "").startswith("Bearer")
    assert post(token_server, INITIALIZE, Authorization=TOKEN).status == 401  # no scheme
    opened = post(token_server, INITIALIZE, Authorization=auth)
    assert opened.status == 200
    session = opened.getheader("mcp-session-id") or ""
    done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert post(token_server, done, Authorization=auth, mcp_session_id=session).status == 202
    for bad in ({}, {"Authorization": "Bearer wrong"}):
        refused = post(token_server, remember_call("raw-bad"), mcp_session_id=session, **bad)
        assert refused.status == 401
    accepted = post(
        token_server, remember_call("raw-ok"), Authorization=auth, mcp_session_id=session
    )
    assert accepted.status == 200
    async with http_client(token_server) as client:
        assert data(await client.call_tool("get", {"key": "raw-ok"}))["found"] is True
        assert data(await client.call_tool("get", {"key": "raw-bad"}))["found"] is False


def test_http_validates_host_and_origin(token_server: int) -> None:
    """DNS-rebinding protection: a foreign Host gets 421, a foreign Origin 403; loopback
    ones pass."""
    auth = f"Bearer {TOKEN}"
    port = token_server
    assert post(port, INITIALIZE, Authorization=auth, Host="evil.example").status == 421
    assert post(port, INITIALIZE, Authorization=auth, Host=f"evil.example:{port}").status == 421
    foreign = post(port, INITIALIZE, Authorization=auth, Origin="http://evil.example")
    assert foreign.status == 403
    local = post(port, INITIALIZE, Authorization=auth, Origin=f"http://localhost:{port}")
    assert local.status == 200


def test_http_beyond_loopback_needs_a_token() -> None:
    """Binding to a non-loopback address without a token is refused before anything starts
    (exit 2, the reason on stderr); loopback is the default host."""
    port = free_port()
    out = subprocess.run(
        [str(SCRIPT), "mcp", "--embedder", "none", "--http", f"0.0.0.0:{port}"],
        capture_output=True,
        text=True,
        env=server_env(),
        timeout=60,
        check=False,
    )
    assert out.returncode == 2
    assert "--token" in out.stderr
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        pass
    for host in ("127.0.0.1", "::1", "localhost"):
        assert is_loopback(host)
    for host in ("0.0.0.0", "10.1.2.3", "example.com"):
        assert not is_loopback(host)


async def test_http_read_only_refuses_writes() -> None:
    """--read-only (on loopback, without a token): no write tool is listed or callable, and a
    write attempt stores nothing."""
    with http_server("--read-only") as port:
        async with http_client(port, token=None) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert names == TOOLS - WRITE_TOOLS
            for tool, arguments in (
                ("remember", {"value": "v", "key": "k"}),
                ("update", {"key": "k", "value": 1}),
                ("forget", {"key": "k"}),
            ):
                assert tool in error(await client.call_tool(tool, arguments))
            assert data(await client.call_tool("get", {"key": "k"}))["found"] is False
            assert data(await client.call_tool("list", {}))["records"] == []


def test_transport_security_settings() -> None:
    """Allowed Host/Origin values: loopback, the bound address, and what the user adds."""
    settings = transport_security("10.0.0.5", ["mem.example:8000"], ["https://app.example"])
    assert settings.enable_dns_rebinding_protection
    assert {"127.0.0.1:*", "10.0.0.5:*", "mem.example:8000"} <= set(settings.allowed_hosts)
    assert {"http://10.0.0.5:*", "https://app.example"} <= set(settings.allowed_origins)
    wildcard = transport_security("0.0.0.0")
    assert "0.0.0.0:*" not in wildcard.allowed_hosts


# -- in process: tracing, redaction, the extra ---------------------------------------------------


async def test_each_tool_call_is_a_span_over_its_memory_operation(
    telemetry: CapturedTelemetry,
) -> None:
    """A tool call is an ``execute_tool <name>`` span, parent of the memory operation's span
    in the same trace; a failed call's span is an error."""
    memory = MemoryPrimitive(
        namespace="agent", embedder=HashingEmbedder(32), tracer_provider=telemetry.tracer_provider
    )
    server = create_server(memory, tracer_provider=telemetry.tracer_provider)
    async with Client(server) as client:
        await client.call_tool("remember", {"value": "traced memory", "key": "t"})
        await client.call_tool("search", {"query": "traced"})
        error(await client.call_tool("update", {"key": "missing", "value": 1}))
    spans = {s.name: s for s in telemetry.spans()}
    remember, search = spans["execute_tool remember"], spans["execute_tool search"]
    add, found = spans["upsert_memory"], spans["search_memory"]
    assert add.parent is not None
    assert add.parent.span_id == remember.context.span_id
    assert add.context.trace_id == remember.context.trace_id
    assert found.parent is not None
    assert found.parent.span_id == search.context.span_id
    assert remember.attributes is not None
    assert remember.attributes["gen_ai.tool.name"] == "remember"
    assert remember.attributes["gen_ai.operation.name"] == "execute_tool"
    failed = spans["execute_tool update"]
    assert not failed.status.is_ok
    assert failed.attributes is not None
    assert failed.attributes["error.type"] == "KeyError"


def test_redactor_masks_url_credentials() -> None:
    """The password of a URL (also percent-encoded, or in the query) is masked."""
    redact = redactor("redis://alice:p%40ss-word@host:6379/0?password=other-secret")
    masked = redact("failed for alice with p@ss-word, p%40ss-word and other-secret at host")
    for secret in ("p@ss-word", "p%40ss-word", "other-secret"):
        assert secret not in masked
    assert "host" in masked
    assert redactor(None)("unchanged") == "unchanged"


def test_importing_the_package_never_imports_mcp() -> None:
    """Neither the package nor the CLI (its parser included) imports the mcp SDK."""
    run_code(
        """
        import sys
        import tta_dev_primitives, tta_dev_primitives.cli, tta_dev_primitives.integrations
        tta_dev_primitives.cli.build_parser().parse_args(["mcp", "--http", "127.0.0.1:1"])
        loaded = [m for m in sys.modules if m == "mcp" or m.startswith(("mcp.", "mcp_types"))]
        assert not loaded, loaded
        """
    )


def test_missing_extra_names_it() -> None:
    """Without the mcp package, ``tta-memory mcp`` exits 2 naming the extra to install."""
    code = """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "mcp" or name.startswith("mcp."):
                    raise ImportError(f"No module named {name!r}")
                return None
        sys.meta_path.insert(0, Block())
        from tta_dev_primitives.cli import main
        sys.exit(main(["mcp"]))
    """
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=server_env(),
        timeout=60,
        check=False,
    )
    assert out.returncode == 2, out.stderr
    assert "pip install 'tta-dev-primitives[mcp]'" in out.stderr


def test_choose_embedder_says_how_search_works() -> None:
    """By default the local model when the embeddings extra is there, keyword search said
    at start-up when it is not; ``none`` is keyword search."""
    embedder, line = choose_embedder(None)
    assert embedder is not None
    assert "hybrid" in line
    assert choose_embedder(("none", None)) == (None, "search: keyword only (--embedder none)")
    out = run_code(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "onnxruntime":
                    raise ImportError("No module named 'onnxruntime'")
                return None
        sys.meta_path.insert(0, Block())
        from tta_dev_primitives.integrations.mcp import choose_embedder
        embedder, line = choose_embedder(None)
        print(embedder, line)
        """
    )
    assert "None search: keyword only" in out
    assert "pip install 'tta-dev-primitives[embeddings]'" in out


async def test_tool_spans_reach_a_tracing_backend_in_one_trace() -> None:
    """With OTEL_EXPORTER_OTLP_ENDPOINT set, the stdio server exports the SDK's request span,
    the tool span and the memory operation's span as one tree."""
    from tests.support.otlp import OtlpReceiver

    with OtlpReceiver() as receiver:
        async with stdio(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.base_url) as client:
            data(await client.call_tool("remember", {"value": "exported", "key": "e"}))
        spans = {s.name: s for s in receiver.wait_for_spans(3)}
    request, tool, add = (
        spans["tools/call remember"],
        spans["execute_tool remember"],
        spans["upsert_memory"],
    )
    assert tool.parent_span_id == request.span_id
    assert add.parent_span_id == tool.span_id
    assert request.trace_id == tool.trace_id == add.trace_id


DOC = ROOT / "docs" / "integrations" / "mcp.md"


def test_doc_client_configurations_are_json_and_its_snippet_runs() -> None:
    """docs/integrations/mcp.md: each mcpServers block is valid JSON naming the command or
    URL, and its Python snippet runs as written."""
    doc = DOC.read_text()
    blocks = [b.split("```", 1)[0] for b in doc.split("```json\n")[1:]]
    assert len(blocks) == 3
    for block in blocks:
        server = json.loads(block)["mcpServers"]["memory"]
        assert server.get("command") == "tta-memory" or server["url"].endswith("/mcp")
    snippet = doc.split("```python\n", 1)[1].split("```", 1)[0]
    assert run_code(snippet).strip() == "Ada deploys on Fridays"
