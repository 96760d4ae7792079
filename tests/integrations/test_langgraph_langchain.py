"""LangGraph and LangChain: a real compiled graph on the store, the retriever, primitives as
runnables and graph nodes, and the extras' lazy imports."""

from __future__ import annotations

import asyncio
import itertools
import textwrap
from collections.abc import Callable, Iterator
from typing import Any, TypedDict

import pytest
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore

from tta_dev_primitives import (
    HashingEmbedder,
    InMemoryBackend,
    LambdaPrimitive,
    MemoryOperation,
    MemoryPrimitive,
)
from tta_dev_primitives.integrations.langchain import as_runnable
from tta_dev_primitives.integrations.langgraph import MemoryStore

from tests.support.cluster import shared_cluster
from tests.support.redis_servers import shared_server
from tests.support.subproc import run_code

_roots = itertools.count()


@pytest.fixture(
    params=[
        "in_memory",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("valkey", marks=pytest.mark.redis),
        pytest.param("cluster", marks=(pytest.mark.redis, pytest.mark.cluster)),
        pytest.param("fallback_redis", marks=pytest.mark.redis),
    ]
)
def memory_of(request: pytest.FixtureRequest) -> Iterator[Callable[..., MemoryPrimitive]]:
    """Builds memories on one backend kind (each in a root of its own); closes them after."""
    made: list[MemoryPrimitive] = []
    url = None
    if request.param == "cluster":
        url = shared_cluster(request.config).url
    elif request.param == "valkey":
        url = shared_server("valkey", request.config).url
    elif request.param != "in_memory":
        url = shared_server("redis", request.config).url

    def make(**kwargs: Any) -> MemoryPrimitive:
        kwargs.setdefault("namespace", f"integration-{next(_roots)}")
        if url is not None:
            kwargs.update(redis_url=url, fallback=request.param == "fallback_redis")
        memory = MemoryPrimitive(**kwargs)
        made.append(memory)
        return memory

    yield make
    for memory in made:
        memory.sync().close()


# -- a real LangGraph graph on the store --------------------------------------------------------


class Chat(TypedDict, total=False):
    user: str
    message: str
    recalled: list[str]


def _graph(store: MemoryStore, *, use_async: bool) -> Any:
    """remember -> recall: one node writes the message through ``store``, the next searches
    the user's namespace tree for it."""

    def remember(state: Chat, *, store: BaseStore) -> Chat:
        store.put(
            ("users", state["user"], "notes"),
            f"n{len(state['message'])}",
            {"text": state["message"]},
        )
        return {}

    def recall(state: Chat, *, store: BaseStore) -> Chat:
        found = store.search(("users", state["user"]), query="python", limit=5)
        return {"recalled": [item.value["text"] for item in found]}

    async def aremember(state: Chat, *, store: BaseStore) -> Chat:
        key = f"n{len(state['message'])}"
        await store.aput(("users", state["user"], "notes"), key, {"text": state["message"]})
        return {}

    async def arecall(state: Chat, *, store: BaseStore) -> Chat:
        found = await store.asearch(("users", state["user"]), query="python", limit=5)
        return {"recalled": [item.value["text"] for item in found]}

    builder = StateGraph(Chat)
    builder.add_node("remember", aremember if use_async else remember)
    builder.add_node("recall", arecall if use_async else recall)
    builder.add_edge(START, "remember")
    builder.add_edge("remember", "recall")
    builder.add_edge("recall", END)
    return builder.compile(store=store)


def test_compiled_graph_reads_and_writes_through_the_store(
    memory_of: Callable[..., MemoryPrimitive],
) -> None:
    """graph.compile(store=MemoryStore(...)) runs: a sync node writes, the next finds it by
    keyword search of the user's namespace tree; another user's notes stay apart."""
    memory = memory_of()
    store = MemoryStore(memory)
    graph = _graph(store, use_async=False)
    out = graph.invoke({"user": "ada", "message": "I write python every day"})
    assert out["recalled"] == ["I write python every day"]
    graph.invoke({"user": "bob", "message": "python snakes"})
    out = graph.invoke({"user": "ada", "message": "learning python and also rust"})
    assert sorted(out["recalled"]) == ["I write python every day", "learning python and also rust"]
    assert store.list_namespaces(prefix=("users",)) == [
        ("users", "ada", "notes"),
        ("users", "bob", "notes"),
    ]
    item = store.get(("users", "bob", "notes"), "n13")
    assert item is not None
    assert item.value == {"text": "python snakes"}
    assert item.created_at <= item.updated_at
    # The records are the memory's own: reachable without LangGraph.
    assert memory.sync().scoped("users", "ada", "notes").size() == 2


async def test_compiled_graph_with_async_nodes(memory_of: Callable[..., MemoryPrimitive]) -> None:
    """ainvoke with async nodes uses aput/asearch on the same store."""
    store = MemoryStore(memory_of(), index={"dims": 64, "embed": HashingEmbedder(64)})
    graph = _graph(store, use_async=True)
    out = await graph.ainvoke({"user": "ada", "message": "python decorators explained"})
    assert out["recalled"] == ["python decorators explained"]
    hits = await store.asearch(("users",), query="python decorators")
    assert [h.key for h in hits] == ["n27"]
    assert hits[0].score is not None
    assert hits[0].namespace == ("users", "ada", "notes")


# -- MemoryStore specifics ----------------------------------------------------------------------


def test_store_filters_fields_and_nested_fields(memory_of: Callable[..., MemoryPrimitive]) -> None:
    """LangGraph filters apply to item values, nested dicts by partial match, in the backend."""
    store = MemoryStore(memory_of())
    store.put(("docs",), "a", {"kind": "report", "meta": {"year": 2024, "lang": "en"}})
    store.put(("docs",), "b", {"kind": "report", "meta": {"year": 2025, "lang": "fr"}})
    store.put(("docs", "old"), "c", {"kind": "memo", "meta": {"year": 2020}})
    assert [i.key for i in store.search(("docs",), filter={"kind": "report"})] == ["a", "b"]
    assert [i.key for i in store.search(("docs",), filter={"meta": {"lang": "fr"}})] == ["b"]
    older = store.search(("docs",), filter={"meta": {"year": {"$lt": 2025}}})
    assert [(i.namespace, i.key) for i in older] == [(("docs",), "a"), (("docs", "old"), "c")]
    assert [i.key for i in store.search(("docs",), limit=1, offset=1)] == ["b"]
    store.delete(("docs",), "a")
    assert store.get(("docs",), "a") is None


def test_store_ttl_expires_and_refreshes_on_read() -> None:
    """ttl (minutes) expires items; a read with refresh pushes the expiry back."""
    now = [1000.0]
    memory = MemoryPrimitive(backend=InMemoryBackend(None, clock=lambda: now[0]))
    store = MemoryStore(memory, ttl={"default_ttl": 1.0, "refresh_on_read": True})
    store.put(("s",), "kept", {"v": 1})
    store.put(("s",), "dropped", {"v": 2})
    store.put(("s",), "forever", {"v": 3}, ttl=None)
    now[0] += 50
    assert store.get(("s",), "kept") is not None  # refreshed: 60 s from now
    assert store.get(("s",), "dropped", refresh_ttl=False) is not None
    now[0] += 30
    assert store.get(("s",), "dropped") is None
    assert store.get(("s",), "kept") is not None
    now[0] += 3600
    assert [i.key for i in store.search(("s",))] == ["forever"]
    memory.sync().close()


def test_store_refuses_langgraph_invalid_namespaces() -> None:
    """LangGraph's namespace rules: InvalidNamespaceError, nothing written."""
    from langgraph.store.base import InvalidNamespaceError, PutOp

    store = MemoryStore()
    for bad in [(), ("a", ""), ("a.b",)]:
        with pytest.raises(InvalidNamespaceError):
            store.batch([PutOp(bad, "k", {"v": 1})])
    assert store.list_namespaces() == []
    store.close()


# -- LangChain ----------------------------------------------------------------------------------


async def test_retriever_returns_documents_sync_and_async(
    memory_of: Callable[..., MemoryPrimitive],
) -> None:
    """as_retriever() is a BaseRetriever: Documents with key, score, namespace and metadata,
    by invoke and ainvoke; k, filter, subtree and min_score apply."""
    memory = memory_of()
    await memory.sync().arun(memory.add("a", "python tips", metadata={"lang": "en"}))
    await memory.sync().arun(memory.scoped("sub").add("b", {"text": "python python"}))
    retriever = memory.as_retriever(k=5)
    assert isinstance(retriever, BaseRetriever)
    docs = await retriever.ainvoke("python")
    assert docs == retriever.invoke("python")
    assert [(d.id, d.page_content) for d in docs] == [("a", "python tips")]
    assert docs[0].metadata["lang"] == "en"
    assert docs[0].metadata["namespace"] == []
    assert docs[0].metadata["score"] > 0
    tree = memory.as_retriever(subtree=True, k=5).invoke("python")
    assert [(d.id, d.metadata["namespace"]) for d in tree] == [("b", ["sub"]), ("a", [])]
    assert tree[0].page_content == '{"text": "python python"}'
    best = tree[0].metadata["score"]
    assert [d.id for d in memory.as_retriever(subtree=True, min_score=best).invoke("python")] == [
        "b"
    ]
    assert memory.as_retriever(filter={"lang": "fr"}).invoke("python") == []
    assert len(memory.as_retriever(subtree=True, k=1).invoke("python")) == 1
    with pytest.raises(ValueError, match="k"):
        memory.as_retriever(k=0)


def test_primitives_as_runnables_and_graph_nodes() -> None:
    """as_runnable() turns a step, a pipeline or the memory into a LangChain Runnable (sync
    and async) that also serves as a LangGraph node."""
    memory = MemoryPrimitive()
    mem = memory.sync()
    mem.add("py", "python notes")
    search = as_runnable(memory.search_step(limit=2))
    assert [h.key for h in search.invoke("python")] == ["py"]
    assert [h.key for h in asyncio.run(search.ainvoke("python"))] == ["py"]
    chain = search | RunnableLambda(lambda hits: [h.value for h in hits])
    assert chain.invoke("python") == ["python notes"]
    assert memory.as_runnable().invoke(MemoryOperation.get("py")) == "python notes"
    with pytest.raises(TypeError, match="WorkflowPrimitive"):
        as_runnable(lambda x: x)  # type: ignore[arg-type]

    pipeline = LambdaPrimitive(lambda state, ctx: state["question"]) >> memory.search_step(limit=3)
    node = as_runnable(
        pipeline >> LambdaPrimitive(lambda hits, ctx: {"answers": [h.value for h in hits]})
    )

    class State(TypedDict, total=False):
        question: str
        answers: list[str]

    builder = StateGraph(State)
    builder.add_node("recall", node)
    builder.add_edge(START, "recall")
    builder.add_edge("recall", END)
    graph = builder.compile()
    assert graph.invoke({"question": "python"}) == {
        "question": "python",
        "answers": ["python notes"],
    }
    mem.close()


def test_documents_are_langchain_documents() -> None:
    """hit_to_document keeps str values as text and serializes other JSON values."""
    from tta_dev_primitives import SearchHit
    from tta_dev_primitives.integrations.langchain import hit_to_document

    doc = hit_to_document(SearchHit("k", {"a": "é"}, 1.5, {"m": 1}, ("x", "y")))
    assert isinstance(doc, Document)
    assert doc.page_content == '{"a": "é"}'
    assert doc.metadata == {"m": 1, "key": "k", "score": 1.5, "namespace": ["x", "y"]}


# -- the extras load lazily ---------------------------------------------------------------------


def test_package_import_loads_no_framework() -> None:
    """import tta_dev_primitives (and using memory, sync()) imports neither LangGraph nor
    LangChain."""
    code = textwrap.dedent(
        """
        import sys
        import tta_dev_primitives as t
        mem = t.MemoryPrimitive().sync()
        mem.add("k", "v")
        mem.close()
        print(sorted(m for m in sys.modules if m.startswith(("langgraph", "langchain"))))
        """
    )
    assert run_code(code).strip() == "[]"


def test_missing_extras_name_what_to_install() -> None:
    """Without the frameworks, the integrations raise ImportError naming the extra."""
    code = textwrap.dedent(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("langgraph", "langchain_core"):
                    raise ImportError("blocked: " + name)
                return None
        sys.meta_path.insert(0, Block())
        import tta_dev_primitives as t
        for run in (
            lambda: __import__("tta_dev_primitives.integrations.langgraph"),
            lambda: t.MemoryPrimitive().as_retriever(),
        ):
            try:
                run()
            except ImportError as exc:
                print(exc)
        """
    )
    lines = run_code(code).splitlines()
    assert "pip install 'tta-dev-primitives[langgraph]'" in lines[0]
    assert "pip install 'tta-dev-primitives[langchain]'" in lines[1]
