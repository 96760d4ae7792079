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
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from ..core.base import WorkflowPrimitive
from ..core.context import WorkflowContext
from ..core.instrumented import InstrumentedPrimitive
from . import codec
from .errors import MemoryBackendError
from .records import MemoryRecord
from .search import (
    bm25,
    idf,
    string_leaves,
    tokenize,
    validate_filter,
)

if TYPE_CHECKING:
    from .primitive import MemoryPrimitive

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


def check_summarizer(summarizer: object, arg: str = "summarizer") -> None:
    if summarizer is not None and not isinstance(summarizer, WorkflowPrimitive):
        raise TypeError(
            f"{arg} must be a WorkflowPrimitive taking a list of MemoryRecord (wrap a "
            f"function in LambdaPrimitive), got {type(summarizer).__name__}"
        )


def check_threshold(value: object, arg: str = "merge_duplicates") -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{arg} must be a similarity in (0, 1] or None")
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{arg} must be in (0, 1], got {value!r}")
    return float(value)


def check_count(value: object, arg: str, minimum: int) -> int:
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
        check_count(self.max_records, "max_records", 1)
        check_count(self.keep_last, "keep_last", 0)
        if self.keep_last >= self.max_records:
            raise ValueError("keep_last must be below max_records")
        check_summarizer(self.summarizer)
        check_threshold(self.merge_duplicates)
        if self.summarizer is None and self.merge_duplicates is None:
            raise ValueError("a CompactionPolicy needs a summarizer or merge_duplicates")
        validate_filter(self.filter)
        codec.validate_ttl(self.summarizer_timeout, "summarizer_timeout")


@dataclass(frozen=True, slots=True)
class CompactionRequest:
    """The arguments of one compaction (``MemoryOperation.compact(...)``)."""

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

SENTENCE_BREAK = re.compile(r"(?<=[.!?;])\s+|\n+")
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
        self.max_sentences = check_count(max_sentences, "max_sentences", 1)
        self.max_chars = check_count(max_chars, "max_chars", 1)
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
                for part in SENTENCE_BREAK.split(leaf):
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
