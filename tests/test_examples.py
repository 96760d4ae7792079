"""Every example in examples/ runs, so the examples never rot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .subproc import run_python

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, **env: str) -> str:
    return run_python(str(EXAMPLES / name), **env)


def test_pipeline_example() -> None:
    """examples/pipeline.py prints the composed result."""
    out = run_example("pipeline.py")
    assert "3 words -> HELLO TRACED WORLD" in out


def test_memory_workflow_example() -> None:
    """examples/memory_workflow.py (what make demo runs) stores, scopes, searches, and runs one
    pipeline for several users."""
    out = run_example("memory_workflow.py")
    assert "stored 5 turns of ada:session-1" in out
    assert "chat sees them? None" in out
    assert "turn:002  A recommendation service" in out
    assert "ada:session-1: Q: editor -> from memory: My favourite editor is Helix" in out
    assert "bob:session-1: Q: editor -> from memory: My favourite editor is Emacs" in out
    assert "remembered answers for ada: ['answer:editor', 'answer:holidays'" in out
    assert "remembered answers for bob: ['answer:editor']" in out
    assert 'redis_url="redis://' in out


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.name)
def test_every_example_has_a_test(path: Path) -> None:
    """Each example file is exercised by a test in this module."""
    source = Path(__file__).read_text()
    assert f'"{path.name}"' in source, f"no test runs {path.name}"


def test_tracing_pipeline_example() -> None:
    """examples/tracing_pipeline.py answers, remembers, and prints its spans to the console."""
    out = run_example("tracing_pipeline.py")
    assert "answer: Every memory operation is a span" in out
    assert "remembered: True" in out
    for name in ("answer_question", "search_memory", "upsert_memory"):
        assert f'"name": "{name}"' in out


def test_redis_workflow_example(valkey_server: Any) -> None:
    """examples/redis_workflow.py shows the fallback without REDIS_URL and Redis with it."""
    out = run_example("redis_workflow.py")
    assert "REDIS_URL is not set" in out
    assert "is_using_redis() = False" in out
    assert "backend=in_memory degraded=True" in out
    assert "3 writes are journaled" in out
    assert "get turn:1 -> I deploy with Kubernetes on Fridays" in out
    out = run_example("redis_workflow.py", REDIS_URL=valkey_server.url)
    assert "after the first call:  is_using_redis() = True" in out
    assert "backend=redis degraded=False persistent=True" in out
    assert "least recently used first: ['turn:2', 'note', 'turn:1']" in out


def test_compaction_example() -> None:
    """examples/compaction.py compacts with no model, with an LLM-shaped callable, merges
    duplicates and keeps a bound in the background."""
    out = run_example("compaction.py")
    assert "extractive: replaced 6 records, 3 left" in out
    assert "summary: Ada asked how to cache results in Redis." in out
    assert "search 'Redis cache' finds the summary: True" in out
    assert "llm: Summary of 5 memories: Ada said she deploys" in out
    assert "merged ['n1'] into n2: {'source': 'chat', 'confirmed': True}" in out
    assert "auto-compacted chat holds 6 records (bound 20)" in out


def test_chat_agent_records_example() -> None:
    """examples/chat_agent_records.py reads metadata back, updates, lists by filter in pages,
    searches with operators in a named pipeline, deletes by filter and lists namespaces."""
    out = run_example("chat_agent_records.py")
    assert "turn:3 {'role': 'user', 'importance': 5, 'done': False} expires in ~3600s" in out
    assert (
        "updated turn:3 -> {'role': 'user', 'importance': 5, 'done': True} expires_at=None" in out
    )
    assert "important: turn:3 'Remind me to renew the TLS certificate'\nimportant: turn:2" in out
    assert "pipeline search_step>>answer>>add_step" in out
    assert "Q: editor -> My favourite editor is Helix" in out
    assert "deleted 2" in out
    assert "left: ['turn:0', 'turn:2', 'turn:3']" in out
    assert "namespaces: [('chat', 'ada')]" in out


def test_compaction_doc_runs() -> None:
    """The first snippet of docs/memory/compaction.md runs as written."""
    doc = (EXAMPLES.parent / "docs" / "memory" / "compaction.md").read_text()
    snippet = doc.split("```python\n", 1)[1].split("```", 1)[0]
    out = run_python("-c", snippet)
    assert "Traceback" not in out


def test_facts_that_change_example() -> None:
    """examples/facts_that_change.py keeps the vegetarian version, reads it as of then, and
    supersedes one key by another."""
    out = run_example("facts_that_change.py")
    assert "now: I'm vegan now" in out
    assert "search 'vegetarian': []" in out
    assert "as of then: I'm vegetarian" in out
    assert "search 'vegetarian' as of then: [\"I'm vegetarian\"]" in out
    assert "allergy:1 now: None" in out
    assert "allergy:1 history: ['allergic to peanuts']" in out


def test_history_doc_runs() -> None:
    """The first snippet of docs/memory/history.md runs as written."""
    doc = (EXAMPLES.parent / "docs" / "memory" / "history.md").read_text()
    snippet = doc.split("```python\n", 1)[1].split("```", 1)[0]
    out = run_python("-c", snippet)
    assert "Traceback" not in out
