"""Search through the Redis Query Engine (``FT.*``: Redis Stack 7.4 / RediSearch 2.10, Redis 8).

A :class:`~tta_dev_primitives.memory.backends.redis.RedisBackend` answers a search from an
in-process index of the namespace (``redis.index``); for a namespace too large to hold that
way, it can ask the server's Query Engine for candidates instead:

* ``search_engine="local"``: never ``FT.*``.
* ``search_engine="query-engine"``: always ``FT.*`` (a server without it, or a cluster
  client, raises :class:`MemoryBackendError`).
* ``search_engine="auto"`` (the default): ``FT.*`` for a namespace holding at least
  :attr:`QueryEngine.min_records` records (50,000 by default: about where a namespace's
  local index with 384-d vectors outgrows 100 MiB) on a standalone server that has it; the
  local index for every other namespace. The record count is read (``ZCARD``) when the
  namespace is first searched and again every :attr:`QueryEngine.recheck_interval` seconds.

Support is detected once per server (``FT._LIST``), and again after a restart.

One ``FT`` index per namespace, named ``<namespace base>idx`` (``tta:{default}:idx``), over
the record hashes (``PREFIX 1 <base>h:``): ``v`` ``TEXT NOSTEM`` (the value JSON) with
``STOPWORDS 0``, ``t`` ``TEXT NOSTEM`` (the record's index text, added by ``FT.ALTER`` to an
index made before it), and ``e`` ``VECTOR HNSW FLOAT32 COSINE`` of the dimension of the first
query vector (added by ``FT.ALTER`` when a namespace first searched by keyword is searched
by meaning). It is created on the namespace's first search through this path, waited for
until the server has indexed what was there (``indexing`` 0, ``percent_indexed`` 1), and
dropped (``FT.DROPINDEX``, records kept) by :meth:`RedisBackend.clear`; a search that finds it
gone (another process cleared the namespace, a restart) creates it again. The Lua scripts
stay as they are: Redis indexes a record hash when a script writes it.

Ranking stays the shared engine's. The Query Engine only proposes candidates, in one
pipelined round trip: the ``BM25STD`` best ``N`` of the query words joined by ``|`` and of the
whole query as a phrase (``FT.AGGREGATE ... SORTBY @__score DESC @s DESC``: ties newest
first, as the shared engine breaks them; ``N = max(100, 4 * wanted)``, ``wanted`` = the limit,
or the fusion depth in hybrid mode; four times more for a query with non-ASCII letters), the
newest ``N`` records matching ``*<longest word>*`` (the substring rule), and the ``KNN`` top
``max(100, 2 * wanted)`` with ``EF_RUNTIME max(1000, records / 12)``. The candidates'
records are read (one more round trip; vectors for the KNN ones only) and
scored by :mod:`~tta_dev_primitives.memory.search` exactly as every backend scores them,
with the namespace's exact BM25 statistics (record count, total length, each word's document
frequency), which this process keeps in a :class:`LexicalStats` of the namespace caught up
from the change log like the local index (word counts only: no postings, no text, no
vectors). Metadata filters and expiry apply to the candidates; when a filter leaves fewer
hits than asked and a candidate list was cut, the lists are asked again four times longer
(at most 10,000, the server's ``MAXSEARCHRESULTS`` default).

Where it can differ from the local index: a record the Query Engine does not propose is not
returned. It tokenizes the value JSON, not the string leaves: it folds ASCII case only
(words with other capitals are also asked in upper and title case), does not split words on
non-ASCII punctuation (``x—y`` is one word there) nor at JSON escapes (``\\n``), and has no
infix search for a one-byte word (the substring candidates are then the first ``N`` records).
The KNN side is approximate (HNSW): recall@10 against exact search is measured by
``python -m benchmarks.redis_stack_engine``.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from ...records import SearchQuery, SearchResult
from ...search import (
    Candidate,
    CorpusStats,
    Document,
    IndexRecord,
    KeywordQuery,
    Scored,
    fusion_depth,
    indexed_value,
    keyword_bound,
    make_document,
    rank_by_mode,
    rank_keyword,
    rank_semantic,
    recency_weights,
    tokenize,
)
from . import ft
from .errors import refusal
from .index import LocalIndexes
from .layout import NamespaceKeys
from .server import Server
from .sync import ChangeLogSync
from .wire import Fields, GarbledRecord, decode_fields, decode_text

logger = logging.getLogger(__package__)

__all__ = [
    "DEFAULT_QUERY_ENGINE_MIN_RECORDS",
    "SEARCH_ENGINES",
    "LexicalStats",
    "QueryEngine",
    "SearchEngine",
    "validate_search_engine",
]

SearchEngine = Literal["auto", "local", "query-engine"]
SEARCH_ENGINES: tuple[SearchEngine, ...] = ("auto", "local", "query-engine")

DEFAULT_QUERY_ENGINE_MIN_RECORDS = 50_000
"""Records from which ``search_engine="auto"`` searches a namespace through ``FT.*``."""

_MAX_RESULTS = 10_000  # RediSearch's MAXSEARCHRESULTS default: the longest candidate list
# HNSW recall@10 on random 384-d vectors, measured here: at 10k records 0.75 with EF_RUNTIME
# 200 and 0.99 with 1000; at 100k 0.61 with 1000, 0.79 with 2000, 0.93 with 4000 and 0.98
# with 8000. The default grows with the namespace: max(1000, records / 12).
_EF_RUNTIME = 1000
_EF_PER_RECORDS = 12
_WAIT = 0.01  # first pause while FT.CREATE indexes what exists (doubled, at most 0.2 s)


class _Unsupported(Exception):
    """The server has FT.* but refuses this index (another module: valkey-search, ...)."""


async def _add_field(client: Any, name: bytes, field: Sequence[Any]) -> dict[bytes, Any]:
    """Add ``field`` to the index ``name`` (another process may have added it); its info."""
    try:
        await client.execute_command("FT.ALTER", name, "SCHEMA", "ADD", *field)
    except ResponseError as exc:
        if "duplicate" not in str(exc).lower():
            raise _Unsupported() from exc
    return ft.pairs(await client.execute_command("FT.INFO", name))


class _Building(Exception):
    """The server is still indexing the namespace's existing records."""

    def __init__(self, percent: float) -> None:
        super().__init__(percent)
        self.percent = percent


def validate_search_engine(value: object) -> SearchEngine:
    """Return ``value`` if it is one of :data:`SEARCH_ENGINES`."""
    for engine in SEARCH_ENGINES:
        if value == engine:
            return engine
    raise ValueError(f"search_engine must be 'auto', 'local' or 'query-engine', got {value!r}")


class LexicalStats:
    """The BM25 statistics of one namespace, kept exactly as the shared engine counts them.

    Per live record: its length in words and its distinct words (shared strings); per word:
    how many live records hold it. What :class:`~tta_dev_primitives.memory.search.SearchIndex`
    needs to score, without postings, text or vectors. It is fed like a search index
    (``upsert_many``, ``remove``, ``expire``) by the backend's change-log catch-up.
    """

    def __init__(self) -> None:
        self._docs: dict[str, tuple[int, tuple[str, ...]]] = {}
        self._refs = 0  # words held, summed over the records
        self._df: dict[str, int] = {}
        self._total = 0
        self._expires: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self.dimensions: int | None = None  # length of the vectors seen, if any

    def __len__(self) -> int:
        return len(self._docs)

    def __contains__(self, key: object) -> bool:
        return key in self._docs

    @property
    def total_length(self) -> int:
        """Sum of the live records' lengths in words."""
        return self._total

    def df(self, term: str) -> int:
        """Number of live records holding ``term``."""
        return self._df.get(term, 0)

    def upsert_many(self, records: Iterable[IndexRecord]) -> None:
        """Count each record (replacing what was counted under its key)."""
        df = self._df
        for key, _, value, _, expires_at, vector in records:
            self.remove(key)
            doc = make_document(value)
            terms = tuple(doc.terms)
            for term in terms:
                df[term] = df.get(term, 0) + 1
            # One str per word (interned), not one per record holding it.
            self._docs[key] = (doc.length, tuple(map(sys.intern, terms)))
            self._refs += len(terms)
            self._total += doc.length
            if expires_at is not None:
                self._expires[key] = expires_at
                heapq.heappush(self._heap, (expires_at, key))
            if vector is not None and self.dimensions is None:
                self.dimensions = len(vector)
        if len(self._heap) > 2 * len(self._expires) + 64:
            self._heap = [(t, k) for k, t in self._expires.items()]
            heapq.heapify(self._heap)

    def remove(self, key: str) -> bool:
        """Stop counting ``key``; True if it was counted."""
        found = self._docs.pop(key, None)
        if found is None:
            return False
        length, terms = found
        self._total -= length
        self._refs -= len(terms)
        df = self._df
        for term in terms:
            left = df[term] - 1
            if left:
                df[term] = left
            else:
                del df[term]
        self._expires.pop(key, None)
        return True

    def expire(self, now: float) -> int:
        """Stop counting every record with an expiry ``<= now``; return how many."""
        heap = self._heap
        removed = 0
        while heap and heap[0][0] <= now:
            at, key = heapq.heappop(heap)
            if self._expires.get(key) == at and self.remove(key):
                removed += 1
        return removed

    def clear(self) -> None:
        """Forget every record."""
        self.__init__()  # type: ignore[misc]

    def memory_bytes(self) -> int:
        """A cheap estimate of the memory held, in bytes."""
        docs = len(self._docs)
        return 200 * docs + 8 * self._refs + 120 * len(self._df) + 64 * len(self._heap)


class _Index:
    """What this process knows of one namespace's FT index."""

    __slots__ = ("dims", "restarts")

    def __init__(self, restarts: int, dims: int | None) -> None:
        self.restarts = restarts
        self.dims = dims


class QueryEngine:
    """The ``FT.*`` search path of one :class:`RedisBackend` (see the module docstring).

    Attributes:
        mode: ``"auto"``, ``"local"`` or ``"query-engine"``.
        min_records: In ``"auto"`` mode, the records from which a namespace is searched
            through ``FT.*``.
        recheck_interval: Seconds after which ``"auto"`` counts a namespace's records again.
        ef_runtime: HNSW ``EF_RUNTIME`` of the KNN queries; None (the default) is
            ``max(1000, records / 12)`` (recall@10 about 0.98 on random 384-d vectors at 10k
            and 100k records); always at least ``K``.
        build_wait: In ``"auto"`` mode, seconds a search waits for the server to index a
            namespace's existing records after ``FT.CREATE`` before it searches locally
            instead (default 2; ``"query-engine"`` waits within ``search_timeout``).
        searches: Searches answered through ``FT.*`` (for tests and benchmarks).
    """

    def __init__(
        self, server: Server, sync: ChangeLogSync, prefix: str, mode: SearchEngine, budget: int
    ) -> None:
        self._server = server
        self._sync = sync
        self._prefix = prefix
        self.mode = mode
        self.min_records = DEFAULT_QUERY_ENGINE_MIN_RECORDS
        self.recheck_interval = 60.0
        self.searches = 0
        self.ef_runtime: int | None = None
        self.build_wait = 2.0
        self._support: tuple[int, bool] | None = None  # (restarts, server has FT)
        self._indexes: dict[bytes, _Index] = {}
        self._large: dict[bytes, tuple[float, bool]] = {}
        self._building: dict[bytes, float] = {}  # namespaces whose FT index is being built
        self.stats = LocalIndexes[LexicalStats](budget)

    # -- when ------------------------------------------------------------------------------

    async def available(self) -> bool:
        """Whether the server has the Query Engine (asked once per server incarnation)."""
        server = self._server
        restarts = server.restarts
        if self._support is not None and self._support[0] == restarts:
            return self._support[1]
        client = server.client
        if isinstance(client, aioredis.RedisCluster):
            found = False  # RediSearch without a coordinator indexes one shard only
        else:
            try:
                async with asyncio.timeout(server.timeout):
                    names = await client.execute_command("FT._LIST")  # type: ignore[no-untyped-call]
                found = True
            except ResponseError:
                found = False  # unknown command (no module), or not allowed by the ACL
            else:
                await self._drop_orphans(names)
        self._support = (restarts, found)
        if not found:
            self._indexes.clear()
        return found

    async def _drop_orphans(self, names: Sequence[bytes | str]) -> None:
        """Drop the FT indexes of this backend's prefix whose namespace has no record left
        (emptied by deletes or expiry in a process that did not drop its index): else they
        would add up with every namespace ever emptied. Dropping one is always safe: a
        search that finds its index gone creates it again."""
        server = self._server
        head = self._prefix.encode() + b":{"
        ours = [n if isinstance(n, bytes) else n.encode() for n in names]
        ours = [n for n in ours if n.startswith(head) and n.endswith(b"}:idx")]
        if not ours:
            return
        client: Any = server.client
        async with asyncio.timeout(server.timeout):
            pipe = client.pipeline(transaction=False)
            for name in ours:
                pipe.exists(name[: -len(b"idx")] + b"lru")
            alive = await pipe.execute()
            for name, live in zip(ours, alive, strict=True):
                if not live:
                    try:
                        await client.execute_command("FT.DROPINDEX", name)
                    except ResponseError as exc:
                        if not ft.unknown_index(exc):
                            logger.warning(
                                "Redis at %s: FT.DROPINDEX of an emptied namespace's index "
                                "refused (%s)",
                                server.where,
                                exc,
                            )
                            return

    async def _is_large(self, ns: NamespaceKeys) -> bool:
        base = ns.base
        known = self._large.get(base)
        now = time.monotonic()
        if known is not None and now - known[0] < self.recheck_interval:
            return known[1]
        server = self._server
        async with asyncio.timeout(server.timeout):
            count = int(await server.client.zcard(ns.lru))
        large = count >= self.min_records
        if len(self._large) >= 4096:
            self._large.clear()
        self._large[base] = (now, large)
        if large:
            self._sync.indexes.drop(base)  # searched here from now on: free the local index
        else:
            self.stats.drop(base)
        return large

    async def search(
        self, ns: NamespaceKeys, prepared: KeywordQuery, query: SearchQuery
    ) -> list[SearchResult] | None:
        """The search's results through ``FT.*``, or None: the local index answers it."""
        if self.mode == "local":
            return None
        server = self._server
        with server.failures("search"):
            if not await self.available():
                if self.mode == "auto":
                    return None
                raise refusal(
                    server.where,
                    "search",
                    "search_engine='query-engine' needs the Redis Query Engine (FT.* commands: "
                    "Redis Stack, or Redis 8) on a standalone server; this one has none (or the "
                    "client is a cluster client)",
                )
            if self.mode == "auto" and not await self._is_large(ns):
                return None
            try:
                # A search past its deadline is its cost, not an outage: a refusal.
                with server.failures("search", slow=True, deadline=server.search_timeout):
                    return await self._searched(ns, prepared, query)
            except _Building as exc:
                if self.mode == "auto":
                    return None  # the local index answers until the server has indexed all
                raise refusal(
                    server.where,
                    "search",
                    f"the Query Engine is still indexing this namespace's records "
                    f"({100 * exc.percent:.0f}% done; FT.CREATE indexes existing records in "
                    "the background): try again later, or raise search_timeout",
                ) from exc
            except _Unsupported as exc:
                reply = exc.__cause__
                if self.mode == "auto":
                    logger.warning(
                        "Redis at %s: FT.CREATE refused the search index (%s); searching "
                        "through the local index instead",
                        server.where,
                        reply,
                    )
                    self._support = (server.restarts, False)
                    return None
                raise refusal(
                    server.where,
                    "search",
                    "search_engine='query-engine': the server's FT.CREATE refused the index "
                    f"(RediSearch 2.10 or Redis 8 needed): {reply}",
                ) from reply

    async def _searched(
        self, ns: NamespaceKeys, prepared: KeywordQuery, query: SearchQuery
    ) -> list[SearchResult] | None:
        # A clear (of this process or another) drops the namespace's FT index: the search
        # then creates it again, rather than fail because someone else was writing; dropped
        # again and again (a namespace cleared all the time), the local index answers (None).
        for _ in range(3):
            try:
                return await self._search(ns, prepared, query)
            except ResponseError as exc:
                if not ft.unknown_index(exc):
                    raise
                self._indexes.pop(ns.base, None)
        return None

    async def corpus_stats(self, ns: NamespaceKeys, prepared: KeywordQuery) -> CorpusStats | None:
        """The namespace's BM25 statistics when this path answers its searches, else None
        (the local index answers, and holds them)."""
        if self.mode == "local":
            return None
        server = self._server
        with server.failures("search"):
            if not await self.available():
                return None
            if self.mode == "auto" and not await self._is_large(ns):
                return None
            stats, _ = await self._synced(ns)
        df = {t: stats.df(t) for t in prepared.terms}
        return CorpusStats(len(stats), stats.total_length, df)

    async def forget(self, ns: NamespaceKeys) -> None:
        """The namespace was cleared: drop its FT index (not its records) and statistics."""
        self.stats.drop(ns.base)
        self._large.pop(ns.base, None)
        if self.mode == "local":
            return
        server = self._server
        with server.failures("clear"):
            if not await self.available():
                return
            self._indexes.pop(ns.base, None)
            try:
                async with asyncio.timeout(server.timeout):
                    await server.client.execute_command("FT.DROPINDEX", ns.ft_index)
            except ResponseError as exc:
                if not ft.unknown_index(exc):
                    # Refused (an ACL without FT.DROPINDEX): the clear goes on; the index
                    # left behind holds nothing once the records are gone.
                    logger.warning(
                        "Redis at %s: FT.DROPINDEX refused (%s); clearing the namespace anyway",
                        server.where,
                        exc,
                    )

    # -- the index ---------------------------------------------------------------------------

    async def _ensure(self, ns: NamespaceKeys, dims: int | None) -> _Index:
        """The namespace's FT index, created (or given a vector field) when needed."""
        server = self._server
        restarts = server.restarts
        known = self._indexes.get(ns.base)
        if known is not None and known.restarts == restarts and (dims is None or known.dims):
            return known
        client = server.client
        name = ns.ft_index
        deadline = server.search_timeout
        async with asyncio.timeout(deadline):
            try:
                info = ft.pairs(await client.execute_command("FT.INFO", name))
            except ResponseError as exc:
                if not ft.unknown_index(exc):
                    raise
                info = None
            if info is None:
                schema: list[Any] = ["v", "TEXT", "NOSTEM", "s", "NUMERIC", "SORTABLE"]
                schema += ft.TEXT_FIELD
                if dims:
                    schema += ft.vector_field(dims)
                try:
                    await client.execute_command(
                        "FT.CREATE", name, "ON", "HASH", "PREFIX", 1, ns.rec,
                        "STOPWORDS", 0, "SCHEMA", *schema,
                    )  # fmt: skip
                except ResponseError as exc:
                    if "already exists" not in str(exc).lower():
                        raise _Unsupported() from exc
                info = ft.pairs(await client.execute_command("FT.INFO", name))
            if not ft.has_text_field(info):
                # An index made before records had index texts (field t): add it.
                info = await _add_field(client, name, ft.TEXT_FIELD)
            have = ft.vector_dims(info)
            if dims and not have:
                info = await _add_field(client, name, ft.vector_field(dims))
                have = ft.vector_dims(info)
            # Indexing what exists runs in the server's background (minutes for 100k records
            # with vectors): "auto" waits build_wait seconds and then searches locally
            # meanwhile; "query-engine" waits within the search's deadline.
            patience = self.build_wait if self.mode == "auto" else deadline
            if self.mode == "auto" and ns.base in self._building:
                patience = 0.0  # waited once already: ask, do not wait
            if patience is not None and deadline is not None:
                patience = min(patience, 0.9 * deadline)
            began = time.monotonic()
            pause = _WAIT
            while not ft.indexed(info):
                if patience is not None and time.monotonic() - began >= patience:
                    if len(self._building) >= 4096:
                        self._building.clear()
                    self._building[ns.base] = began
                    raise _Building(float(info.get(b"percent_indexed", 0)))
                await asyncio.sleep(pause)
                pause = min(0.2, 2 * pause)
                info = ft.pairs(await client.execute_command("FT.INFO", name))
        self._building.pop(ns.base, None)
        if len(self._indexes) >= 4096:
            self._indexes.clear()
        known = self._indexes[ns.base] = _Index(restarts, have)
        return known

    # -- statistics --------------------------------------------------------------------------

    async def _synced(self, ns: NamespaceKeys) -> tuple[LexicalStats, float]:
        """The namespace's statistics, caught up with the change log and expired, and the
        server clock (called within the exception map: a load lost to writers, or the
        0.1.0 layout, raise as MemoryBackendError)."""
        state = self.stats.get(ns.base)
        if state is not None and state.restarts != self._server.restarts:
            state = None
        now: float | None = None
        if state is not None:
            now = await self._sync.catch_up(ns, state, self.stats)
        if state is None or now is None:
            # The backend's loader, with statistics in place of a search index (values only).
            state, now = await self._sync.load(ns, self.stats, LexicalStats, vectors=False)
        if state.incarnation is None:
            self.stats.drop(ns.base)  # no such namespace: nothing worth holding
        self.stats.measure(ns.base, state)
        state.index.expire(now)
        return state.index, now

    # -- search ------------------------------------------------------------------------------

    async def _search(
        self, ns: NamespaceKeys, prepared: KeywordQuery, query: SearchQuery
    ) -> list[SearchResult]:
        mode = query.mode
        vector = None
        if mode != "keyword" and query.vector is not None:
            vector = np.asarray(query.vector, dtype=np.float32)  # as the local index takes it
        dims = None if vector is None else len(vector)
        # The index first: while the server builds it, "auto" loads no statistics.
        index = await self._ensure(ns, dims)
        stats, now = await self._synced(ns)
        if vector is not None and index.dims != len(vector):
            vector = None  # another embedder's vectors: no semantic hits (as locally)
        wanted = query.limit if mode != "hybrid" else fusion_depth(query.limit)
        if query.recency_half_life is not None:
            wanted = max(wanted, 4 * query.limit)
        # The Query Engine folds ASCII case only: it counts "café" and "CAFÉ" as two words
        # and ranks such records less like the shared engine, so their lists are longer.
        width = max(100, 4 * wanted) * (1 if prepared.text.isascii() else 4)
        k = max(100, 2 * wanted)
        n_docs = len(stats)
        df: Mapping[str, int] = {t: stats.df(t) for t in prepared.terms}
        total = stats.total_length
        if query.stats is not None:  # a search of a namespace tree: the union's statistics
            n_docs, total, df = query.stats
        while True:
            words, near, cut = await self._candidates(ns, prepared, vector, mode, width, k, n_docs)
            found = await self._records(ns, words, near, now)
            candidates: list[Candidate] = [
                (key, hit.seq, doc, hit.metadata) for key, (hit, doc) in found.items()
            ]
            updated = {key: hit.updated_at for key, (hit, _) in found.items()}
            ranked = self._rank(
                query, prepared, candidates, df, n_docs, total, vector, updated, now
            )
            if len(ranked) >= query.limit or not cut or width >= _MAX_RESULTS:
                break
            width = min(_MAX_RESULTS, 4 * width)
            k = min(_MAX_RESULTS, 4 * k)
        self.searches += 1
        results = []
        for score, _, key in ranked:
            hit = found[key][0]
            results.append(SearchResult(key, hit.text, score, hit.metadata, hit.value))
        return results

    def _rank(
        self,
        query: SearchQuery,
        prepared: KeywordQuery,
        candidates: list[Candidate],
        df: Mapping[str, int],
        n_docs: int,
        total: int,
        vector: Any,
        updated: Mapping[str, float],
        now: float,
    ) -> list[Scored]:
        filter_ = query.filter
        recency = recency_weights(query.recency_half_life, now, updated.get)
        return rank_by_mode(
            query.mode,
            query.limit,
            lambda limit: rank_keyword(prepared, candidates, df, n_docs, total, limit, filter_),
            lambda limit: (
                [] if vector is None else rank_semantic(vector, candidates, limit, filter_)
            ),
            fusion=query.fusion,
            semantic_weight=query.semantic_weight,
            phases=query.phases,
            keyword_bound=lambda: keyword_bound(prepared, df, n_docs),
            recency=recency,
            raw=query.raw,
        )

    async def _candidates(
        self,
        ns: NamespaceKeys,
        prepared: KeywordQuery,
        vector: Any,
        mode: str,
        width: int,
        k: int,
        n_docs: int,
    ) -> tuple[list[bytes], list[bytes], bool]:
        """Candidate keys (record-key suffixes) of the word lists and of the KNN list, and
        whether a list was cut short."""
        server = self._server
        name = ns.ft_index
        timeout = 3_600_000 if server.search_timeout is None else server.search_timeout
        ms = max(1, round(timeout * 1000))
        commands: list[tuple[Any, ...]] = []
        if mode != "semantic":
            words = ft.variants(prepared.terms)
            if words:
                commands.append(ft.best(name, f"@v|t:({'|'.join(words)})", width, ms))
            sequence = tokenize(prepared.text)
            if len(sequence) > 1:
                # A record holding the whole query scores a bonus: the phrase's best.
                commands.append(ft.best(name, f'@v|t:"{" ".join(sequence)}"', width, ms))
            longest = max(prepared.terms, key=len, default="")
            # Records that may hold the query inside longer words ("pyth" in "python")
            # score the bonus alone, ties newest first: the newest holding the longest word.
            if len(longest.encode()) >= 2:
                infix = "|".join(f"*{w}*" for w in ft.variants((longest,)))
                commands.append(ft.newest(name, f"@v|t:({infix})", width, ms))
            else:  # no infix search for one byte: the newest records
                commands.append(ft.newest(name, "*", width, ms))
        if vector is not None and mode != "keyword":
            blob = vector.astype("<f4", copy=False).tobytes()
            ef = self.ef_runtime or max(_EF_RUNTIME, n_docs // _EF_PER_RECORDS)
            ef = max(ef, k)
            commands.append(ft.knn(name, k, ef, blob, ms))
        if not commands:
            return [], [], False
        replies = await self._run(ns, commands)
        rec = len(ns.rec)
        found: list[dict[bytes, None]] = [{}, {}]
        cut = False
        for command, reply in zip(commands, replies, strict=True):
            knn = "PARAMS" in command
            total, ids = (
                ft.search_ids(reply) if command[0] == "FT.SEARCH" else ft.aggregate_keys(reply)
            )
            cut = cut or total > len(ids)
            seen = found[knn]
            for raw in ids:
                seen[raw[rec:]] = None
        near = found[1]
        return [k for k in found[0] if k not in near], list(near), cut

    async def _run(self, ns: NamespaceKeys, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """The replies of ``commands`` (one pipeline); the index created again if gone."""
        server = self._server
        for attempt in range(2):
            pipe = server.client.pipeline(transaction=False)
            for command in commands:
                pipe.execute_command(*command)
            async with asyncio.timeout(server.search_timeout):
                replies = await pipe.execute(raise_on_error=False)
            failed = next((r for r in replies if isinstance(r, Exception)), None)
            if failed is None:
                return list(replies)
            if attempt == 0 and isinstance(failed, ResponseError) and ft.unknown_index(failed):
                # Dropped by another process's clear (or lost in a restart): build it again.
                known = self._indexes.pop(ns.base, None)
                await self._ensure(ns, None if known is None else known.dims)
                continue
            raise failed
        raise AssertionError("unreachable")  # pragma: no cover

    async def _records(
        self, ns: NamespaceKeys, words: list[bytes], near: list[bytes], now: float
    ) -> dict[str, tuple[Fields, Document]]:
        """The live records under ``words`` and ``near``, decoded, with their documents."""
        fetch = self._server.fetch
        # Vectors only for the KNN candidates (only they can rank by meaning).
        plain, vectors = await asyncio.gather(
            fetch(ns, words, vectors=False), fetch(ns, near, vectors=True)
        )
        out: dict[str, tuple[Fields, Document]] = {}
        for raw, fields in zip(words + near, plain + vectors, strict=True):
            key = decode_text(raw)
            try:
                hit = decode_fields(key, fields, parse=True, vector=True)
            except GarbledRecord as exc:
                self._server.garbled.skipped(ns.base, exc)
                continue
            # None: gone since the Query Engine answered.
            if hit is not None and (hit.expires_at is None or hit.expires_at > now):
                doc = make_document(indexed_value(hit.value, hit.index_text), hit.vector)
                out[key] = (hit, doc)
        return out
