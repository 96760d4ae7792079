"""A chat agent that manages its memory records: metadata, update, list with filters, pages.

Run: python examples/chat_agent_records.py (no server, no model: the in-memory backend).
"""

from __future__ import annotations

import asyncio

from tta_dev_primitives import (
    NO_EXPIRY,
    LambdaPrimitive,
    MemoryPrimitive,
    SearchHit,
    WorkflowContext,
)


async def main() -> None:
    async with MemoryPrimitive(default_ttl=3600) as memory:
        chat = memory.scoped("chat", "ada")

        # Every turn is a record with metadata the agent can filter on later.
        turns = [
            ("user", "I deploy with Kubernetes on Fridays", 2),
            ("assistant", "Noted: Kubernetes deploys on Fridays", 1),
            ("user", "My favourite editor is Helix", 3),
            ("user", "Remind me to renew the TLS certificate", 5),
        ]
        for n, (role, text, importance) in enumerate(turns):
            await chat.add(
                f"turn:{n}", text, metadata={"role": role, "importance": importance, "done": False}
            )

        # Metadata and timestamps come back with the record.
        rec = await chat.get_record("turn:3")
        assert rec is not None
        print(f"turn:3 {rec.metadata} expires in ~{round(rec.expires_at - rec.updated_at)}s")

        # Update only what changes: the reminder is done, and keep it for good.
        rec = await chat.update("turn:3", metadata={"done": True}, ttl=NO_EXPIRY)
        print(f"updated turn:3 -> {rec.metadata} expires_at={rec.expires_at}")

        # List with a filter, page by page, newest first.
        important = {"role": "user", "importance": {"$gte": 3}}
        cursor = None
        while True:
            page = await chat.list(filter=important, limit=1, cursor=cursor)
            for r in page.records:
                print(f"important: {r.key} {r.value!r}")
            cursor = page.next_cursor
            if cursor is None:
                break

        # Search with operators, in a pipeline that remembers its answer with metadata. The
        # pipeline serves every user: each run works in its session's chat namespace.
        def answer(hits: list[SearchHit], ctx: WorkflowContext) -> str:
            return hits[0].value if hits else "I don't know"

        def users_chat(_input: object, ctx: WorkflowContext) -> tuple[str, str]:
            return ("chat", ctx.session_id or "anonymous")

        pipeline = (
            memory.search_step(
                limit=1, filter={"role": "user", "done": {"$ne": True}}, namespace=users_chat
            )
            >> LambdaPrimitive(answer, name="answer")
            >> memory.add_step(
                key=lambda out, ctx: f"answer:{ctx.workflow_id}",
                metadata={"role": "assistant", "importance": 1},
                namespace=users_chat,
            )
        )
        print(f"pipeline {pipeline.name}")
        out = await pipeline.execute("editor", WorkflowContext(workflow_id="q1", session_id="ada"))
        print(f"Q: editor -> {out}")

        # Forget the unimportant assistant turns; see which sub-namespaces hold records.
        print(f"deleted {await chat.delete_where({'role': 'assistant', 'importance': 1})}")
        print(f"left: {sorted(await chat.keys())}")
        print(f"namespaces: {await memory.namespaces()}")


if __name__ == "__main__":
    asyncio.run(main())
