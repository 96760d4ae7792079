"""Pipeline steps: every option of their operation, the namespace taken from the run, and the
input kept alongside what a step read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from tta_dev_primitives import (
    HashingEmbedder,
    InMemoryBackend,
    LambdaPrimitive,
    MemoryPrimitive,
    SearchHit,
    WorkflowContext,
)
from tta_dev_primitives.memory.compaction import CompactionReport
from tta_dev_primitives.memory.records import MemoryRecord

from tests.support.clock import FakeClock


def _user(_input: Any, ctx: WorkflowContext) -> tuple[str, str]:
    return ("users", ctx.session_id or "")


def answer(question: str, ctx: WorkflowContext) -> str:
    hits: list[SearchHit] = ctx.state["hits"]
    return f"{question} -> {hits[0].value if hits else 'nothing yet'}"


async def test_one_pipeline_serves_several_users() -> None:
    """One pipeline built once: each run reads and writes its own user's namespace, and the
    question reaches the answer step together with the hits."""
    memory = MemoryPrimitive()
    pipeline = (
        memory.search_step(limit=1, namespace=_user, state_key="hits")
        >> LambdaPrimitive(answer)
        >> memory.add_step(key=lambda out, ctx: f"answer:{ctx.workflow_id}", namespace=_user)
    )
    await memory.scoped("users", "ada").add("fact", "Ada edits in Helix")
    await memory.scoped("users", "bob").add("fact", "Bob edits in Emacs")

    ada = await pipeline.execute("edits", WorkflowContext("q1", session_id="ada"))
    bob = await pipeline.execute("edits", WorkflowContext("q2", session_id="bob"))
    eve = await pipeline.execute("edits", WorkflowContext("q3", session_id="eve"))

    assert ada == "edits -> Ada edits in Helix"
    assert bob == "edits -> Bob edits in Emacs"
    assert eve == "edits -> nothing yet"
    assert await memory.scoped("users", "ada").get("answer:q1") == ada
    assert await memory.scoped("users", "bob").get("answer:q2") == bob
    assert await memory.scoped("users", "ada").get("answer:q2") is None
    assert await memory.size() == 0  # nothing landed in the shared namespace


async def test_search_step_carries_every_search_option() -> None:
    """search_step's semantic_weight, fusion, recency_half_life, min_score, reranker and mode
    give what search gives with the same arguments, and recency changes the order as it does
    in search."""
    clock = FakeClock()
    memory = MemoryPrimitive(InMemoryBackend(100, clock=clock), embedder=HashingEmbedder(64))
    await memory.add("old", "coffee beans from Kenya")
    clock.advance(100.0)
    await memory.add("new", "coffee beans")
    await memory.add("other", "tea leaves and a little coffee")
    options: list[dict[str, Any]] = [
        {"recency_half_life": 10.0},
        {"mode": "hybrid", "fusion": "rrf"},
        {"mode": "hybrid", "semantic_weight": 0.9, "fusion": "convex"},
        {"mode": "keyword", "filter": {"x": 1}},
        {"min_score": 0.5},
        {"mode": "keyword", "reranker": lambda q, hits: [-len(h.key) for h in hits]},
    ]
    for kwargs in options:
        step = memory.search_step(limit=3, **kwargs)
        got = await step.execute("coffee beans Kenya", WorkflowContext())
        want = await memory.search("coffee beans Kenya", limit=3, **kwargs)
        assert [(h.key, h.score) for h in got] == [(h.key, h.score) for h in want], kwargs
    plain = await memory.search_step(limit=1).execute("coffee beans Kenya", WorkflowContext())
    recent = await memory.search_step(limit=1, recency_half_life=10.0).execute(
        "coffee beans Kenya", WorkflowContext()
    )
    assert plain[0].key == "old"
    assert recent[0].key == "new"


async def test_get_step_namespace_default_and_state_key() -> None:
    """get_step reads the run's namespace, gives default for a missing key, and with
    state_key keeps its input flowing."""
    memory = MemoryPrimitive()
    await memory.scoped("users", "ada").add("profile", {"name": "Ada"})
    step = memory.get_step("profile", namespace=_user, default={}, state_key="profile")
    ctx = WorkflowContext(session_id="ada")
    assert await step.execute("hello", ctx) == "hello"
    assert ctx.state["profile"] == {"name": "Ada"}
    fresh = memory.get_step("profile", namespace=_user, default={})
    assert await fresh.execute("hello", WorkflowContext(session_id="bob")) == {}
    fixed = memory.get_step(namespace=("users", "ada"))
    assert await fixed.execute("profile", WorkflowContext()) == {"name": "Ada"}


async def test_compact_step_takes_compaction_options_and_the_run_namespace() -> None:
    """compact_step's keyword options are compaction's own, it compacts the run's namespace,
    and the report lands under its state_key."""

    def summarize(records: Sequence[MemoryRecord], ctx: WorkflowContext) -> str:
        return " | ".join(str(r.value) for r in records)

    memory = MemoryPrimitive()
    ada = memory.scoped("users", "ada")
    for i in range(5):
        await ada.add(f"m{i}", f"note {i}")
    await memory.scoped("users", "bob").add("m0", "bob's note")
    step = memory.compact_step(
        LambdaPrimitive(summarize),
        keep_last=2,
        summary_key=lambda _in, ctx: f"summary:{ctx.workflow_id}",
        namespace=_user,
        state_key="report",
    )
    ctx = WorkflowContext("w1", session_id="ada")
    assert await step.execute("input", ctx) == "input"
    report = ctx.state["report"]
    assert isinstance(report, CompactionReport)
    assert report.replaced == ("m0", "m1", "m2")
    assert await ada.get("summary:w1") == "note 0 | note 1 | note 2"
    assert await memory.scoped("users", "bob").keys() == ["m0"]
    assert step.name == "compact_step"


async def test_step_arguments_are_checked() -> None:
    """A bad namespace or state_key is refused naming it: constants when the step is built,
    a callable's result when it runs, with nothing stored."""
    memory = MemoryPrimitive()
    with pytest.raises(TypeError, match="namespace"):
        memory.search_step(namespace=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="namespace"):
        memory.add_step("k", namespace=())
    with pytest.raises(ValueError, match="namespace part"):
        memory.get_step("k", namespace=("users", ""))
    with pytest.raises(TypeError, match="state_key"):
        memory.search_step(state_key="")
    with pytest.raises(TypeError, match="state_key"):
        memory.compact_step(None, state_key=None)  # type: ignore[arg-type]
    step = memory.add_step("k", namespace=lambda _in, ctx: ctx.metadata.get("user"))
    with pytest.raises(TypeError, match="namespace"):
        await step.execute("value", WorkflowContext())
    assert await memory.namespaces() == []


async def test_steps_take_metadata_and_filter_as_constants_or_callables() -> None:
    """add_step(metadata=...) stores metadata; search_step(filter=...) filters by it."""
    memory = MemoryPrimitive()
    store = memory.add_step(
        key=lambda text, ctx: f"turn:{ctx.state.setdefault('n', 0)}",
        metadata=lambda text, ctx: {"role": ctx.metadata["role"]},
    )
    ctx = WorkflowContext(metadata={"role": "user"})
    assert await store.execute("I like green tea", ctx) == "I like green tea"
    other = memory.add_step(key="turn:9", metadata={"role": "assistant"}, ttl=60)
    await other.execute("green tea is nice", WorkflowContext())
    by_role = memory.search_step(limit=5, filter=lambda q, ctx: {"role": ctx.metadata["role"]})
    hits = await by_role.execute("green tea", ctx)
    assert [h.key for h in hits] == ["turn:0"]
    constant = memory.search_step(filter={"role": "assistant"})
    assert [h.key for h in await constant.execute("green tea")] == ["turn:9"]
    pipeline = memory.search_step(limit=1) >> memory.add_step(key="last")
    assert pipeline.name == "search_step>>add_step"


async def test_add_step_index_text_as_constant_or_callable() -> None:
    """add_step(index_text=...) indexes extra text with the record, the value unchanged."""
    memory = MemoryPrimitive()
    store = memory.add_step(
        key=lambda text, ctx: f"turn:{ctx.state['n']}",
        index_text=lambda text, ctx: ctx.state.get("previous"),
    )
    await store.execute(
        "Yes, it was amazing!", WorkflowContext(state={"n": 1, "previous": "Lisbon"})
    )
    await store.execute("No idea.", WorkflowContext(state={"n": 2}))
    titled = memory.add_step(key="note", index_text="shopping list")
    assert await titled.execute("milk, eggs") == "milk, eggs"
    assert [h.key for h in await memory.search("lisbon")] == ["turn:1"]
    assert [h.key for h in await memory.search("shopping")] == ["note"]
    record = await memory.get_record("turn:1")
    assert record is not None
    assert (record.value, record.index_text) == ("Yes, it was amazing!", "Lisbon")
    plain = await memory.get_record("turn:2")
    assert plain is not None
    assert plain.index_text is None
