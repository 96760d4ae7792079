"""Every example in examples/ runs, so the examples never rot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import ROOT
from tests.support.redis_servers import shared_server
from tests.support.subproc import run_python

EXAMPLES = ROOT / "examples"


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


@pytest.mark.redis
def test_langgraph_agent_example(request: pytest.FixtureRequest) -> None:
    """examples/langgraph_agent.py runs a graph on MemoryStore on Redis (the in-process
    store runs in the doc snippets' test), then reads the same memory through sync(), a tree
    search and a retriever."""
    for env in ({"REDIS_URL": shared_server("redis", request.config).url},):
        out = run_example("langgraph_agent.py", **env)
        assert "ada: 'I deploy with Kubernetes on Fridays' -> (I remember: nothing yet)" in out
        assert (
            "ada: 'When do I usually deploy with Kubernetes?' -> "
            "(I remember: I deploy with Kubernetes on Fridays)"
        ) in out
        assert "namespaces: [('users', 'ada', 'notes'), ('users', 'bob', 'notes')]" in out
        assert "users/ada/notes  note-1" in out
        assert "retriever: [(['users', 'bob', 'notes'], '{\"text\": \"My favourite editor" in out
        assert f"using redis: {bool(env)}" in out


@pytest.mark.redis
def test_langgraph_doc_runs(request: pytest.FixtureRequest) -> None:
    """Every snippet of docs/integrations/langgraph.md runs as written, on Redis where it
    asks for one."""
    url = shared_server("redis", request.config).url
    doc = (EXAMPLES.parent / "docs" / "integrations" / "langgraph.md").read_text()
    snippets = [part.split("```", 1)[0] for part in doc.split("```python\n")[1:]]
    assert len(snippets) == 5
    # One interpreter runs them in turn (each stands alone: it imports what it uses).
    out = run_python("-c", "\n".join(snippets), REDIS_URL=url).splitlines()
    assert out[0] == "{'text': 'I deploy on Fridays'}"
    assert out[1:3] == ["['editor']", "True"]
    assert out[3:5] == ["{'text': 'ship the store on Friday'}", "False"]
    assert out[5].startswith("Ada writes code in Helix {'topic': 'tools', 'key': 'editor'")
    assert out[6:] == ["Ada writes code in Helix", "{'answer': 'Ada writes code in Helix'}"]


def test_memory_readme_tree_and_sync_snippets_run() -> None:
    """The snippets of docs/memory/README.md's namespace-tree and sync() sections run."""
    doc = (EXAMPLES.parent / "docs" / "memory" / "README.md").read_text()

    def snippet(section: str) -> str:
        return doc.split(section, 1)[1].split("```python\n", 1)[1].split("```", 1)[0]

    tree = snippet("## Namespace trees")
    code = (
        "import asyncio\nfrom tta_dev_primitives import MemoryPrimitive\n"
        "async def main():\n"
        "    memory = MemoryPrimitive()\n"
        "    await memory.scoped('users', 'ada', 'notes').add('n7', 'deadline friday', "
        "metadata={'role': 'user'})\n"
        "    await memory.scoped('users', 'bob').add('t2', 'the deadline moved')\n"
        + "".join(f"    {line}\n" for line in tree.splitlines())
        + "    print([(h.namespace, h.key) for h in hits], [r.key for r in page.records])\n"
        + "    print(await memory.namespaces(('users', '*'), suffix=('notes',), max_depth=3))\n"
        "asyncio.run(main())\n"
    )
    out = run_python("-c", code).splitlines()
    assert out[0] == "[(('ada', 'notes'), 'n7'), (('bob',), 't2')] ['n7']"
    assert out[1] == "[('users', 'ada', 'notes')]"
    sync = snippet("## Synchronous use")
    code = "from tta_dev_primitives import MemoryPrimitive\nmemory = MemoryPrimitive()\n" + sync
    assert run_python("-c", code) == ""


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
