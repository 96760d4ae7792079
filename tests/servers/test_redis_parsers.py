"""The Redis backend reads the same through hiredis (the ``hiredis`` extra) and through
redis-py's pure-Python parser (what runs without it)."""

from __future__ import annotations

import numpy as np
import pytest
import redis.utils
from redis._parsers import _AsyncHiredisParser, _AsyncRESP3Parser

from tta_dev_primitives import RedisBackend
from tta_dev_primitives.memory.backends import Entry, SearchQuery

from tests.support.redis_servers import RedisServer

pytestmark = pytest.mark.redis


async def test_hiredis_and_the_python_parser_read_and_load_alike(
    redis_server: RedisServer,
) -> None:
    """Records written through one parser are read back, loaded into a fresh index and
    ranked identically through the other, vectors included."""
    assert redis.utils.HIREDIS_AVAILABLE, "hiredis is in the dev extra: pip install -e '.[dev]'"
    ns = ("parsers",)
    rng = np.random.default_rng(5)
    writer = RedisBackend.from_url(
        redis_server.url, max_size=None, parser_class=_AsyncHiredisParser
    )
    entries = [
        Entry(f"k{i}", f'"note {i} about {["cats", "trains", "tea"][i % 3]} é"', {"g": i % 2},
              None, rng.standard_normal(8).astype(np.float32))
        for i in range(300)
    ]  # fmt: skip
    await writer.put_many(ns, entries)
    query = SearchQuery("trains", 5, "hybrid", vector=rng.standard_normal(8).astype(np.float32))
    found = []
    for parser in (_AsyncHiredisParser, _AsyncRESP3Parser):
        reader = RedisBackend.from_url(redis_server.url, max_size=None, parser_class=parser)
        try:
            record = await reader.get(ns, "k7")
            assert record is not None
            assert (record.payload, record.metadata) == ('"note 7 about trains é"', {"g": 1})
            hits = await reader.search(ns, query)  # a fresh index: the namespace is loaded
            found.append([(h.key, h.score, h.payload) for h in hits])
        finally:
            await reader.aclose()
    await writer.clear(ns)
    await writer.aclose()
    assert found[0] == found[1]
    assert len(found[0]) == 5
