"""A LangGraph agent whose long-term memory is a MemoryPrimitive (needs the langgraph extra).

    pip install 'tta-dev-primitives[langgraph,langchain]'
    python examples/langgraph_agent.py                   # in process
    REDIS_URL=redis://localhost:6379/0 python examples/langgraph_agent.py   # on Redis

The graph recalls what it knows about the user (a keyword search of the user's namespace
tree through LangGraph's `store`), answers (a stand-in for a model call), and remembers the
message. Then the same memory is read without LangGraph: through the blocking facade
(`memory.sync()`), a search across every user's namespace (`subtree=True`) and a LangChain
retriever.
"""

from __future__ import annotations

import os
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore

from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.integrations.langgraph import MemoryStore


class Turn(TypedDict, total=False):
    user: str
    message: str
    recalled: list[str]
    answer: str


def recall(state: Turn, *, store: BaseStore) -> dict[str, Any]:
    found = store.search(("users", state["user"]), query=state["message"], limit=3)
    return {"recalled": [item.value["text"] for item in found if item.score is not None]}


def answer(state: Turn) -> dict[str, Any]:
    known = "; ".join(state.get("recalled", [])) or "nothing yet"
    return {"answer": f"(I remember: {known})"}


def remember(state: Turn, *, store: BaseStore) -> dict[str, Any]:
    notes = ("users", state["user"], "notes")
    count = len(store.search(notes, limit=1000))
    store.put(notes, f"note-{count + 1}", {"text": state["message"]})
    return {}


def build(store: MemoryStore) -> Any:
    builder = StateGraph(Turn)
    builder.add_node("recall", recall)
    builder.add_node("answer", answer)
    builder.add_node("remember", remember)
    builder.add_edge(START, "recall")
    builder.add_edge("recall", "answer")
    builder.add_edge("answer", "remember")
    builder.add_edge("remember", END)
    return builder.compile(store=store)


def main() -> None:
    url = os.environ.get("REDIS_URL")
    memory = (
        MemoryPrimitive(redis_url=url, namespace="agent")
        if url
        else MemoryPrimitive(namespace="agent")
    )
    mem = memory.sync()
    mem.scoped("users", "ada", "notes").clear()  # a fresh run on a shared Redis
    mem.scoped("users", "bob", "notes").clear()
    graph = build(MemoryStore(memory))

    for user, message in [
        ("ada", "I deploy with Kubernetes on Fridays"),
        ("bob", "My favourite editor is Helix"),
        ("ada", "When do I usually deploy with Kubernetes?"),
    ]:
        out = graph.invoke({"user": user, "message": message})
        print(f"{user}: {message!r} -> {out['answer']}")

    print("namespaces:", mem.namespaces(("users",)))
    for hit in mem.search("kubernetes", subtree=True, limit=5):
        print(f"  {'/'.join(hit.namespace)}  {hit.key}  {hit.score:.2f}  {hit.value['text']}")

    try:
        retriever = memory.as_retriever(k=2, subtree=True)
    except ImportError as exc:  # the langchain extra is optional for this example
        print("retriever:", exc)
    else:
        docs = retriever.invoke("editor")
        print("retriever:", [(d.metadata["namespace"], d.page_content) for d in docs])
    print("using redis:", memory.is_using_redis())
    mem.close()


if __name__ == "__main__":
    main()
