"""Property tests: random operation sequences across namespaces agree with a simple model and
never leak a record from one namespace into another."""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from tta_dev_primitives import InMemoryBackend, MemoryPrimitive

# Prefix-like and separator-like namespaces that a naive key layout would confuse.
NAMESPACES: list[tuple[str, ...]] = [
    ("foo",),
    ("foobar",),
    ("foo", "bar"),
    ("foo:bar",),
    ("foo/bar",),
    ("foo", "bar", "baz"),
    ("f",),
    ("{foo}",),
]
KEYS = st.sampled_from(["a", "b", "c", "*", "a*", "bar:a", "{x}", "é", "foo"])
WORDS = ["apple", "banana", "cherry", "apricot", "band"]
VALUES = st.lists(st.sampled_from(WORDS), min_size=0, max_size=4).map(" ".join)
MAX_SIZE = 4


class NamespaceIsolation(RuleBasedStateMachine):
    """Drives one InMemoryBackend through scoped views and a dict+LRU model side by side."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        backend = InMemoryBackend(MAX_SIZE)
        root = MemoryPrimitive(backend=backend, namespace="root")
        self.views = {ns: root.scoped(*ns) for ns in NAMESPACES}
        self.model: dict[tuple[str, ...], OrderedDict[str, str]] = {
            ns: OrderedDict() for ns in NAMESPACES
        }

    def teardown(self) -> None:
        self.loop.close()

    def run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    @rule(ns=st.sampled_from(NAMESPACES), key=KEYS, value=VALUES)
    def add(self, ns: tuple[str, ...], key: str, value: str) -> None:
        self.run(self.views[ns].add(key, value))
        model = self.model[ns]
        model[key] = value
        model.move_to_end(key)
        while len(model) > MAX_SIZE:
            model.popitem(last=False)

    @rule(ns=st.sampled_from(NAMESPACES), key=KEYS)
    def get(self, ns: tuple[str, ...], key: str) -> None:
        got = self.run(self.views[ns].get(key, "<missing>"))
        model = self.model[ns]
        if key in model:
            model.move_to_end(key)
            assert got == model[key]
        else:
            assert got == "<missing>"

    @rule(ns=st.sampled_from(NAMESPACES), key=KEYS)
    def delete(self, ns: tuple[str, ...], key: str) -> None:
        deleted = self.run(self.views[ns].delete(key))
        assert deleted == (key in self.model[ns])
        self.model[ns].pop(key, None)

    @rule(ns=st.sampled_from(NAMESPACES), word=st.sampled_from([*WORDS, "ap", "an"]))
    def search(self, ns: tuple[str, ...], word: str) -> None:
        hits = self.run(self.views[ns].search(word, limit=100))
        expected = {k for k, v in self.model[ns].items() if word in v}
        assert {h.key for h in hits} == expected
        for hit in hits:
            assert hit.value == self.model[ns][hit.key]

    @rule(ns=st.sampled_from(NAMESPACES))
    def clear(self, ns: tuple[str, ...]) -> None:
        assert self.run(self.views[ns].clear()) == len(self.model[ns])
        self.model[ns].clear()

    @invariant()
    def keys_and_sizes_agree(self) -> None:
        for ns, view in self.views.items():
            assert self.run(view.keys()) == list(self.model[ns])
            assert self.run(view.size()) == len(self.model[ns])


TestNamespaceIsolation = NamespaceIsolation.TestCase
TestNamespaceIsolation.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
