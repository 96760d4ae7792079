"""Compaction: keep a namespace small by summarizing its old records and merging duplicates.

Usage::

    from tta_dev_primitives import ExtractiveSummarizer, MemoryPrimitive

    memory = MemoryPrimitive()
    ...  # many adds
    report = await memory.compact(ExtractiveSummarizer(), keep_last=20)
    report.summary_key, report.replaced  # the new summary record, the keys it replaced

What one compaction does, in order:

1. Read the namespace's live records (those matching ``filter``), oldest write first.
2. With ``merge_duplicates=threshold``: near-duplicates (by the embedder's vectors when the
   primitive has one, else by the overlap of their words) collapse into the newest of them,
   whose metadata becomes the merge of theirs (newer values win).
3. Of the records left, everything beyond the newest ``keep_last`` that are not summaries
   (oldest first, at most ``max_records``), after every earlier summary (a summary never takes
   one of ``keep_last``'s places and always rolls into the next), goes to the
   ``summarizer``: any workflow primitive that takes a list of
   :class:`~tta_dev_primitives.memory.records.MemoryRecord` and returns text or a JSON value
   (an LLM call in real use; :class:`ExtractiveSummarizer` works with no model).
4. One atomic step stores the summary as one record and deletes what it replaced. The step
   checks every record is still the version that was read: if another writer changed one
   meanwhile, that record is left alone (it is not summarized away), and the step is planned
   again without it.

A summarizer that raises, times out (``timeout=``) or returns nothing changes nothing: every
original stays, and the error reaches the caller.

The summary's metadata marks it (``"memory.summary": True``), lists the keys it replaced
(``"memory.replaced"``) and the original records' keys through earlier summaries
(``"memory.sources"``, which :meth:`~tta_dev_primitives.memory.MemoryPrimitive.forget`
follows), counts the original records it stands for (``"memory.summarized"``,
counting through earlier summaries), keeps their time range (``"memory.from"`` and
``"memory.to"``, epoch seconds, where the backend keeps times), and keeps every metadata field
on which all the replaced records agree, so a filter that matched them matches it too.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from opentelemetry import trace

from ..core.base import WorkflowPrimitive
from ..core.context import WorkflowContext
from ..core.instrumented import InstrumentedPrimitive
from ..observability import attributes as A
from . import codec
from .backends.base import CompactingBackend, CompactionPlan
from .errors import MemoryBackendError
from .records import Entry, MemoryRecord, Record
from .search import (
    bm25,
    filter_key,
    idf,
    indexed_value,
    make_document,
    matches_filter,
    normalize_vector,
    string_leaves,
    tokenize,
    validate_filter,
)

if TYPE_CHECKING:
    from .primitive import MemoryOperation, MemoryPrimitive

__all__ = [
    "META_FROM",
    "META_REPLACED",
    "META_SOURCES",
    "META_SUMMARIZED",
    "META_SUMMARY",
    "META_TO",
    "CompactionPolicy",
    "CompactionReport",
    "ExtractiveSummarizer",
]

logger = logging.getLogger(__name__)

META_SUMMARY = "memory.summary"
META_REPLACED = "memory.replaced"
META_SUMMARIZED = "memory.summarized"
META_FROM = "memory.from"
META_TO = "memory.to"
META_SOURCES = "memory.sources"
_OWN = (META_SUMMARY, META_REPLACED, META_SUMMARIZED, META_FROM, META_TO, META_SOURCES)
_ATTEMPTS = 4  # plans tried when other writers keep changing the records


@dataclass(frozen=True, slots=True)
class CompactionReport:
    """What one compaction did.

    Attributes:
        summary_key: Key of the summary record written, or None (nothing summarized).
        replaced: Keys of the records the summary replaced (deleted), oldest first.
        merged: Keys of the near-duplicates deleted into a newer record.
        kept: Keys left alone because another writer changed them meanwhile.
        considered: Live records that matched the filter when compaction began.
    """

    summary_key: str | None = None
    replaced: tuple[str, ...] = ()
    merged: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    considered: int = 0

    @property
    def removed(self) -> int:
        """How many records compaction deleted (replaced plus merged)."""
        return len(self.replaced) + len(self.merged)


def _check_summarizer(summarizer: object, arg: str = "summarizer") -> None:
    if summarizer is not None and not isinstance(summarizer, WorkflowPrimitive):
        raise TypeError(
            f"{arg} must be a WorkflowPrimitive taking a list of MemoryRecord (wrap a "
            f"function in LambdaPrimitive), got {type(summarizer).__name__}"
        )


def _check_threshold(value: object, arg: str = "merge_duplicates") -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{arg} must be a similarity in (0, 1] or None")
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{arg} must be in (0, 1], got {value!r}")
    return float(value)


def _check_filter(value: object, arg: str = "filter") -> dict[str, Any] | None:
    """A validated copy of a filter of the language of ``search``/``list``/``delete_where``
    (None for none or ``{}``); raises before anything is read."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(f"{arg} must be a mapping or None, got {type(value).__name__}")
    return validate_filter(codec.validate_metadata(value, arg), arg)


def _check_count(value: object, arg: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{arg} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{arg} must be >= {minimum}, got {value}")
    return value


@dataclass(frozen=True, slots=True)
class CompactionPolicy:
    """When a :class:`~tta_dev_primitives.memory.MemoryPrimitive` compacts by itself.

    ``MemoryPrimitive(auto_compact=CompactionPolicy(max_records=200, keep_last=50,
    summarizer=ExtractiveSummarizer()))``: once adds take a namespace past ``max_records``
    records, a background task compacts it down to its newest ``keep_last`` records plus a
    summary. Never on the caller's path (the add returns first), at most one task per
    namespace at a time; a failure is logged, and tried again after as many more adds as a
    compaction would have removed. Keep ``max_records`` below the backend's ``max_size``, or
    eviction removes records before compaction gets to summarize them.

    Attributes:
        max_records: The threshold (records in the namespace).
        keep_last: Newest records left as they are.
        summarizer: As for :meth:`~tta_dev_primitives.memory.MemoryPrimitive.compact`.
        filter: Compact only the records matching it.
        merge_duplicates: Also merge near-duplicates at this similarity.
        summarizer_timeout: Seconds the summarizer may take.
    """

    max_records: int
    keep_last: int = 20
    summarizer: WorkflowPrimitive[Any, Any] | None = None
    filter: Mapping[str, Any] | None = None
    merge_duplicates: float | None = None
    summarizer_timeout: float | None = None

    def __post_init__(self) -> None:
        _check_count(self.max_records, "max_records", 1)
        _check_count(self.keep_last, "keep_last", 0)
        if self.keep_last >= self.max_records:
            raise ValueError("keep_last must be below max_records")
        _check_summarizer(self.summarizer)
        _check_threshold(self.merge_duplicates)
        if self.summarizer is None and self.merge_duplicates is None:
            raise ValueError("a CompactionPolicy needs a summarizer or merge_duplicates")
        _check_filter(self.filter)
        codec.validate_ttl(self.summarizer_timeout, "summarizer_timeout")


@dataclass(frozen=True, slots=True)
class CompactionRequest:
    """The arguments of one compaction (``MemoryOperation("compact", value=...)``)."""

    summarizer: Any = None
    keep_last: Any = 20
    filter: Any = None
    max_records: Any = None
    merge_duplicates: Any = None
    summarizer_timeout: Any = None
    ttl: Any = None
    summary_key: Any = None
    context: WorkflowContext | None = field(default=None, compare=False)


# -- the summarizer that needs no model -------------------------------------------------------

_SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n+")
_LONE_WORD = 0.1  # weight of a word that only one record uses


class ExtractiveSummarizer(InstrumentedPrimitive[Sequence[MemoryRecord], str]):
    """Summarize records by keeping their most informative sentences (no model, deterministic).

    Each sentence of the records' text is scored as a BM25 document (the shared statistics of
    :mod:`tta_dev_primitives.memory.search`, over the batch's sentences) against the batch's
    own vocabulary, each word weighted by how many other records use it too: sentences about
    what many memories share rank high, a word of one record alone weighs little, and filler
    words weigh little (their idf is low). After each pick the
    weights of the words it covered halve, so the next picks add something new. The chosen
    sentences are joined in their original order.

    The text of a record is its value when that is a string, else the string leaves of its
    dict values and list items, less the labels: a string of one word inside a dict or list
    (``{"role": "user", "content": ...}``'s ``"user"``, an id, a status) says what the text
    is, not what was said, so it is left out unless ``labels=True``.

    Args:
        max_sentences: Most sentences kept.
        max_chars: Longest summary, in characters (a sentence that would pass it is skipped).
        fields: Read only these fields of a dict value (e.g. ``["content"]``); None: all.
        labels: Also read one-word strings inside dict and list values.
        name: The primitive's name (``"extractive_summarizer"`` by default).
    """

    primitive_type = "extractive_summarizer"

    def __init__(
        self,
        max_sentences: int = 5,
        max_chars: int = 2000,
        *,
        fields: Sequence[str] | None = None,
        labels: bool = False,
        name: str | None = None,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        super().__init__(name, tracer_provider=tracer_provider)
        self.max_sentences = _check_count(max_sentences, "max_sentences", 1)
        self.max_chars = _check_count(max_chars, "max_chars", 1)
        if fields is not None and (
            isinstance(fields, str) or not all(isinstance(f, str) for f in fields)
        ):
            raise TypeError("fields must be a sequence of field names (str) or None")
        if not isinstance(labels, bool):
            raise TypeError(f"labels must be a bool, got {type(labels).__name__}")
        self.fields = None if fields is None else tuple(fields)
        self.labels = labels

    def _text(self, value: Any) -> list[str]:
        """The strings of ``value`` that are text (see the class docstring)."""
        if isinstance(value, str):
            return [value]
        if self.fields is not None and isinstance(value, dict):
            value = [value[f] for f in self.fields if f in value]
        leaves = string_leaves(value)
        if self.labels:
            return leaves
        return [leaf for leaf in leaves if len(leaf.split()) > 1]

    async def _execute_impl(self, input_data: Sequence[MemoryRecord], context: Any) -> str:
        return self.summarize(input_data)

    def summarize(self, records: Sequence[MemoryRecord]) -> str:
        """The summary of ``records`` (synchronously); ``""`` when they hold no text."""
        sentences: list[tuple[int, int, str, dict[str, int], int]] = []
        record_freq: dict[str, int] = {}
        for r, record in enumerate(records):
            seen: set[str] = set()
            for leaf in self._text(record.value):
                for part in _SENTENCE.split(leaf):
                    text = part.strip()
                    words = tokenize(text)
                    if not words:
                        continue
                    tf: dict[str, int] = {}
                    for w in words:
                        tf[w] = tf.get(w, 0) + 1
                    seen.update(tf)
                    sentences.append((r, len(sentences), text, tf, len(words)))
            for w in seen:
                record_freq[w] = record_freq.get(w, 0) + 1
        if not sentences:
            return ""
        n = len(sentences)
        df: dict[str, int] = {}
        for *_, tf, _ in sentences:
            for w in tf:
                df[w] = df.get(w, 0) + 1
        avgdl = sum(s[4] for s in sentences) / n
        idfs = {w: idf(d, n) for w, d in df.items()}
        # A word only one record uses says little about the batch; a word many use, much.
        weight = {w: c - 1.0 + _LONE_WORD for w, c in record_freq.items()}
        chosen: list[int] = []
        taken: set[str] = set()
        chars = 0
        left = list(range(n))
        while left and len(chosen) < self.max_sentences:
            best, best_score = -1, -1.0
            for i in left:
                _, _, _, tf, length = sentences[i]
                score = 0.0
                for w, f in tf.items():
                    score += weight[w] * bm25(float(f), float(length), avgdl, idfs[w])
                if score > best_score:
                    best, best_score = i, score
            left.remove(best)
            text = sentences[best][2]
            folded = text.casefold()
            extra = len(text) + (1 if chosen else 0)
            if folded in taken or chars + extra > self.max_chars:
                continue
            taken.add(folded)
            chosen.append(best)
            chars += extra
            for w in sentences[best][3]:
                weight[w] *= 0.5
        chosen.sort()
        return " ".join(sentences[i][2] for i in chosen)


# -- one compaction ---------------------------------------------------------------------------


def _request(op: MemoryOperation) -> CompactionRequest:
    req = op.value
    if not isinstance(req, CompactionRequest):
        raise TypeError("a compact operation carries a CompactionRequest (use compact())")
    return req


def _times(record: Record) -> tuple[float | None, float | None, float | None]:
    """``(created_at, updated_at, expires_at)`` of a record, None where the backend keeps none
    (a backend without record times reports 0)."""
    created, updated, expires = record.created_at, record.updated_at, record.expires_at
    return (
        float(created) if created > 0 else None,
        float(updated) if updated > 0 else None,
        None if expires is None else float(expires),
    )


def _memory_record(record: Record, metadata: Mapping[str, Any] | None) -> MemoryRecord:
    created, updated, expires = _times(record)
    return MemoryRecord(
        record.key,
        codec.decode(record.payload),
        codec.copy_metadata(metadata) or {},
        created or 0.0,
        updated or 0.0,
        expires,
    )


def _common_metadata(metas: Sequence[Mapping[str, Any] | None]) -> dict[str, Any]:
    """The fields on which every one of ``metas`` agrees (our own markers left out)."""
    if not metas or any(not m for m in metas):
        return {}
    first = metas[0]
    assert first is not None
    out: dict[str, Any] = {}
    for name, value in first.items():
        if name in _OWN:
            continue
        k = filter_key(value)
        if all(name in m and filter_key(m[name]) == k for m in metas[1:] if m is not None):
            out[name] = value
    return out


def _is_summary(metadata: Mapping[str, Any] | None) -> bool:
    return metadata is not None and metadata.get(META_SUMMARY) is True


def _empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, list | dict) and not value


def _merge_metadata(metas: Sequence[Mapping[str, Any] | None]) -> dict[str, Any] | None:
    """Metadata of a merged record: every field of ``metas`` (oldest first; newer wins)."""
    out: dict[str, Any] = {}
    for m in metas:
        if m:
            out.update(m)
    return out or None


async def _duplicates(
    memory: MemoryPrimitive, records: Sequence[Record], threshold: float
) -> dict[str, list[str]]:
    """Newest key -> the older keys that are its near-duplicates.

    Greedy, newest first: each record joins the first (newest) group whose head (its newest
    record) is similar enough, or heads a group of its own.
    """
    newest_first = list(reversed(records))
    values = [codec.decode(r.payload) for r in newest_first]
    if memory._embedder is not None:
        heads = _vector_heads(await memory._embed(values), threshold)
    else:
        heads = _text_heads(values, [r.payload for r in newest_first], threshold)
    groups: dict[str, list[str]] = {}
    for i, head in enumerate(heads):
        if head is not None:
            groups.setdefault(newest_first[head].key, []).append(newest_first[i].key)
    return groups


def _vector_heads(raw: Sequence[Any], threshold: float) -> list[int | None]:
    """The head each record joins (None: it heads a group), by cosine of unit vectors."""
    n = len(raw)
    if not n:
        return []
    vectors = np.stack([normalize_vector(v) for v in raw]).astype(np.float64)
    is_head = np.zeros(n, dtype=bool)
    out: list[int | None] = []
    for i in range(n):
        close = np.flatnonzero(is_head[:i] & (vectors[:i] @ vectors[i] >= threshold - 1e-6))
        if close.size:
            out.append(int(close[0]))
        else:
            is_head[i] = True
            out.append(None)
    return out


def _text_heads(
    values: Sequence[Any], payloads: Sequence[str], threshold: float
) -> list[int | None]:
    """The head each record joins (None: it heads a group), by Jaccard of word sets.

    Prefix filtering: with the words of every set ordered rarest first, two sets of Jaccard at
    least ``threshold`` share a word among the first ``len - ceil(threshold * len) + 1`` of
    each, so only heads indexed under those words are compared. Records without words match
    on an identical value only.
    """
    words = [frozenset(make_document(v).terms) for v in values]
    df: dict[str, int] = {}
    for w in words:
        for t in w:
            df[t] = df.get(t, 0) + 1

    def prefix(w: frozenset[str]) -> list[str]:
        ordered = sorted(w, key=lambda t: (df[t], t))
        return ordered[: len(w) - math.ceil(threshold * len(w) - 1e-9) + 1]

    index: dict[str, list[int]] = {}
    wordless: dict[str, int] = {}
    out: list[int | None] = []
    for i, a in enumerate(words):
        if not a:
            head = wordless.setdefault(payloads[i], i)
            out.append(None if head == i else head)
            continue
        first = prefix(a)
        candidates: set[int] = set()
        for t in first:
            candidates.update(index.get(t, ()))
        found = None
        for h in sorted(candidates):
            b = words[h]
            inter = len(a & b)
            if inter >= threshold * (len(a) + len(b) - inter) - 1e-9:
                found = h
                break
        out.append(found)
        if found is None:
            for t in first:
                index.setdefault(t, []).append(i)
    return out


@dataclass(slots=True)
class _Plan:
    plan: CompactionPlan | None
    replaced: tuple[str, ...]
    merged: tuple[str, ...]


async def run_compaction(memory: MemoryPrimitive, op: MemoryOperation, span: trace.Span) -> Any:
    """The ``compact`` operation's handler (see :meth:`MemoryPrimitive.compact`)."""
    req = _request(op)
    _check_summarizer(req.summarizer)
    keep_last = _check_count(req.keep_last, "keep_last", 0)
    max_records = (
        None if req.max_records is None else _check_count(req.max_records, "max_records", 2)
    )
    threshold = _check_threshold(req.merge_duplicates)
    if req.summarizer is None and threshold is None:
        raise ValueError("compact needs a summarizer, or merge_duplicates to merge only")
    timeout = codec.validate_ttl(req.summarizer_timeout, "summarizer_timeout")
    filter_ = _check_filter(req.filter)
    summary_key = None if req.summary_key is None else codec.validate_key(req.summary_key)
    ttl, _ = memory._record_settings(req.ttl, None)
    backend = memory._shared.backend
    if not isinstance(backend, CompactingBackend):
        raise TypeError(
            f"backend {backend.info().name!r} cannot compact: it needs scan() and "
            "apply_compaction() (see CompactingBackend)"
        )
    namespace = memory.namespace
    records = await backend.scan(namespace)
    if filter_:
        records = [r for r in records if matches_filter(r.metadata, filter_)]
    considered = len(records)
    by_key = {r.key: r for r in records}

    groups = {} if threshold is None else await _duplicates(memory, records, threshold)
    merged_away = {k for dups in groups.values() for k in dups}
    survivors = [r for r in records if r.key not in merged_away]
    merged_meta = {
        head: _merge_metadata([by_key[k].metadata for k in (*reversed(dups), head)])
        for head, dups in groups.items()
    }

    def metadata_of(r: Record) -> Mapping[str, Any] | None:
        return merged_meta.get(r.key, r.metadata)

    # Earlier summaries stand for the oldest records: they never take one of keep_last's
    # places, and each new summary rolls them in, so repeated compactions leave one.
    earlier = [r for r in survivors if _is_summary(metadata_of(r))]
    originals = [r for r in survivors if not _is_summary(metadata_of(r))]
    batch = originals[: max(0, len(originals) - keep_last)]
    if max_records is not None:
        batch = batch[:max_records]
    batch = [*earlier, *batch]
    if req.summarizer is None or len(batch) < 2:
        batch = []
    if (
        summary_key is not None
        and summary_key in by_key
        and summary_key not in {r.key for r in batch}
    ):
        raise ValueError(
            f"summary_key {summary_key!r} names a live record that is not being compacted"
        )

    summary: Any = None
    if batch:
        context = req.context if req.context is not None else WorkflowContext()
        inputs = [_memory_record(r, metadata_of(r)) for r in batch]
        async with asyncio.timeout(timeout):
            summary = await req.summarizer.execute(inputs, context)
        if _empty(summary):
            raise ValueError(
                f"summarizer {getattr(req.summarizer, 'name', req.summarizer)!r} returned "
                "nothing: every record was left in place"
            )
        # Validate (and encode) the summary before any record is touched.
        codec.encode_snapshot(summary, memory._max_value_bytes, "summary")
    key = summary_key or f"summary:{uuid.uuid4().hex}"

    async def plan_without(changed: set[str]) -> _Plan:
        expected: dict[str, int] = {}
        delete: list[str] = []
        rewrite: list[tuple[Record, Mapping[str, Any] | None]] = []
        merged: list[str] = []
        in_batch = [r for r in batch if r.key not in changed]
        batch_keys = {r.key for r in in_batch} if len(in_batch) >= 2 else set()
        for head, dups in groups.items():
            keys = [head, *dups]
            if changed.intersection(keys):
                continue
            for k in keys:
                expected[k] = by_key[k].seq
            delete.extend(dups)
            merged.extend(dups)
            meta = merged_meta[head]
            if head not in batch_keys and meta != by_key[head].metadata:
                rewrite.append((by_key[head], meta))
        replaced: tuple[str, ...] = ()
        insert = None
        if batch_keys:
            kept_batch = [r for r in in_batch if r.key in batch_keys]
            replaced = tuple(r.key for r in kept_batch)
            for r in kept_batch:
                expected[r.key] = r.seq
                if r.key not in delete:
                    delete.append(r.key)
            insert = memory._entry(key, summary, ttl, _summary_metadata(kept_batch, metadata_of))
        elif not merged:
            return _Plan(None, (), ())
        entries = [
            Entry(
                r.key,
                r.payload,
                codec.validate_metadata(meta) if meta else None,
                index_text=r.index_text,
            )
            for r, meta in rewrite
        ]
        values = [indexed_value(codec.decode(r.payload), r.index_text) for r, _ in rewrite]
        if insert is not None:
            entries.append(insert)
            values.append(summary)
        entries = await memory._embedded(entries, values)
        if insert is not None:
            insert = entries.pop()
        plan = CompactionPlan(expected, tuple(delete), tuple(entries), insert)
        return _Plan(plan, replaced, tuple(merged))

    changed: set[str] = set()
    result = _Plan(None, (), ())
    for _ in range(_ATTEMPTS):
        result = await plan_without(changed)
        if result.plan is None:
            break
        conflicts = await backend.apply_compaction(namespace, result.plan)
        if not conflicts:
            break
        changed.update(conflicts)
    else:
        result = _Plan(None, (), ())
    report = CompactionReport(
        summary_key=key if result.plan is not None and result.plan.insert is not None else None,
        replaced=result.replaced if result.plan is not None else (),
        merged=result.merged if result.plan is not None else (),
        kept=tuple(sorted(changed)),
        considered=considered,
    )
    if span.is_recording():
        span.set_attributes(
            {
                A.ATTR_GEN_AI_MEMORY_RECORD_COUNT: report.removed,
                A.ATTR_MEMORY_COMPACTION_CONSIDERED: report.considered,
                A.ATTR_MEMORY_COMPACTION_REPLACED: len(report.replaced),
                A.ATTR_MEMORY_COMPACTION_MERGED: len(report.merged),
                A.ATTR_MEMORY_COMPACTION_KEPT: len(report.kept),
            }
        )
    return report


def _summary_metadata(
    batch: Sequence[Record], metadata_of: Callable[[Record], Mapping[str, Any] | None]
) -> dict[str, Any]:
    metas = [metadata_of(r) for r in batch]
    out = _common_metadata(metas)
    count = 0
    starts: list[float] = []
    ends: list[float] = []
    sources: list[str] = []
    for record, m in zip(batch, metas, strict=True):
        m = m or {}
        summary = m.get(META_SUMMARY) is True
        if summary:
            earlier = m.get(META_SOURCES, m.get(META_REPLACED))
            if isinstance(earlier, list):
                sources.extend(k for k in earlier if isinstance(k, str))
        else:
            sources.append(record.key)
        n = m.get(META_SUMMARIZED) if summary else None
        count += n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1
        created, updated, _ = _times(record)
        # An earlier summary stands for its own range; any other record for its own times.
        for name, acc, own in ((META_FROM, starts, created), (META_TO, ends, updated)):
            t = m.get(name) if summary else own
            if isinstance(t, int | float) and not isinstance(t, bool):
                acc.append(float(t))
    out[META_SUMMARY] = True
    out[META_REPLACED] = [r.key for r in batch]
    out[META_SOURCES] = list(dict.fromkeys(sources))
    out[META_SUMMARIZED] = count
    if starts:
        out[META_FROM] = min(starts)
    if ends:
        out[META_TO] = max(ends)
    return out


# -- compaction in the background --------------------------------------------------------------


class AutoCompactor:
    """Runs a :class:`CompactionPolicy` for a primitive and its scoped views.

    Adds only count down a per-namespace budget (no I/O); when it runs out, one background
    task per namespace reads the size and compacts if it passed the threshold. The task runs
    in a fresh context, so its spans start their own trace instead of hanging from an add
    that has already returned.
    """

    MAX_NAMESPACES = 4096

    def __init__(self, policy: CompactionPolicy) -> None:
        self.policy = policy
        self._budget: dict[tuple[str, ...], int] = {}
        self._tasks: dict[tuple[str, ...], asyncio.Task[None]] = {}
        self._closed = False

    def added(self, memory: MemoryPrimitive, n: int) -> None:
        """Note ``n`` records added to ``memory``'s namespace; start a check when due."""
        ns = memory.namespace
        budget = self._budget.get(ns, 0) - n
        if len(self._budget) >= self.MAX_NAMESPACES and ns not in self._budget:
            self._budget.clear()
        self._budget[ns] = budget
        if budget > 0 or self._closed or ns in self._tasks:
            return
        task = asyncio.get_running_loop().create_task(
            self._run(memory), context=contextvars.Context()
        )
        self._tasks[ns] = task
        task.add_done_callback(lambda t: self._done(ns, t))

    def _done(self, ns: tuple[str, ...], task: asyncio.Task[None]) -> None:
        if self._tasks.get(ns) is task:
            del self._tasks[ns]

    async def _run(self, memory: MemoryPrimitive) -> None:
        policy = self.policy
        ns = memory.namespace
        while not self._closed:
            start = self._budget.get(ns, 0)
            try:
                size = await memory.size()
                if size > policy.max_records:
                    report = await memory.compact(
                        policy.summarizer,
                        keep_last=policy.keep_last,
                        filter=policy.filter,
                        merge_duplicates=policy.merge_duplicates,
                        summarizer_timeout=policy.summarizer_timeout,
                    )
                    size -= report.removed - (report.summary_key is not None)
                    if not report.removed:  # nothing to gain by trying again at once
                        size = policy.keep_last
                budget = max(1, policy.max_records - size)
            except (asyncio.CancelledError, GeneratorExit):
                raise
            except (Exception, MemoryBackendError) as exc:
                logger.warning(
                    "auto-compaction of memory namespace %r failed: %s: %s",
                    "/".join(ns),
                    type(exc).__name__,
                    exc,
                )
                # Try again after as many adds as a compaction would have removed, not at
                # once (a model that is down now is likely down a moment later).
                self._budget[ns] = max(1, policy.max_records - policy.keep_last)
                return
            # Adds made while this ran count against the new budget.
            budget -= start - self._budget.get(ns, 0)
            self._budget[ns] = budget
            if budget > 0:
                return

    async def wait(self) -> None:
        """Wait for the running background compactions (tests and shutdown use it)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def aclose(self) -> None:
        """Cancel the running compactions (atomic: a cancelled one changes nothing)."""
        self._closed = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
