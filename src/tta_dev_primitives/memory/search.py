"""Search scoring shared by every backend: tokenizing, BM25, vectors and rank fusion.

Every backend ranks with these pure functions, which is how the same records and query give
the same hits in the same order on every backend. A backend's only job is to supply the
candidate documents and the corpus statistics (document count, total length, document
frequencies) of one namespace; :class:`InvertedIndex` does that in process.

Ranking rules:

* Keyword mode scores BM25 (k1=1.2, b=0.75) over the words of the value's string leaves
  (never dict key names, never numbers), case-insensitively, plus a bonus of
  ``SUBSTRING_BONUS`` when one string leaf contains the whole query as a substring, so a user
  typing ``"pyth"`` finds ``"python"``. Only hits with a score above zero are returned.
* Semantic mode scores the cosine similarity of unit vectors (hits above zero).
* Hybrid mode fuses the keyword and semantic rankings by reciprocal rank (k=60).
* Ties are broken newest first, by write sequence number; hits are best first.
"""

from __future__ import annotations

import heapq
import math
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "BM25_B",
    "BM25_K1",
    "RRF_K",
    "SUBSTRING_BONUS",
    "Document",
    "InvertedIndex",
    "KeywordQuery",
    "SearchMode",
    "fuse_rrf",
    "idf",
    "keyword_score",
    "make_document",
    "matches_filter",
    "normalize_vector",
    "prepare_query",
    "rank_by_mode",
    "rank_keyword",
    "rank_semantic",
    "string_leaves",
    "tokenize",
    "top",
]

SearchMode = Literal["keyword", "semantic", "hybrid"]

BM25_K1 = 1.2
BM25_B = 0.75
SUBSTRING_BONUS = 1.0
RRF_K = 60

_WORD = re.compile(r"\w+")
# Partial sums are accumulated in another order than keyword_score adds them, so they may
# differ in the last bits; pruning keeps this much slack so it never drops a true contender.
_SLACK = 1.0 - 1e-9


def tokenize(text: str) -> list[str]:
    """Lower-cased words (maximal runs of Unicode word characters) of ``text``."""
    return _WORD.findall(text.lower())


def string_leaves(value: Any) -> list[str]:
    """The string leaves of a JSON value, depth first: dict values and list items only."""
    if isinstance(value, str):
        return [value]
    out: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return out


@dataclass(frozen=True, slots=True)
class Document:
    """What search knows of one record.

    Attributes:
        terms: Term frequency of each word.
        length: Number of words (the BM25 document length).
        leaves: The lower-cased string leaves, for whole-query substring matching.
        vector: Unit embedding vector, when an embedder was configured.
    """

    terms: Mapping[str, int]
    length: int
    leaves: tuple[str, ...]
    vector: tuple[float, ...] | None = None


def make_document(value: Any, vector: Sequence[float] | None = None) -> Document:
    """Build the :class:`Document` of a JSON value (and its optional embedding)."""
    leaves = tuple(leaf.lower() for leaf in string_leaves(value))
    terms: dict[str, int] = {}
    length = 0
    for leaf in leaves:
        for word in _WORD.findall(leaf):
            terms[word] = terms.get(word, 0) + 1
            length += 1
    return Document(terms, length, leaves, normalize_vector(vector) if vector is not None else None)


@dataclass(frozen=True, slots=True)
class KeywordQuery:
    """A prepared keyword query: the stripped lower-cased text and its unique words in order."""

    text: str
    terms: tuple[str, ...]


def prepare_query(query: str) -> KeywordQuery | None:
    """Prepare ``query``; None for an empty or whitespace-only query (which matches nothing)."""
    text = query.strip().lower()
    if not text:
        return None
    return KeywordQuery(text, tuple(dict.fromkeys(_WORD.findall(text))))


def idf(df: int, n_docs: int) -> float:
    """BM25 inverse document frequency (the always-positive Lucene form)."""
    return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))


def keyword_score(
    query: KeywordQuery,
    doc: Document,
    df: Mapping[str, int],
    n_docs: int,
    avgdl: float,
) -> float:
    """BM25 of ``doc`` for ``query`` plus the whole-query substring bonus."""
    score = 0.0
    norm = BM25_K1 * (1.0 - BM25_B + BM25_B * doc.length / avgdl)
    terms = doc.terms
    for term in query.terms:
        tf = terms.get(term)
        if tf:
            score += idf(df.get(term, 1), n_docs) * tf * (BM25_K1 + 1.0) / (tf + norm)
    text = query.text
    for leaf in doc.leaves:
        if text in leaf:
            score += SUBSTRING_BONUS
            break
    return score


def matches_filter(metadata: Mapping[str, Any] | None, filter: Mapping[str, Any] | None) -> bool:
    """True when every ``filter`` field equals the metadata's field (JSON equality)."""
    if not filter:
        return True
    if not metadata:
        return False
    missing = object()
    for field, expected in filter.items():
        got = metadata.get(field, missing)
        if got is missing or got != expected or (type(got) is bool) != (type(expected) is bool):
            return False
    return True


Candidate = tuple[str, int, Document, Mapping[str, Any] | None]
"""(key, write sequence, document, metadata) of one record a backend offers for ranking."""

Scored = tuple[float, int, str]
"""(score, write sequence, key)."""


def top(scored: Iterable[Scored], limit: int | None) -> list[Scored]:
    """Best first, ties newest first (higher sequence), at most ``limit`` (None = all)."""
    key: Callable[[Scored], tuple[float, int]] = lambda s: (-s[0], -s[1])  # noqa: E731
    if limit is None:
        return sorted(scored, key=key)
    return heapq.nsmallest(limit, scored, key=key)


def rank_keyword(
    query: KeywordQuery,
    candidates: Iterable[Candidate],
    df: Mapping[str, int],
    n_docs: int,
    total_length: int,
    limit: int | None,
    filter: Mapping[str, Any] | None = None,
) -> list[Scored]:
    """Rank candidates for a keyword query.

    Args:
        query: The prepared query.
        candidates: Every record that may score above zero (a superset is fine).
        df: Number of live records of the namespace containing each query term.
        n_docs: Number of live records in the namespace.
        total_length: Sum of the lengths of those records.
        limit: Maximum number of hits (None = all).
        filter: Metadata equality filter.
    """
    avgdl = total_length / n_docs if n_docs and total_length else 1.0
    scored: list[Scored] = []
    for key, seq, doc, metadata in candidates:
        if filter and not matches_filter(metadata, filter):
            continue
        score = keyword_score(query, doc, df, n_docs, avgdl)
        if score > 0.0:
            scored.append((score, seq, key))
    return top(scored, limit)


def normalize_vector(vector: Sequence[float]) -> tuple[float, ...]:
    """``vector`` scaled to unit length (all zeros stays zeros)."""
    norm = math.sqrt(math.fsum(x * x for x in vector))
    if norm == 0.0:
        return tuple(0.0 for _ in vector)
    return tuple(x / norm for x in vector)


def rank_semantic(
    query_vector: Sequence[float],
    candidates: Iterable[Candidate],
    limit: int | None,
    filter: Mapping[str, Any] | None = None,
) -> list[Scored]:
    """Rank candidates by cosine similarity to ``query_vector`` (a unit vector)."""
    scored: list[Scored] = []
    for key, seq, doc, metadata in candidates:
        vector = doc.vector
        if vector is None or len(vector) != len(query_vector):
            continue
        if filter and not matches_filter(metadata, filter):
            continue
        score = sum(map(operator.mul, vector, query_vector))
        if score > 0.0:
            scored.append((score, seq, key))
    return top(scored, limit)


def fuse_rrf(
    rankings: Sequence[Sequence[Scored]], limit: int | None, k: int = RRF_K
) -> list[Scored]:
    """Reciprocal rank fusion: each ranking adds ``1 / (k + rank)`` (rank from 1) to a key."""
    fused: dict[str, list[float]] = {}
    seqs: dict[str, int] = {}
    for ranking in rankings:
        for rank, (_, seq, key) in enumerate(ranking, start=1):
            fused.setdefault(key, []).append(1.0 / (k + rank))
            seqs[key] = seq
    return top(((math.fsum(parts), seqs[key], key) for key, parts in fused.items()), limit)


class InvertedIndex:
    """An in-process inverted index over one namespace's documents.

    Postings map each word to the records holding it, so keyword search costs grow with the
    matching postings, not with the number of records. A trigram index over the vocabulary
    finds the words containing a query word, for whole-query substring matches.
    """

    __slots__ = ("_bounds", "_docs", "_grams", "_lengths", "_postings", "_total_length")

    def __init__(self) -> None:
        # term -> (largest tf, shortest document) over its postings, ever: an upper bound of
        # what the term can add to any record's score (kept on removal: still an upper bound).
        self._bounds: dict[str, tuple[int, int]] = {}
        self._postings: dict[str, dict[str, int]] = {}
        self._lengths: dict[str, int] = {}  # key -> document length, for BM25's norm
        self._docs: dict[str, tuple[int, Document, Mapping[str, Any] | None]] = {}
        self._grams: dict[str, set[str]] = {}
        self._total_length = 0

    def __len__(self) -> int:
        return len(self._docs)

    @property
    def total_length(self) -> int:
        return self._total_length

    def add(self, key: str, seq: int, doc: Document, metadata: Mapping[str, Any] | None) -> None:
        """Index ``doc`` under ``key`` (replacing what was there)."""
        if key in self._docs:
            self.remove(key)
        self._docs[key] = (seq, doc, metadata)
        self._lengths[key] = doc.length
        self._total_length += doc.length
        postings = self._postings
        bounds = self._bounds
        length = doc.length
        for term, tf in doc.terms.items():
            bound = bounds.get(term)
            if bound is None:
                bounds[term] = (tf, length)
            elif tf > bound[0] or length < bound[1]:
                bounds[term] = (max(tf, bound[0]), min(length, bound[1]))
            plist = postings.get(term)
            if plist is None:
                postings[term] = {key: tf}
                for gram in _trigrams(term):
                    self._grams.setdefault(gram, set()).add(term)
            else:
                plist[key] = tf

    def remove(self, key: str) -> None:
        """Forget ``key`` (no error if absent)."""
        entry = self._docs.pop(key, None)
        if entry is None:
            return
        doc = entry[1]
        del self._lengths[key]
        self._total_length -= doc.length
        postings = self._postings
        for term in doc.terms:
            plist = postings[term]
            del plist[key]
            if not plist:
                del postings[term]
                for gram in _trigrams(term):
                    terms = self._grams[gram]
                    terms.discard(term)
                    if not terms:
                        del self._grams[gram]

    def clear(self) -> None:
        self._bounds.clear()
        self._lengths.clear()
        self._postings.clear()
        self._docs.clear()
        self._grams.clear()
        self._total_length = 0

    def df(self, term: str) -> int:
        plist = self._postings.get(term)
        return len(plist) if plist else 0

    def _terms_containing(self, word: str) -> Iterator[str]:
        grams = _trigrams(word)
        if not grams:
            yield from (t for t in self._postings if word in t)
            return
        sets = []
        for gram in grams:
            terms = self._grams.get(gram)
            if not terms:
                return
            sets.append(terms)
        sets.sort(key=len)
        found = sets[0].intersection(*sets[1:]) if len(sets) > 1 else sets[0]
        yield from (t for t in found if word in t)

    def _substring_keys(self, query: KeywordQuery) -> set[str]:
        """Keys of records one of whose string leaves contains the whole query text."""
        postings = self._postings
        keys: set[str] = set()
        # Every such record has, for each query word, a word containing it; the longest
        # query word is the most selective.
        longest = max(query.terms, key=len)
        for term in self._terms_containing(longest):
            keys.update(postings[term])
        if len(query.terms) == 1 and query.text == longest:
            return keys  # the query is that one word: containing the word is enough
        text = query.text
        docs = self._docs
        return {k for k in keys if any(text in leaf for leaf in docs[k][1].leaves)}

    def search_keyword(
        self, query: KeywordQuery, limit: int | None, filter: Mapping[str, Any] | None = None
    ) -> list[Scored]:
        """The best ``limit`` records for ``query``, exactly as :func:`rank_keyword` ranks them.

        Scores accumulate term at a time over the query words' postings, rarest word first,
        so records holding none of the words are never touched. Once ``limit`` records lead
        by more than any unseen record could still score (the "MaxScore" bound: a word adds
        less than ``idf * (k1 + 1)``), the common words' long postings are only probed for
        the records still in contention. The survivors are rescored with
        :func:`keyword_score`, so the result is identical to scoring every record.
        """
        docs = self._docs
        n_docs = len(docs)
        if not n_docs:
            return []
        total = self._total_length
        if not query.terms:
            # No word characters in the query: only a substring can match; scan.
            candidates = ((key, *entry) for key, entry in docs.items())
            return rank_keyword(query, candidates, {}, n_docs, total, limit, filter)
        postings = self._postings
        df = {term: len(postings.get(term, ())) for term in query.terms}
        if limit is None or filter:
            keys: set[str] = self._substring_keys(query)
            for term in query.terms:
                keys.update(postings.get(term, ()))
            candidates = ((key, *docs[key]) for key in keys)
            return rank_keyword(query, candidates, df, n_docs, total, limit, filter)

        avgdl = total / n_docs if total else 1.0
        k1p1 = BM25_K1 + 1.0
        bounds = self._bounds
        lists = []
        for t in query.terms:
            if df[t]:
                weight = idf(df[t], n_docs)
                maxtf, minlen = bounds[t]
                top_ = (
                    weight
                    * maxtf
                    * k1p1
                    / (maxtf + BM25_K1 * (1.0 - BM25_B + BM25_B * minlen / avgdl))
                )
                lists.append((weight, postings[t], top_))
        lists.sort(key=lambda item: -item[2])
        # Upper bound of what a record not seen yet can still score.
        unseen_bound = math.fsum(top_ for _, _, top_ in lists) + SUBSTRING_BONUS
        acc: dict[str, float] = {}
        get = acc.get
        lengths = self._lengths
        # norm = a + c * length, with BM25's constants folded once per query.
        norm_a = BM25_K1 * (1.0 - BM25_B)
        norm_c = BM25_K1 * BM25_B / avgdl
        for weight, plist, top_ in lists:
            floor = self._floor(acc, limit, unseen_bound)
            unseen_bound -= top_
            if floor is None:
                wk = weight * k1p1
                for key, tf in plist.items():
                    acc[key] = get(key, 0.0) + wk * tf / (tf + norm_a + norm_c * lengths[key])
            else:
                # Closed to newcomers: keep only records that can still reach the floor.
                reach = unseen_bound + top_
                acc = {k: v for k, v in acc.items() if v + reach >= floor}
                get = acc.get
                for key in acc:
                    freq = plist.get(key)
                    if freq:
                        acc[key] += weight * k1p1 * freq / (freq + norm_a + norm_c * lengths[key])
        floor = self._floor(acc, limit, SUBSTRING_BONUS)
        text = query.text
        if floor is None:
            for key in self._substring_keys(query):
                acc[key] = get(key, 0.0) + SUBSTRING_BONUS
        else:
            # Only a record within the bonus of the current top ``limit`` can still enter it.
            need = floor - SUBSTRING_BONUS
            for key, value in acc.items():
                if value >= need and any(text in leaf for leaf in docs[key][1].leaves):
                    acc[key] = value + SUBSTRING_BONUS
        if len(acc) > limit:
            cut = heapq.nlargest(limit, acc.values())[-1] * _SLACK
            contenders: Iterable[str] = [k for k, v in acc.items() if v >= cut]
        else:
            contenders = acc
        candidates = ((key, *docs[key]) for key in contenders)
        return rank_keyword(query, candidates, df, n_docs, total, limit)

    @staticmethod
    def _floor(acc: dict[str, float], limit: int, unseen_bound: float) -> float | None:
        """The score to reach once newcomers can no longer enter the top ``limit``, else None."""
        if len(acc) < limit:
            return None
        floor = heapq.nlargest(limit, acc.values())[-1] * _SLACK
        return floor if unseen_bound < floor else None

    def search_semantic(
        self, vector: Sequence[float], limit: int | None, filter: Mapping[str, Any] | None = None
    ) -> list[Scored]:
        return rank_semantic(vector, ((k, *v) for k, v in self._docs.items()), limit, filter)


def _trigrams(word: str) -> set[str]:
    return {word[i : i + 3] for i in range(len(word) - 2)}


def rank_by_mode(
    mode: SearchMode,
    limit: int,
    keyword: Callable[[int | None], list[Scored]],
    semantic: Callable[[int | None], list[Scored]],
) -> list[Scored]:
    """Run the ranking(s) a mode needs: hybrid fuses the full keyword and semantic rankings."""
    if mode == "keyword":
        return keyword(limit)
    if mode == "semantic":
        return semantic(limit)
    return fuse_rrf([keyword(None), semantic(None)], limit)
