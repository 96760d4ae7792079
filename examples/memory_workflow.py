"""Zero-setup memory for an agent: no server, no API key, no configuration.

Shows a multi-turn conversation stored and recalled, task memory in scoped namespaces,
ranked search with scores, and one retrieve >> answer >> remember pipeline serving
several users.
Run it with ``make demo`` or ``python examples/memory_workflow.py``.
"""

from __future__ import annotations

import asyncio

from tta_dev_primitives import (
    LambdaPrimitive,
    MemoryPrimitive,
    SearchHit,
    WorkflowContext,
    create_memory_key,
)

CONVERSATION = [
    ("user", "Hi! I'm Ada and I mostly write Python for data pipelines."),
    ("assistant", "Nice to meet you, Ada. What are you building at the moment?"),
    ("user", "A recommendation service. It caches results in Redis."),
    ("assistant", "Got it: a recommendation service with a Redis cache."),
    ("user", "My favourite editor is Helix, by the way."),
]


def answer(question: str, ctx: WorkflowContext) -> str:
    """A deterministic stand-in for a model call: answer from the best memory.

    The search step put its hits in ``ctx.state["hits"]`` and passed the question on.
    """
    hits: list[SearchHit] = ctx.state["hits"]
    if not hits:
        return f"I don't remember anything about {question!r} yet."
    best = hits[0].value
    text = best["text"] if isinstance(best, dict) else str(best)
    return f"Q: {question} -> from memory: {text}"


def user_chat(_input: object, ctx: WorkflowContext) -> tuple[str, str]:
    """The namespace of this run's user: each run of one pipeline reads its own user's chat."""
    return ("chat", ctx.session_id or "anonymous")


async def main() -> None:
    memory = MemoryPrimitive()  # in process; MemoryPrimitive(redis_url=...) persists in Redis
    info = memory.get_backend_info()
    print(f"backend: {info['backend']} (persistent={info['persistent']})")

    # 1. A multi-turn conversation, stored turn by turn under one session key prefix.
    session = create_memory_key("ada", "session-1")
    chat = memory.scoped("chat", session)
    for turn, (role, text) in enumerate(CONVERSATION):
        await chat.add(f"turn:{turn:03d}", {"role": role, "text": text}, metadata={"role": role})
    print(f"\nstored {await chat.size()} turns of {session}")
    first = await chat.get("turn:000")
    print(f"recalled turn 0: {first['role']}: {first['text']}")

    # 2. Task-specific memory in its own namespace: invisible to the chat namespace.
    task = memory.scoped("tasks", "recsys-launch")
    await task.add("todo:1", "Load-test the Redis cache before launch", ttl=3600)
    await task.add("todo:2", "Write the rollback runbook")
    print(f"\ntask keys: {await task.keys()}   chat sees them? {await chat.get('todo:1')}")

    # 3. Ranked keyword search (BM25; partial words match too).
    print("\nsearch 'redis' in chat:")
    for hit in await chat.search("redis", limit=3):
        print(f"  {hit.score:5.2f}  {hit.key}  {hit.value['text']}")
    print("search 'pyth' (a partial word) in chat, user turns only:")
    for hit in await chat.search("pyth", filter={"role": "user"}):
        print(f"  {hit.score:5.2f}  {hit.key}  {hit.value['text']}")

    # 4. One pipeline for every user: retrieve >> answer >> remember the answer, each run in
    #    the namespace of its session's user, the question kept alongside the hits.
    bob = memory.scoped("chat", "bob:session-1")
    await bob.add("turn:000", {"role": "user", "text": "My favourite editor is Emacs."})
    pipeline = (
        memory.search_step(limit=3, namespace=user_chat, state_key="hits")
        >> LambdaPrimitive(answer)
        >> memory.add_step(key=lambda out, ctx: f"answer:{ctx.workflow_id}", namespace=user_chat)
    )
    print("\npipeline runs:")
    for user_session, question in (
        (session, "editor"),
        ("bob:session-1", "editor"),
        (session, "recommendation service"),
        (session, "holidays"),
    ):
        ctx = WorkflowContext(workflow_id=question, session_id=user_session)
        print(f"  {user_session}: {await pipeline.execute(question, ctx)}")
    answers = sorted(k for k in await chat.keys() if k.startswith("answer:"))
    print(f"remembered answers for ada: {answers}")
    print(f"remembered answers for bob: {[k for k in await bob.keys() if k.startswith('answer:')]}")

    print(
        "\nNext step: persist across restarts with Redis (plain Redis >= 7 or Valkey):\n"
        '  memory = MemoryPrimitive(redis_url="redis://localhost:6379/0")\n'
        "  It falls back to memory while Redis is down and replays writes when it is back."
    )
    await memory.aclose()


if __name__ == "__main__":
    asyncio.run(main())
