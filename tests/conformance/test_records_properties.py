"""Property tests for the records API: random metadata and filter trees against an
independent evaluator (tests/support/reference.py), and paging under random concurrent writes."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.memory.search import matches_filter, validate_filter

from tests.support.reference import reference_matches

FIELDS = ["a", "b", "c"]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.5, -1.5, 2.0]),
    st.sampled_from(["", "x", "y", "Y"]),
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=2))
METADATA = st.one_of(st.none(), st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=3))
ORDERABLE = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, 2.0]), st.sampled_from(["x", "y"]))


def _op_condition() -> st.SearchStrategy[dict[str, Any]]:
    single = st.one_of(
        st.tuples(st.sampled_from(["$eq", "$ne"]), VALUES),
        st.tuples(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), ORDERABLE),
        st.tuples(st.sampled_from(["$in", "$nin"]), st.lists(VALUES, max_size=3)),
        st.tuples(st.just("$exists"), st.booleans()),
    )
    return st.lists(single, min_size=1, max_size=2).map(dict)


CONDITION = st.one_of(
    VALUES,
    _op_condition(),
    _op_condition().map(lambda c: {"$not": c}),
)
LEAF = st.dictionaries(st.sampled_from(FIELDS), CONDITION, min_size=1, max_size=2)
FILTERS = st.recursive(
    LEAF,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda fs: {"$and": fs}),
        st.lists(inner, min_size=1, max_size=3).map(lambda fs: {"$or": fs}),
        inner.map(lambda f: {"$not": f}),
    ),
    max_leaves=6,
)


@settings(max_examples=400, deadline=None)
@given(metadata=METADATA, filter_=FILTERS)
def test_filter_evaluation_matches_the_reference(
    metadata: dict[str, Any] | None, filter_: dict[str, Any]
) -> None:
    """matches_filter agrees with the independent evaluator on random metadata and filters."""
    checked = validate_filter(filter_)
    assert matches_filter(metadata, checked) == reference_matches(metadata, filter_)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(metas=st.lists(METADATA, min_size=1, max_size=12), filter_=FILTERS)
def test_backend_filters_match_the_reference(
    metas: list[dict[str, Any] | None], filter_: dict[str, Any]
) -> None:
    """list, search and delete_where on the in-memory backend (index masks included) pick
    exactly the records the reference evaluator picks."""

    async def run() -> None:
        memory = MemoryPrimitive()
        for i, meta in enumerate(metas):
            await memory.add(f"k{i}", f"word {i}", metadata=meta)
        expected = {f"k{i}" for i, m in enumerate(metas) if reference_matches(m, filter_)}
        listed = {r.key for r in (await memory.list(filter=filter_, limit=100)).records}
        found = {h.key for h in await memory.search("word", filter=filter_, limit=100)}
        assert listed == expected
        assert found == expected
        assert await memory.delete_where(filter_) == len(expected)
        assert set(await memory.keys()) == {f"k{i}" for i in range(len(metas))} - expected

    asyncio.run(run())


WRITES = st.lists(
    st.tuples(st.sampled_from(["add", "update", "delete"]), st.integers(0, 14)),
    max_size=6,
)


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(0, 15),
    limit=st.integers(1, 5),
    order=st.sampled_from(["newest", "oldest"]),
    selective=st.booleans(),
    writes=st.lists(WRITES, max_size=8),
)
def test_paging_under_concurrent_writes(
    n: int, limit: int, order: str, selective: bool, writes: list[list[tuple[str, int]]]
) -> None:
    """Between pages others add, update and delete: no record is returned twice, and every
    record that lived unchanged through the whole walk is returned."""

    async def run() -> None:
        memory = MemoryPrimitive(max_size=None)
        for i in range(n):
            await memory.add(f"k{i}", i, metadata={"g": i % 2})
        touched: set[str] = set()
        filter_ = {"g": 0} if selective else None
        seen: list[str] = []
        cursor = None
        batches = iter(writes)
        while True:
            page = await memory.list(
                filter=filter_,
                limit=limit,
                cursor=cursor,
                order=order,  # type: ignore[arg-type]
            )
            seen.extend(r.key for r in page.records)
            for kind, i in next(batches, []):
                key = f"k{i}"
                touched.add(key)
                if kind == "add":
                    await memory.add(key, -i, metadata={"g": i % 2})
                elif kind == "update":
                    with contextlib.suppress(KeyError):
                        await memory.update(key, value=i + 100)
                else:
                    await memory.delete(key)
            cursor = page.next_cursor
            if cursor is None:
                break
        assert len(seen) == len(set(seen))
        stable = {f"k{i}" for i in range(n) if filter_ is None or i % 2 == 0} - touched
        assert stable <= set(seen)

    asyncio.run(run())
